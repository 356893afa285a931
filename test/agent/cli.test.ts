import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { within } from '../testkit/index.js';
import { runCli, startCli, startRelais, type RelaisStart, type RunningCli } from '../testkit/cli.js';
import { ended, endsWithin, tempDir } from './agent-kit.js';

describe('relais agent and relais exec as real processes', { timeout: 90_000 }, () => {
  let relais: RelaisStart;
  let agent: RunningCli;
  let dir: string;
  let env: Record<string, string>;
  const agentId = `cli-agent-${process.pid}`;

  before(async () => {
    dir = tempDir('cli');
    relais = await startRelais(['--data-dir', path.join(dir, 'data')]);
    env = relais.env;
    fs.mkdirSync(path.join(dir, 'disk'));
    const config = {
      services: {
        disks: { disks: { local: { path: path.join(dir, 'disk') } } },
        command: { ruleSet: 'cli-rules', killGrace: 0.5, rules: [{ name: 'sh', program: '/bin/sh', args: ['-c', { pattern: '.*' }], moreArgs: { pattern: '.*', max: 2 } }] },
      },
    };
    fs.writeFileSync(path.join(dir, 'agent.json'), JSON.stringify(config));
    // Info level: the test waits on its "command ended" line, readable as on a terminal (a pipe gets pino's JSON).
    agent = startCli(['agent', '--id', agentId, '--config', path.join(dir, 'agent.json'), '--log-format', 'readable'], { ...env, RELAIS_LOG_LEVEL: 'info' });
    await agent.waitFor(/agent \S+ serving disks, command, components/);
  });

  after(async () => {
    await agent?.stop();
    await relais?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exec - stdout lines to stdout, stderr lines to stderr, exits with the remote exit code', async () => {
    const result = await runCli(['exec', agentId, '--', '/bin/sh', '-c', 'echo out; echo err >&2; echo more; exit 7'], env);
    assert.equal(result.code, 7, result.stderr);
    assert.equal(result.stdout, 'out\nmore\n');
    assert.equal(result.stderr, 'err\n');
  });

  it('exec - a command no rule allows exits 126 naming the rule set', async () => {
    const result = await runCli(['exec', agentId, '--', '/bin/ls', '/'], env);
    assert.equal(result.code, 126);
    assert.match(result.stderr, /not allowed by the rule set cli-rules/);
    assert.equal(result.stdout, '');
  });

  it('exec - a command killed by its time-out exits 124', async () => {
    const result = await runCli(['exec', agentId, '--timeout', '0.3', '--', '/bin/sh', '-c', 'echo started; sleep 1000'], env);
    assert.equal(result.code, 124, result.stderr);
    assert.equal(result.stdout, 'started\n');
    assert.match(result.stderr, /timed out after 0\.3 s: its process group was killed/);
  });

  it('relais kill <token> kills the command and its children', async () => {
    const fifo = path.join(dir, 'pids');
    execFileSync('mkfifo', [fifo]);
    const payload = JSON.stringify({ command: ['/bin/sh', '-c', 'sleep 1000 & echo "$$ $!" > "$1"; wait', 'sh', fifo] });
    const requester = `cli-requester-${process.pid}`;
    const detached = await runCli(['call', 'system/command/run', payload, '--target', agentId, '--detach', '--id', requester], env);
    assert.equal(detached.code, 0, detached.stderr);
    const token = detached.stdout.trim();
    const pids = (await within(fs.promises.readFile(fifo, 'utf8'), 10_000, 'the command writing its pids')).trim().split(' ').map(Number);
    assert.equal(pids.length, 2);
    for (const pid of pids) assert.ok(!ended(pid), `process ${pid} is not running before the kill`);
    const killed = await runCli(['kill', token, '--id', requester, '--json'], env);
    assert.equal(killed.code, 0, killed.stderr);
    await agent.waitFor(new RegExp(`command ended \\(.*token=${token}.*killed="?cancelled`), 10_000);
    for (const pid of pids) assert.ok(await endsWithin(pid), `process ${pid} still runs after relais kill`);
  });

  it('agent - a config with a bad field exits 2 naming it', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ services: { command: { ruleSet: 'x', rules: [{ name: 'r', program: 'sh' }] } } }));
    const result = await runCli(['agent', '--id', `bad-agent-${process.pid}`, '--config', bad], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /services\.command\.rules\.0/);
  });
});
