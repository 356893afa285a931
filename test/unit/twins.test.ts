import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TWIN_WINDOW_MS, TwinWatch } from '../../src/client/presence/twins.js';
import type { PresenceInfo } from '../../src/client/types.js';

const presence = (status: PresenceInfo['status'], since: number, instance: string): PresenceInfo => ({ status, actions: [], since, instance });

describe('twins', () => {
  it('twins - a later instance seen alive takes the id', () => {
    const watch = new TwinWatch(1000);
    assert.equal(watch.judge(presence('alive', 2000, 'later')), 'give-way');
  });

  it('twins - one will of a later instance is a suspicion; a second within the window, or being knocked off, is a twin', () => {
    const watch = new TwinWatch(1000);
    const will = presence('dead', 2000, 'later');
    assert.equal(watch.judge(will, 10_000), 'suspected-twin');
    assert.equal(watch.knockedOffBy(10_000 + TWIN_WINDOW_MS - 1), will, 'knocked off within the window');
    assert.equal(watch.knockedOffBy(10_000 + TWIN_WINDOW_MS), undefined, 'an unrelated drop later is not blamed on it');
    assert.equal(watch.judge(will, 10_000 + 50), 'give-way');
  });

  it('twins - two wills further apart than the window are a crashed duplicate, twice', () => {
    const watch = new TwinWatch(1000);
    const will = presence('dead', 2000, 'later');
    assert.equal(watch.judge(will, 10_000), 'suspected-twin');
    assert.equal(watch.judge(will, 10_000 + TWIN_WINDOW_MS), 'suspected-twin');
  });

  it('twins - earlier instances: a live one is reported once, its will and stopped clients are ignored', () => {
    const watch = new TwinWatch(5000);
    assert.equal(watch.judge(presence('dead', 1000, 'predecessor')), 'ignore');
    assert.equal(watch.judge(presence('alive', 1000, 'older')), 'older-twin');
    assert.equal(watch.judge(presence('alive', 1000, 'older')), 'ignore');
    assert.equal(watch.judge(presence('stopped', 9000, 'left')), 'ignore');
  });

  it('twins - same start time: the instance string breaks the tie the same way on both sides', () => {
    const a = new TwinWatch(1000);
    const b = new TwinWatch(1000);
    const verdictA = a.judge(presence('alive', 1000, b.instance));
    const verdictB = b.judge(presence('alive', 1000, a.instance));
    assert.deepEqual([verdictA, verdictB].sort(), ['give-way', 'older-twin']);
  });

  it('twins - only another instance counts', () => {
    const watch = new TwinWatch(1000);
    assert.equal(watch.isOther(watch.instance), false);
    assert.equal(watch.isOther(undefined), false, 'a presence without an instance (a foreign peer) is taken as ours');
    assert.equal(watch.isOther('someone-else'), true);
  });
});
