import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BroadcastCopies } from '../../src/bridge/xpl/copies.js';

describe('xPL bridge - one broadcast heard on the xPL port and from a hub', () => {
  it('the second way\'s copy is dropped once; repeats on one way never are; the window and the count bound it', () => {
    const copies = new BroadcastCopies(2000, 3);
    assert.equal(copies.isCopy('a', 'xpl-port', 0), false);
    assert.equal(copies.isCopy('a', 'xpl-port', 10), false, 'a repeat on the same way is a message');
    assert.equal(copies.isCopy('a', 'hub', 20), true);
    assert.equal(copies.isCopy('a', 'hub', 30), true, 'two heard on the xPL port, two copies from the hub');
    assert.equal(copies.isCopy('a', 'hub', 40), false, 'a third from the hub has no twin left');
    assert.equal(copies.isCopy('b', 'hub', 100), false);
    assert.equal(copies.isCopy('b', 'xpl-port', 2200), false, 'after the window it is a new message');
    // At most 3 remembered: the oldest go first.
    for (const text of ['c', 'd', 'e', 'f']) copies.isCopy(text, 'xpl-port', 3000);
    assert.equal(copies.isCopy('c', 'hub', 3001), false, 'forgotten: the oldest of four over a bound of three');
    assert.equal(copies.isCopy('f', 'hub', 3001), true);
  });
});
