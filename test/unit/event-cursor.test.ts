/**
 * A consumer's place in the router's event stream (protocol §11.8) as a pure state machine:
 * resume from a cursor, replay after a gap or a reconnection, the gap that retention made told
 * with its count; then any interleaving of pushes, losses, reconnections, router failures and
 * retention (fast-check): each event yielded once, in cursor order, none lost unless told.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EVENTS_PAGE, EventCursor, MAX_HELD_EVENTS, type EventCatchUp, type EventGap, type EventsAsk } from '../../src/protocol/event-cursor.js';
import type { BusEvent, EventsPage } from '../../src/protocol/events.js';

const event = (cursor: number): BusEvent => ({ cursor, time: cursor, type: 'notification', data: {} });

/** The router's side: a log of events 1..latest, the oldest removed by retention up to `retainedFrom`. */
class Router {
  latest = 0;
  retainedFrom = 1;
  answer(ask: EventsAsk, limit = EVENTS_PAGE): EventsPage {
    if (!('since' in ask)) return { events: [], more: false, latest: this.latest };
    const first = Math.max(ask.since + 1, this.retainedFrom);
    const missed = first - (ask.since + 1);
    const last = Math.min(this.latest, first + Math.min(limit, ask.limit) - 1);
    const events = last >= first ? Array.from({ length: last - first + 1 }, (_, i) => event(first + i)) : [];
    return { events, more: last < this.latest, latest: this.latest, ...(missed > 0 && { missed }) };
  }
}

/** Asks and answers until the cursor reads live events; returns what it yielded. */
function catchUp(cursor: EventCursor, router: Router, limit?: number): Array<BusEvent | EventGap> {
  const out: Array<BusEvent | EventGap> = [];
  for (let ask = cursor.ask(); ask; ask = cursor.ask()) out.push(...cursor.answered(router.answer(ask, limit)).items);
  out.push(...cursor.live());
  return out;
}

const cursors = (items: Array<BusEvent | EventGap>) => items.map((item) => ('cursor' in item ? item.cursor : `gap ${item.missed} after ${item.after}`));

describe('event cursor - resume, replay, gap (protocol §11.8)', () => {
  it('event cursor - from now on: asks the latest cursor, then yields only what comes after it', () => {
    const router = Object.assign(new Router(), { latest: 7 });
    const cursor = new EventCursor();
    assert.deepEqual(cursor.ask(), { limit: 1 });
    assert.deepEqual(cursor.answered(router.answer({ limit: 1 })), { items: [] });
    assert.equal(cursor.cursor, 7);
    cursor.pushed([event(7), event(8), event(9)]);
    assert.deepEqual(cursors(cursor.live()), [8, 9]);
  });

  it('event cursor - from a cursor: the stored events after it, in pages, then the live ones, each once', () => {
    const router = Object.assign(new Router(), { latest: 25 });
    const cursor = new EventCursor(3);
    cursor.pushed([event(24), event(25), event(26)]); // live events arrive while it catches up
    assert.deepEqual(cursors(catchUp(cursor, router, 10)), [...Array.from({ length: 22 }, (_, i) => 4 + i), 26]);
  });

  it('event cursor - a gap in the pushed cursors: the rest waits for a replay from the router, which has them', () => {
    const router = Object.assign(new Router(), { latest: 5 });
    const cursor = new EventCursor(5);
    assert.deepEqual(catchUp(cursor, router), []);
    cursor.pushed([event(6), event(8), event(9)]); // 7 was lost on the way
    assert.deepEqual(cursors(cursor.live()), [6]);
    router.latest = 9;
    assert.deepEqual(cursors(catchUp(cursor, router)), [7, 8, 9]);
  });

  it('event cursor - retention removed events before they were read: a gap with their count, then what is left', () => {
    const router = Object.assign(new Router(), { latest: 20, retainedFrom: 15 });
    const cursor = new EventCursor(10);
    assert.deepEqual(cursors(catchUp(cursor, router)), ['gap 4 after 10', 15, 16, 17, 18, 19, 20]);
  });

  it('event cursor - a reconnection replays what was pushed while away; a router that does not answer is asked again', () => {
    const router = Object.assign(new Router(), { latest: 2 });
    const cursor = new EventCursor(0);
    assert.deepEqual(cursors(catchUp(cursor, router)), [1, 2]);
    router.latest = 4; // pushed while we were away
    cursor.reconnected();
    assert.equal(cursor.idle, false);
    assert.deepEqual(cursor.ask(), { since: 2, limit: EVENTS_PAGE });
    cursor.failed();
    assert.deepEqual(cursors(catchUp(cursor, router)), [3, 4]);
    assert.equal(cursor.idle, true);
  });

  it('event cursor - more live events than it holds while catching up: dropped and replayed from the router instead', () => {
    const router = Object.assign(new Router(), { latest: MAX_HELD_EVENTS + 5 });
    const cursor = new EventCursor(0);
    cursor.pushed(Array.from({ length: MAX_HELD_EVENTS + 5 }, (_, i) => event(i + 1)));
    const yielded = catchUp(cursor, router);
    assert.deepEqual(cursors(yielded), Array.from({ length: MAX_HELD_EVENTS + 5 }, (_, i) => i + 1));
  });
});

