/**
 * `eventLogContract()`: what every event log must do (protocol §11.8), run against each
 * implementation (sqlite-event-log.test.ts, memory-stores.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EventLog, NewEvent } from '../../src/router/event-log.js';

export interface EventLogFactory {
  /** A new empty log; `now` is its clock for each event's time. */
  open(now: () => number): EventLog | Promise<EventLog>;
  /** Closes it and opens the same data again (a restart). */
  reopen?(log: EventLog, now: () => number): EventLog | Promise<EventLog>;
  /**
   * Another log on the same data as `first`, open at the same time (a second router sharing the
   * database: another SQLite handle on the file, another pool on the PostgreSQL database). Given,
   * the contract also runs the shared-store cases. Each log is closed on its own.
   */
  openSecond?(first: EventLog, now: () => number): EventLog | Promise<EventLog>;
}

const event = (n: number): NewEvent => ({ type: 'notification', data: { category: 'test/events', n } });
const events = (from: number, count: number) => Array.from({ length: count }, (_, i) => event(from + i));
const keyed = (key: string, n: number): NewEvent => ({ type: 'client', data: { id: key, n }, key });
const numbers = (page: { events: Array<{ data: Record<string, unknown> }> }) => page.events.map((stored) => stored.data.n);

export function eventLogContract(name: string, factory: EventLogFactory): void {
  describe(`event log contract (${name})`, () => {
    const clock = { now: 10_000 };
    const open = () => factory.open(() => clock.now);

    it('events - each event gets the next cursor, one more than the last, and the time it was stored; nothing stored gives nothing', async () => {
      const log = await open();
      try {
        assert.deepEqual(await log.page(undefined, 10), { events: [], more: false, latest: 0 }, 'an empty log');
        assert.deepEqual(await log.append([]), []);
        const first = await log.append(events(0, 3));
        clock.now = 20_000;
        const second = await log.append([{ type: 'client', data: { id: 'svc', status: 'alive', nested: { list: [1, 'two', null] } } }]);
        assert.deepEqual([...first, ...second].map((stored) => stored.cursor), [1, 2, 3, 4]);
        assert.deepEqual([...first, ...second].map((stored) => stored.time), [10_000, 10_000, 10_000, 20_000]);
        const page = await log.page(0, 10);
        assert.deepEqual(page, { events: [...first, ...second], more: false, latest: 4 }, 'append returns the events as stored, data included');
      } finally {
        await log.close();
        clock.now = 10_000;
      }
    });

    it('events - a page after a cursor is oldest first and says when more follow; without a cursor, the newest', async () => {
      const log = await open();
      try {
        await log.append(events(1, 25));
        const first = await log.page(0, 10);
        assert.deepEqual([numbers(first), first.more, first.latest], [events(1, 10).map((e) => e.data.n), true, 25]);
        const last = await log.page(20, 10);
        assert.deepEqual([numbers(last), last.more], [[21, 22, 23, 24, 25], false]);
        assert.deepEqual(await log.page(25, 10), { events: [], more: false, latest: 25 }, 'nothing after the newest');
        assert.deepEqual(await log.page(99, 10), { events: [], more: false, latest: 25 }, 'a cursor from the future: nothing, and nothing missed');
        const newest = await log.page(undefined, 3);
        assert.deepEqual([numbers(newest), newest.more, newest.latest], [[23, 24, 25], false, 25]);
        assert.equal('missed' in first || 'missed' in newest, false);
      } finally {
        await log.close();
      }
    });

    it('events - events given up leave their cursors unused: a page ends before the hole and the next says how many were missed', async () => {
      const log = await open();
      try {
        await log.append(events(0, 3));
        const after = await log.append(events(3, 2), 4);
        assert.deepEqual(after.map((stored) => stored.cursor), [8, 9], 'four cursors left unused before them');
        const before = await log.page(0, 10);
        assert.deepEqual(before.events.map((stored) => stored.cursor), [1, 2, 3], 'the page ends before the hole');
        assert.equal(before.more, true);
        assert.equal(before.missed, undefined);
        const next = await log.page(3, 10);
        assert.deepEqual(next.events.map((stored) => stored.cursor), [8, 9]);
        assert.equal(next.missed, 4, 'the next page says how many were given up');
        assert.equal(next.latest, 9);
        assert.deepEqual(await log.append([], 2), [], 'a hole with no event after it yet');
        assert.equal((await log.append(events(5, 1)))[0]!.cursor, 12);
      } finally {
        await log.close();
      }
    });

    it('events - retention keeps the newest, in batches; cursors are never reused, and a page from a removed cursor says how many were missed', async () => {
      const log = await open();
      try {
        await log.append(events(1, 30));
        assert.equal(await log.prune(100, 8), 0, 'under the limit: nothing');
        assert.equal(await log.prune(10, 8), 8, 'at most a batch, the oldest first');
        assert.deepEqual(numbers(await log.page(0, 1)), [9]);
        let removed = 8;
        for (let n = await log.prune(10, 8); n > 0; n = await log.prune(10, 8)) removed += n;
        assert.equal(removed, 20);
        const resumed = await log.page(5, 100);
        assert.deepEqual([numbers(resumed)[0], resumed.events.length, resumed.missed, resumed.latest], [21, 10, 15, 30], 'cursors 6 to 20 are gone');
        assert.equal((await log.page(19, 100)).missed, 1, 'cursor 20 is gone');
        assert.equal((await log.page(20, 100)).missed, undefined, 'nothing missed after the oldest kept');
        assert.equal(await log.prune(1, 100), 9);
        assert.deepEqual((await log.page(undefined, 10)).events.map((stored) => stored.cursor), [30]);
        assert.deepEqual((await log.append(events(31, 1))).map((stored) => stored.cursor), [31], 'the next cursor follows the last ever given');
      } finally {
        await log.close();
      }
    });

    it('events - an event whose key is stored is skipped: it takes no cursor and is not returned; the key is not stored in the event', async () => {
      const log = await open();
      try {
        const first = await log.append([keyed('a', 1), keyed('b', 2)]);
        assert.deepEqual(first, [
          { cursor: 1, time: 10_000, type: 'client', data: { id: 'a', n: 1 } },
          { cursor: 2, time: 10_000, type: 'client', data: { id: 'b', n: 2 } },
        ]);
        const second = await log.append([keyed('b', 3), keyed('c', 4), event(5), keyed('c', 6), event(7)]);
        assert.deepEqual(second.map((stored) => [stored.cursor, stored.data.n]), [[3, 4], [4, 5], [5, 7]], 'b stored before, c earlier in the same append: skipped, no cursor');
        assert.deepEqual(await log.append([keyed('a', 8)]), [], 'all skipped: nothing returned');
        const page = await log.page(0, 10);
        assert.deepEqual(page, { events: [...first, ...second], more: false, latest: 5 }, 'no hole where the repeats were');
        assert.equal(page.events.some((stored) => 'key' in stored), false);
        assert.deepEqual(await log.append([keyed('a', 9)], 2), [], 'given-up events leave their cursors unused even when every event is a repeat');
        assert.deepEqual((await log.append([keyed('d', 10)])).map((stored) => stored.cursor), [8]);
      } finally {
        await log.close();
      }
    });

    if (factory.openSecond) {
      const openSecond = factory.openSecond;

      it('events - two logs on one database appending the same keyed events at once store each once, cursors without a gap or a repeat', async () => {
        const first = await open();
        const second = await openSecond(first, () => clock.now);
        try {
          // Each event offered by both logs, and by two batches of each, as routers seeing one bus do.
          const all = Array.from({ length: 60 }, (_, i) => keyed(`k${i}`, i));
          const batches = Array.from({ length: 12 }, (_, i) => all.slice(i * 5, i * 5 + 10));
          const appended = (await Promise.all(batches.flatMap((batch, i) => (i % 2 === 0 ? [first.append(batch), second.append(batch)] : [second.append(batch), first.append(batch)])))).flat();
          assert.deepEqual(appended.map((stored) => stored.data.n).sort((a, b) => Number(a) - Number(b)), all.map((input) => input.data.n), 'each event returned by exactly one append');
          assert.deepEqual(appended.map((stored) => stored.cursor).sort((a, b) => a - b), Array.from({ length: 60 }, (_, i) => i + 1), 'one cursor sequence, without a gap or a repeat');
          const page = await second.page(0, 100);
          assert.deepEqual([page.events.length, page.latest, page.missed], [60, 60, undefined]);
          assert.deepEqual(page, await first.page(0, 100), 'both logs read the same events');
        } finally {
          await second.close();
          await first.close();
        }
      });

      it('events - two logs on one database appending at once share one cursor sequence; events without a key are all stored', async () => {
        const first = await open();
        const second = await openSecond(first, () => clock.now);
        try {
          const appended = (
            await Promise.all(
              Array.from({ length: 20 }, (_, i) => ((i % 2 === 0 ? first : second) as EventLog).append(events(i * 3, 3), i === 7 ? 2 : 0)),
            )
          ).flat();
          const cursors = appended.map((stored) => stored.cursor).sort((a, b) => a - b);
          assert.equal(new Set(cursors).size, 60, 'no cursor given twice');
          assert.equal(cursors.at(-1), 62, 'the only hole is the two given up');
          const page = await first.page(0, 100);
          const read = [...page.events, ...(await first.page(page.events.at(-1)!.cursor, 100)).events];
          assert.deepEqual(read.map((stored) => stored.cursor), cursors);
        } finally {
          await second.close();
          await first.close();
        }
      });
    }

    if (factory.reopen) {
      const reopen = factory.reopen;
      it('events - survive closing and opening the log again; cursors go on from the last ever given, even one pruned', async () => {
        let log = await open();
        await log.append(events(1, 5));
        await log.prune(2, 100);
        const kept = await log.page(0, 10);
        log = await reopen(log, () => clock.now);
        try {
          assert.deepEqual(await log.page(0, 10), kept);
          await log.prune(1, 100);
          await log.append([keyed('kept', 6)]);
          log = await reopen(log, () => clock.now);
          assert.deepEqual((await log.append([keyed('kept', 7), ...events(7, 1)])).map((stored) => stored.cursor), [7], 'a key stored before the restart is still known');
        } finally {
          await log.close();
        }
      });
    }
  });
}
