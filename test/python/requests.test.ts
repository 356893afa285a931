/**
 * Commands across languages against a real `relais start` (embedded broker, router): a Python
 * handler (the `relais` package, in its own process) called by the TypeScript library and by
 * the CLI, a TypeScript handler called from Python; answers, progress, errors with their codes
 * (protocol §5.1), cancel both ways (§4.4), kill through the router (§11.5), deadlines (§4.5)
 * and no handler (§7.3). The core scenarios run with paho 1.6 and paho 2.x.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { CancelledError, connect, NoHandlerError, RemoteError, TimeoutError, type Bus } from '../../src/index.js';
import { runCli } from '../testkit/cli.js';
import { testLogger, uniqueId, waitFor, within } from '../testkit/index.js';
import { PAHO_VERSIONS, peerEvent, PYTHON, pythonEnvironment, pythonGate, runPython, startPythonPeer, stopPythonPeers, type PeerError, type PeerLine, type PythonPeer } from '../testkit/python.js';
import { startRelais, type RelaisStart } from '../testkit/cli.js';

/** True when the peer's error is the `relais` package's class `name` (or derives from it). */
function isRelais(error: PeerError | undefined, name: string): boolean {
  return (error?.types ?? []).some((type) => type.startsWith('relais.') && type.endsWith(`.${name}`));
}


