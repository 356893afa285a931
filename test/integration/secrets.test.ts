/**
 * No secret in a log: a password given in the broker URL never appears in the library's log
 * lines or error messages, whether the broker refuses the connection or drops it later.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { connect, NotSentError } from '../../src/index.js';
import { freePort, recordingLogger, startAedes, uniqueId, type TestBroker } from '../testkit/index.js';

const PASSWORD = 's3cret-Pa55';

describe('secrets', () => {
  let broker: TestBroker | undefined;
  after(async () => {
    await broker?.close();
  });

  it('secrets - a refused connection names the broker with its password masked', async () => {
    const port = await freePort();
    const { logger, lines } = recordingLogger();
    const error = await connect({ id: uniqueId('secretive'), broker: `mqtt://alice:${PASSWORD}@127.0.0.1:${port}`, logger, connectTimeout: 2000 }).then(
      () => assert.fail('connected to a closed port'),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof NotSentError, String(error));
    assert.match(error.message, new RegExp(`cannot connect to the broker at mqtt://alice:\\*\\*\\*@127\\.0\\.0\\.1:${port}`));
    assert.ok(!error.message.includes(PASSWORD) && !String(error.cause).includes(PASSWORD), error.message);
    assert.ok(!lines.join('').includes(PASSWORD), lines.join(''));
  });

  it('secrets - losing and regaining the broker logs the URL without the password', async () => {
    broker = await startAedes();
    const { logger, lines } = recordingLogger();
    const withPassword = broker.url.replace('mqtt://', `mqtt://alice:${PASSWORD}@`);
    const bus = await connect({ id: uniqueId('secretive'), broker: withPassword, logger, reconnectDelay: 20, reconnectMaxDelay: 100 });
    try {
      const offline = once(bus, 'offline');
      await broker.stop();
      await offline;
      const online = once(bus, 'online');
      await broker.start();
      await online;
      const text = lines.join('');
      assert.match(text, /connection lost; reconnecting/);
      assert.match(text, /alice:\*\*\*@/);
      assert.ok(!text.includes(PASSWORD), text);
    } finally {
      await bus.close();
    }
  });
});
