/**
 * What the protocol requires of a library beyond one answer, across languages: the
 * acknowledgement and the retry elsewhere when a Python handler is frozen (SIGSTOP, protocol
 * §4.6, §4.7), duplicates (§4.8), and two clients with one id (§7.5), with paho 1.6 and 2.x.
 * On the embedded Aedes broker, in process; every client else in its own process.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { NoHandlerError, type Bus, type PresenceInfo } from '../../src/index.js';
import { setup, uniqueId, waitFor, within, type Kit } from '../testkit/index.js';
import { PAHO_VERSIONS, peerEvent, pythonGate, startPythonPeer, stopPythonPeers, type PahoVersion, type PeerError, type PeerLine, type PythonPeer } from '../testkit/python.js';

/**
 * Asks the client holding `id` for `action` three times, targeted, and gives the answers, once
 * the caller's directory shows the winner's `instance` alive (the loser's presence may linger).
 * The winner may be knocked off once by the loser's last reconnection (protocol §7.5: the
 * loser learns it lost only once back), its will saying `dead` for a moment: a NoHandlerError
 * given while the directory says so is waited out until it shows the winner alive again, twice
 * at most. A loser that keeps fighting fails it.
 */
async function askHolder(caller: Bus, action: string, id: string, instance: string): Promise<unknown[]> {
  const answers: unknown[] = [];
  let knockedOff = 0;
  while (answers.length < 3) {
    await waitFor(() => {
      const presence = caller.directory.get(id);
      return presence?.status === 'alive' && presence.instance === instance && presence.actions.includes(action) ? true : undefined;
    }, caller.directory, 'change', 15_000);
    try {
      answers.push(await caller.request(action, {}, { target: id, timeout: 15_000 }));
    } catch (error) {
      knockedOff += 1;
      if (!(error instanceof NoHandlerError) || knockedOff > 2) throw error;
    }
  }
  return answers;
}


