/**
 * `relais stats --since` as a user runs it against `relais start`: the totals of the snapshots
 * the router kept, not only its last 10 s interval, with the broker's figures.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type RelaisStart } from '../testkit/cli.js';
import { uniqueId } from '../testkit/index.js';
import { runInTerminal } from '../testkit/terminal.js';

describe('relais stats --since', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let relais: RelaisStart;
  let env: Record<string, string>;
  const action = `${uniqueId('stats')}/check`;

  before(async () => {
    relais = await startRelais();
    env = relais.env;
    // Fails when asked to ({"fail": true}), answers otherwise.
    const server = relais.startCli(['serve', action, '--', process.execPath, '-e', `let s = ''; process.stdin.on('data', (c) => (s += c)).on('end', () => { if (JSON.parse(s).fail) process.exit(1); console.log('{}'); });`]);
    await server.waitFor(/serving/);
    for (const payload of ['{}', '{}', '{"fail":true}']) await runCli(['call', action, payload], env);
    // The router publishes a snapshot every 10 s, and a call is counted in the interval its end
    // was stored in: the three can straddle two snapshots. Wait until the kept ones count all three.
    for (const deadline = Date.now() + 60_000; ; ) {
      const result = await runCli(['stats', '--since', '5m'], env);
      const counted = result.code === 0 ? ((JSON.parse(result.stdout.trim()) as { actions: Record<string, { requests: number }> }).actions[action]?.requests ?? 0) : 0;
      if (counted >= 3) break;
      if (Date.now() > deadline) assert.fail(`the router's kept snapshots count ${counted} of the 3 calls after 60 s: ${result.stdout}${result.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  });

  after(() => relais?.close());

  it('stats --since 5m in a pipe - the requests and errors of every kept interval, added up', async () => {
    const result = await runCli(['stats', '--since', '5m'], env);
    assert.equal(result.code, 0, result.stderr);
    const total = JSON.parse(result.stdout.trim()) as {
      from: number;
      until: number;
      actions: Record<string, { requests: number; completed: number; errors: number }>;
      broker: { connections?: { open: number }; messages?: { in: number }; span?: { from: number; messages: { in: number; out: number }; bytes: { in: number; out: number } } };
    };
    assert.deepEqual(total.actions[action] && { requests: total.actions[action].requests, completed: total.actions[action].completed, errors: total.actions[action].errors }, { requests: 3, completed: 3, errors: 1 });
    assert.ok(total.until - total.from >= 10_000, `a span of every kept interval, got ${total.until - total.from} ms`);
    assert.ok(total.broker.connections!.open >= 3, JSON.stringify(total.broker));
    // The broker's traffic over the same span: each call is at least its command and its response, in and out.
    const span = total.broker.span!;
    assert.ok(span && span.messages.in >= 6 && span.messages.out >= 6 && span.bytes.in > 0 && span.bytes.out > 0, JSON.stringify(total.broker));
    assert.ok(total.broker.messages!.in >= span.messages.in, 'the totals since the start hold the span');
  });

  it('stats --since 5m on a terminal - a totals line, the action row, and the broker block', async () => {
    const shown = await runInTerminal(['stats', '--since', '5m'], env);
    assert.equal(shown.code, 0, shown.stdout);
    assert.match(shown.stdout, /last \d+\.\d s: 3 request\(s\), 1 error\(s\)/);
    assert.match(shown.stdout, new RegExp(`${action}\\s+\\S+\\s+3\\s+1\\s+33\\.3%`));
    assert.match(shown.stdout, /broker: up \S+( \S+)?, \d+ connection\(s\) open/);
    assert.match(shown.stdout, /messages: [\d.]+\/s in, [\d.]+\/s out; \d+ in, \d+ out since the start/);
    assert.match(shown.stdout, /bytes: [\d.]+ \S+\/s in, [\d.]+ \S+\/s out/);
    // Over the span --since asked: messages and bytes with their rates, denials and cut-offs.
    assert.match(shown.stdout, /last \S+( \S+)?: messages ([6-9]|\d\d+) in \([\d.]+\/s\), \d+ out \([\d.]+\/s\); bytes [\d.]+ \S+ in/);
    assert.match(shown.stdout, /last \S+( \S+)?: denials not checked \(security off\); cut off: packet size 0, CONNECT time-out 0, keep-alive 0, slow consumer 0/);
  });

  it('stats --since with what is not a time - usage error (exit 2)', async () => {
    const result = await runCli(['stats', '--since', 'yesterday-ish'], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--since must be like 30s, 5m, 1h or a date, got yesterday-ish/);
  });
});
