import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AckClock } from '../../src/client/ack-clock.js';

describe('ack clock', () => {
  it('ack clock - a request still waiting is written again half-way, then expires at its ack time-out; one answered is left alone', () => {
    const clock = new AckClock();
    const events: string[] = [];
    const waiting = { ackRetryAt: 0, ackExpireAt: 0, retry: () => events.push('retry'), expire: () => events.push('expire') };
    const answered = { ackRetryAt: 0, ackExpireAt: 0, retry: () => events.push('answered retried'), expire: () => events.push('answered expired') };
    clock.start(waiting, 2000, 0);
    clock.start(answered, 2000, 0);
    clock.stop(answered);
    clock.tick(999);
    assert.deepEqual(events, []);
    clock.tick(1000);
    clock.tick(1500);
    assert.deepEqual(events, ['retry'], 'written again once');
    clock.tick(2000);
    clock.tick(3000);
    assert.deepEqual(events, ['retry', 'expire'], 'expired once');
    clock.tick(4000); // nobody waits: the sweep stops
  });
});
