import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RemoteError } from '../../src/index.js';
import { setup, uniqueId, type Kit } from '../testkit/index.js';

describe('fan-out with expectations (requestAll)', { timeout: 30_000 }, () => {
  let kit: Kit;
  before(async () => {
    kit = await setup('aedes');
  });
  after(async () => {
    await kit?.cleanup();
  });

  it('requestAll - every serving client answers by name; an error is an answer; a silent one and an absent expected one are missing', async () => {
    const [fast, failing, silent] = await Promise.all(['fast', 'failing', 'silent'].map((name) => kit.connect(uniqueId(name))));
    await fast!.handle('fan/who', () => ({ me: fast!.id }));
    await failing!.handle('fan/who', () => {
      throw new Error('disk full');
    });
    await silent!.handle('fan/who', (_payload, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))); // never answers in time
    const caller = await kit.connect(uniqueId('caller'));
    await caller.waitForHandler('fan/who', { target: silent!.id });
    await caller.waitForHandler('fan/who', { target: failing!.id });
    await caller.waitForHandler('fan/who', { target: fast!.id });

    const all = await caller.requestAll('fan/who', {}, { timeout: 800 });
    const byId = new Map(all.answers.map((answer) => [answer.id, answer]));
    assert.deepEqual([...byId.keys()].sort(), [fast!.id, failing!.id, silent!.id].sort());
    assert.deepEqual(byId.get(fast!.id), { id: fast!.id, ok: true, payload: { me: fast!.id } });
    const failed = byId.get(failing!.id)!;
    assert.ok(!failed.ok && failed.error instanceof RemoteError && /disk full/.test(failed.error.message));
    assert.deepEqual(all.missing, [silent!.id]);
    assert.deepEqual([all.silent, all.absent], [[silent!.id], []]);

    // Every provider is asked, plus the expected ones: those that do not serve the action are named apart, at once.
    const absent = uniqueId('absent');
    const expected = await caller.requestAll('fan/who', {}, { timeout: 800, expect: [fast!.id, absent] });
    assert.deepEqual(expected.answers.map((answer) => answer.id).sort(), [fast!.id, absent, failing!.id, silent!.id].sort());
    assert.deepEqual(expected.answers.slice(0, 2).map((answer) => answer.id), [fast!.id, absent], 'the expected ones first, in their order');
    assert.deepEqual([expected.absent, expected.silent], [[absent], [silent!.id]]);
  });
});
