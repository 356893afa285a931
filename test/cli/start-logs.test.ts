/**
 * The log lines of the long-running commands as a user sees them (real processes): readable on
 * a terminal, with the error's text; pino's JSON lines in a pipe or with --log-format json; a
 * requester's mistake is no warning of the server; a taken port names the option that moves it.
 * Needs the CLI built (npx tsc -p tsconfig.build.json).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, RequestEndedError, UnknownTokenError, type Bus } from '../../src/index.js';
import { KILL_ACTION } from '../../src/protocol/history.js';
import { METRICS_ACTION, type MetricsSnapshot } from '../../src/protocol/metrics.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, startRelais, type RunningCli } from '../testkit/cli.js';
import { startOnTerminal } from '../testkit/terminal.js';

/** A pino JSON line's level for "warn" and above. */
const WARN = 40;

function jsonLines(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('relais start, serve: log lines', { timeout: CLI_SUITE_TIMEOUT }, () => {
  const dirs: string[] = [];
  const running: Array<{ stop(): Promise<unknown> }> = [];
  const dataDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-start-logs-'));
    dirs.push(dir);
    return dir;
  };
  let broker: RunningCli;
  let url: string;

  before(async () => {
    ({ cli: broker, url } = await startRelais(['--data-dir', dataDir()]));
    running.push(broker);
  });

  after(async () => {
    for (const process of running.reverse()) await process.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('start - a terminal gets readable lines, not JSON', async () => {
    const terminal = startOnTerminal(['start', '--port', '0', '--web-port', '0', '--data-dir', dataDir()]);
    running.push(terminal);
    await terminal.waitFor(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO  relais-router: client registry started \(clients=\d+/m);
    await terminal.waitFor(/Ctrl-C stops/);
    assert.doesNotMatch(terminal.output(), /\{"level":/, 'no pino JSON on a terminal');
  });

  it('start - a pipe gets JSON lines; --log-format readable overrides it', async () => {
    await broker.waitFor(/"msg":"client registry started"/);
    const registry = jsonLines(broker.output()).find((line) => line.msg === 'client registry started');
    assert.equal(registry?.level, 30, broker.output());
    assert.equal(registry?.name, 'relais-router');

    const readable = startCli(['start', '--port', '0', '--web-port', '0', '--data-dir', dataDir(), '--log-format', 'readable']);
    running.push(readable);
    await readable.waitFor(/INFO  relais-router: client registry started/);
    assert.doesNotMatch(readable.output(), /\{"level":/);
  });

  it("serve - a handler's failure on a terminal is one readable warning with the error's text", async () => {
    const action = `demo/failing-${process.pid}`;
    const serving = startOnTerminal(['serve', action, '--broker', url, '--', 'sh', '-c', 'echo disk full >&2; exit 3']);
    running.push(serving);
    await serving.waitFor(/serving demo\/failing/);
    const call = await runCli(['call', action, '{}', '--broker', url]);
    assert.notEqual(call.code, 0, call.stdout);
    await serving.waitFor(/WARN  relais: handler failed: sh exited with code 3: disk full \(action=demo\/failing-\d+ token=\S+ requester=\S+\)/);
  });

  it("start - a kill of a request that has already ended is no warning of the server, and the router's metrics count it as refused", async () => {
    const bus: Bus = await connect({ id: `peer-mistake-${process.pid}`, broker: url });
    try {
      await bus.handle('demo/quick', () => 'done');
      await bus.waitForHandler(KILL_ACTION, { timeout: 60_000 });
      const token = `ended-${process.pid}`;
      assert.equal(await bus.request('demo/quick', {}, { token, timeout: 10_000 }), 'done');
      // The kill reads the history: once the request's end is stored, it is refused as ended (code 2).
      let refusal: unknown;
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
        refusal = await bus.request(KILL_ACTION, { token }, { timeout: 10_000 }).catch((error: unknown) => error);
        if (!(refusal instanceof UnknownTokenError)) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(refusal instanceof RequestEndedError, String(refusal));
      assert.match(refusal.message, /has already ended/);
      // Counted: the next metrics snapshot (every 10 s, protocol §11.6) has it as refused.
      let refused = 0;
      for (const deadline = Date.now() + 60_000; Date.now() < deadline && refused === 0; ) {
        const metrics = await bus.request<MetricsSnapshot>(METRICS_ACTION, {}, { timeout: 10_000 });
        refused = metrics.actions[KILL_ACTION]?.refused ?? 0;
        if (refused === 0) await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      // At least the kill of the ended request (a kill sent before its end was stored is refused as unknown, and counted too).
      assert.ok(refused >= 1, 'the refused kill counted in the metrics');
      const warnings = jsonLines(broker.output()).filter((line) => Number(line.level) >= WARN);
      assert.deepEqual(warnings, [], 'no warning from the server');
    } finally {
      await bus.close();
    }
  });

  it('start - a taken port names the option that moves it', async () => {
    const port = new URL(url).port;
    const taken = await runCli(['start', '--port', port, '--no-web', '--no-router', '--data-dir', dataDir()]);
    assert.equal(taken.code, 1, taken.stderr);
    assert.match(taken.stderr, new RegExp(`^relais: TCP 127\\.0\\.0\\.1:${port} is already in use, by another broker or program: choose another port with --port <port> \\(--port 0 picks a free one\\), or stop what holds it\\n$`));

    const [, webPort] = (await broker.waitFor(/web page and HTTP API on http:\/\/127\.0\.0\.1:(\d+)/)) as [string, string];
    const webTaken = await runCli(['start', '--port', '0', '--web-port', webPort, '--no-router', '--data-dir', dataDir()]);
    assert.equal(webTaken.code, 1, webTaken.stderr);
    assert.match(webTaken.stderr, /the port is in use: choose another port with --web-port <port> \(--web-port 0 picks a free one\), or --no-web/);
  });
});
