import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import type { KillResult } from '../../src/protocol/history.js';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type RelaisStart } from '../testkit/cli.js';

describe('relais history (router inside relais start)', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let relais: RelaisStart;
  let env: Record<string, string>;
  let dataDir: string;

  before(async () => {
    relais = await startRelais();
    env = relais.env;
    dataDir = relais.dataDir!;
    // Answers after three progress steps, 150 ms apart: time to detach and follow mid-way.
    await relais.serve('cli/slow', [process.execPath, '-e', `process.stdin.resume().on('end', async () => {
      for (const p of [20, 50, 80]) { console.log(JSON.stringify({ progress: p })); await new Promise((r) => setTimeout(r, 150)); }
      console.log(JSON.stringify({ done: true }));
    });`]);
    await relais.serve('cli/forever', [process.execPath, '-e', `console.log(JSON.stringify({ progress: 1 })); setTimeout(() => {}, 60_000);`]);
  });

  after(() => relais?.close());

  it('start - says where the router keeps the history, in the data directory', () => {
    assert.match(relais.cli.output(), new RegExp(`router recording the request history to ${path.join(dataDir, 'history.db').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.ok(fs.existsSync(path.join(dataDir, 'history.db')));
  });

  it('call --detach then history --token --follow: the whole lifecycle, replayed then live, each step once', async () => {
    const detached = await runCli(['call', 'cli/slow', '{"n":1}', '--detach'], env);
    assert.equal(detached.code, 0, detached.stderr);
    const token = detached.stdout.trim();
    assert.match(token, /^[\w-]{8,}$/);
    assert.match(detached.stderr, /accepted by/);
    const followed = await runCli(['history', '--token', token, '--follow'], env);
    assert.equal(followed.code, 0, followed.stderr);
    const rows = followed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id: number; kind: string; progress?: number; data: string });
    assert.deepEqual(rows.map((row) => row.kind), ['command', 'accepted', 'progress', 'progress', 'progress', 'final']);
    assert.deepEqual(rows.filter((row) => row.kind === 'progress').map((row) => row.progress), [0.2, 0.5, 0.8]);
    assert.equal(rows.at(-1)!.data, '{"done":true}');
    assert.equal(new Set(rows.map((row) => row.id)).size, rows.length);
  });

  it('history - filters by action and kind, JSON lines in a pipe', async () => {
    await runCli(['call', 'cli/slow', '{"n":2}'], env);
    const result = await runCli(['history', '--action', 'cli/slow', '--kind', 'final', '--since', '10m'], env);
    assert.equal(result.code, 0, result.stderr);
    const rows = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; action: string });
    assert.ok(rows.length >= 1);
    assert.ok(rows.every((row) => row.kind === 'final' && row.action === 'cli/slow'));
  });

  it('kill - without security anyone may kill: a detached call is killed from another shell (another client id); exit 0 once the handler confirmed', async () => {
    const detached = await runCli(['call', 'cli/forever', '{}', '--detach', '--id', `detacher-${process.pid}`, '--timeout', '60'], env);
    assert.equal(detached.code, 0, detached.stderr);
    const token = detached.stdout.trim();
    const killed = await runCli(['kill', token, '--id', `another-shell-${process.pid}`, '--reason', 'changed my mind'], env);
    assert.equal(killed.code, 0, killed.stderr);
    const result = JSON.parse(killed.stdout) as KillResult;
    assert.deepEqual([result.killed, result.outcome, result.code], [true, 'cancelled', 5]);
    const followed = await runCli(['history', '--token', token, '--follow'], env);
    const rows = followed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; code?: number; data: string });
    // The kill's outcome is stored before the kill answers: the timeline shows it after the end.
    assert.deepEqual(rows.map((row) => row.kind).filter((kind) => kind !== 'progress'), ['command', 'accepted', 'cancel', 'error', 'kill']);
    assert.match(rows.find((row) => row.kind === 'cancel')!.data, /changed my mind/);
    assert.equal(rows.at(-1)!.code, 5);
  });

  it('kill - a handler that ignores the cancel: exit 4, "the handler did not confirm", and the history records the outcome', async () => {
    // A plain MQTT handler (no library): it takes the command, sends one progress step and ignores cancels.
    const handler = await mqtt.connectAsync(env.RELAIS_BROKER!, { clientId: `stubborn-${process.pid}`, protocolVersion: 4 });
    try {
      handler.on('message', (_topic, payload) => {
        const command = JSON.parse(payload.toString()) as { type: string; source: string; token: string };
        if (command.type !== 'command') return;
        const step = { type: 'response', source: `stubborn-${process.pid}`, destination: command.source, token: command.token, final: false, payload: { working: true } };
        void handler.publishAsync(`cli/stubborn/response/${command.source}`, JSON.stringify(step), { qos: 1 });
      });
      await handler.subscribeAsync(`cli/stubborn/request/stubborn-${process.pid}`, { qos: 1 });
      const detached = await runCli(['call', 'cli/stubborn', '{}', '--detach', '--target', `stubborn-${process.pid}`, '--timeout', '60'], env);
      assert.equal(detached.code, 0, detached.stderr);
      const token = detached.stdout.trim();
      const kill = await runCli(['kill', token, '--wait', '0.5'], env);
      assert.equal(kill.code, 4, kill.stderr);
      const result = JSON.parse(kill.stdout) as KillResult;
      assert.deepEqual([result.killed, result.outcome, result.handler], [false, 'unconfirmed', `stubborn-${process.pid}`]);
      const history = await runCli(['history', '--token', token, '--kind', 'kill'], env);
      const row = JSON.parse(history.stdout.trim()) as { kind: string; data: string };
      assert.equal(JSON.parse(row.data).outcome, 'unconfirmed');
    } finally {
      await handler.endAsync();
    }
  });

  it('kill - a token beginning with "-" (drawn by another client): the parse error says to put it after --, and after -- it reaches the router', async () => {
    const token = '-nvurETG9lBSKBwO';
    const taken = await runCli(['kill', token], env);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /unknown option '-nvurETG9lBSKBwO'\nrelais: if -nvurETG9lBSKBwO is a token, put it after --: relais kill -- -nvurETG9lBSKBwO/);
    const passed = await runCli(['kill', '--', token], env);
    assert.doesNotMatch(passed.stderr, /unknown option/);
    // The router answered for that token: it never saw it.
    assert.match(passed.stderr, /token -nvurETG9lBSKBwO is not in the history: nothing to kill/);
  });

  it('events - the newest events as JSON lines with increasing cursors; --since resumes after a cursor', async () => {
    await runCli(['call', 'cli/slow', '{"n":3}'], env);
    const result = await runCli(['events', '-n', '50'], env);
    assert.equal(result.code, 0, result.stderr);
    const events = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { cursor: number; type: string; data: { action?: string } });
    assert.ok(events.some((event) => event.type === 'request.started' && event.data.action === 'cli/slow'));
    assert.ok(events.some((event) => event.type === 'request.finished' && event.data.action === 'cli/slow'));
    assert.ok(events.every((event, i) => i === 0 || event.cursor === events[i - 1]!.cursor + 1), 'consecutive cursors');
    const middle = events[Math.floor(events.length / 2)]!.cursor;
    const resumed = await runCli(['events', '--since', String(middle)], env);
    const after = resumed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { cursor: number });
    assert.equal(after[0]!.cursor, middle + 1);
  });

  it('stats - prints the latest metrics the router derived, as JSON in a pipe', async () => {
    const result = await runCli(['stats'], env);
    assert.equal(result.code, 0, result.stderr);
    const snapshot = JSON.parse(result.stdout) as { from: number; until: number; actions: object; rowsPerSecond: number };
    assert.equal(typeof snapshot.actions, 'object');
    assert.ok(snapshot.until >= snapshot.from);
  });

  it('history - a bad option is a usage error (exit 2) naming it', async () => {
    const result = await runCli(['history', '--kind', 'bogus'], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--kind must be one of/);
    const since = await runCli(['history', '--since', 'yesterday-ish'], env);
    assert.equal(since.code, 2);
    assert.match(since.stderr, /--since/);
  });

  it('history - with no router on the bus: exit 3 and says the router is not running', async () => {
    const bare = await startRelais(['--no-router']);
    try {
      const result = await runCli(['history'], bare.env);
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /no router is answering/);
    } finally {
      await bare.close();
    }
  });
});
