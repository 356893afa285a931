/**
 * The directory's settling after a reconnection (protocol §7.2), on mocked time: retained
 * presences that come late, as they do from a loaded broker, are waited for; a client whose
 * presence is not replayed at all is forgotten once they stop; the wait is bounded.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { Directory } from '../../src/client/presence/directory.js';
import type { Envelope } from '../../src/protocol/envelope.js';

const SETTLE = 500;

function presence(id: string, status: 'alive' | 'stopped' = 'alive'): Envelope {
  return { type: 'notification', source: id, destination: '*', payload: { status, actions: status === 'alive' ? [`serve/${id}`] : [], since: 1, seq: 1 } } as Envelope;
}

/** A settled directory that knows `handler` (alive) and `vanished` (alive), then reconnects. */
function reloading(): { directory: Directory; forgotten: string[]; settled: () => boolean } {
  const directory = new Directory(SETTLE);
  directory.update('handler', presence('handler'));
  directory.update('vanished', presence('vanished'));
  directory.ownPresenceBack();
  mock.timers.tick(SETTLE);
  assert.equal(directory.settled, true);
  const forgotten: string[] = [];
  directory.on('change', (id, info) => info === undefined && forgotten.push(id));
  let settledCount = 0;
  directory.on('settled', () => (settledCount += 1));
  directory.beginReload();
  directory.ownPresenceBack();
  return { directory, forgotten, settled: () => settledCount > 0 };
}

describe('directory settling', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  it('directory - after a reconnection, a retained presence that comes late (others still arriving) is waited for, not forgotten', () => {
    const { directory, forgotten, settled } = reloading();
    // Other clients' retained presences keep coming, each within the settle window of the last.
    for (let n = 0; n < 8; n++) {
      mock.timers.tick(SETTLE - 100);
      directory.update(`old-${n}`, presence(`old-${n}`, 'stopped'));
    }
    assert.equal(settled(), false, 'still settling while presences come');
    directory.update('handler', presence('handler')); // 3.2 s after our own presence came back
    mock.timers.tick(SETTLE);
    assert.equal(settled(), true);
    assert.deepEqual(forgotten, ['vanished'], 'only the client whose presence never came back is forgotten');
    assert.ok(directory.providers('serve/handler').has('handler'));
  });

  it('directory - with nothing more coming, it settles settleMs after our own presence came back', () => {
    const { forgotten, settled } = reloading();
    mock.timers.tick(SETTLE - 1);
    assert.equal(settled(), false);
    mock.timers.tick(1);
    assert.equal(settled(), true);
    assert.deepEqual(forgotten.sort(), ['handler', 'vanished']);
  });

  it('directory - presences that never stop coming do not hold the settling for ever', () => {
    const { directory, settled } = reloading();
    let n = 0;
    while (!settled() && n < 1000) {
      mock.timers.tick(100);
      directory.update(`chatty-${n % 3}`, presence(`chatty-${n % 3}`));
      n += 1;
    }
    assert.equal(settled(), true);
    assert.ok(n * 100 <= 21 * SETTLE, `settled after ${n * 100} ms`);
  });

  it('directory on demand - settled at once while it follows nothing; want() subscribes once and settles settleMs after the SUBACK', async () => {
    let subscribe!: () => void;
    const follows: number[] = [];
    const directory = new Directory(SETTLE, () => {
      follows.push(Date.now());
      return new Promise<void>((resolve) => (subscribe = resolve));
    });
    directory.ownPresenceBack();
    assert.deepEqual([directory.following, directory.settled], [false, true], 'nothing to wait for');
    directory.want();
    directory.want();
    assert.deepEqual([directory.following, directory.settled, follows.length], [true, false, 1], 'one subscription, settling again');
    mock.timers.tick(10 * SETTLE);
    assert.equal(directory.settled, false, 'not settled before the SUBACK');
    subscribe();
    await Promise.resolve();
    directory.update('handler', presence('handler'));
    mock.timers.tick(SETTLE);
    assert.equal(directory.settled, true);
    assert.ok(directory.providers('serve/handler').has('handler'));
  });

  it('directory on demand - a refused subscription settles it with what it knows, and says why', async () => {
    const directory = new Directory(SETTLE, () => Promise.reject(new Error('Not authorized')));
    directory.ownPresenceBack();
    directory.want();
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(directory.settled, true);
    assert.match(directory.failure ?? '', /cannot subscribe to the presences: Not authorized/);
  });
});
