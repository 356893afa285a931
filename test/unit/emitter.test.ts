import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Emitter } from '../../src/client/emitter.js';

type Events = { online: []; lane: [lane: string, up: boolean] };

describe('emitter', () => {
  it('emitter - listeners run in order, a once listener once, off removes the latest registration', () => {
    const emitter = new Emitter<Events>();
    const calls: string[] = [];
    const twice = () => calls.push('twice');
    emitter.on('online', () => calls.push('first'));
    emitter.once('online', () => calls.push('once'));
    emitter.on('online', twice).on('online', twice);
    emitter.prependListener('online', () => calls.push('prepended'));
    assert.equal(emitter.emit('online'), true);
    assert.deepEqual(calls, ['prepended', 'first', 'once', 'twice', 'twice']);
    calls.length = 0;
    emitter.off('online', twice);
    emitter.emit('online');
    assert.deepEqual(calls, ['prepended', 'first', 'twice']);
    assert.equal(emitter.listenerCount('online'), 3);
    assert.equal(emitter.emit('lane', 'main', true), false, 'no listener of lane');
  });

  it('emitter - a listener that removes another during emit does not stop it this time (as Node)', () => {
    const emitter = new Emitter<Events>();
    const calls: string[] = [];
    const second = () => calls.push('second');
    emitter.on('online', () => emitter.off('online', second));
    emitter.on('online', second);
    emitter.emit('online');
    emitter.emit('online');
    assert.deepEqual(calls, ['second']);
  });

  it("emitter - Node's events.once resolves with the arguments, and an abort removes its listeners", async () => {
    const emitter = new Emitter<Events>();
    const next = once(emitter, 'lane');
    emitter.emit('lane', 'realtime', false);
    assert.deepEqual(await next, ['realtime', false]);
    assert.equal(emitter.listenerCount('lane'), 0);
    assert.equal(emitter.listenerCount('error' as never), 0);
    const controller = new AbortController();
    const aborted = once(emitter, 'online', { signal: controller.signal });
    controller.abort();
    await assert.rejects(aborted, { name: 'AbortError' });
    assert.equal(emitter.listenerCount('online'), 0);
  });

  it("emitter - a listener's throw reaches emit's caller", () => {
    const emitter = new Emitter<Events>();
    emitter.on('online', () => {
      throw new Error('boom');
    });
    assert.throws(() => emitter.emit('online'), /boom/);
  });
});
