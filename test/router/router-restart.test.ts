/**
 * The router killed with SIGKILL in the middle of a flood, then started again (protocol §1.3,
 * §11.1): every committed row is still there, none twice, and what was published at QoS 1 while
 * it was down is recorded when it comes back, on Aedes, Mosquitto and NATS. On the embedded
 * broker nothing is lost at all (its journal keeps what the router has not stored); on the others
 * what was lost is measured and the router reports its absence as a `history.gap` event.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { peerGate, setup, uniqueId, type BrokerKind } from '../testkit/index.js';
import { CLI_SUITE_TIMEOUT, startCli, type RunningCli } from '../testkit/cli.js';

interface StoredRow {
  id: number;
  token: string;
  kind: string;
  source: string;
  target: string | null;
  progress: number | null;
  data: string;
}

function readRows(file: string): StoredRow[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT id, token, kind, source, target, progress, data FROM history ORDER BY id').all() as StoredRow[];
  } finally {
    db.close();
  }
}

function readEvents(file: string): Array<{ type: string; data: Record<string, unknown> }> {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT type, data FROM events ORDER BY cursor').all() as Array<{ type: string; data: string }>).map((row) => ({ type: row.type, data: JSON.parse(row.data) as Record<string, unknown> }));
  } finally {
    db.close();
  }
}

/** The router under its default id: the one the embedded broker keeps a journal for. */
function startRouterProcess(broker: string, dataDir: string): RunningCli {
  return startCli(['router', '--broker', broker, '--data-dir', dataDir]);
}

for (const kind of ['aedes', 'mosquitto', 'nats'] as BrokerKind[]) {
  const gate = kind === 'aedes' ? { skip: false as const } : peerGate(kind === 'nats' ? 'nats-server' : 'mosquitto', `the router restart on ${kind}`);
  describe(`router restart on ${kind}`, { skip: gate.skip, timeout: CLI_SUITE_TIMEOUT }, () => {
    it(`router - kill -9 during a flood: committed rows all there, none twice, QoS 1 messages sent meanwhile recorded after the restart, ${kind === 'aedes' ? 'and no row lost' : 'and the absence reported'}`, async () => {
      const kit = await setup(kind);
      const dir = mkdtempSync(join(tmpdir(), 'relais-router-kill-'));
      const database = join(dir, 'history.db');
      let router = startRouterProcess(kit.broker.url, dir);
      const peer = await mqtt.connectAsync(kit.broker.url, { clientId: uniqueId('peer'), protocolVersion: 4 });
      try {
        await router.waitFor(/recording/);
        const handler = await kit.connect(uniqueId('handler'));
        const client = await kit.connect(uniqueId('client'));
        await handler.handle('test/flood', (payload: { n: number }) => ({ n: payload.n }));
        await client.waitForHandler('test/flood');
        await client.waitForHandler('relais/history/get', { timeout: 10_000 });

        // A flood with 50 in flight; the router is killed once 300 requests are answered and it
        // has stored some of them (a busy NATS gateway can lag that far behind).
        let answered = 0;
        let killed: Promise<unknown> | undefined;
        const killOnceRecording = async () => {
          for await (const step of client.call('relais/history/follow', { action: 'test/flood' }, { timeout: 20_000 })) {
            if (step.kind === 'progress') break;
          }
          return router.stop('SIGKILL');
        };
        const flood = async (worker: number) => {
          for (let i = 0; i < 20; i += 1) {
            await client.request('test/flood', { n: worker * 1000 + i }, { token: `flood-${worker}-${i}` });
            answered += 1;
            if (answered === 300) killed = killOnceRecording();
          }
        };
        await Promise.all(Array.from({ length: 50 }, (_, worker) => flood(worker)));
        await killed;
        const committed = readRows(database);
        assert.ok(committed.length > 0, 'rows were committed before the kill');

        // While the router is down: a plain MQTT peer publishes commands at QoS 1.
        const downTokens = Array.from({ length: 100 }, (_, i) => `down-${i}`);
        for (const token of downTokens) {
          await peer.publishAsync('test/foreign/request', JSON.stringify({ type: 'command', source: 'peer', destination: '*', token, payload: { token } }), { qos: 1 });
        }

        router = startRouterProcess(kit.broker.url, dir);
        await router.waitFor(/recording/);
        // A marker published after the restart: once it is stored, so is everything the broker queued before it.
        await peer.publishAsync('test/foreign/request', JSON.stringify({ type: 'command', source: 'peer', destination: '*', token: 'marker', payload: {} }), { qos: 1 });
        // Wait for the marker through the router itself: follow yields it as soon as it is stored.
        await client.waitForHandler('relais/history/follow', { timeout: 10_000 });
        for await (const step of client.call('relais/history/follow', { token: 'marker' }, { timeout: 10_000 })) {
          if (step.kind === 'progress') break;
        }
        const rows = readRows(database);
        const byId = new Map(rows.map((row) => [row.id, row]));
        for (const row of committed) assert.deepEqual(byId.get(row.id), row, `committed row ${row.id} is still there, unchanged`);
        const keys = rows.map((row) => `${row.token}|${row.kind}|${row.source}|${row.target}|${row.progress}`);
        assert.equal(new Set(keys).size, keys.length, 'no row twice');
        const recordedDown = new Set(rows.filter((row) => row.token.startsWith('down-')).map((row) => row.token));
        assert.deepEqual([...recordedDown].sort(), [...downTokens].sort(), 'every QoS 1 command sent while the router was down is recorded');
        const floodTokens = Array.from({ length: 50 }, (_, worker) => Array.from({ length: 20 }, (_, i) => `flood-${worker}-${i}`)).flat();
        const recorded = (rowKind: string) => new Set(rows.filter((row) => row.token.startsWith('flood-') && row.kind === rowKind).map((row) => row.token));
        const commands = recorded('command');
        const finals = recorded('final');
        const lost = floodTokens.filter((token) => !commands.has(token) || !finals.has(token));
        process.stdout.write(`# ${kind}: flood of 1000 requests, router killed after 300: ${commands.size} commands and ${finals.size} finals recorded, ${lost.length} requests with a row missing; 100 of 100 QoS 1 commands sent while it was down recorded\n`);
        if (kind === 'aedes') {
          // protocol §11.1: the journal fed the restarted router what it had not stored.
          assert.deepEqual(lost, [], 'no row lost on the embedded broker');
        } else {
          // A broker without a journal: the router says it was away (protocol §11.8 history.gap).
          const gaps = readEvents(join(dir, 'events.db')).filter((event) => event.type === 'history.gap');
          // One for the restart (another for any reconnection a busy machine caused).
          assert.ok(gaps.length >= 1, 'a history.gap event for the restart');
          assert.equal(gaps[0]!.data.by, 'router');
          assert.equal(gaps[0]!.data.missed, null);
          assert.ok((gaps[0]!.data.from as number) <= (gaps[0]!.data.to as number));
        }
      } finally {
        await peer.endAsync();
        await router.stop('SIGKILL').catch(() => {});
        await kit.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
