/**
 * Sealed payloads across languages (protocol §3.6, §12.5) on the embedded broker with a router
 * recording, with paho 1.6 and paho 2.x: a TypeScript requester seals a command for a Python
 * handler, which opens it and answers sealed back; a Python requester does the same to a
 * TypeScript handler; notifications sealed both ways; `sealed: 'require'` refuses a plaintext
 * command with the same code on both sides; a handler holding another key than its published
 * one answers the same code 2 on both sides, a requester with no key for the handler's identity
 * gets the same SealingError, nothing sent, and one holding no key of its own gets code 1; a
 * plaintext or unopenable answer fails a sealed Python request; the router's history holds
 * ciphertext only.
 * Every key is made by the code `relais identity keygen --seal` runs (a sealing keys file and
 * `<identity>.sealing.key` files), which the Python peers read as they are.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { RelaisError, type Bus, type Step } from '../../src/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { generateSealingKey, loadSealingKeys, readSealingPrivateKey } from '../../src/security/sealing-keys.js';
import { sealingRecipient, sealPayload } from '../../src/security/sealing.js';
import { rowsOf, untilRecorded } from '../router/router-contract.js';
import { setup, subscribedForNext, testLogger, uniqueId, within, type Kit } from '../testkit/index.js';
import { CRYPTOGRAPHY, PAHO_VERSIONS, PeerCommandError, peerEvent, PYTHON, pythonEnvironment, pythonGate, runPython, startPythonPeer, stopPythonPeers, type PythonPeer } from '../testkit/python.js';

const WHAT = 'the cross-language sealed payload tests';
const lines = (bytes: Uint8Array) => ({ $bytes: Buffer.from(bytes).toString('base64') });

describe('Python client with sealed payloads', { skip: pythonGate(WHAT, 1, [CRYPTOGRAPHY]).skip, timeout: 300_000 }, () => {
  let kit: Kit;
  let dir: string;
  let keysFile: string;
  let router: Router;
  const kid: Record<string, string> = {};
  const tsId = uniqueId('ts-seal');
  let ts: Bus;
  /** The `sealing` option of a TypeScript client of `identity` holding the private key of `holding`. */
  const tsSealing = (holding?: string) => ({ ...(holding && { privateKey: readSealingPrivateKey(path.join(dir, `${holding}.sealing.key`)) }), keys: loadSealingKeys(keysFile) });
  /** The keyword arguments of a Python client holding the private key of `holding` (the files keygen wrote). */
  const pySealing = (holding?: string) => ({ ...(holding && { sealing_key: path.join(dir, `${holding}.sealing.key`) }), sealing_keys: keysFile });

  /** The router's rows of `token` once its final is in, checked to hold none of `secrets` (nor their base64). */
  async function ciphertextOnly(token: string, secrets: string[]): Promise<void> {
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'final'), 10_000);
    const rows = await rowsOf(router, token);
    const recorded = JSON.stringify(rows);
    for (const secret of secrets) assert.ok(!recorded.includes(secret) && !recorded.includes(Buffer.from(secret).toString('base64')), `no row holds ${secret}`);
    const sealedRows = rows.filter((row) => row.kind === 'command' || row.kind === 'progress' || row.kind === 'final');
    assert.ok(sealedRows.length >= 2);
    assert.ok(sealedRows.every((row) => row.seal !== undefined && row.sha256 !== undefined), 'each payload recorded as the ciphertext, with its seal');
  }

  before(async () => {
    kit = await setup('aedes');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-py-seal-'));
    keysFile = path.join(dir, 'sealing-keys.json');
    // `lost-*` publish a key their clients do not hold (they hold carol's); dave publishes none.
    for (const identity of [tsId, 'carol', 'mallory', 'ts-lost', ...PAHO_VERSIONS.flatMap((version) => [`py${version}-seal`, `py${version}-lost`])]) {
      kid[identity] = generateSealingKey(keysFile, identity, dir).kid;
    }
    router = await startRouter({ broker: kit.broker.url, database: path.join(dir, 'history.db'), logger: testLogger });
    ts = await kit.connect(`${tsId}~${uniqueId('s')}`, { sealing: tsSealing(tsId) });
  });
  after(async () => {
    await stopPythonPeers();
    await router?.close();
    await kit?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const version of PAHO_VERSIONS) {
    describe(`paho ${version}.x`, { skip: pythonGate(`${WHAT} with paho ${version}.x`, version, [CRYPTOGRAPHY]).skip }, () => {
      const pyId = `py${version}-seal`;
      let py: PythonPeer;
      before(async () => {
        py = await startPythonPeer({ id: pyId, broker: kit.broker.url, ...pySealing(pyId) }, version);
      });

      it(`seal (paho ${version}) - a TypeScript requester seals for a Python handler, which opens it and answers sealed back; the history holds ciphertext only`, async () => {
        const action = `seal${version}/py/echo`;
        const secret = `attack-at-dawn-${randomBytes(6).toString('hex')}`;
        await py.send('serve', { action, behaviour: 'progress', args: { steps: [[0.5, { half: `${secret}-progress` }]], result: { answer: `${secret}-final` } } });
        await ts.waitForHandler(action, { target: py.id, timeout: 15_000 });
        const token = uniqueId('seal');
        const before = ts.sealing;
        const steps: Step[] = [];
        for await (const step of ts.call(action, { secret }, { seal: true, token, timeout: 15_000 })) steps.push(step);
        const run = await py.next(peerEvent('run', token), 'the Python handler run');
        assert.deepEqual([run.payload, run.sealed], [{ secret }, true], 'opened before the handler ran');
        assert.deepEqual(steps.filter((step) => step.kind !== 'accepted').map((step) => [step.kind, step.payload]), [['progress', { half: `${secret}-progress` }], ['final', { answer: `${secret}-final` }]]);
        assert.equal(ts.sealing.sealed - before.sealed, 1);
        assert.equal(ts.sealing.opened - before.opened, 2, 'progress and final came sealed and opened');
        const pySide = await py.send<{ sealed: number; opened: number; kids: string[] }>('sealing');
        assert.deepEqual(pySide.kids, [kid[pyId]]);
        assert.ok(pySide.opened >= 1 && pySide.sealed >= 2);
        await ciphertextOnly(token, [secret]);
        // Bytes both ways, sealed as bytes.
        await py.send('serve', { action: `${action}/bytes`, behaviour: 'reverse' });
        await ts.waitForHandler(`${action}/bytes`, { target: py.id, timeout: 15_000 });
        const sent = randomBytes(300);
        assert.deepEqual(Buffer.from(await ts.request<Uint8Array>(`${action}/bytes`, sent, { seal: true, timeout: 15_000 })), Buffer.from(sent).reverse());
      });

      it(`seal (paho ${version}) - a Python requester seals for a TypeScript handler, which opens it and answers sealed back; the history holds ciphertext only`, async () => {
        const action = `seal${version}/ts/echo`;
        const secret = `launch-codes-${randomBytes(6).toString('hex')}`;
        const seen: Array<{ payload: unknown; sealed: boolean }> = [];
        await ts.handle(action, async (payload: { secret: string }, ctx) => {
          seen.push({ payload, sealed: ctx.sealed });
          await ctx.progress(0.5, { half: `${payload.secret}-progress` });
          return { back: `${payload.secret}-final` };
        });
        await py.send('wait_for_handler', { action, options: { timeout: 15 } });
        const token = uniqueId('pyseal');
        const steps = await py.send<Array<{ kind: string; payload: unknown }>>('call', { action, payload: { secret }, options: { seal: true, token, timeout: 15 } });
        assert.deepEqual(seen, [{ payload: { secret }, sealed: true }]);
        assert.deepEqual(steps.filter((step) => step.kind !== 'accepted').map((step) => [step.kind, step.payload]), [['progress', { half: `${secret}-progress` }], ['final', { back: `${secret}-final` }]]);
        await ciphertextOnly(token, [secret]);
        // Read back by the requester, its history and follow open the rows sealed for it (the command is sealed for it too).
        type Row = { kind: string; data: string; opened?: boolean; seal?: unknown; sha256?: string };
        const shown = (rows: Row[]) => rows.filter((row) => row.kind !== 'accepted').map((row) => [row.kind, row.opened === true, row.opened ? JSON.parse(row.data) : 'sealed', row.seal !== undefined, row.sha256 === undefined]);
        const expected = [['command', true, { secret }, true, true], ['progress', true, { half: `${secret}-progress` }, true, true], ['final', true, { back: `${secret}-final` }, true, true]];
        assert.deepEqual(shown((await py.send<{ rows: Row[] }>('history', { query: { token } })).rows.sort((a, b) => Number(a.kind !== 'command') - Number(b.kind !== 'command'))), expected);
        assert.deepEqual(shown(await py.send<Row[]>('follow', { token, options: { timeout: 15 } })), expected);
        const bytes = Buffer.from('\n\0sealed bytes\n');
        await ts.handle(`${action}/bytes`, (payload: Uint8Array) => Buffer.concat([Buffer.from(payload), Buffer.from('!')]));
        await py.send('wait_for_handler', { action: `${action}/bytes`, options: { timeout: 15 } });
        assert.deepEqual(await py.send('request', { action: `${action}/bytes`, payload: lines(bytes), options: { seal: true, timeout: 15 } }), lines(Buffer.concat([bytes, Buffer.from('!')])));
      });

      it(`seal (paho ${version}) - notifications sealed both ways: the recipient opens them, a subscriber without the key gets them unopened`, async () => {
        const secret = `note-${randomBytes(6).toString('hex')}`;
        const toTs = await subscribedForNext(ts, `seal${version}/news/py/notification`);
        await py.send('notify', { category: `seal${version}/news/py`, payload: { secret }, options: { seal_for: [tsId] } });
        const fromPy = await toTs.arrived;
        assert.equal(fromPy.sealed, 'opened');
        assert.deepEqual(fromPy.envelope.payload, { secret });
        const subscription = py.start('subscribe', { filter: `seal${version}/news/ts/#` });
        await py.next((line) => line.event === 'subscribed' && line.sub === subscription, 'the Python subscription in place');
        ts.notify(`seal${version}/news/ts/for-py`, { secret }, { sealFor: [pyId] });
        ts.notify(`seal${version}/news/ts/for-carol`, { secret }, { sealFor: ['carol'] });
        const forPy = await py.next((line) => line.event === 'message' && line.sub === subscription && String(line.topic).includes('for-py'), 'the notification sealed for Python');
        assert.deepEqual([forPy.sealed, forPy.payload], ['opened', { secret }]);
        const forCarol = await py.next((line) => line.event === 'message' && line.sub === subscription && String(line.topic).includes('for-carol'), 'the notification sealed for carol');
        assert.equal(forCarol.sealed, 'unopened');
        assert.ok(typeof (forCarol.payload as { $bytes?: string }).$bytes === 'string', 'the payload is the ciphertext bytes');
        assert.ok(!Buffer.from((forCarol.payload as { $bytes: string }).$bytes, 'base64').includes(secret));
      });

      it(`seal (paho ${version}) - sealed "require": a plaintext command is refused with code 4 and the same message on both sides, the handler not run`, async () => {
        const pyAction = `seal${version}/py/only`;
        await py.send('serve', { action: pyAction, behaviour: 'echo', options: { sealed: 'require' } });
        await ts.waitForHandler(pyAction, { target: py.id, timeout: 15_000 });
        const token = uniqueId('plain');
        const fromPy = await ts.request(pyAction, { x: 1 }, { token, timeout: 15_000 }).then(() => undefined, (error: unknown) => error);
        assert.ok(fromPy instanceof RelaisError && fromPy.responseCode === 4, String(fromPy));
        assert.equal(py.seen(peerEvent('run', token)).length, 0, 'not run');
        assert.deepEqual(await ts.request(pyAction, { x: 2 }, { seal: true, timeout: 15_000 }).then((answer) => (answer as { echo: unknown }).echo), { x: 2 });

        const tsAction = `seal${version}/ts/only`;
        let runs = 0;
        await ts.handle(tsAction, () => ++runs, { sealed: 'require' });
        await py.send('wait_for_handler', { action: tsAction, options: { timeout: 15 } });
        const fromTs = await py.send('request', { action: tsAction, payload: { x: 1 }, options: { timeout: 15 } }).then(() => undefined, (error: unknown) => error);
        assert.ok(fromTs instanceof PeerCommandError, String(fromTs));
        assert.equal(fromTs.error.response_code, 4);
        assert.ok(fromTs.error.types.includes('relais.protocol.errors.NotAuthorizedError'), fromTs.error.types.join());
        assert.equal(fromTs.error.message, fromPy.message, 'the same refusal on both sides');
        assert.match(fromPy.message, /^this action takes sealed commands only \(protocol §3\.6\)$/);
        assert.equal(runs, 0);
      });

      it(`seal (paho ${version}) - keys missing: a handler without the key answers code 2 naming the kids on both sides; no key for the handler's identity is a SealingError on both sides, nothing sent`, async () => {
        const lostPy = `py${version}-lost`;
        // A Python handler whose published key is not the one it holds (a lost private key, a mix-up).
        const confusedPy = await startPythonPeer({ id: lostPy, broker: kit.broker.url, ...pySealing('carol') }, version);
        const pyAction = `seal${version}/py/lost`;
        await confusedPy.send('serve', { action: pyAction, behaviour: 'echo' });
        await ts.waitForHandler(pyAction, { target: confusedPy.id, timeout: 15_000 });
        const token = uniqueId('lost');
        const fromPy = await ts.request(pyAction, { x: 1 }, { seal: true, token, timeout: 15_000 }).then(() => undefined, (error: unknown) => error);
        assert.ok(fromPy instanceof RelaisError && fromPy.responseCode === 2, String(fromPy));
        assert.equal(fromPy.message, `cannot open the sealed command: not-for-me: sealed for ${kid[lostPy]}, ${kid[tsId]}, this client holds ${kid.carol}`);
        assert.equal(confusedPy.seen(peerEvent('run', token)).length, 0, 'not run');
        assert.equal((await confusedPy.send<{ refused: Record<string, number> }>('sealing')).refused['not-for-me'], 1);
        await confusedPy.stop();

        // The same mix-up on a TypeScript handler, asked by the Python requester.
        const confusedTs = await kit.connect(`ts-lost~${uniqueId('s')}`, { sealing: tsSealing('carol') });
        const tsAction = `seal${version}/ts/lost`;
        let runs = 0;
        await confusedTs.handle(tsAction, () => ++runs);
        await py.send('wait_for_handler', { action: tsAction, options: { timeout: 15 } });
        const fromTs = await py.send('request', { action: tsAction, payload: { x: 1 }, options: { seal: true, timeout: 15 } }).then(() => undefined, (error: unknown) => error);
        assert.ok(fromTs instanceof PeerCommandError, String(fromTs));
        assert.equal(fromTs.error.response_code, 2);
        assert.equal(fromTs.error.message, `cannot open the sealed command: not-for-me: sealed for ${kid['ts-lost']}, ${kid[pyId]}, this client holds ${kid.carol}`);
        assert.equal(runs, 0);

        // No key published for the handler's identity (dave): SealingError at once, on both sides.
        const dave = await kit.connect(`dave~${uniqueId('s')}`, { sealing: tsSealing() });
        const daveAction = `seal${version}/dave`;
        let daveRuns = 0;
        await dave.handle(daveAction, () => ++daveRuns);
        await py.send('wait_for_handler', { action: daveAction, options: { timeout: 15 } });
        await ts.waitForHandler(daveAction, { timeout: 15_000 });
        const tsError = await ts.request(daveAction, { x: 1 }, { seal: true, target: dave.id }).then(() => undefined, (error: unknown) => error);
        assert.ok(tsError instanceof RelaisError && tsError.name === 'SealingError', String(tsError));
        const pyError = await py.send('request', { action: daveAction, payload: { x: 1 }, options: { seal: true, target: dave.id } }).then(() => undefined, (error: unknown) => error);
        assert.ok(pyError instanceof PeerCommandError, String(pyError));
        assert.deepEqual(pyError.error.type, 'SealingError');
        assert.match(pyError.error.message, /^no sealing key for identity dave: /);
        assert.equal(pyError.error.message.replace('(sealing_keys)', '(sealing.keys)'), tsError.message, 'the same message, naming each language\'s option');
        assert.equal(daveRuns, 0, 'nothing was sent');

        // dave, holding no key, seals for the Python handler: its answer could not be sealed back, so it is not run (code 1).
        const pyEcho = `seal${version}/py/for-dave`;
        await py.send('serve', { action: pyEcho, behaviour: 'echo' });
        await dave.waitForHandler(pyEcho, { target: py.id, timeout: 15_000 });
        const keyless = uniqueId('keyless');
        const noAnswer = await dave.request(pyEcho, { x: 1 }, { seal: true, token: keyless, timeout: 15_000 }).then(() => undefined, (error: unknown) => error);
        assert.ok(noAnswer instanceof RelaisError && noAnswer.responseCode === 1, String(noAnswer));
        assert.match(noAnswer.message, /^cannot seal the answer: no sealing key for identity dave$/);
        assert.equal(py.seen(peerEvent('run', keyless)).length, 0, 'not run: its answer could not have been delivered sealed');
      });

      it(`seal (paho ${version}) - hostile answers: a plaintext answer to a sealed Python request, or a sealed one it cannot open, fail it with SealingError`, async () => {
        const action = `seal${version}/forged`;
        const foreignId = `mallory~${uniqueId('s')}`;
        const foreign = mqtt.connect(kit.broker.url, { clientId: uniqueId('foreign'), reconnectPeriod: 0 });
        await new Promise<void>((resolve, reject) => foreign.once('connect', () => resolve()).once('error', reject));
        try {
          await foreign.subscribeAsync(`${action}/request/${foreignId}`, { qos: 1 });
          foreign.on('message', (_topic, message) => {
            const lf = message.indexOf(0x0a);
            const header = JSON.parse(message.subarray(0, lf).toString('utf8')) as { source: string; token: string; seal: unknown };
            const fields = { v: 1, type: 'response', source: foreignId, destination: header.source, token: header.token, final: true };
            let answer: Buffer;
            if (header.token.startsWith('plain')) answer = Buffer.from(JSON.stringify({ ...fields, payload: { forged: true }, code: 0 }));
            else {
              // Sealed, but for carol: the Python requester cannot open it.
              const { seal, body } = sealPayload({ forged: true }, { type: 'response', source: foreignId, token: header.token }, [sealingRecipient(loadSealingKeys(keysFile).find((key) => key.identity === 'carol')!.publicKey)]);
              answer = Buffer.concat([Buffer.from(JSON.stringify({ ...fields, body: body.length, seal, code: 0 })), Buffer.from([0x0a]), Buffer.from(body)]);
            }
            foreign.publish(`${action}/response/${header.source}`, answer, { qos: 1 });
          });
          const options = { seal: true, target: foreignId, check_handlers: false, timeout: 15 };
          for (const [prefix, why] of [['plain', /^the answer of mallory~\S+ to the sealed request plain\S+ came unsealed: refused \(protocol §3\.6\)$/], ['sealed', /^the sealed answer of mallory~\S+ to request sealed\S+ did not open: not-for-me: sealed for [0-9a-f]{16}, this client holds [0-9a-f]{16}$/]] as const) {
            const refused = await py.send('request', { action, payload: { x: 1 }, options: { ...options, token: uniqueId(prefix) } }).then(() => undefined, (error: unknown) => error);
            assert.ok(refused instanceof PeerCommandError, String(refused));
            assert.equal(refused.error.type, 'SealingError');
            assert.match(refused.error.message, why);
          }
        } finally {
          await foreign.endAsync();
        }
      });
    });
  }

  it('seal - python -m relais: call --seal seals for a TypeScript handler and prints the answer opened; serve --sealing-key opens a sealed command and answers sealed; --seal without the keys exits 2 saying which', async () => {
    const action = `sealcli/${uniqueId('ts')}/echo`;
    const secret = `cli-secret-${randomBytes(6).toString('hex')}`;
    const seen: boolean[] = [];
    await ts.handle(action, (payload: { secret: string }, ctx) => (seen.push(ctx.sealed), { back: payload.secret }));
    const keyOf = (identity: string) => path.join(dir, `${identity}.sealing.key`);
    const called = await runPython(['-m', 'relais', 'call', action, JSON.stringify({ secret }), '--seal', '--broker', kit.broker.url, '--id', `py1-seal~${uniqueId('cli')}`, '--sealing-key', keyOf('py1-seal'), '--sealing-keys', keysFile, '--timeout', '20']);
    assert.equal(called.code, 0, called.stderr);
    assert.deepEqual(seen, [true]);
    assert.deepEqual(called.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; payload?: unknown }).filter((step) => step.kind === 'final').map((step) => step.payload), [{ back: secret }]);

    for (const [missing, args, why] of [
      ['--sealing-keys', ['--sealing-key', keyOf('py1-seal')], /--seal needs --sealing-keys/],
      ['--sealing-key', ['--sealing-keys', keysFile], /--seal needs --sealing-key \(RELAIS_SEALING_KEY\)/],
    ] as const) {
      const refused = await runPython(['-m', 'relais', 'call', action, '{}', '--seal', '--broker', kit.broker.url, '--id', `py1-seal~${uniqueId('cli')}`, ...args]);
      assert.equal(refused.code, 2, `without ${missing}: ${refused.stderr}`);
      assert.match(refused.stderr, why);
    }

    const served = `sealcli/${uniqueId('py')}/echo`;
    const serverId = `py2-seal~${uniqueId('serve')}`;
    const server = spawn(PYTHON, ['-m', 'relais', 'serve', served, '--broker', kit.broker.url, '--id', serverId, '--sealing-key', keyOf('py2-seal'), '--sealing-keys', keysFile], { env: pythonEnvironment(1), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    server.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(server, 'exit');
    try {
      await ts.waitForHandler(served, { target: serverId, timeout: 20_000 }).catch((error: Error) => assert.fail(`${error.message}; stderr:\n${stderr}`));
      const token = uniqueId('cliseal');
      assert.deepEqual(await ts.request(served, { secret }, { target: serverId, seal: true, token, timeout: 15_000 }), { secret });
      // Answered sealed: the history holds the command and the final as ciphertext only.
      await ciphertextOnly(token, [secret]);
    } finally {
      server.kill('SIGTERM');
      await within(exited, 15_000, 'python -m relais serve stopping on SIGTERM');
    }
  });
});
