import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoff, ReconnectSchedule, STABLE_CONNECTION_MS } from '../../src/client/connection/reconnect.js';
import { TAKEOVER_PAUSE_MS } from '../../src/client/connection/reconnect.js';

describe('reconnect', () => {
  it('reconnect - the backoff ceiling doubles from the first delay up to the maximum, with full jitter', () => {
    assert.deepEqual([0, 1, 2, 3, 10].map((attempt) => backoff(attempt, 100, 5000, 1)), [100, 200, 400, 800, 5000]);
    assert.equal(backoff(5, 100, 5000, 0), 1, 'never 0 ms');
    assert.equal(backoff(1, 100, 5000, 0.5), 100);
  });

  it('reconnect - a broker that drops every connection right after accepting it sees the client slow down, not retry every 100 ms', () => {
    const schedule = new ReconnectSchedule(100, 5000);
    let now = 0;
    const ceilings: number[] = [];
    for (let cycle = 0; cycle < 8; cycle++) {
      schedule.connected(now);
      now += 20; // dropped 20 ms after its CONNACK
      schedule.dropped(now);
      const delay = schedule.nextDelay(1);
      ceilings.push(delay);
      now += delay;
    }
    // 100, 200, then at least the take-over pause once three drops in a row look like a twin (§7.5).
    assert.deepEqual(ceilings.slice(0, 2), [100, 200]);
    assert.ok(ceilings.slice(2).every((delay) => delay >= TAKEOVER_PAUSE_MS), ceilings.join(' '));
    assert.equal(ceilings.at(-1), 5000, `the delay reached the maximum: ${ceilings.join(' ')}`);
  });

  it('reconnect - failed attempts while the broker is down keep backing off', () => {
    const schedule = new ReconnectSchedule(100, 5000);
    schedule.connected(0);
    schedule.dropped(60_000);
    const delays = Array.from({ length: 7 }, () => schedule.nextDelay(1));
    assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000]);
  });

  it('reconnect - a connection that stayed up starts the backoff over', () => {
    const schedule = new ReconnectSchedule(100, 5000);
    schedule.connected(0);
    schedule.dropped(10);
    for (let i = 0; i < 5; i++) schedule.nextDelay(1);
    schedule.connected(1000);
    schedule.dropped(1000 + STABLE_CONNECTION_MS);
    assert.equal(schedule.nextDelay(1), 100);
    schedule.connected(20_000);
    schedule.dropped(20_000 + STABLE_CONNECTION_MS - 1);
    assert.equal(schedule.nextDelay(1), 200, 'up for less than the stable time: the backoff goes on');
  });
});
