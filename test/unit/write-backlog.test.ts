/** What a refused store keeps: in order, bounded (newest or oldest given up), tried again on a timer that backs off, and only then while the store refuses. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RETRY_FIRST_MS, RETRY_MAX_MS, WriteBacklog } from '../../src/router/write-backlog.js';

test('write backlog - refused items wait in order; past the bound the newest or the oldest are given up', () => {
  const newest = new WriteBacklog<number>({ max: 3, giveUp: 'newest', retry: () => {} });
  assert.deepEqual(newest.refused([1, 2]), []);
  assert.deepEqual(newest.hold([3, 4, 5]), [4, 5]);
  assert.deepEqual(newest.take([6]), [1, 2, 3, 6]);
  newest.close();
  const oldest = new WriteBacklog<number>({ max: 3, giveUp: 'oldest', retry: () => {} });
  assert.deepEqual(oldest.refused([1, 2]), []);
  assert.deepEqual(oldest.hold([3, 4, 5]), [1, 2]);
  assert.deepEqual(oldest.take([]), [3, 4, 5]);
  oldest.close();
});

test('write backlog - while the store refuses only the timer tries, every 250 ms then less often up to 1 s, new items or not', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const attempts: Array<{ at: number; mayTry: boolean }> = [];
  const backlog: WriteBacklog<number> = new WriteBacklog<number>({ max: 10, giveUp: 'newest', retry: () => {
    attempts.push({ at: Date.now(), mayTry: backlog.mayTry });
    backlog.refused(backlog.take([]));
  } });
  assert.ok(backlog.mayTry, 'a store that works is tried');
  backlog.refused(backlog.take([1]));
  assert.ok(!backlog.mayTry, 'a batch waits behind the refused ones');
  for (let ms = 0; ms < RETRY_FIRST_MS + 500 + 2 * RETRY_MAX_MS; ms += 50) t.mock.timers.tick(50);
  assert.deepEqual(attempts.map((attempt) => attempt.at), [RETRY_FIRST_MS, RETRY_FIRST_MS + 500, RETRY_FIRST_MS + 500 + RETRY_MAX_MS, RETRY_FIRST_MS + 500 + 2 * RETRY_MAX_MS]);
  assert.ok(attempts.every((attempt) => attempt.mayTry), "the timer's attempt tries the store");
  const refusedMs = backlog.stored();
  assert.equal(refusedMs, RETRY_FIRST_MS + 500 + 2 * RETRY_MAX_MS);
  assert.ok(backlog.mayTry);
  for (let ms = 0; ms < 10_000; ms += 50) t.mock.timers.tick(50);
  assert.equal(attempts.length, 4, 'no attempt once stored');
  assert.equal(backlog.stored(), undefined, 'nothing was refused since');
});