type Step =
  | { kind: 'append'; count: number; delivered: boolean[] }
  | { kind: 'retain'; upTo: number }
  | { kind: 'reconnect' }
  | { kind: 'routerDown'; down: boolean }
  | { kind: 'read' };

const steps: fc.Arbitrary<Step> = fc.oneof(
  fc.integer({ min: 1, max: 6 }).chain((count) => fc.record({ kind: fc.constant('append' as const), count: fc.constant(count), delivered: fc.array(fc.boolean(), { minLength: count, maxLength: count }) })),
  fc.integer({ min: 0, max: 30 }).map((upTo): Step => ({ kind: 'retain', upTo })),
  fc.constant<Step>({ kind: 'reconnect' }),
  fc.boolean().map((down): Step => ({ kind: 'routerDown', down })),
  fc.constant<Step>({ kind: 'read' }),
);

describe('event cursor - catch-up reports', () => {
  /** Runs the replays that are due, returning what each one reported. */
  const replays = (cursor: EventCursor, router: Router, down = false): EventCatchUp[] => {
    const reports: EventCatchUp[] = [];
    cursor.live(); // reading the live events finds a jump in their cursors
    for (let ask = cursor.ask(); ask; ask = cursor.ask()) {
      if (down) {
        cursor.failed();
        break;
      }
      const { caughtUp } = cursor.answered(router.answer(ask, 2));
      if (caughtUp) reports.push(caughtUp);
    }
    cursor.live();
    return reports;
  };

  it('event cursor - each replay reports why it ran, where it read from, and what it found, once it is done', () => {
    const router = Object.assign(new Router(), { latest: 5, retainedFrom: 3 });
    const cursor = new EventCursor(0);
    assert.deepEqual(replays(cursor, router), [{ reason: 'start', after: 0, events: 3, missed: 2 }]);
    router.latest = 7;
    cursor.pushed([event(7)]); // 6 missed live
    assert.deepEqual(replays(cursor, router), [{ reason: 'gap', after: 5, events: 2, missed: 0 }]);
    router.latest = 8;
    cursor.pushed([event(9)]); // a gap, then the connection dropped: the reconnection says why
    cursor.live();
    cursor.reconnected();
    router.latest = 9;
    assert.deepEqual(replays(cursor, router, true), [], 'the router did not answer');
    assert.deepEqual(replays(cursor, router), [{ reason: 'reconnection', after: 7, events: 2, missed: 0 }], 'asked again for the same reason');
  });

  it('event cursor - a feed started from now reports nothing for its first answer', () => {
    const cursor = new EventCursor();
    assert.deepEqual(replays(cursor, Object.assign(new Router(), { latest: 3 })), []);
  });
});

describe('event cursor - any interleaving (fast-check)', () => {
  it('event cursor - each event yielded once, in cursor order; every event after the start is yielded or counted in a gap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), fc.array(steps, { maxLength: 40 }), (since, script) => {
        const router = Object.assign(new Router(), { latest: since });
        const cursor = new EventCursor(since);
        const yielded: Array<BusEvent | EventGap> = [];
        let routerDown = false;
        const read = () => {
          for (let ask = cursor.ask(); ask; ask = cursor.ask()) {
            if (routerDown) return cursor.failed();
            yielded.push(...cursor.answered(router.answer(ask, 4)).items);
          }
          yielded.push(...cursor.live());
        };
        for (const step of script) {
          if (step.kind === 'append') {
            const batch = Array.from({ length: step.count }, (_, i) => event(router.latest + 1 + i));
            router.latest += step.count;
            cursor.pushed(batch.filter((_, i) => step.delivered[i]));
          } else if (step.kind === 'retain') router.retainedFrom = Math.max(router.retainedFrom, Math.min(step.upTo, router.latest + 1));
          else if (step.kind === 'reconnect') cursor.reconnected();
          else if (step.kind === 'routerDown') routerDown = step.down;
          else read();
        }
        routerDown = false;
        cursor.reconnected(); // the last pushes may have been lost: a consumer catches up at its next reconnection
        read();
        // Read in order, the events and the gaps account for every cursor after the start, once.
        let at = since;
        for (const item of yielded) {
          if ('cursor' in item) {
            assert.equal(item.cursor, at + 1, `event ${item.cursor} after ${at}`);
            at = item.cursor;
          } else {
            assert.equal(item.after, at, 'a gap is told where it is');
            at += item.missed;
          }
        }
        assert.equal(at, router.latest, 'every event yielded or counted in a gap');
        assert.equal(cursor.cursor, router.latest, 'caught up');
      }),
      { numRuns: 500 },
    );
  });
});
