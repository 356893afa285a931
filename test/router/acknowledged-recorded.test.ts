/**
 * A PUBACK from the embedded broker means recorded (protocol §1.3, §11.1): `relais start` killed
 * with SIGKILL in the middle of a flood of QoS 1 commands, then started again on the same data
 * directory; every command the broker acknowledged is in the history.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { startCli } from '../testkit/cli.js';
import { within } from '../testkit/index.js';

/** Commands in flight at once: the publisher does not wait for one PUBACK before the next PUBLISH. */
const IN_FLIGHT = 200;
/** Acknowledged commands after which the process is killed. */
const KILL_AFTER = 600;

function commandTokens(file: string): Set<string> {
  const db = new Database(file, { readonly: true });
  try {
    return new Set(db.prepare("SELECT token FROM history WHERE kind = 'command' AND action = 'test/kill'").pluck().all() as string[]);
  } finally {
    db.close();
  }
}

describe('acknowledged means recorded (relais start killed with SIGKILL)', { timeout: 90_000 }, () => {
  it('start - kill -9 during a flood of QoS 1 commands: every command the broker acknowledged is in the history after the restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'relais-kill-start-'));
    const args = ['start', '--port', '0', '--no-web', '--data-dir', dataDir];
    let start = startCli(args);
    let publisher: mqtt.MqttClient | undefined;
    try {
      const [, url] = await start.waitFor(/listening on (mqtt:\/\/\S+)/);
      await start.waitFor(/router recording/);
      publisher = await mqtt.connectAsync(url!, { clientId: 'kill-flooder', protocolVersion: 4, reconnectPeriod: 0 });
      publisher.on('error', () => {}); // the broker is killed under it

      const acknowledged: string[] = [];
      let sent = 0;
      let killed: Promise<unknown> | undefined;
      const client = publisher;
      const worker = async () => {
        while (!killed) {
          const token = `kill-${(sent += 1)}`;
          const command = JSON.stringify({ type: 'command', source: 'kill-flooder', destination: '*', token, payload: { token } });
          try {
            await client.publishAsync('test/kill/request', command, { qos: 1 });
          } catch {
            return; // the connection went with the process
          }
          // Every PUBACK counts, also one that arrives after the signal left: the broker sent it.
          acknowledged.push(token);
          if (acknowledged.length === KILL_AFTER) killed = start.stop('SIGKILL');
        }
      };
      const workers = Array.from({ length: IN_FLIGHT }, worker);
      await within(
        (async () => {
          while (!killed) await new Promise((resolve) => setTimeout(resolve, 20));
          await killed;
        })(),
        60_000,
        `${KILL_AFTER} acknowledged commands`,
      );
      publisher.end(true);
      await Promise.race([Promise.all(workers), new Promise((resolve) => setTimeout(resolve, 2000))]);

      start = startCli(args);
      await start.waitFor(/router recording/, 30_000);
      const recorded = commandTokens(join(dataDir, 'history.db'));
      const missing = acknowledged.filter((token) => !recorded.has(token));
      process.stdout.write(`# ${acknowledged.length} commands acknowledged before the kill (${sent} sent), ${recorded.size} recorded, ${missing.length} acknowledged and missing\n`);
      assert.deepEqual(missing, [], 'every command the broker acknowledged is in the history');
    } finally {
      publisher?.end(true);
      await start.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
