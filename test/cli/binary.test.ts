/**
 * Binary payloads in the CLI (protocol §3.5): `--file` sends a file's bytes with `call`,
 * `notify` and `pub`; `--raw` writes the bytes of a binary result as they are; otherwise bytes
 * show as `<N bytes sha256 …>`, in results, JSON lines and `relais history`.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startRouter, type Router } from '../../src/router/index.js';
import { CLI_SUITE_TIMEOUT, cliEnvironment, collectRun, RELAIS_BIN, runCli } from '../testkit/cli.js';
import { setup, subscribedForNext, testLogger, uniqueId, within, type Kit } from '../testkit/index.js';
import { formatRow } from '../../src/cli/history-format.js';

const summaryOf = (bytes: Buffer) => `<${bytes.length} bytes sha256 ${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}…>`;

describe('relais with binary payloads', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let router: Router;
  let dir: string;
  let env: Record<string, string>;
  const bytes = Buffer.concat([Buffer.from([0x0a, 0x00, 0xff]), randomBytes(20_000)]);
  let file: string;

  before(async () => {
    kit = await setup('aedes');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-binary-cli-'));
    file = path.join(dir, 'blob.bin');
    fs.writeFileSync(file, bytes);
    router = await startRouter({ broker: kit.broker.url, database: path.join(dir, 'history.db'), id: uniqueId('router'), logger: testLogger });
    const server = await kit.connect(uniqueId('server'));
    await server.handle('cli/bytes/reverse', (payload: Buffer) => (Buffer.isBuffer(payload) ? Buffer.from(payload).reverse() : { notBytes: payload }));
    env = { RELAIS_BROKER: kit.broker.url, RELAIS_LOG_LEVEL: 'error' };
  });
  after(async () => {
    await router?.close();
    await kit?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('call --file --raw - the file goes as bytes and the binary result comes out as its bytes, unchanged', async () => {
    const child = spawn(process.execPath, [RELAIS_BIN, 'call', 'cli/bytes/reverse', '--file', file, '--raw'], { env: cliEnvironment(env), stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    const result = await collectRun(child, 'relais call --raw');
    assert.equal(result.code, 0, result.stderr);
    assert.ok(Buffer.concat(chunks).equals(Buffer.from(bytes).reverse()), 'stdout is the reversed bytes, nothing else');
  });

  it('call --file - without --raw the result reads <N bytes sha256 …>, in JSON lines too; the history shows the same', async () => {
    const result = await runCli(['call', 'cli/bytes/reverse', '--file', file], env);
    assert.equal(result.code, 0, result.stderr);
    const final = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; payload: unknown; token: string }).at(-1)!;
    assert.equal(final.kind, 'final');
    assert.equal(final.payload, summaryOf(Buffer.from(bytes).reverse()));
    const history = await runCli(['history', '--token', final.token, '--steps'], env);
    assert.equal(history.code, 0, history.stderr);
    const rows = history.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; sha256?: string; size: number; data: string });
    const command = rows.find((row) => row.kind === 'command')!;
    assert.equal(command.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(command.size, bytes.length);
    // What a person sees of such a row.
    assert.match(formatRow({ ...command, id: 1, ctime: 0, etime: 0, token: final.token, action: 'cli/bytes/reverse', source: 'me', truncated: true } as Parameters<typeof formatRow>[0]), new RegExp(`${summaryOf(bytes).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });

  it('call - a JSON argument and --file together is a usage error (exit 2); a missing file too, naming it', async () => {
    const both = await runCli(['call', 'cli/bytes/reverse', '{}', '--file', file], env);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--file sends the file as the payload/);
    const missing = await runCli(['call', 'cli/bytes/reverse', '--file', path.join(dir, 'nope.bin')], env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.bin: no such file/);
  });

  it('notify --file and pub --file - a notification carries the bytes; pub sends them as a raw MQTT payload', async () => {
    const listener = await kit.connect(uniqueId('listener'));
    const note = await subscribedForNext(listener, 'cli/bytes/notification');
    const notified = await runCli(['notify', 'cli/bytes', '--file', file], env);
    assert.equal(notified.code, 0, notified.stderr);
    assert.ok((await note.arrived).envelope.payload instanceof Uint8Array);
    assert.ok(Buffer.from((await note.arrived).envelope.payload as Uint8Array).equals(bytes));
    const plain = mqtt.connect(kit.broker.url, { clientId: uniqueId('plain'), reconnectPeriod: 0 });
    try {
      await plain.subscribeAsync('cli/raw/topic');
      const arrived = within(new Promise<Buffer>((resolve) => plain.on('message', (_topic, payload) => resolve(payload))), 10_000, 'the raw bytes');
      const published = await runCli(['pub', 'cli/raw/topic', '--file', file], env);
      assert.equal(published.code, 0, published.stderr);
      assert.ok((await arrived).equals(bytes));
    } finally {
      await plain.endAsync();
    }
  });
});
