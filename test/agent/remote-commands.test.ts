import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { allow } from '../../src/agent/allow-list.js';
import { parseAgentConfig } from '../../src/agent/config.js';
import { CancelledError, NotAuthorizedError, RemoteError, TimeoutError, type Step } from '../../src/index.js';
import { waitFor } from '../testkit/index.js';

/** The payload of a progress or final step. */
const payloadOf = (step: Step): unknown => (step.kind === 'accepted' ? undefined : step.payload);
import { ended, endsWithin, startAgentKit, tempDir, type AgentKit } from './agent-kit.js';

const SH = { name: 'sh', program: '/bin/sh', args: ['-c', { pattern: '.*' }], moreArgs: { pattern: '.*', max: 4 } };
const ECHO = { name: 'echo', program: '/bin/echo', args: [{ pattern: '[a-z]+' }] };

type Output = { output?: Array<{ stream: string; line: string }>; truncated?: true; marker?: string; index?: number };
const linesOf = (steps: Step[]) => steps.flatMap((step) => (step.kind === 'progress' ? ((step.payload as Output).output ?? []) : []));

describe('agent remote commands', { timeout: 60_000 }, () => {
  let env: AgentKit;
  let dir: string;
  const run = (command: string[] | string, options: { timeout?: number; signal?: AbortSignal } = {}) =>
    env.caller.call('system/command/run', { command, ...(options.timeout && { timeout: options.timeout }) }, { target: env.agent.bus.id, timeout: 20_000, ...(options.signal && { signal: options.signal }) });
  /** Waits for the agent's log line saying the command of `token` ended. */
  const commandEnded = (token: string) => waitFor(() => env.logs.find((line) => line.msg === 'command ended' && line.token === token), env.logEvents, 'line', 10_000);

  before(async () => {
    dir = tempDir('command');
    env = await startAgentKit({ services: { command: { ruleSet: 'test-rules', killGrace: 0.3, maxOutputBytes: 1024, tailBytes: 64, rules: [SH, ECHO] } } });
  });

  after(async () => {
    await env?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('allow-list - exact program, each argument a literal or an anchored pattern, a shell only where a rule says so', () => {
    const { rules } = parseAgentConfig({ services: { command: { ruleSet: 'r', rules: [ECHO, { name: 'df', shell: true, command: 'df -h | head -3' }] } } }).services.command!;
    assert.equal(allow(['/bin/echo', 'hello'], rules, 'r').rule, 'echo');
    for (const refused of [['/bin/echo', 'Hello'], ['/bin/echo', 'hello;rm'], ['/bin/echo', 'a', 'b'], ['/bin/echo'], ['echo', 'hello'], ['/usr/bin/echo', 'hello']]) {
      assert.throws(() => allow(refused, rules, 'r'), NotAuthorizedError, JSON.stringify(refused));
    }
    assert.deepEqual(allow('df -h | head -3', rules, 'r'), { rule: 'df', program: '/bin/sh', args: ['-c', 'df -h | head -3'], shell: true });
    assert.throws(() => allow('df -h | head -3; reboot', rules, 'r'), /not allowed by the rule set r/);
  });

  it('a command no rule allows is refused with code 4 and a log line naming the rule set', async () => {
    await assert.rejects(env.caller.request('system/command/run', { command: ['/bin/ls', '/'] }, { target: env.agent.bus.id }), (error: NotAuthorizedError) => {
      assert.ok(error instanceof NotAuthorizedError);
      assert.equal(error.responseCode, 4);
      assert.match(error.message, /not allowed by the rule set test-rules/);
      return true;
    });
    await assert.rejects(env.caller.request('system/command/run', { command: 'ls /' }, { target: env.agent.bus.id }), NotAuthorizedError);
    const line = env.logs.find((record) => record.ruleSet === 'test-rules' && /command refused/.test(String(record.msg)));
    assert.ok(line, 'no log line names the rule set');
    assert.equal(line.command, '"/bin/ls" "/"');
  });

  it('output arrives as progress while the command runs, in order, with the stream named; the final has the exit code', async () => {
    const fifo = path.join(dir, 'go');
    execFileSync('mkfifo', [fifo]);
    const steps: Step[] = [];
    let released = false;
    for await (const step of run(['/bin/sh', '-c', 'echo first; echo oops >&2; read line < "$1"; echo "second $line"; exit 3', 'sh', fifo])) {
      steps.push(step);
      // The command cannot end before this write: it waits for the line.
      if (!released && linesOf(steps).some((line) => line.line === 'first')) {
        released = true;
        fs.writeFileSync(fifo, 'go\n');
      }
    }
    assert.ok(released, 'the first line never came while the command ran');
    assert.deepEqual(linesOf(steps).filter((line) => line.stream === 'stdout'), [{ stream: 'stdout', line: 'first' }, { stream: 'stdout', line: 'second go' }]);
    assert.deepEqual(linesOf(steps).filter((line) => line.stream === 'stderr'), [{ stream: 'stderr', line: 'oops' }]);
    const final = steps.at(-1)!;
    assert.equal(final.kind, 'final');
    const result = final.payload as { exitCode: number; signal: null; durationMs: number; tail: unknown[]; truncated: boolean; rule: string };
    assert.equal(result.exitCode, 3);
    assert.equal(result.signal, null);
    assert.equal(result.rule, 'sh');
    assert.equal(result.truncated, false);
    assert.ok(result.durationMs >= 0);
    assert.deepEqual(result.tail.at(-1), { stream: 'stdout', line: 'second go' });
  });

  it("the caller's abort kills the command's whole process group, grandchildren too", async () => {
    const controller = new AbortController();
    const steps = run(['/bin/sh', '-c', 'sleep 1000 & echo $!; (sleep 1001 & echo $!; wait) & wait'], { signal: controller.signal });
    const pids: number[] = [];
    let token = '';
    await assert.rejects(
      (async () => {
        for await (const step of steps) {
          token = step.token;
          pids.push(...linesOf([step]).map((line) => Number(line.line)));
          if (pids.length === 2) controller.abort();
        }
      })(),
      CancelledError,
    );
    assert.equal(pids.length, 2);
    const ended_ = await commandEnded(token);
    assert.equal(ended_.killed, 'cancelled');
    for (const pid of pids) assert.ok(await endsWithin(pid), `process ${pid} still runs`);
  });

  it('a time-out kills the group, SIGKILL after the grace for what ignores SIGTERM, and the final says so (code 6)', async () => {
    const pids: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const step of run(['/bin/sh', '-c', "trap '' TERM; sleep 1000 & echo $!; wait"], { timeout: 0.5 })) pids.push(...linesOf([step]).map((line) => Number(line.line)));
      })(),
      (error: TimeoutError) => {
        assert.ok(error instanceof TimeoutError);
        assert.match(error.message, /timed out after 0\.5 s: its process group was killed \(SIGTERM, SIGKILL\)/);
        const details = (error.cause as RemoteError).details as { killed: { reason: string; signals: string[] }; signal: string };
        assert.deepEqual(details.killed, { reason: 'timeout', signals: ['SIGTERM', 'SIGKILL'] });
        assert.equal(details.signal, 'SIGKILL');
        return true;
      },
    );
    assert.equal(pids.length, 1);
    assert.ok(await endsWithin(pids[0]!), `process ${pids[0]} still runs`);
  });

  it('output beyond the configured size is cut with a marker; the tail still shows the end', async () => {
    const steps: Step[] = [];
    for await (const step of run(['/bin/sh', '-c', 'i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done'])) steps.push(step);
    const forwarded = linesOf(steps);
    assert.ok(forwarded.length > 50 && forwarded.length < 300, `${forwarded.length} lines forwarded`);
    assert.ok(forwarded.reduce((bytes, line) => bytes + line.line.length + 1, 0) <= 1024);
    const markers = steps.filter((step) => step.kind === 'progress' && (step.payload as Output).truncated);
    assert.equal(markers.length, 1);
    assert.match((payloadOf(markers[0]!) as Output).marker!, /output cut after 1024 bytes/);
    const result = payloadOf(steps.at(-1)!) as { truncated: boolean; outputBytes: number; tail: Array<{ line: string }>; exitCode: number };
    assert.equal(result.truncated, true);
    assert.equal(result.exitCode, 0);
    assert.equal(result.outputBytes, Array.from({ length: 300 }, (_, i) => `line-${i}\n`).join('').length);
    assert.equal(result.tail.at(-1)!.line, 'line-299');
    assert.ok(result.tail.reduce((chars, line) => chars + line.line.length, 0) <= 64);
  });

  it('batch - runs in order, stops at the first failure unless continue_on_error', async () => {
    const target = { target: env.agent.bus.id };
    const stopped = (await env.caller.request('system/command/batch', [{ command: ['/bin/sh', '-c', 'exit 3'] }, { command: ['/bin/echo', 'after'] }], target)) as { results: Array<{ exitCode: number }>; completed: boolean; stoppedAt: number };
    assert.deepEqual({ codes: stopped.results.map((result) => result.exitCode), completed: stopped.completed, stoppedAt: stopped.stoppedAt }, { codes: [3], completed: false, stoppedAt: 0 });
    const steps: Step[] = [];
    for await (const step of env.caller.call('system/command/batch', { commands: [{ command: ['/bin/sh', '-c', 'exit 3'], continue_on_error: true }, { command: ['/bin/echo', 'after'] }] }, target)) steps.push(step);
    const all = payloadOf(steps.at(-1)!) as { results: Array<{ exitCode: number }>; completed: boolean };
    assert.deepEqual({ codes: all.results.map((result) => result.exitCode), completed: all.completed }, { codes: [3, 0], completed: true });
    assert.deepEqual(steps.filter((step) => step.kind === 'progress').map((step) => step.payload), [{ index: 1, output: [{ stream: 'stdout', line: 'after' }] }]);
  });

  it('batch - one command no rule allows refuses the whole batch: nothing runs', async () => {
    const marker = path.join(dir, 'ran');
    await assert.rejects(
      env.caller.request('system/command/batch', [{ command: ['/bin/sh', '-c', 'echo ran > "$1"', 'sh', marker] }, { command: ['/bin/rm', '-rf', dir] }], { target: env.agent.bus.id }),
      NotAuthorizedError,
    );
    assert.ok(!fs.existsSync(marker), 'the first command ran');
  });
});
