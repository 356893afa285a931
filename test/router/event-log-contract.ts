/**
 * `eventLogContract()`: what every event log must do (protocol §11.8), run against each
 * implementation (sqlite-event-log.test.ts, memory-stores.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EventLog, NewEvent } from '../../src/router/event-log.js';

export interface EventLogFactory {
  /** A new empty log; `now` is its clock for each event's time. */
  open(now: () => number): EventLog;
  /** Closes it and opens the same data again (a restart). */
  reopen?(log: EventLog, now: () => number): EventLog;
}

const event = (n: number): NewEvent => ({ type: 'notification', data: { category: 'test/events', n } });
const events = (from: number, count: number) => Array.from({ length: count }, (_, i) => event(from + i));
const numbers = (page: { events: Array<{ data: Record<string, unknown> }> }) => page.events.map((stored) => stored.data.n);

export function eventLogContract(name: string, factory: EventLogFactory): void {
  describe(`event log contract (${name})`, () => {
    const clock = { now: 10_000 };
    const open = () => factory.open(() => clock.now);

    it('events - each event gets the next cursor, one more than the last, and the time it was stored; nothing stored gives nothing', () => {
      const log = open();
      try {
        assert.deepEqual(log.page(undefined, 10), { events: [], more: false, latest: 0 }, 'an empty log');
        assert.deepEqual(log.append([]), []);
        const first = log.append(events(0, 3));
        clock.now = 20_000;
        const second = log.append([{ type: 'client', data: { id: 'svc', status: 'alive', nested: { list: [1, 'two', null] } } }]);
        assert.deepEqual([...first, ...second].map((stored) => stored.cursor), [1, 2, 3, 4]);
        assert.deepEqual([...first, ...second].map((stored) => stored.time), [10_000, 10_000, 10_000, 20_000]);
        const page = log.page(0, 10);
        assert.deepEqual(page, { events: [...first, ...second], more: false, latest: 4 }, 'append returns the events as stored, data included');
      } finally {
        log.close();
        clock.now = 10_000;
      }
    });

    it('events - a page after a cursor is oldest first and says when more follow; without a cursor, the newest', () => {
      const log = open();
      try {
        log.append(events(1, 25));
        const first = log.page(0, 10);
        assert.deepEqual([numbers(first), first.more, first.latest], [events(1, 10).map((e) => e.data.n), true, 25]);
        const last = log.page(20, 10);
        assert.deepEqual([numbers(last), last.more], [[21, 22, 23, 24, 25], false]);
        assert.deepEqual(log.page(25, 10), { events: [], more: false, latest: 25 }, 'nothing after the newest');
        assert.deepEqual(log.page(99, 10), { events: [], more: false, latest: 25 }, 'a cursor from the future: nothing, and nothing missed');
        const newest = log.page(undefined, 3);
        assert.deepEqual([numbers(newest), newest.more, newest.latest], [[23, 24, 25], false, 25]);
        assert.equal('missed' in first || 'missed' in newest, false);
      } finally {
        log.close();
      }
    });

    it('events - events given up leave their cursors unused: a page ends before the hole and the next says how many were missed', () => {
      const log = open();
      try {
        log.append(events(0, 3));
        const after = log.append(events(3, 2), 4);
        assert.deepEqual(after.map((stored) => stored.cursor), [8, 9], 'four cursors left unused before them');
        const before = log.page(0, 10);
        assert.deepEqual(before.events.map((stored) => stored.cursor), [1, 2, 3], 'the page ends before the hole');
        assert.equal(before.more, true);
        assert.equal(before.missed, undefined);
        const next = log.page(3, 10);
        assert.deepEqual(next.events.map((stored) => stored.cursor), [8, 9]);
        assert.equal(next.missed, 4, 'the next page says how many were given up');
        assert.equal(next.latest, 9);
        assert.deepEqual(log.append([], 2), [], 'a hole with no event after it yet');
        assert.equal(log.append(events(5, 1))[0]!.cursor, 12);
      } finally {
        log.close();
      }
    });

    it('events - retention keeps the newest, in batches; cursors are never reused, and a page from a removed cursor says how many were missed', () => {
      const log = open();
      try {
        log.append(events(1, 30));
        assert.equal(log.prune(100, 8), 0, 'under the limit: nothing');
        assert.equal(log.prune(10, 8), 8, 'at most a batch, the oldest first');
        assert.deepEqual(numbers(log.page(0, 1)), [9]);
        let removed = 8;
        for (let n = log.prune(10, 8); n > 0; n = log.prune(10, 8)) removed += n;
        assert.equal(removed, 20);
        const resumed = log.page(5, 100);
        assert.deepEqual([numbers(resumed)[0], resumed.events.length, resumed.missed, resumed.latest], [21, 10, 15, 30], 'cursors 6 to 20 are gone');
        assert.equal(log.page(19, 100).missed, 1, 'cursor 20 is gone');
        assert.equal(log.page(20, 100).missed, undefined, 'nothing missed after the oldest kept');
        assert.equal(log.prune(1, 100), 9);
        assert.deepEqual(log.page(undefined, 10).events.map((stored) => stored.cursor), [30]);
        assert.deepEqual(log.append(events(31, 1)).map((stored) => stored.cursor), [31], 'the next cursor follows the last ever given');
      } finally {
        log.close();
      }
    });

    if (factory.reopen) {
      const reopen = factory.reopen;
      it('events - survive closing and opening the log again; cursors go on from the last ever given, even one pruned', () => {
        let log = open();
        log.append(events(1, 5));
        log.prune(2, 100);
        const kept = log.page(0, 10);
        log = reopen(log, () => clock.now);
        try {
          assert.deepEqual(log.page(0, 10), kept);
          log.prune(1, 100);
          log = reopen(log, () => clock.now);
          assert.deepEqual(log.append(events(6, 1)).map((stored) => stored.cursor), [6]);
        } finally {
          log.close();
        }
      });
    }
  });
}
