import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecentTokens, REMEMBER_AT_MOST_MS, REMEMBER_WITHOUT_DEADLINE_MS } from '../../src/client/serving/recent-tokens.js';

describe('recent tokens', () => {
  it('recent tokens - a finished command is remembered until its deadline, then forgotten', () => {
    const recent = new RecentTokens();
    recent.remember('vm-x t1', '{"final":true}', 5000, 1000);
    assert.equal(recent.get('vm-x t1', 4999)?.body, '{"final":true}');
    assert.equal(recent.get('vm-x t1', 5000), undefined);
    assert.equal(recent.size, 0);
  });

  it('recent tokens - without a deadline, for a minute; never longer than ten', () => {
    const recent = new RecentTokens();
    recent.remember('a t', 'x', undefined, 0);
    recent.remember('b t', 'y', 10 ** 12, 0);
    assert.ok(recent.get('a t', REMEMBER_WITHOUT_DEADLINE_MS - 1));
    assert.equal(recent.get('a t', REMEMBER_WITHOUT_DEADLINE_MS), undefined);
    assert.equal(recent.get('b t', REMEMBER_AT_MOST_MS), undefined);
  });

  it('recent tokens - bounded in entries: the oldest is forgotten first', () => {
    const recent = new RecentTokens(3, 1_000_000);
    for (const token of ['t1', 't2', 't3', 't4']) recent.remember(`s ${token}`, token, 10_000, 0);
    assert.equal(recent.size, 3);
    assert.equal(recent.get('s t1', 1), undefined);
    assert.equal(recent.get('s t4', 1)?.body, 't4');
  });

  it('recent tokens - bounded in bytes: the oldest results are dropped but their tokens kept, so they still never run twice', () => {
    const recent = new RecentTokens(100, 10);
    recent.remember('s t1', '123456', 10_000, 0);
    recent.remember('s t2', '789012', 10_000, 0);
    const first = recent.get('s t1', 1);
    assert.ok(first, 'still known');
    assert.equal(first.body, undefined, 'but its text is gone');
    assert.equal(recent.get('s t2', 1)?.body, '789012');
  });
});
