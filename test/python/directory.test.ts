/**
 * The on-demand directory (protocol §7.2) of the Python client, against TypeScript peers on a real
 * `relais start`: a Python client connected with `directory="on-demand"` hears only its own
 * presence until something needs the directory (its directory, `peers()`, shows what it heard);
 * its first request then waits for the directory and reaches a TypeScript handler; a Python
 * handler on demand is reached by a TypeScript requester and takes a kill relayed by the router
 * without ever having requested. `python -m relais serve --directory on-demand` starts on a broker
 * that refuses `relais/presence/+`, where the default cannot. With paho 1.6 and 2.x.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CancelledError, connect, type Bus } from '../../src/index.js';
import { PRESENCE_FILTER } from '../../src/protocol/topics.js';
import { startRelais, type RelaisStart } from '../testkit/cli.js';
import { startHookedAedes, type HookedAedes } from '../testkit/hooked-aedes.js';
import { testLogger, uniqueId, within } from '../testkit/index.js';
import { rawCommand } from '../testkit/raw-command.js';
import { isRelaisError, PAHO_VERSIONS, peerEvent, PYTHON, pythonEnvironment, pythonGate, runPython, startPythonPeer, stopPythonPeers } from '../testkit/python.js';

const idsOf = (peers: Array<{ id: string }>) => peers.map((peer) => peer.id).sort();

describe('Python client with directory="on-demand" and relais start', { skip: pythonGate('the cross-language on-demand directory tests').skip, timeout: 300_000 }, () => {
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

  for (const version of PAHO_VERSIONS) {
    describe(`paho ${version}.x`, { skip: pythonGate(`the cross-language on-demand directory tests with paho ${version}.x`, version).skip }, () => {
      it(`python client on demand (paho ${version}) - idle, its directory lists only itself, even as other clients come and go`, async () => {
        // The router's and this TS client's presences are retained: a full directory has them at connect.
        const idle = await startPythonPeer({ id: uniqueId(`py${version}-od-idle`), broker: relais.url, directory: 'on-demand' }, version);
        // A client passing while it idles: its presences would reach a full directory too.
        const passing = await connect({ id: uniqueId('passing'), broker: relais.url, logger: testLogger });
        await passing.close();
        assert.deepEqual(idsOf(await idle.send<Array<{ id: string }>>('peers')), [idle.id], 'only its own presence was delivered to it');
      });

      it(`python requester on demand (paho ${version}) - its first request waits for the directory and reaches a TypeScript handler; then an action nobody serves fails with NoHandlerError`, async () => {
        const action = `od${version}/echo`;
        await ts.handle(action, (payload: unknown, ctx) => ({ echo: payload, by: ts.id, source: ctx.source }));
        const requester = await startPythonPeer({ id: uniqueId(`py${version}-od-requester`), broker: relais.url, directory: 'on-demand' }, version);
        // Its first act: nothing has made it follow the presences before.
        assert.deepEqual(await requester.send('request', { action, payload: { n: 1 }, options: { timeout: 15 } }), { echo: { n: 1 }, by: ts.id, source: requester.id });
        const known = idsOf(await requester.send<Array<{ id: string }>>('peers'));
        assert.ok(known.includes(ts.id), `the directory now holds the TypeScript handler: ${known.join(', ')}`);
        const nobody = requester.start('request', { action: `od${version}/nobody`, payload: {}, options: { timeout: 15 } });
        const reply = await requester.reply(nobody);
        assert.equal(reply.ok, false);
        assert.ok(isRelaisError(reply.error, 'NoHandlerError'), JSON.stringify(reply.error));
        assert.match(reply.error!.message, new RegExp(`no connected client serves od${version}/nobody`));
      });

      it(`python waiter on demand (paho ${version}) - wait_for_handler follows the presences: it returns when a TypeScript handler appears later`, async () => {
        const action = `od${version}/late-${uniqueId('a')}`;
        const waiter = await startPythonPeer({ id: uniqueId(`py${version}-od-waiter`), broker: relais.url, directory: 'on-demand' }, version);
        const waiting = waiter.start('wait_for_handler', { action, options: { timeout: 20 } });
        const late = await connect({ id: uniqueId('late'), broker: relais.url, logger: testLogger });
        try {
          await late.handle(action, () => 'late');
          const reply = await waiter.reply(waiting);
          assert.equal(reply.ok, true, JSON.stringify(reply.error));
          assert.equal(await waiter.send('request', { action, payload: {}, options: { timeout: 15 } }), 'late');
        } finally {
          await late.close();
        }
      });

      it(`python handler on demand (paho ${version}) - a TypeScript requester reaches it, and it still knows no other client`, async () => {
        const action = `od${version}/py-echo`;
        const handler = await startPythonPeer({ id: uniqueId(`py${version}-od-handler`), broker: relais.url, directory: 'on-demand' }, version);
        await handler.send('serve', { action, behaviour: 'echo' });
        await ts.waitForHandler(action, { target: handler.id, timeout: 15_000 });
        const answer = (await ts.request(action, { n: 2 }, { timeout: 15_000 })) as { echo: unknown; by: string; source: string };
        assert.deepEqual([answer.echo, answer.by, answer.source], [{ n: 2 }, handler.id, ts.id]);
        assert.deepEqual(idsOf(await handler.send<Array<{ id: string }>>('peers')), [handler.id], 'serving needed no other presence');
      });

      it(`kill (paho ${version}) - a kill relayed by the router stops a Python handler on demand that never requested`, async () => {
        const action = `od${version}/hang`;
        const handler = await startPythonPeer({ id: uniqueId(`py${version}-od-worker`), broker: relais.url, directory: 'on-demand' }, version);
        await handler.send('serve', { action, behaviour: 'hang' });
        await ts.waitForHandler(action, { target: handler.id, timeout: 15_000 });
        await ts.waitForHandler('relais/requests/kill', { timeout: 15_000 });
        const token = uniqueId('od-kill');
        const pending = ts.request(action, {}, { token, timeout: 60_000 });
        pending.catch(() => {});
        await handler.next(peerEvent('started', token), 'the handler start');
        const result = (await ts.request('relais/requests/kill', { token, reason: 'enough', wait: 20_000 }, { timeout: 30_000 })) as { killed: boolean; outcome: string };
        assert.deepEqual([result.killed, result.outcome], [true, 'cancelled']);
        await handler.next(peerEvent('cancelled', token), 'the Python handler seeing asyncio.CancelledError');
        await assert.rejects(pending, (error: Error) => error instanceof CancelledError && /enough/.test(error.message));
      });
    });
  }
});

describe('python -m relais serve --directory', { skip: pythonGate('python -m relais serve --directory').skip, timeout: 300_000 }, () => {
  let broker: HookedAedes;
  before(async () => {
    // Refused the way Aedes refuses for MQTT 3.1.1: the connection is dropped.
    broker = await startHookedAedes({ refuse: (topic) => topic === PRESENCE_FILTER });
  });
  after(async () => {
    await broker?.close();
  });

  it('serve --directory on-demand - on a broker that refuses relais/presence/+, it serves and answers a raw MQTT command, connected once', async () => {
    const action = `${uniqueId('pyod')}/echo`;
    const id = uniqueId('py-served');
    const server = spawn(PYTHON, ['-m', 'relais', 'serve', action, '--broker', broker.url, '--id', id, '--directory', 'on-demand'], { env: pythonEnvironment(1), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    server.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(server, 'exit');
    try {
      await within(
        new Promise<void>((resolve) => server.stderr!.on('data', () => /serving .* as /.test(stderr) && resolve())),
        20_000,
        'python -m relais serve saying it serves',
      ).catch((error: Error) => assert.fail(`${error.message}; stderr:\n${stderr}`));
      const answer = await rawCommand(broker.url, action, id, { hello: 'on demand' });
      assert.deepEqual([answer.code, answer.payload], [0, { hello: 'on demand' }]);
      assert.equal(broker.connections.get(id), 1, 'connected once: never dropped for a refused subscription');
    } finally {
      server.kill('SIGTERM');
      await within(exited, 15_000, 'python -m relais serve stopping on SIGTERM');
    }
  });

  it('serve without --directory - the same broker drops it for relais/presence/+: it does not start; a bad --directory is refused (exit 2)', async () => {
    const result = await runPython(['-m', 'relais', 'serve', `${uniqueId('pyfull')}/echo`, '--broker', broker.url], 1, 120_000);
    assert.notEqual(result.code, 0, result.stderr);
    assert.match(result.stderr, /relais\/presence\/\+/);
    const bad = await runPython(['-m', 'relais', 'serve', 'x/y', '--broker', broker.url, '--directory', 'lazy']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--directory.*invalid choice: 'lazy'/);
  });
});
