/**
 * `relais kv` as a user runs it (the real binary, real processes): against `relais start`, whose
 * router serves the store (protocol §14), and a bare broker where no router answers. Values
 * from an argument, --json and --file; compare-and-set; tables on a terminal, JSON lines in a
 * pipe; a watch that prints what another process writes.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI_SUITE_TIMEOUT, cliEnvironment, RELAIS_BIN, runCli, startCli, type RunningCli } from '../testkit/cli.js';
import { runInTerminal } from '../testkit/terminal.js';
import { setup, type Kit } from '../testkit/index.js';

const lines = (text: string) => text.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, any>);

describe('relais kv (router inside relais start)', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let broker: RunningCli;
  let bare: Kit;
  let env: Record<string, string>;
  let dir: string;
  const running: RunningCli[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-kv-cli-'));
    broker = startCli(['start', '--web-port', '0', '--port', '0', '--data-dir', path.join(dir, 'data')]);
    const [, url] = await broker.waitFor(/listening on (mqtt:\/\/\S+)/);
    await broker.waitFor(/router recording/);
    env = { RELAIS_BROKER: url!, RELAIS_LOG_LEVEL: 'error' };
    bare = await setup('aedes');
  });

  after(async () => {
    await Promise.all(running.map((child) => child.stop()));
    await broker?.stop();
    await bare?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('put then get - text, JSON (--json) and a JSON line per entry in a pipe, with its revision and author', async () => {
    const text = await runCli(['kv', 'put', 'cli-app', 'greeting', 'hello world'], env);
    assert.equal(text.code, 0, text.stderr);
    const [written] = lines(text.stdout);
    assert.equal(written!.key, 'greeting');
    assert.ok(Number.isInteger(written!.revision) && written!.revision > 0);
    const json = await runCli(['kv', 'put', 'cli-app', 'limits/max', '{"n":3,"on":true}', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    assert.ok(lines(json.stdout)[0]!.revision > written!.revision, 'one sequence per bucket');

    const got = await runCli(['kv', 'get', 'cli-app', 'limits/max'], env);
    assert.equal(got.code, 0, got.stderr);
    const [entry] = lines(got.stdout);
    assert.deepEqual(entry!.value, { n: 3, on: true });
    assert.equal(entry!.operation, 'put');
    assert.equal(entry!.revision, lines(json.stdout)[0]!.revision);
    assert.equal(typeof entry!.author, 'string');
    const raw = await runCli(['kv', 'get', 'cli-app', 'greeting', '--raw'], env);
    assert.equal(raw.stdout, 'hello world');
  });

  it('put --file - the bytes of a file come back the same with get --raw; a pipe shows them as {"$base64"}', async () => {
    const bytes = crypto.randomBytes(3000);
    bytes[0] = 0x0a; // a newline and a NUL do not bother it
    bytes[1] = 0x00;
    const file = path.join(dir, 'blob.bin');
    fs.writeFileSync(file, bytes);
    const put = await runCli(['kv', 'put', 'cli-app', 'blob', '--file', file], env);
    assert.equal(put.code, 0, put.stderr);
    const [entry] = lines((await runCli(['kv', 'get', 'cli-app', 'blob'], env)).stdout);
    assert.equal(entry!.bytes, true);
    assert.equal(entry!.value.$base64, bytes.toString('base64'));
    // The bytes as a program reading stdout gets them (runCli reads text).
    const raw = execFileSync(process.execPath, [RELAIS_BIN, 'kv', 'get', 'cli-app', 'blob', '--raw'], { env: cliEnvironment(env) });
    assert.ok(raw.equals(bytes), 'the bytes came back as they were');
    const table = await runInTerminal(['kv', 'get', 'cli-app', 'blob'], env);
    assert.match(table.stdout, new RegExp(`<3000 bytes sha256 ${crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 16)}…>`));
  });

  it('put --expect-revision - writes at the revision expected; another revision exits 5 naming the current one, and the value is unchanged', async () => {
    const first = lines((await runCli(['kv', 'put', 'cli-app', 'counter', '1', '--json'], env)).stdout)[0]!.revision as number;
    const ok = await runCli(['kv', 'put', 'cli-app', 'counter', '2', '--json', '--expect-revision', String(first)], env);
    assert.equal(ok.code, 0, ok.stderr);
    const second = lines(ok.stdout)[0]!.revision as number;
    const stale = await runCli(['kv', 'put', 'cli-app', 'counter', '99', '--json', '--expect-revision', String(first)], env);
    assert.equal(stale.code, 5, stale.stderr);
    assert.equal(stale.stderr, `relais: cli-app/counter changed: expected revision ${first}, it is at revision ${second}\n`);
    const create = await runCli(['kv', 'put', 'cli-app', 'counter', '0', '--json', '--expect-revision', '0'], env);
    assert.equal(create.code, 5, create.stderr);
    assert.deepEqual(lines((await runCli(['kv', 'get', 'cli-app', 'counter'], env)).stdout)[0]!.value, 2);
    const fresh = await runCli(['kv', 'put', 'cli-app', 'made-once', 'x', '--expect-revision', '0'], env);
    assert.equal(fresh.code, 0, fresh.stderr);
  });

  it('del then get - a tombstone revision; get exits 1 "no such key"; history keeps put, put, delete', async () => {
    await runCli(['kv', 'put', 'cli-app', 'gone', 'a'], env);
    await runCli(['kv', 'put', 'cli-app', 'gone', 'b'], env);
    const deleted = await runCli(['kv', 'del', 'cli-app', 'gone'], env);
    assert.equal(deleted.code, 0, deleted.stderr);
    const missing = await runCli(['kv', 'get', 'cli-app', 'gone'], env);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'relais: cli-app/gone: no such key\n');
    const history = await runCli(['kv', 'history', 'cli-app', 'gone'], env);
    assert.equal(history.code, 0, history.stderr);
    const entries = lines(history.stdout);
    assert.deepEqual(entries.map((entry) => [entry.operation, entry.value]), [['put', 'a'], ['put', 'b'], ['delete', null]]);
    assert.equal(entries.at(-1)!.revision, lines(deleted.stdout)[0]!.revision);
    const table = await runInTerminal(['kv', 'history', 'cli-app', 'gone'], env);
    assert.equal(table.code, 0, table.stdout);
    const rows = table.stdout.trim().split('\n');
    assert.match(rows[0]!, /^REVISION +OPERATION +UPDATED +AUTHOR +VALUE$/);
    assert.match(rows[1]!, /^\d+ +put +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\S+ +"a"$/);
    assert.match(rows[3]!, /^\d+ +delete +.* -$/);
    assert.equal(rows.at(-1), '3 revisions');
  });

  it('ls - the keys in order, with --prefix, every page or --limit of them', async () => {
    for (const key of ['room/kitchen', 'room/bath', 'room/attic', 'garden']) assert.equal((await runCli(['kv', 'put', 'cli-ls', key, 'v'], env)).code, 0);
    const all = await runCli(['kv', 'ls', 'cli-ls'], env);
    assert.deepEqual(lines(all.stdout).map((line) => line.key), ['garden', 'room/attic', 'room/bath', 'room/kitchen']);
    const rooms = await runCli(['kv', 'ls', 'cli-ls', '--prefix', 'room/', '--limit', '2'], env);
    assert.deepEqual(lines(rooms.stdout).map((line) => line.key), ['room/attic', 'room/bath']);
    const shown = await runInTerminal(['kv', 'ls', 'cli-ls', '--prefix', 'room/'], env);
    assert.equal(shown.stdout, 'room/attic\nroom/bath\nroom/kitchen\n3 keys\n');
  });

  it('buckets - an aligned table on a terminal: keys, last revision, settings', async () => {
    await runCli(['kv', 'put', 'cli-buckets', 'a', '1'], env);
    const table = await runInTerminal(['kv', 'buckets'], env);
    assert.equal(table.code, 0, table.stdout);
    const rows = table.stdout.trim().split('\n');
    assert.match(rows[0]!, /^BUCKET +KEYS +REVISION +HISTORY +MAX VALUE +TTL$/);
    assert.match(table.stdout, /^cli-buckets +1 +1 +\d+ +\d+ KiB +-$/m);
    const piped = lines((await runCli(['kv', 'buckets'], env)).stdout);
    assert.equal(piped.find((bucket) => bucket.name === 'cli-buckets')?.keys, 1);
  });

  it('watch - the current values, then what another process writes, live, each once; Ctrl-C exits 0', async () => {
    await runCli(['kv', 'put', 'cli-watch', 'before', '"b"', '--json'], env);
    const watcher = startCli(['kv', 'watch', 'cli-watch'], env);
    running.push(watcher);
    await watcher.waitFor(/"key":"before"/);
    await watcher.waitFor(/up to date at revision 1/);
    await runCli(['kv', 'put', 'cli-watch', 'after', '{"x":1}', '--json'], env);
    await runCli(['kv', 'del', 'cli-watch', 'before'], env);
    await watcher.waitFor(/"key":"before"[^\n]*"operation":"delete"|"operation":"delete"[^\n]*"key":"before"/);
    assert.equal(await watcher.stop('SIGINT'), 0);
    const changes = watcher.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { key: string; operation: string; revision: number; value: unknown });
    assert.deepEqual(changes.map((change) => [change.key, change.operation, change.revision]), [['before', 'put', 1], ['after', 'put', 2], ['before', 'delete', 3]]);
    assert.deepEqual(changes[1]!.value, { x: 1 });
  });

  it('watch --since - replays only the kept changes after that revision, then says it is up to date', async () => {
    const watcher = startCli(['kv', 'watch', 'cli-watch', '--since', '1', '--json'], env);
    running.push(watcher);
    await watcher.waitFor(/up to date/);
    assert.equal(await watcher.stop('SIGINT'), 0);
    const revisions = watcher.output().split('\n').filter((line) => line.startsWith('{')).map((line) => (JSON.parse(line) as { revision: number }).revision);
    assert.deepEqual(revisions, [2, 3]);
  });

  it('usage mistakes exit 2 naming what is wrong: invalid --json, no value, a bad revision, an unknown sub-command', async () => {
    const invalid = await runCli(['kv', 'put', 'cli-app', 'k', '{nope', '--json'], env);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /^relais: --json: the value is not valid JSON: /);
    const none = await runCli(['kv', 'put', 'cli-app', 'k'], env);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give the value/);
    const revision = await runCli(['kv', 'get', 'cli-app', 'k', '--revision', 'x'], env);
    assert.equal(revision.code, 2);
    assert.equal(revision.stderr, 'relais: --revision must be a whole number from 1, got x\n');
    const unknown = await runCli(['kv', 'frobnicate'], env);
    assert.notEqual(unknown.code, 0);
  });

  it('a bad bucket name is the router\'s refusal in one line, exit 1', async () => {
    const bad = await runCli(['kv', 'get', 'no spaces', 'k'], env);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.split('\n').filter(Boolean).length, 1, bad.stderr);
    assert.match(bad.stderr, /bucket/);
  });

  it('a file over the bucket\'s limit - exit 1, one line with its size and the limit', async () => {
    const file = path.join(dir, 'big.bin');
    fs.writeFileSync(file, crypto.randomBytes(70 * 1024));
    const result = await runCli(['kv', 'put', 'cli-app', 'big', '--file', file], env);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `relais: the value is ${70 * 1024} bytes; bucket cli-app takes at most ${64 * 1024}\n`);
  });

  it('no router - exit 3, saying the store is served by the router', async () => {
    const result = await runCli(['kv', 'get', 'cli-app', 'k', '--broker', bare.broker.url], { RELAIS_LOG_LEVEL: 'error' });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /no router is answering: the key-value store is served by the router/);
  });
});