describe('Python client with relais start', { skip: pythonGate('the cross-language request tests').skip, timeout: 300_000 }, () => {
  let relais: RelaisStart;
  let ts: Bus;
  before(async () => {
    relais = await startRelais(['--no-web']);
    ts = await connect({ id: uniqueId('ts'), broker: relais.url, logger: testLogger });
  });
  after(async () => {
    await stopPythonPeers();
    await ts?.close();
    await relais?.close();
  });

  /** A Python peer serving `action` with `behaviour`, seen by the TS client's directory. */
  async function pythonHandler(version: 1 | 2, action: string, behaviour: string, args: Record<string, unknown> = {}): Promise<PythonPeer> {
    const peer = await startPythonPeer({ id: uniqueId(`py${version}-handler`), broker: relais.url }, version);
    await peer.send('serve', { action, behaviour, args });
    await ts.waitForHandler(action, { target: peer.id, timeout: 15_000 });
    return peer;
  }

  for (const version of PAHO_VERSIONS) {
    describe(`paho ${version}.x`, { skip: pythonGate(`the cross-language request tests with paho ${version}.x`, version).skip }, () => {
      it(`python handler (paho ${version}) - answers the TypeScript library, untargeted and targeted; it sees who asks, the token and the deadline`, async () => {
        const action = `py${version}/echo`;
        const handler = await pythonHandler(version, action, 'echo');
        const sentAt = Date.now();
        const answer = (await ts.request(action, { n: 1, text: 'é ✓' }, { token: `echo-${version}-1`, timeout: 10_000 })) as Record<string, unknown>;
        assert.deepEqual(answer.echo, { n: 1, text: 'é ✓' });
        assert.equal(answer.source, ts.id);
        assert.equal(answer.token, `echo-${version}-1`);
        assert.equal(answer.action, action);
        assert.equal(answer.by, handler.id);
        assert.equal(answer.priority, 'normal');
        // ctx.deadline is epoch seconds (the wire's epoch ms / 1000): the requester's now + its time-out.
        assert.equal(typeof answer.deadline, 'number');
        const deadlineMs = (answer.deadline as number) * 1000;
        assert.ok(deadlineMs >= sentAt + 10_000 - 50 && deadlineMs <= Date.now() + 10_000 + 50, `deadline ${deadlineMs} vs sent at ${sentAt} + 10 s`);
        const targeted = (await ts.request(action, 'plain string', { target: handler.id, timeout: 10_000 })) as Record<string, unknown>;
        assert.equal(targeted.echo, 'plain string');
        assert.equal(targeted.by, handler.id);
        // A plain `def` handler is served too.
        await handler.send('serve', { action: `${action}-sync`, behaviour: 'echo-sync' });
        await ts.waitForHandler(`${action}-sync`, { target: handler.id, timeout: 15_000 });
        assert.deepEqual(((await ts.request(`${action}-sync`, [1, 2], { timeout: 10_000 })) as { echo: unknown }).echo, [1, 2]);
      });

      it(`python handler (paho ${version}) - progress steps reach a TypeScript call in order, then the final`, async () => {
        const action = `py${version}/install`;
        await pythonHandler(version, action, 'progress', { steps: [[0.2, { step: 'a' }], [0.5, { step: 'b' }], [0.8, null]], result: { installed: 'weather' } });
        const transcript: string[] = [];
        for await (const step of ts.call(action, { name: 'weather' }, { timeout: 10_000 })) {
          if (step.kind === 'accepted') continue; // an acknowledgement may or may not precede (protocol §4.7)
          transcript.push(step.kind === 'progress' ? `progress ${step.progress} ${JSON.stringify(step.payload)}` : `${step.kind} ${step.code} ${JSON.stringify(step.payload)}`);
        }
        assert.deepEqual(transcript, ['progress 0.2 {"step":"a"}', 'progress 0.5 {"step":"b"}', 'progress 0.8 null', 'final 0 {"installed":"weather"}']);
      });

      it(`python requester (paho ${version}) - a TypeScript handler answers request and call, progress in order`, async () => {
        const action = `ts${version}/install`;
        await ts.handle(action, async (payload: { name: string }, ctx) => {
          for (const fraction of [0.25, 0.75]) ctx.progress(fraction, { step: fraction });
          return { installed: payload.name, by: 'ts', source: ctx.source };
        });
        const requester = await startPythonPeer({ id: uniqueId(`py${version}-requester`), broker: relais.url }, version);
        await requester.send('wait_for_handler', { action, options: { timeout: 15 } });
        assert.deepEqual(await requester.send('request', { action, payload: { name: 'w' }, options: { timeout: 10 } }), { installed: 'w', by: 'ts', source: requester.id });
        const steps = await requester.send<Array<{ kind: string; progress?: number | null; payload: unknown; code?: number | null; source?: string }>>('call', { action, payload: { name: 'v' }, options: { timeout: 10 } });
        const seen = steps.filter((step) => step.kind !== 'accepted').map((step) => (step.kind === 'progress' ? `progress ${step.progress} ${JSON.stringify(step.payload)}` : `${step.kind} ${step.code} ${JSON.stringify(step.payload)}`));
        assert.deepEqual(seen, ['progress 0.25 {"step":0.25}', 'progress 0.75 {"step":0.75}', `final 0 ${JSON.stringify({ installed: 'v', by: 'ts', source: requester.id })}`]);
        assert.ok(steps.every((step) => step.source === ts.id), `every step from the handler ${ts.id}: ${JSON.stringify(steps)}`);
      });

      it(`cancel (paho ${version}) - a TypeScript caller's abort cancels the Python handler (asyncio.CancelledError); a Python requester's cancelled task aborts the TypeScript handler`, async () => {
        const action = `py${version}/hang`;
        const handler = await pythonHandler(version, action, 'hang');
        const controller = new AbortController();
        const token = uniqueId('abort');
        const pending = ts.request(action, {}, { token, signal: controller.signal, timeout: 30_000 });
        await handler.next(peerEvent('started', token), 'the handler start');
        controller.abort();
        await assert.rejects(pending, CancelledError);
        await handler.next(peerEvent('cancelled', token), 'the Python handler seeing asyncio.CancelledError');

        // The other way: the Python application cancels the task awaiting its request.
        const tsAction = `ts${version}/hang`;
        const aborted = new EventEmitter();
        await ts.handle(tsAction, (_payload, ctx) => {
          aborted.emit('started', ctx.token);
          ctx.signal.addEventListener('abort', () => aborted.emit('aborted', ctx.token, ctx.signal.reason));
          return new Promise(() => {});
        });
        const requester = await startPythonPeer({ id: uniqueId(`py${version}-canceller`), broker: relais.url }, version);
        await requester.send('wait_for_handler', { action: tsAction, options: { timeout: 15 } });
        const started = within(once(aborted, 'started'), 15_000, 'the TypeScript handler start');
        const request = requester.start('request', { action: tsAction, payload: {}, options: { timeout: 30 } });
        const [tsToken] = (await started) as [string];
        const abortedThere = within(once(aborted, 'aborted'), 15_000, 'the TypeScript handler\'s abort');
        await requester.send('cancel', { target: request });
        const reply = await requester.reply(request);
        assert.equal(reply.ok, false);
        assert.ok(reply.error!.types.includes('asyncio.exceptions.CancelledError'), `the awaiting task re-raises asyncio's CancelledError: ${JSON.stringify(reply.error)}`);
        const [abortedToken, reason] = (await abortedThere) as [string, Error];
        assert.equal(abortedToken, tsToken);
        assert.ok(reason instanceof CancelledError, String(reason));
      });

      it(`errors (paho ${version}) - a Python handler's error keeps its code and details for TypeScript; a TypeScript handler's reaches Python typed`, async () => {
        const action = `py${version}/fail`;
        const handler = await pythonHandler(version, action, 'fail', { message: 'disk sda is full', code: 104, details: { disk: 'sda' } });
        await assert.rejects(ts.request(action, {}, { timeout: 10_000 }), (error: unknown) => {
          assert.ok(error instanceof RemoteError, String(error));
          assert.equal(error.responseCode, 104);
          assert.equal(error.message, 'disk sda is full');
          assert.deepEqual(error.details, { disk: 'sda' });
          assert.equal(error.handler, handler.id);
          return true;
        });
        const tsAction = `ts${version}/fail`;
        await ts.handle(tsAction, () => {
          throw Object.assign(new Error('no such disk'), { responseCode: 101, details: { disk: 'sdz' } });
        });
        const requester = await startPythonPeer({ id: uniqueId(`py${version}-errors`), broker: relais.url }, version);
        await requester.send('wait_for_handler', { action: tsAction, options: { timeout: 15 } });
        const remote = await requester.send('request', { action: tsAction, payload: {}, options: { timeout: 10 } }).then(
          () => assert.fail('resolved'),
          (failure: { error: PeerError }) => failure.error,
        );
        assert.ok(isRelais(remote, 'RemoteError'), JSON.stringify(remote));
        assert.equal(remote.response_code, 101);
        assert.equal(remote.message, 'no such disk');
        assert.equal(remote.remote_name, 'Error');
        assert.deepEqual(remote.details, { disk: 'sdz' });
        assert.equal(remote.handler, ts.id);
        // Nobody serves it: NoHandlerError at once, nothing sent (protocol §7.3).
        const started = Date.now();
        const none = await requester.send('request', { action: `nobody${version}/serves`, payload: {}, options: { timeout: 20 } }).then(
          () => assert.fail('resolved'),
          (failure: { error: PeerError }) => failure.error,
        );
        assert.ok(isRelais(none, 'NoHandlerError'), JSON.stringify(none));
        assert.equal(none.response_code, 3);
        assert.ok(Date.now() - started < 15_000, 'not at the end of its time-out');
      });
    });
  }

  it('CLI - relais call runs a Python handler: its progress lines then its result, exit 0; its error, exit 1', async () => {
    const handler = await pythonHandler(1, 'py/cli-install', 'progress', { steps: [[0.5, { step: 'half' }]], result: { installed: 'x' } });
    const result = await runCli(['call', 'py/cli-install', '{"name":"x"}', '--broker', relais.url, '--json', '--timeout', '20']);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; progress?: number; payload?: unknown; source?: string });
    assert.deepEqual(lines.filter((line) => line.kind !== 'accepted').map((line) => [line.kind, line.progress ?? null, line.payload]), [['progress', 0.5, { step: 'half' }], ['final', null, { installed: 'x' }]]);
    assert.ok(lines.every((line) => line.source === handler.id), result.stdout);
    await handler.send('serve', { action: 'py/cli-fail', behaviour: 'fail', args: { message: 'sensor offline', code: 120 } });
    await ts.waitForHandler('py/cli-fail', { target: handler.id, timeout: 15_000 });
    const failed = await runCli(['call', 'py/cli-fail', '{}', '--broker', relais.url, '--json', '--timeout', '20']);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    const last = JSON.parse(failed.stdout.trim().split('\n').at(-1)!) as { kind: string; code: number; error: { message: string } };
    assert.equal(last.kind, 'error');
    assert.equal(last.code, 120);
    assert.equal(last.error.message, 'sensor offline');
  });

  it('python -m relais - call reaches a TypeScript handler (a JSON line per step, exit 0) and reports an error (exit 1, the code on stderr); serve answers relais call', async () => {
    await ts.handle('ts/cli-echo', (payload, ctx) => {
      ctx.progress(0.5);
      return { echo: payload, source: ctx.source };
    });
    await ts.handle('ts/cli-fail', () => {
      throw Object.assign(new Error('printer on fire'), { responseCode: 130 });
    });
    const callerId = uniqueId('py-cli');
    const called = await runPython(['-m', 'relais', 'call', 'ts/cli-echo', '{"a":1}', '--broker', relais.url, '--id', callerId, '--timeout', '20']);
    assert.equal(called.code, 0, called.stdout + called.stderr);
    const steps = called.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; payload?: unknown; progress?: number });
    assert.deepEqual(steps.filter((step) => step.kind !== 'accepted').map((step) => [step.kind, step.progress ?? null]), [['progress', 0.5], ['final', null]]);
    assert.deepEqual(steps.at(-1)!.payload, { echo: { a: 1 }, source: callerId });
    const failed = await runPython(['-m', 'relais', 'call', 'ts/cli-fail', '--broker', relais.url, '--timeout', '20']);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.match(failed.stderr, /130/);
    assert.match(failed.stderr, /printer on fire/);

    const serverId = uniqueId('py-serve');
    const server = spawn(PYTHON, ['-m', 'relais', 'serve', 'py/cli-served', '--reply', '{"served":true}', '--broker', relais.url, '--id', serverId], { env: pythonEnvironment(1), stdio: 'ignore' });
    try {
      await ts.waitForHandler('py/cli-served', { target: serverId, timeout: 15_000 });
      const result = await runCli(['call', 'py/cli-served', '{}', '--broker', relais.url, '--json', '--timeout', '20']);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual((JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { payload: unknown }).payload, { served: true });
    } finally {
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      await within(exited, 15_000, 'python -m relais serve stopping on SIGTERM');
    }
  });

  it('kill - relais kill stops a Python handler through the router; the Python requester gets CancelledError (code 5)', async () => {
    const handler = await pythonHandler(1, 'py/kill-me', 'hang');
    const requester = await startPythonPeer({ id: uniqueId('py-killed-requester'), broker: relais.url });
    await requester.send('wait_for_handler', { action: 'py/kill-me', options: { timeout: 15 } });
    const token = uniqueId('kill');
    const request = requester.start('request', { action: 'py/kill-me', payload: {}, options: { token, timeout: 60 } });
    await handler.next(peerEvent('started', token), 'the handler start');
    const killed = await runCli(['kill', token, '--broker', relais.url, '--json', '--reason', 'changed my mind', '--wait', '20']);
    assert.equal(killed.code, 0, killed.stdout + killed.stderr);
    const outcome = JSON.parse(killed.stdout.trim().split('\n').at(-1)!) as { killed: boolean; outcome: string; handler: string; requester: string };
    assert.deepEqual([outcome.killed, outcome.outcome, outcome.handler, outcome.requester], [true, 'cancelled', handler.id, requester.id]);
    await handler.next(peerEvent('cancelled', token), 'the Python handler seeing asyncio.CancelledError');
    const reply = await requester.reply(request);
    assert.equal(reply.ok, false);
    assert.ok(isRelais(reply.error, 'CancelledError'), JSON.stringify(reply.error));
    assert.equal(reply.error!.response_code, 5);
    assert.match(reply.error!.message, /changed my mind/);
  });

  it('deadline - a Python handler is stopped at its deadline with no requester left to cancel (code 6), and refuses a command that arrives after it, without running it', async () => {
    const handler = await pythonHandler(1, 'py/slow', 'hang');
    const raw = await mqtt.connectAsync(relais.url, { clientId: uniqueId('raw'), protocolVersion: 4 });
    try {
      const source = uniqueId('gone');
      const responses = new EventEmitter();
      raw.on('message', (_topic, payload) => {
        const response = JSON.parse(payload.toString()) as { token: string; final?: boolean };
        if (response.final !== false) responses.emit(response.token, response);
      });
      await raw.subscribeAsync(`py/slow/response/${source}`, { qos: 1 });
      const deadline = Date.now() + 1500;
      const expiring = within(once(responses, 'expiring'), 15_000, 'the answer at the deadline');
      await raw.publishAsync(`py/slow/request/${handler.id}`, JSON.stringify({ type: 'command', source, destination: handler.id, token: 'expiring', payload: {}, deadline }), { qos: 1 });
      const cancelled = await handler.next(peerEvent('cancelled', 'expiring'), 'the Python handler seeing asyncio.CancelledError at its deadline');
      assert.ok((cancelled.at as number) * 1000 >= deadline - 20, `cancelled at ${(cancelled.at as number) * 1000}, before the deadline ${deadline}`);
      assert.equal((cancelled.deadline as number) * 1000, deadline);
      const [answer] = (await expiring) as [{ code: number; error: { name: string } }];
      assert.equal(answer.code, 6);
      assert.equal(answer.error.name, 'TimeoutError');

      const late = within(once(responses, 'late'), 15_000, 'the refusal of the late command');
      await raw.publishAsync(`py/slow/request/${handler.id}`, JSON.stringify({ type: 'command', source, destination: handler.id, token: 'late', payload: {}, deadline: Date.now() - 1000 }), { qos: 1 });
      const [refusal] = (await late) as [{ code: number; error: { name: string; message: string } }];
      assert.equal(refusal.code, 6);
      assert.match(refusal.error.message, /deadline/);
      // A command sent after it runs: by the time its run shows, the late one would have shown.
      await handler.send('serve', { action: 'py/marker', behaviour: 'echo' });
      await ts.waitForHandler('py/marker', { target: handler.id, timeout: 15_000 });
      await ts.request('py/marker', {}, { token: 'marker-after-late', timeout: 10_000 });
      await handler.next(peerEvent('run', 'marker-after-late'), 'the marker run');
      assert.equal(handler.seen(peerEvent('run', 'late')).length, 0, 'the late command did not run');
    } finally {
      await raw.endAsync();
    }
  });

  it('deadline - a Python requester gets TimeoutError (also a builtins.TimeoutError) when the TypeScript handler does not answer in time, and the handler is aborted', async () => {
    const aborted = new EventEmitter();
    await ts.handle('ts/silent', (_payload, ctx) => {
      ctx.signal.addEventListener('abort', () => aborted.emit('aborted', ctx.signal.reason));
      return new Promise(() => {});
    });
    const requester = await startPythonPeer({ id: uniqueId('py-impatient'), broker: relais.url });
    await requester.send('wait_for_handler', { action: 'ts/silent', options: { timeout: 15 } });
    const abortedThere = within(once(aborted, 'aborted'), 15_000, 'the TypeScript handler\'s abort');
    const started = Date.now();
    const reply = await requester.reply(requester.start('request', { action: 'ts/silent', payload: {}, options: { timeout: 1 } }));
    assert.equal(reply.ok, false);
    assert.ok(isRelais(reply.error, 'TimeoutError'), JSON.stringify(reply.error));
    assert.ok(reply.error!.types.includes('builtins.TimeoutError'), 'except TimeoutError catches it');
    assert.ok(Date.now() - started >= 900, 'not before its time-out');
    const [reason] = (await abortedThere) as [Error];
    assert.ok(reason instanceof CancelledError || reason instanceof TimeoutError, String(reason));
  });

  it('no handler - once the Python handler closes, the TypeScript library fails at once with NoHandlerError', async () => {
    const handler = await pythonHandler(1, 'py/leaving', 'echo');
    assert.equal(((await ts.request('py/leaving', 1, { timeout: 10_000 })) as { echo: number }).echo, 1);
    const gone = waitFor(() => (ts.directory.get(handler.id)?.status === 'stopped' ? true : undefined), ts.directory, 'change', 15_000);
    await handler.send('close');
    await gone;
    await assert.rejects(ts.request('py/leaving', 2, { timeout: 10_000 }), NoHandlerError);
  });
});
