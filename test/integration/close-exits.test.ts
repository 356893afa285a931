/**
 * A short-lived program using the library (`relais pub`, a script, a cron job) ends when it
 * has closed its client: nothing the client armed keeps the process alive after close().
 * The client's own farewell presence comes back while it closes; it must not re-arm the
 * directory's settling (protocol §7.2), which would hold the process for `directorySettle`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { peerGate, startBroker, uniqueId, within, type BrokerKind, type TestBroker } from '../testkit/index.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/publish-and-close.ts');
/** Far longer than any wait below: a settling timer left armed shows as a process that does not end. */
const LONG_SETTLE_MS = 600_000;
/** A hang catcher for a busy machine (tsx compiles the fixture first), not a measure: the process should end at once. */
const EXIT_TIMEOUT = 120_000;

for (const kind of ['aedes', 'mosquitto'] as BrokerKind[]) {
  const gate = kind === 'mosquitto' ? peerGate('mosquitto', 'a closed client ends its process, on Mosquitto') : { skip: false as const };
  describe(`a closed client ends its process (${kind})`, { skip: gate.skip, timeout: 300_000 }, () => {
    let broker: TestBroker;
    before(async () => {
      broker = await startBroker(kind);
    });
    after(async () => {
      await broker.close();
    });

    it('a process that connects, publishes and closes exits by itself, with code 0', async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, broker.url, uniqueId('short-lived'), String(LONG_SETTLE_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk));
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      try {
        const [code] = await within(exited, EXIT_TIMEOUT, 'the short-lived process exiting');
        assert.equal(code, 0, output);
        assert.match(output, /^CLOSED$/m);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  });
}
