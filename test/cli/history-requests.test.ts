/**
 * `relais history` one row per request, as a user reads it on a terminal and in a pipe, against
 * `relais start` (the real binary; `npm test` builds it first).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLI_SUITE_TIMEOUT, runCli, startCli, startRelais, type RelaisStart } from '../testkit/cli.js';
import { uniqueId } from '../testkit/index.js';
import { runInTerminal, startOnTerminal } from '../testkit/terminal.js';

describe('relais history, one row per request', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let relais: RelaisStart;
  let env: Record<string, string>;
  const prefix = uniqueId('hist');
  const serve = (action: string, id: string, script: string) => relais.serve(`${prefix}/${action}`, [process.execPath, '-e', script], { id });
  let sinceBetween = '';

  before(async () => {
    relais = await startRelais();
    env = relais.env;
    await Promise.all([
      serve('ok', 'handler-ok', `process.stdin.resume().on('end', () => console.log(JSON.stringify({ done: true })));`),
      // A short program name: the outcome column is cut at its width, and Node's path may be long (Node 24 in CI).
      relais.serve(`${prefix}/fail`, ['sh', '-c', 'cat >/dev/null; echo disk full >&2; exit 3'], { id: 'handler-fail' }),
      serve('slow', 'handler-slow', `setTimeout(() => {}, 60_000);`),
    ]);
    const ok = await runCli(['call', `${prefix}/ok`, '{}', '--id', 'alice'], env);
    assert.equal(ok.code, 0, ok.stderr);
    const failed = await runCli(['call', `${prefix}/fail`, '{}', '--id', 'bob'], env);
    assert.equal(failed.code, 1, failed.stderr);
    const timedOut = await runCli(['call', `${prefix}/slow`, '{}', '--id', 'carol', '--timeout', '1'], env);
    assert.equal(timedOut.code, 124, timedOut.stderr);
    sinceBetween = new Date().toISOString();
    const detached = await runCli(['call', `${prefix}/slow`, '{}', '--id', 'dave', '--detach', '--timeout', '60'], env);
    assert.equal(detached.code, 0, detached.stderr);
    const killed = await runCli(['kill', detached.stdout.trim(), '--id', 'erin'], env);
    assert.equal(killed.code, 0, killed.stderr);
  });

  after(() => relais?.close());

  it('history on a terminal - a header, then one aligned row per request: requester, handler, outcome in words, duration, token', async () => {
    const shown = await runInTerminal(['history', '--since', '10m'], env);
    assert.equal(shown.code, 0, shown.stdout);
    const lines = shown.stdout.trimEnd().split('\n').filter((line) => line.startsWith('TIME') || line.includes(prefix));
    assert.match(lines[0]!, /^TIME\s+ACTION\s+REQUESTER\s+HANDLER\s+OUTCOME\s+DURATION\s+TOKEN$/);
    const rows = lines.slice(1);
    assert.equal(rows.length, 4, shown.stdout);
    assert.match(rows[0]!, new RegExp(`${prefix}/ok\\s+alice\\s+handler-ok\\s+ok\\s+\\d+ ms\\s+\\S+$`));
    assert.match(rows[1]!, new RegExp(`${prefix}/fail\\s+bob\\s+handler-fail\\s+failed: sh exited with code 3: disk full\\s+\\d+ ms`));
    // From the command's row to the time-out: the call's 1 s less the moment before it wrote the command.
    assert.match(rows[2]!, new RegExp(`${prefix}/slow\\s+carol\\s+handler-slow\\s+timed out\\s+(\\d{3} ms|1\\.\\d s)`));
    assert.match(rows[3]!, new RegExp(`${prefix}/slow\\s+dave\\s+handler-slow\\s+killed by erin\\s+`));
    // Aligned: every column starts where the header's does.
    const at = lines[0]!.indexOf('OUTCOME');
    for (const row of rows) assert.equal(row.slice(at - 2, at), '  ', row);
    assert.ok(rows.every((row) => row.indexOf(`${prefix}/`) === lines[0]!.indexOf('ACTION')), shown.stdout);
  });

  it('history --since <date> - only the requests sent since; in a pipe, one JSON object per request', async () => {
    const result = await runCli(['history', '--since', sinceBetween], env);
    assert.equal(result.code, 0, result.stderr);
    const requests = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { action: string; requester: string; handler: string; outcome: string; by?: string });
    assert.deepEqual(
      requests.map(({ action, requester, handler, outcome, by }) => ({ action, requester, handler, outcome, by })),
      [{ action: `${prefix}/slow`, requester: 'dave', handler: 'handler-slow', outcome: 'killed', by: 'erin' }],
    );
  });

  it('history --steps on a terminal - the step rows, aligned under a header', async () => {
    const shown = await runInTerminal(['history', '--steps', '--source', 'alice'], env);
    assert.equal(shown.code, 0, shown.stdout);
    const lines = shown.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+TIME\s+KIND\s+ACTION\s+FROM\s+TO\s+CODE\s+TOKEN\s+DATA$/);
    assert.deepEqual(lines.slice(1).map((line) => line.split(/\s{2,}/)[2]), ['command']);
    assert.equal(lines[1]!.indexOf(`${prefix}/ok`), lines[0]!.indexOf('ACTION'));
  });
  it('history --follow in a pipe - one JSON object per request as it ends (ok, failed, timed out, killed), none for its steps; a request sent before the follow began is there when it ends', async () => {
    const before = await runCli(['call', `${prefix}/slow`, '{}', '--id', 'grace', '--detach', '--timeout', '60'], env);
    assert.equal(before.code, 0, before.stderr);
    const since = new Date().toISOString();
    const following = startCli(['history', '--follow', '--since', since], env);
    try {
      const ok = await runCli(['call', `${prefix}/ok`, '{}', '--id', 'frank'], env);
      assert.equal(ok.code, 0, ok.stderr);
      // Printed: the follow has read where it starts, so what ends from now on comes live.
      await following.waitFor(/"requester":"frank"/);
      assert.equal((await runCli(['call', `${prefix}/fail`, '{}', '--id', 'gus'], env)).code, 1);
      assert.equal((await runCli(['call', `${prefix}/slow`, '{}', '--id', 'hana', '--timeout', '1'], env)).code, 124);
      assert.equal((await runCli(['kill', before.stdout.trim(), '--id', 'ivan'], env)).code, 0);
      await following.waitFor(/"outcome":"killed"/);
    } finally {
      await following.stop('SIGTERM');
    }
    const lines = following.output().trim().split('\n');
    const all = lines.map((line) => JSON.parse(line) as { token: string; action: string; requester: string; outcome: string; by?: string; durationMs?: number; kind?: string });
    // A request still running when the follow read the newest ones (frank's, on a slow machine) is shown running first, then again when it ends.
    const requests = all.filter((request) => request.outcome !== 'running');
    for (const running of all.filter((request) => request.outcome === 'running')) assert.ok(requests.some((request) => request.token === running.token), `${running.token} shown running never ended`);
    assert.deepEqual(
      requests.map(({ action, requester, outcome, by }) => ({ action, requester, outcome, ...(by !== undefined && { by }) })),
      [
        { action: `${prefix}/ok`, requester: 'frank', outcome: 'ok' },
        { action: `${prefix}/fail`, requester: 'gus', outcome: 'failed' },
        { action: `${prefix}/slow`, requester: 'hana', outcome: 'timed out' },
        { action: `${prefix}/slow`, requester: 'grace', outcome: 'killed', by: 'ivan' },
      ],
      following.output(),
    );
    assert.ok(requests.every((request) => typeof request.durationMs === 'number' && request.kind === undefined), following.output());
  });

  it('history --follow on a terminal - the header, then one aligned row per request as it ends; --steps: the step rows', async () => {
    const since = new Date().toISOString();
    const perRequest = startOnTerminal(['history', '--follow', '--since', since], env);
    const steps = startOnTerminal(['history', '--follow', '--steps', '--since', since, '--source', 'judy'], env);
    try {
      await perRequest.waitFor(/TIME\s+ACTION\s+REQUESTER\s+HANDLER\s+OUTCOME\s+DURATION\s+TOKEN/);
      assert.equal((await runCli(['call', `${prefix}/ok`, '{}', '--id', 'judy'], env)).code, 0);
      await perRequest.waitFor(new RegExp(`${prefix}/ok\\s+judy\\s+handler-ok\\s+ok\\s+\\d+ ms\\s+\\S+`));
      // The live line and the stored rows it printed first (an aligned table) space columns differently.
      await steps.waitFor(new RegExp(`#\\d+ .* command\\s+${prefix}/ok\\s+judy`));
    } finally {
      await Promise.all([perRequest.stop('SIGTERM'), steps.stop('SIGTERM')]);
    }
    const lines = perRequest.output().replace(/\r\n/g, '\n').trimEnd().split('\n').filter((line) => line.startsWith('TIME') || line.includes(prefix));
    assert.equal(lines.length, 2, perRequest.output());
    assert.equal(lines[1]!.indexOf('judy'), lines[0]!.indexOf('REQUESTER'), perRequest.output());
    const outcomeAt = lines[0]!.indexOf('OUTCOME');
    assert.equal(lines[1]!.slice(outcomeAt, outcomeAt + 3), 'ok ', perRequest.output());
  });
});
