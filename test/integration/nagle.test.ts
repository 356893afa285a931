/**
 * A broker that leaves Nagle's algorithm on (a plain Aedes, a default Mosquitto) holds the
 * second of two messages written together ~40 ms (protocol §1.2). A request answered in one
 * message never meets it; an answer in several steps does, and the library says what to fix.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHookedAedes, type HookedAedes } from '../testkit/hooked-aedes.js';
import { recordingLogger, uniqueId } from '../testkit/index.js';

describe('nagle', { timeout: 30_000 }, () => {
  let broker: HookedAedes;
  before(async () => {
    broker = await startHookedAedes({ noDelay: false });
  });
  after(async () => {
    await broker?.close();
  });

  it('nagle - a broker holding back-to-back messages is named in one warning, with the setting that fixes it', async () => {
    const server = await broker.join(uniqueId('server'));
    await server.handle('demo/steps', (_payload, ctx) => {
      ctx.progress(0.5);
      return 'done';
    });
    const { logger, records } = recordingLogger();
    const client = await broker.join(uniqueId('client'), { logger });
    await client.waitForHandler('demo/steps');
    const warned = () => records().find((record) => /holds back messages sent together/.test(String(record.msg)));
    // Each call is a progress step and a final written together: held back each time.
    for (let call = 0; call < 30 && !warned(); call++) {
      const steps: string[] = [];
      for await (const step of client.call('demo/steps', {})) steps.push(step.kind);
      assert.deepEqual(steps, ['progress', 'final']);
    }
    assert.match(String(warned()?.msg), /set_tcp_nodelay true/);
    assert.equal(records().filter((record) => /holds back/.test(String(record.msg))).length, 1, 'said once');
  });
});
