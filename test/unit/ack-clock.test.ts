import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { AckClock } from '../../src/client/requesting/ack-clock.js';

/** Lets the callbacks of this turn of the event loop run, setImmediate's included. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('ack clock', () => {
  it('ack clock - a request still waiting is written again half-way, then expires at its ack time-out; one answered is left alone', async () => {
    const clock = new AckClock();
    const events: string[] = [];
    const waiting = { lane: 'main' as const, ackRetryAt: 0, ackExpireAt: 0, ackWaitMs: 0, ackAsked: false, retry: () => events.push('retry'), expire: () => events.push('expire') };
    const answered = { lane: 'main' as const, ackRetryAt: 0, ackExpireAt: 0, ackWaitMs: 0, ackAsked: false, retry: () => events.push('answered retried'), expire: () => events.push('answered expired') };
    clock.start(waiting, 2000, 0);
    clock.start(answered, 2000, 0);
    clock.stop(answered);
    clock.tick(999);
    assert.deepEqual(events, []);
    clock.tick(1000);
    clock.tick(1500);
    assert.deepEqual(events, ['retry'], 'written again once');
    clock.tick(2000);
    await turn();
    clock.tick(3000);
    await turn();
    assert.deepEqual(events, ['retry', 'expire'], 'expired once');
    clock.tick(4000); // nobody waits: the sweep stops
  });

  it('ack clock - a wait over while the broker was silent asks it first; the handler then has a quarter of the wait more, and a broker heard lately is not asked (protocol §4.7)', async () => {
    let heardAt = 0;
    let answerProbe!: () => void;
    const probes: string[] = [];
    const clock = new AckClock({
      heardAt: () => heardAt,
      probe: (lane) => {
        probes.push(lane);
        return new Promise<void>((resolve) => (answerProbe = resolve));
      },
    });
    const events: string[] = [];
    const request = (name: string) => ({ lane: 'main' as const, ackRetryAt: 0, ackExpireAt: 0, ackWaitMs: 0, ackAsked: false, retry: () => {}, expire: () => events.push(`${name} expired`) });
    // Heard in the wait's last quarter: the handler's silence counts at once.
    const heard = request('heard');
    clock.start(heard, 1000, 0);
    heardAt = 800;
    clock.tick(1000);
    await turn();
    assert.deepEqual(events, ['heard expired']);
    assert.deepEqual(probes, []);
    // Silent since the wait began (a frozen broker): asked, and nothing expires while it does not answer.
    const frozen = request('frozen');
    const answered = request('answered');
    clock.start(frozen, 1000, 2000);
    clock.start(answered, 1000, 2000);
    clock.tick(3000);
    await turn();
    assert.deepEqual(probes, ['main'], 'one question for the lane');
    clock.tick(9000);
    await turn();
    assert.deepEqual(events, ['heard expired'], 'nothing given up while the broker is silent');
    // It answers; meanwhile one handler's answer came through (the one it held).
    clock.stop(answered);
    const answeredAt = Date.now();
    answerProbe();
    await turn();
    const restartedBy = Date.now(); // the quarter started between answeredAt and now
    clock.tick(answeredAt + 249);
    await turn();
    assert.deepEqual(events, ['heard expired'], 'a quarter of the wait more');
    clock.tick(restartedBy + 250);
    await turn();
    assert.deepEqual(events, ['heard expired', 'frozen expired'], 'then its end counts, without asking again');
    assert.deepEqual(probes, ['main']);
  });

  it('ack clock - a process that wakes late reads what has arrived before it expires a wait: an answer already in its socket stops it (protocol §4.7)', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const [handlerSide] = (await once(server, 'connection')) as [net.Socket];
    await once(client, 'connect');
    try {
      const clock = new AckClock();
      const events: string[] = [];
      const request = { lane: 'main' as const, ackRetryAt: 0, ackExpireAt: 0, ackWaitMs: 0, ackAsked: false, retry: () => {}, expire: () => events.push('expired') };
      // The answer, when read, ends the wait, as a response does in the requester.
      client.on('data', () => {
        events.push('answer read');
        clock.stop(request);
      });
      clock.start(request, 20);
      handlerSide.write('accepted'); // in the requester's socket now, unread
      const frozenAt = Date.now();
      while (Date.now() - frozenAt < 100); // frozen past the wait: its sweep is due on waking, before any I/O
      await once(client, 'data');
      await turn();
      assert.deepEqual(events, ['answer read']);
    } finally {
      client.destroy();
      handlerSide.destroy();
      server.close();
    }
  });
});
