/**
 * The failure detector (src/client/requesting/failure-detector.ts, protocol §4.7): the acknowledgement
 * deadline learnt per handler, suspicion, and what lifts it. Pure: times are passed in.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CEILING_IN_ACK_TIMEOUTS, FailureDetector, SUSPICION_IN_ACK_TIMEOUTS, type KnownPresence } from '../../src/client/requesting/failure-detector.js';

const presences = new Map<string, KnownPresence>();
const detector = () => new FailureDetector((handler) => presences.get(handler) ?? { since: 1, seq: 1 });

const ackTimeouts = fc.integer({ min: 10, max: 20_000 });
/** A round trip, from instant to far slower than any ceiling. */
const rtts = fc.integer({ min: 0, max: 400_000 });
type Event = { kind: 'answered'; rtt: number } | { kind: 'missed' } | { kind: 'wait'; ms: number };
const events = fc.array(
  fc.oneof(
    rtts.map((rtt): Event => ({ kind: 'answered', rtt })),
    fc.constant<Event>({ kind: 'missed' }),
    fc.integer({ min: 0, max: 100_000 }).map((ms): Event => ({ kind: 'wait', ms })),
  ),
  { maxLength: 60 },
);

describe('failure detector', () => {
  it('failure detector - a handler not heard from yet is given ackTimeout', () => {
    assert.equal(detector().deadline('h', 2000), 2000);
  });

  it('failure detector - the deadline always lies between ackTimeout and its ceiling, whatever happened', () => {
    fc.assert(
      fc.property(ackTimeouts, events, fc.integer({ min: 0, max: 40 }), (ackTimeout, history, misses) => {
        const fd = detector();
        let now = 0;
        for (const event of history) {
          if (event.kind === 'answered') fd.answered('h', event.rtt);
          else if (event.kind === 'missed') fd.missed('h', ackTimeout, now);
          else now += event.ms;
          const deadline = fd.deadline('h', ackTimeout, misses);
          assert.ok(deadline >= ackTimeout && deadline <= CEILING_IN_ACK_TIMEOUTS * ackTimeout, `${deadline} outside [${ackTimeout}, ${CEILING_IN_ACK_TIMEOUTS * ackTimeout}]`);
        }
      }),
    );
  });

  it('failure detector - estimates converge: after a run of equal round trips the deadline is that round trip (within its bounds)', () => {
    fc.assert(
      fc.property(ackTimeouts, events, rtts, (ackTimeout, history, rtt) => {
        const fd = detector();
        let now = 0;
        for (const event of history) {
          if (event.kind === 'answered') fd.answered('h', event.rtt);
          else if (event.kind === 'missed') fd.missed('h', ackTimeout, now);
          else now += event.ms;
        }
        // SRTT and RTTVAR forget the past geometrically (gains 1/8 and 1/4): 150 equal samples
        // leave less than 1e-8 of it.
        for (let n = 0; n < 150; n++) fd.answered('h', rtt);
        const expected = Math.min(CEILING_IN_ACK_TIMEOUTS * ackTimeout, Math.max(ackTimeout, rtt));
        assert.ok(Math.abs(fd.deadline('h', ackTimeout) - expected) <= 0.01 * expected, `${fd.deadline('h', ackTimeout)} vs ${expected}`);
      }),
    );
  });

  it('failure detector - after a slow first answer, the next wait covers it (up to the ceiling)', () => {
    fc.assert(
      fc.property(ackTimeouts, rtts, (ackTimeout, rtt) => {
        const fd = detector();
        fd.answered('h', rtt);
        assert.ok(fd.deadline('h', ackTimeout) >= Math.min(rtt, CEILING_IN_ACK_TIMEOUTS * ackTimeout));
      }),
    );
  });

  it('failure detector - a jittery handler gets more room than a steady one with the same mean', () => {
    const steady = detector();
    const jittery = detector();
    for (let n = 0; n < 50; n++) {
      steady.answered('h', 1000);
      jittery.answered('h', n % 2 === 0 ? 200 : 1800);
    }
    assert.ok(Math.abs(steady.deadline('h', 500) - 1000) < 1, String(steady.deadline('h', 500)));
    assert.ok(jittery.deadline('h', 500) > 3000, String(jittery.deadline('h', 500)));
  });

  it('failure detector - each wait a request spent in vain doubles its next one, up to the ceiling; misses of other requests do not compound', () => {
    const fd = detector();
    fd.answered('h', 400); // SRTT 400, RTTVAR 200: 1200 ms
    assert.deepEqual([0, 1, 2, 3, 4].map((misses) => fd.deadline('h', 1000, misses)), [1200, 2400, 4800, 8000, 8000]);
    for (let request = 0; request < 10; request++) fd.missed('h', 1000, 0);
    assert.equal(fd.deadline('h', 1000), 1200, 'a new request starts from the estimate');
  });

  it('failure detector - a handler that answers slower than the floor stops being suspected once it answers', () => {
    fc.assert(
      fc.property(ackTimeouts, fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 10 }), (ackTimeout, slowness, misses) => {
        const fd = detector();
        for (let miss = 0; miss < misses; miss++) fd.missed('h', ackTimeout, 0);
        assert.equal(fd.isSuspected('h', 1), true);
        fd.answered('h', ackTimeout * (1 + slowness)); // later than any deadline it was given
        assert.equal(fd.isSuspected('h', 1), false);
      }),
    );
  });

  it('failure detector - a suspicion lapses after a while, so that the handler is tried again', () => {
    const fd = detector();
    fd.missed('h', 100, 1000);
    assert.equal(fd.isSuspected('h', 1000 + SUSPICION_IN_ACK_TIMEOUTS * 100 - 1), true);
    assert.equal(fd.isSuspected('h', 1000 + SUSPICION_IN_ACK_TIMEOUTS * 100), false);
    assert.equal(fd.isSuspected('other', 1000), false);
  });

  it('failure detector - a newer presence of the same instance lifts the suspicion and keeps the estimate; another instance starts afresh', () => {
    presences.set('p', { since: 10, seq: 1 });
    const fd = detector();
    fd.answered('p', 1500); // SRTT 1500, RTTVAR 750: 4500 ms
    fd.missed('p', 1000, 0);
    fd.presenceChanged('p', { since: 10, seq: 1 }); // the same presence again: nothing new
    assert.equal(fd.isSuspected('p', 1), true);
    fd.presenceChanged('p', { since: 10, seq: 2 }); // it came back
    assert.equal(fd.isSuspected('p', 1), false);
    assert.equal(fd.deadline('p', 1000), 4500, 'the estimate stays');
    fd.presenceChanged('p', { since: 11, seq: 1 }); // restarted
    assert.equal(fd.deadline('p', 1000), 1000);
    fd.answered('p', 5000);
    fd.presenceChanged('p', undefined); // forgotten
    assert.equal(fd.deadline('p', 1000), 1000);
    presences.delete('p');
  });
});