describe('Python client: acknowledgements, duplicates, one id', { skip: pythonGate('the cross-language acknowledgement tests').skip, timeout: 300_000 }, () => {
  let kit: Kit;
  before(async () => {
    kit = await setup('aedes');
  });
  after(async () => {
    await stopPythonPeers();
    await kit?.cleanup();
  });

  async function pythonHandler(version: PahoVersion, action: string, behaviour: string, options: { id?: string; args?: Record<string, unknown> } = {}): Promise<PythonPeer> {
    const peer = await startPythonPeer({ id: options.id ?? uniqueId(`py${version}-handler`), broker: kit.broker.url }, version);
    await peer.send('serve', { action, behaviour, args: options.args ?? {} });
    return peer;
  }

  for (const version of PAHO_VERSIONS) {
    describe(`paho ${version}.x`, { skip: pythonGate(`the cross-language acknowledgement tests with paho ${version}.x`, version).skip }, () => {
      it(`ack (paho ${version}) - requests to a SIGSTOPped Python handler are answered by the other one, for TypeScript and Python requesters; woken, it runs none of them`, async () => {
        const action = `py${version}/work`;
        const frozen = await pythonHandler(version, action, 'echo');
        const awake = await pythonHandler(version, action, 'echo');
        // A short acknowledgement wait keeps the test short; the rule is the same at 2 s.
        const requester = await kit.connect(uniqueId('ts-requester'), { ackTimeout: 1000 });
        await requester.waitForHandler(action, { target: frozen.id, timeout: 15_000 });
        await requester.waitForHandler(action, { target: awake.id, timeout: 15_000 });
        const pyRequester = await startPythonPeer({ id: uniqueId(`py${version}-requester`), broker: kit.broker.url, ack_timeout: 1 }, version);
        await pyRequester.send('wait_for_handler', { action, options: { target: frozen.id, timeout: 15 } });
        await pyRequester.send('wait_for_handler', { action, options: { target: awake.id, timeout: 15 } });

        frozen.signal('SIGSTOP');
        try {
          const tsTokens = [0, 1, 2, 3, 4, 5].map((n) => `ts-${version}-${n}`);
          const pyTokens = [0, 1, 2, 3, 4, 5].map((n) => `py-${version}-${n}`);
          const pyReplies = pyTokens.map((token) => pyRequester.start('request', { action, payload: { token }, options: { token, timeout: 20 } }));
          const tsAnswers = await Promise.all(tsTokens.map((token) => requester.request(action, { token }, { token, timeout: 20_000 }) as Promise<{ by: string }>));
          assert.deepEqual(tsAnswers.map((answer) => answer.by), tsTokens.map(() => awake.id), 'the TypeScript requests were answered by the awake handler');
          for (const reply of pyReplies) {
            const answer = await pyRequester.reply(reply);
            assert.equal(answer.ok, true, JSON.stringify(answer.error));
            assert.equal((answer.result as { by: string }).by, awake.id, 'the Python requests were answered by the awake handler');
          }
          for (const token of [...tsTokens, ...pyTokens]) assert.equal(awake.seen(peerEvent('run', token)).length, 1, `${token} ran once on the awake handler`);
        } finally {
          frozen.signal('SIGCONT');
        }
        // Woken, it reads the commands it was sent while frozen: their acceptBy has passed, it
        // runs none of them (protocol §4.7). A command sent after them runs: by the time its
        // run shows, theirs would have shown.
        await requester.request(action, {}, { target: frozen.id, token: `after-${version}`, timeout: 20_000 });
        await frozen.next(peerEvent('run', `after-${version}`), 'the run of the command sent after waking');
        const ranThere = frozen.seen((line) => line.event === 'run' && line.token !== `after-${version}`);
        assert.deepEqual(ranThere.map((line) => line.token), [], 'the frozen handler ran none of the moved requests');
      });

      it(`duplicates (paho ${version}) - a Python handler runs a (source, token) once: a copy while it runs is acknowledged, one after it gets the same final; a library requester's token sent again is answered from memory`, async () => {
        const action = `py${version}/dup`;
        const handler = await pythonHandler(version, action, 'gate', { args: { name: 'dup' } });
        const raw = await mqtt.connectAsync(kit.broker.url, { clientId: uniqueId('raw'), protocolVersion: 4 });
        try {
          const source = uniqueId('raw-requester');
          const responses: Array<{ text: string; accepted?: boolean; final?: boolean; code?: number }> = [];
          const arrived = new EventEmitter();
          raw.on('message', (_topic, payload) => {
            responses.push({ text: payload.toString(), ...(JSON.parse(payload.toString()) as object) });
            arrived.emit('response');
          });
          await raw.subscribeAsync(`${action}/response/${source}`, { qos: 1 });
          const command = JSON.stringify({ type: 'command', source, destination: handler.id, token: 'dup-1', payload: { n: 1 }, deadline: Date.now() + 30_000, acceptBy: Date.now() + 20_000 });
          await raw.publishAsync(`${action}/request/${handler.id}`, command, { qos: 0 });
          await handler.next((line) => line.event === 'started' && line.token === 'dup-1', 'the handler start');
          await raw.publishAsync(`${action}/request/${handler.id}`, command, { qos: 0 });
          const acks = () => responses.filter((response) => response.accepted === true && response.final === false);
          await waitFor(() => (acks().length >= 2 ? true : undefined), arrived, 'response', 15_000);
          assert.equal(responses.filter((response) => response.final !== false).length, 0, 'no final while it runs');
          await handler.send('open_gate', { name: 'dup' });
          const finals = () => responses.filter((response) => response.final !== false);
          const [first] = await waitFor(() => (finals().length >= 1 ? finals() : undefined), arrived, 'response', 15_000);
          assert.equal(first!.code, 0);
          assert.deepEqual((JSON.parse(first!.text) as { payload: { echo: unknown } }).payload.echo, { n: 1 });
          await raw.publishAsync(`${action}/request/${handler.id}`, command, { qos: 0 });
          const [, again] = await waitFor(() => (finals().length >= 2 ? finals() : undefined), arrived, 'response', 15_000);
          assert.equal(again!.text, first!.text, 'the very same final response, byte for byte');
          assert.equal(handler.seen(peerEvent('run', 'dup-1')).length, 1, 'run once');
        } finally {
          await raw.endAsync();
        }
        // Through the TypeScript library: the second request with the token gets the first's answer.
        const requester = await kit.connect(uniqueId('ts-dup'));
        await requester.waitForHandler(action, { target: handler.id, timeout: 15_000 });
        const answer = (await requester.request(action, { n: 2 }, { token: 'dup-2', timeout: 15_000 })) as { echo: unknown };
        assert.deepEqual(answer.echo, { n: 2 });
        const remembered = (await requester.request(action, { n: 3 }, { token: 'dup-2', timeout: 15_000 })) as { echo: unknown };
        assert.deepEqual(remembered.echo, { n: 2 }, 'answered from the handler\'s memory');
        assert.equal(handler.seen(peerEvent('run', 'dup-2')).length, 1);
      });

      it(`duplicates (paho ${version}) - a Python requester's token sent again is not run again by the TypeScript handler`, async () => {
        const action = `ts${version}/dup`;
        const handlerBus = await kit.connect(uniqueId('ts-handler'));
        let runs = 0;
        await handlerBus.handle(action, (payload: { n: number }) => {
          runs += 1;
          return payload.n;
        });
        const requester = await startPythonPeer({ id: uniqueId(`py${version}-dup`), broker: kit.broker.url }, version);
        await requester.send('wait_for_handler', { action, options: { timeout: 15 } });
        assert.equal(await requester.send('request', { action, payload: { n: 1 }, options: { token: 'job-42', timeout: 10 } }), 1);
        assert.equal(await requester.send('request', { action, payload: { n: 2 }, options: { token: 'job-42', timeout: 10 } }), 1, 'answered from the handler\'s memory');
        assert.equal(runs, 1);
      });

      it(`one id (paho ${version}) - a second Python client with the id takes it over; the first stops and says why instead of fighting`, { timeout: 60_000 }, async () => {
        const id = uniqueId(`py${version}-twin`);
        const action = `py${version}/twin`;
        const first = await pythonHandler(version, action, 'reply', { id, args: { result: 'first' } });
        const replaced = first.start('wait_replaced');
        await pythonHandler(version, action, 'reply', { id, args: { result: 'second' } });
        const other = await first.reply(replaced);
        assert.equal(other.ok, true, JSON.stringify(other.error));
        // Seen alive, or as its will ('dead') fired when the first one's reconnection knocked it off.
        assert.match(String((other.result as { status?: string }).status), /^(alive|dead)$/, JSON.stringify(other.result));
        const failed = await first.send('request', { action, payload: {}, options: { timeout: 5 } }).then(() => undefined, (failure: { error: PeerError }) => failure.error);
        assert.match(failed?.message ?? 'it still requests', /another client connected with the id/, 'the first one stops and says why');
        const caller = await kit.connect(uniqueId('caller'));
        assert.deepEqual(await askHolder(caller, action, id, (other.result as { instance: string }).instance), ['second', 'second', 'second']);
      });

      it(`one id (paho ${version}) - a Python client takes over the id of a TypeScript one, and the other way round`, { timeout: 60_000 }, async () => {
        const caller = await kit.connect(uniqueId('caller'));
        // TypeScript first, Python second.
        const tsFirstId = uniqueId('ts-then-py');
        const tsFirst = await kit.connect(tsFirstId, { reconnectDelay: 20, reconnectMaxDelay: 200 });
        await tsFirst.handle(`mixed${version}/a`, () => 'typescript');
        const replaced = within(once(tsFirst, 'replaced'), 30_000, 'the TypeScript client\'s replaced event');
        await pythonHandler(version, `mixed${version}/a`, 'reply', { id: tsFirstId, args: { result: 'python' } });
        const [other] = (await replaced) as [PresenceInfo];
        assert.ok(other.status === 'alive' || other.status === 'dead', other.status);
        assert.deepEqual(await askHolder(caller, `mixed${version}/a`, tsFirstId, other.instance!), ['python', 'python', 'python']);
        // Python first, TypeScript second.
        const pyFirstId = uniqueId(`py${version}-then-ts`);
        const pyFirst = await pythonHandler(version, `mixed${version}/b`, 'reply', { id: pyFirstId, args: { result: 'python' } });
        const pyReplaced = pyFirst.start('wait_replaced');
        const tsSecond: Bus = await kit.connect(pyFirstId);
        await tsSecond.handle(`mixed${version}/b`, () => 'typescript');
        const winner = await pyFirst.reply(pyReplaced);
        assert.equal(winner.ok, true, JSON.stringify(winner.error));
        const failed = await pyFirst.send('request', { action: `mixed${version}/b`, payload: {}, options: { timeout: 5 } }).then(() => undefined, (failure: { error: PeerError }) => failure.error);
        assert.match(failed?.message ?? 'it still requests', /another client connected with the id/, 'the Python one stops and says why');
        assert.deepEqual(await askHolder(caller, `mixed${version}/b`, pyFirstId, (winner.result as { instance: string }).instance), ['typescript', 'typescript', 'typescript']);
      });
    });
  }
});
