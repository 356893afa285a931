/**
 * Logs from every host (docs/agent.md "Logs"): an agent serves its configured log
 * files (and the journal) on `relais/logs/get` with `source`, real files on disk.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LOGS_ACTION, RemoteError, type LogsAnswer, type LogsProgress } from '../../src/index.js';
import { startAgentKit, type AgentKit } from './agent-kit.js';
import { tailLines } from '../../src/agent/log-files.js';
import { within } from '../testkit/index.js';
import { runCli, startCli } from '../testkit/cli.js';

const BASE = path.join(os.tmpdir(), 'transfer-helper');

describe('agent logs - configured files through relais/logs/get', () => {
  let env: AgentKit;
  let dir: string;
  let big: string;
  let app: string;
  const bigLines = 500_000; // ~50 MB

  before(async () => {
    fs.mkdirSync(BASE, { recursive: true });
    dir = fs.mkdtempSync(path.join(BASE, 'logs-'));
    big = path.join(dir, 'big.log');
    app = path.join(dir, 'app.log');
    const fd = fs.openSync(big, 'w');
    const filler = 'x'.repeat(80);
    for (let start = 0; start < bigLines; start += 10_000) {
      let text = '';
      for (let n = start; n < start + 10_000; n += 1) text += `line ${n} ${n % 7 === 0 ? 'ERROR disk full' : 'ok'} ${filler}\n`;
      fs.writeSync(fd, text);
    }
    fs.closeSync(fd);
    fs.writeFileSync(app, `${JSON.stringify({ level: 30, time: 1, msg: 'started' })}\n${JSON.stringify({ level: 50, time: 2, msg: 'failed' })}\n`);
    // maxScanBytes bounds how much of the file may be read for one request: 1 MiB of a 50 MB file.
    env = await startAgentKit({ services: { logs: { files: { syslog: big, app }, maxScanBytes: 1024 * 1024 } } });
  });
  after(async () => {
    await env.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const ask = (payload: unknown) => env.caller.request<LogsAnswer>(LOGS_ACTION, payload, { target: env.agent.bus.id });

  it('tail - the last N lines of a 50 MB file, read from its end (a bounded read, not the whole file)', async () => {
    assert.ok(fs.statSync(big).size > 45_000_000);
    const answer = await ask({ source: 'syslog', lines: 50 });
    assert.equal(answer.lines.length, 50);
    assert.match(String(answer.lines[0]!.msg), new RegExp(`^line ${bigLines - 50} `));
    assert.match(String(answer.lines[49]!.msg), new RegExp(`^line ${bigLines - 1} `));
    assert.equal(answer.next, fs.statSync(big).size);
    // Far more lines than 1 MiB holds: the answer stops at the scan bound and says so.
    const bounded = await ask({ source: 'syslog', lines: 10_000, pattern: 'ERROR' });
    assert.equal(bounded.truncated, true);
    // Every line returned lies in the last MiB of the file: nothing before it was read.
    const lineBytes = fs.statSync(big).size / bigLines;
    const oldest = Number(/^line (\d+)/.exec(String(bounded.lines[0]!.msg))![1]);
    assert.ok(oldest >= bigLines - Math.ceil((1024 * 1024) / lineBytes) - 1, `oldest line ${oldest} is before the last MiB`);
    assert.ok(bounded.lines.length > 1000, String(bounded.lines.length));
  });

  it('tail - a short file: every complete line from the first, the line still being written left for later', async () => {
    const file = path.join(dir, 'short.log');
    fs.writeFileSync(file, 'first\nsecond\nthird\npartial');
    const tail = await tailLines(file, 10, () => true, 1024 * 1024);
    assert.deepEqual(tail.lines.map((line) => line.text), ['first', 'second', 'third']);
    assert.equal(tail.end, 'first\nsecond\nthird\n'.length);
    const after = await tailLines(file, 10, () => true, 1024 * 1024, 'first\n'.length);
    assert.deepEqual(after.lines.map((line) => line.text), ['second', 'third']);
  });

  it('pattern and level - only matching lines', async () => {
    const errors = await ask({ source: 'syslog', lines: 5, pattern: 'ERROR disk full' });
    assert.equal(errors.lines.length, 5);
    for (const line of errors.lines) assert.match(String(line.msg), /ERROR disk full/);
    const last = Number(/^line (\d+)/.exec(String(errors.lines[4]!.msg))![1]);
    assert.equal(last % 7, 0);
    const leveled = await ask({ source: 'app', level: 'error' });
    assert.deepEqual(leveled.lines, [{ level: 50, time: 2, msg: 'failed' }]);
  });

  it('follow - appended lines arrive, and a truncation is seen and read from the start', async () => {
    const controller = new AbortController();
    const steps = env.caller.call(LOGS_ACTION, { source: 'app', lines: 1, follow: true }, { target: env.agent.bus.id, signal: controller.signal, timeout: 60_000 });
    const seen: string[] = [];
    const iterator = steps[Symbol.asyncIterator]();
    const nextLines = async () => {
      for (;;) {
        const step = await within(iterator.next(), 10_000, 'a progress step');
        assert.ok(!step.done);
        if (step.value.kind === 'progress') return (step.value.payload as LogsProgress).lines.map((line) => String(line.msg));
      }
    };
    seen.push(...(await nextLines()));
    assert.deepEqual(seen, ['failed']);
    fs.appendFileSync(app, `${JSON.stringify({ level: 30, time: 3, msg: 'appended' })}\n`);
    assert.deepEqual(await nextLines(), ['appended']);
    fs.writeFileSync(app, `${JSON.stringify({ level: 30, time: 4, msg: 'after truncation' })}\n`);
    const restart = await nextLines();
    const rest = restart.length === 1 ? await nextLines() : restart.slice(1);
    assert.match(restart[0]!, /app was truncated; reading it from its start/);
    assert.deepEqual(rest, ['after truncation']);
    controller.abort();
    await iterator.return?.();
  });

  it('relais logs <agent> --source syslog -n 50 --follow - the tail, then appended lines, until Ctrl-C', async () => {
    const cliEnv = { RELAIS_BROKER: env.kit.broker.url };
    const plain = await runCli(['logs', env.agent.bus.id, '--source', 'syslog', '-n', '3', '--pattern', 'ERROR'], cliEnv);
    assert.equal(plain.code, 0, plain.stderr);
    const printed = plain.stdout.trim().split('\n').map((line) => JSON.parse(line) as { msg: string });
    assert.equal(printed.length, 3);
    for (const line of printed) assert.match(line.msg, /ERROR disk full/);
    const follow = startCli(['logs', env.agent.bus.id, '--source', 'syslog', '-n', '50', '--follow'], cliEnv);
    try {
      await follow.waitFor(new RegExp(`line ${bigLines - 1} `), 15_000);
      fs.appendFileSync(big, 'a line appended while following\n');
      await follow.waitFor(/a line appended while following/, 15_000);
      assert.equal(follow.output().split('\n').filter((line) => line.startsWith('{')).length, 51);
    } finally {
      assert.equal(await follow.stop('SIGINT'), 0);
    }
  });

  it('refused - a source the config does not name (no path from the requester)', async () => {
    for (const source of ['passwd', '..', 'etc/passwd']) {
      await assert.rejects(ask({ source }), (error: unknown) => {
        if (source === 'passwd') {
          assert.ok(error instanceof RemoteError);
          assert.equal(error.responseCode, 1);
          assert.match(error.message, /no log source passwd on this agent \(sources: syslog, app, journal\)/);
        } else assert.match((error as Error).message, /field 'source'|no log source/);
        return true;
      });
    }
  });

  it("default - without a source, the agent's own lines as any client", async () => {
    env.agent.bus.logger.info('the agent says hello');
    env.agent.bus.logger.info('something else');
    const answer = await ask({ lines: 1000, pattern: 'says hello' });
    assert.deepEqual(answer.lines.map((line) => line.msg), ['the agent says hello']);
    assert.equal(answer.kept.maxLines, 1000);
    // What the agent itself logs (its start, its services) is among them: it logs through the bus's logger.
    const own = await ask({ lines: 1000, pattern: 'agent ready' });
    assert.equal(own.lines.length, 1, 'the agent logs through the logger whose lines it serves');
  });

  it('journal - served through journalctl when the host has it, else reported unavailable', async () => {
    const answer = await ask({ source: 'journal', lines: 5 });
    assert.ok(Array.isArray(answer.lines));
    const hasJournalctl = ['/usr/bin/journalctl', '/bin/journalctl'].some((file) => fs.existsSync(file));
    if (!hasJournalctl) assert.match(answer.unavailable ?? '', /journalctl is not installed/);
    else assert.equal(answer.unavailable, undefined);
  });
});
