/**
 * `relais logs` as a user runs it (real processes): a library client in its own process logs,
 * the CLI reads its lines, follows new ones until stopped, and says so at once when the
 * client is not connected. Needs `npm run build` (npm test does it first).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitForLine } from '../testkit/brokers.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, startRelais, type RelaisStart } from '../testkit/cli.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/logging-process.ts');

describe('relais logs', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let relais: RelaisStart;
  let env: Record<string, string>;
  let client: ChildProcess;
  const clientId = `logging-${process.pid}`;

  before(async () => {
    relais = await startRelais();
    env = relais.env;
    client = spawn(process.execPath, ['--import', 'tsx', FIXTURE, relais.url, clientId, '100'], { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitForLine(client, /^READY$/m, 20_000, clientId);
  });

  after(async () => {
    client?.kill('SIGTERM');
    await relais?.close();
  });

  it('logs - prints the newest lines as JSON lines in a pipe, filtered by --lines', async () => {
    const result = await runCli(['logs', clientId, '--lines', '2', '--level', 'info'], env);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string });
    assert.equal(lines.length, 2);
    assert.ok(lines.every((line) => line.level === 30 && /^(started|tick) \d+$/.test(line.msg)), result.stdout);
  });

  it('logs - --follow prints new lines as they are written until stopped', async () => {
    const following = startCli(['logs', clientId, '--follow', '--lines', '1'], env);
    const [, first] = await following.waitFor(/"msg":"tick (\d+)"/);
    // A tick written after the follow began: it came as a progress step, not in the backlog.
    await following.waitFor(new RegExp(`"msg":"tick ${Number(first) + 2}"`));
    assert.equal(await following.stop('SIGTERM'), 0, following.output());
    // The follow ended on the serving side too: the client's lock is free for the next reader.
    const next = await runCli(['logs', clientId, '--lines', '1'], env);
    assert.equal(next.code, 0, next.stderr);
  });

  it('logs - a one-off retrieval and a second follower are served while a follow runs', async () => {
    const following = startCli(['logs', clientId, '--follow', '--lines', '1'], env);
    try {
      await following.waitFor(/"msg":"tick \d+"/);
      // The page's "Fetch logs" and any other relais logs: not BUSY while someone follows.
      const oneOff = await runCli(['logs', clientId, '--lines', '1'], env);
      assert.equal(oneOff.code, 0, oneOff.stderr);
      assert.match(oneOff.stdout, /"msg":"tick \d+"/);
      const second = startCli(['logs', clientId, '--follow', '--lines', '1'], env);
      try {
        await second.waitFor(/"msg":"tick \d+"/);
      } finally {
        assert.equal(await second.stop('SIGTERM'), 0, second.output());
      }
    } finally {
      assert.equal(await following.stop('SIGTERM'), 0, following.output());
    }
  });

  it('logs - info lines and above by default; --level debug adds the debug ones', async () => {
    const messages = (output: string) => output.trim().split('\n').map((line) => (JSON.parse(line) as { msg: string }).msg);
    const byDefault = await runCli(['logs', clientId, '--lines', '10000'], env);
    assert.equal(byDefault.code, 0, byDefault.stderr);
    assert.ok(messages(byDefault.stdout).includes('started 3'), byDefault.stdout);
    assert.ok(!messages(byDefault.stdout).includes('debug detail'), byDefault.stdout);
    const debug = await runCli(['logs', clientId, '--lines', '10000', '--level', 'debug'], env);
    assert.equal(debug.code, 0, debug.stderr);
    assert.ok(messages(debug.stdout).includes('debug detail'), debug.stdout);
  });

  it('logs - a client that is not connected is an error at once, exit 3', async () => {
    const started = Date.now();
    const result = await runCli(['logs', 'nobody-here'], env);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /client nobody-here is not connected/);
    assert.ok(Date.now() - started < 10_000);
  });

  it('logs - usage mistakes exit 2 naming the option', async () => {
    const result = await runCli(['logs', clientId, '--lines', '100000'], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--lines must be an integer from 1 to 10000/);
  });
});
