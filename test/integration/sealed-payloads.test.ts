/**
 * Sealed payloads end to end (protocol §3.6, §12.5) on the embedded Aedes broker and on
 * Mosquitto: a request sealed for its handler is opened there and answered sealed back; what
 * the broker carries (a plain `#` subscriber, the router's history) holds no plaintext; a retry
 * elsewhere reaches a second handler that opens it; notifications sealed for a list; with
 * signatures; bytes; `sealed: 'require'`; missing keys; hostile seals get an error answer.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { loadSealingKeys, readSealingPrivateKey, generateSealingKey, RelaisError, SealingError, type Bus, type ConnectOptions, type Step } from '../../src/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { sealingRecipient, sealPayload } from '../../src/security/sealing.js';
import { generateSigningKey, loadSigningKeys, readPrivateKey } from '../../src/security/signing-keys.js';
import { rowsOf, untilRecorded } from '../router/router-contract.js';
import { peerGate, recordingLogger, setup, subscribedForNext, SUITE_TIMEOUT, testLogger, uniqueId, waitFor, within, type BrokerKind, type Kit } from '../testkit/index.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/sealed-handler-process.ts');

/** Every message the broker carried to a plain MQTT client subscribed to everything. */
async function wireSpy(url: string): Promise<{ payloads: Buffer[]; carried(text: string | Buffer): boolean; next(topic: string): Promise<Buffer>; close(): Promise<void> }> {
  const client = mqtt.connect(url, { clientId: uniqueId('spy'), reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
  await client.subscribeAsync('#', { qos: 1 });
  const payloads: Buffer[] = [];
  client.on('message', (_topic, payload) => payloads.push(Buffer.from(payload)));
  return {
    payloads,
    carried: (text) => payloads.some((payload) => payload.includes(text)),
    next: (topic) =>
      within(
        new Promise<Buffer>((resolve) => {
          const listener = (arrived: string, payload: Buffer) => {
            if (arrived !== topic) return;
            client.off('message', listener);
            resolve(Buffer.from(payload));
          };
          client.on('message', listener);
        }),
        10_000,
        `a message on ${topic}`,
      ),
    close: () => client.endAsync(),
  };
}

/** A binary message split as protocol §3.5 tells a foreign peer: the header is the text before the first LF. */
function split(bytes: Buffer): { header: Record<string, unknown>; body: Buffer } {
  const lf = bytes.indexOf(0x0a);
  assert.ok(lf > 0, 'a sealed message is a binary message');
  return { header: JSON.parse(bytes.subarray(0, lf).toString('utf8')) as Record<string, unknown>, body: bytes.subarray(lf + 1) };
}

interface Keys {
  dir: string;
  file: string;
  kid: Record<string, string>;
  /** The `sealing` option of a client of `identity` (with its private key when it has one). */
  sealing(identity: string): NonNullable<ConnectOptions['sealing']>;
}

function makeKeys(identities: string[]): Keys {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-sealed-'));
  const file = path.join(dir, 'sealing-keys.json');
  const kid: Record<string, string> = {};
  for (const identity of identities) kid[identity] = generateSealingKey(file, identity, dir).kid;
  const keys = loadSealingKeys(file);
  return {
    dir,
    file,
    kid,
    sealing: (identity) => (kid[identity] ? { privateKey: readSealingPrivateKey(path.join(dir, `${identity}.sealing.key`)), keys } : { keys }),
  };
}

function startSealedHandler(url: string, id: string, action: string, keys: Keys): Promise<{ child: ChildProcess; runs: string[] }> {
  const identity = id.split('~')[0]!;
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, url, id, action, path.join(keys.dir, `${identity}.sealing.key`), keys.file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const runs: string[] = [];
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line === 'READY') resolve({ child, runs });
        else if (line.startsWith('RUN ')) runs.push(line.slice(4));
      }
    });
    child.once('exit', (code) => reject(new Error(`sealed handler ${id} exited (${code}) before it was ready`)));
  });
}

function sealedContract(kind: BrokerKind, skip: string | false): void {
  describe(`sealed payloads on ${kind}`, { skip, timeout: SUITE_TIMEOUT }, () => {
    let kit: Kit;
    let keys: Keys;
    let spy: Awaited<ReturnType<typeof wireSpy>>;
    const children: ChildProcess[] = [];
    const session = (identity: string) => `${identity}~${uniqueId('s')}`;
    const connectAs = (identity: string, extra: Partial<ConnectOptions> = {}) => kit.connect(session(identity), { sealing: keys.sealing(identity), ...extra });

    before(async () => {
      kit = await setup(kind);
      // dave has no sealing key at all.
      keys = makeKeys(['alice', 'svc', 'svc2', 'carol', 'erin', 'mallory']);
      spy = await wireSpy(kit.broker.url);
    });
    after(async () => {
      for (const child of children) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await spy?.close();
      await kit?.cleanup();
      if (keys) fs.rmSync(keys.dir, { recursive: true, force: true });
    });

    it('request - sealed for the handler, opened there, progress and final sealed back: the broker carries no plaintext', async () => {
      const action = `test/sealed/echo${uniqueId('a').replace(/-/g, '')}`;
      const server = await connectAs('svc');
      const client = await connectAs('alice');
      const secret = `attack-at-dawn-${randomBytes(6).toString('hex')}`;
      let seen: { payload: unknown; sealed: boolean; seal: unknown } | undefined;
      await server.handle(action, (payload: { secret: string }, ctx) => {
        seen = { payload, sealed: ctx.sealed, seal: ctx.envelope.seal };
        ctx.progress(0.5, { halfway: `${payload.secret}-progress` });
        return { answer: `${payload.secret}-final` };
      });
      await client.waitForHandler(action, { timeout: 10_000 });
      const command = spy.next(`${action}/request/${server.id}`);
      const steps: Step[] = [];
      for await (const step of client.call(action, { secret }, { seal: true })) steps.push(step);
      assert.deepEqual(seen?.payload, { secret });
      assert.equal(seen?.sealed, true, 'ctx.sealed');
      assert.ok(seen?.seal, 'the opened envelope keeps its seal member');
      const progress = steps.find((step) => step.kind === 'progress');
      assert.deepEqual(progress?.payload, { halfway: `${secret}-progress` });
      const final = steps.at(-1);
      assert.ok(final?.kind === 'final');
      assert.deepEqual(final.payload, { answer: `${secret}-final` });
      // What the broker carried: the sealed command (its seal lists svc's key), and nothing of the plaintext.
      const { header } = split(await command);
      assert.deepEqual((header.seal as { to: Array<{ kid: string }> }).to.map((recipient) => recipient.kid), [keys.kid.svc, keys.kid.alice], 'sealed for the handler, and for the requester itself (its history)');
      assert.equal(header.token, final.token);
      assert.ok(!spy.carried(secret), 'the plaintext never crossed the broker');
      assert.equal(client.sealing.sealed, 1);
      assert.equal(client.sealing.opened, 2, 'progress and final opened');
      assert.equal(server.sealing.opened, 1);
      assert.equal(server.sealing.sealed, 2);
    });

    it('a subscriber to everything without the key gets the envelope unopened; the router records ciphertext only; the requester reads its rows opened (history, follow)', async () => {
      const action = `test/sealed/watch${uniqueId('a').replace(/-/g, '')}`;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-sealed-router-'));
      let router: Router | undefined;
      try {
        router = await startRouter({ broker: kit.broker.url, database: path.join(dir, 'history.db'), logger: testLogger });
        const server = await connectAs('svc');
        const client = await connectAs('alice');
        const watcher = await connectAs('mallory');
        const secret = `watched-${randomBytes(6).toString('hex')}`;
        await server.handle(action, (payload: { secret: string }) => ({ back: payload.secret }));
        await client.waitForHandler(action, { timeout: 10_000 });
        const seenByWatcher = await subscribedForNext(watcher, `${action}/request/+`);
        const token = uniqueId('t');
        assert.deepEqual(await client.request(action, { secret }, { seal: true, token }), { back: secret });
        const message = await seenByWatcher.arrived;
        assert.equal(message.sealed, 'unopened');
        assert.ok(Buffer.isBuffer(message.envelope.payload), 'the payload is the ciphertext bytes');
        assert.ok(!(message.envelope.payload as Buffer).includes(secret));
        assert.deepEqual((message.envelope.seal as { to: Array<{ kid: string }> }).to.map((recipient) => recipient.kid), [keys.kid.svc, keys.kid.alice]);
        assert.equal(watcher.sealing.refused['not-for-me'], 1);
        await untilRecorded(router, async () => (await rowsOf(router!, token)).some((row) => row.kind === 'final'), 10_000);
        const rows = await rowsOf(router, token);
        const recorded = JSON.stringify(rows);
        assert.ok(!recorded.includes(secret) && !recorded.includes(Buffer.from(secret).toString('base64')), 'no row holds the plaintext');
        const sealedRows = rows.filter((row) => row.kind === 'command' || row.kind === 'final');
        assert.equal(sealedRows.length, 2);
        assert.ok(sealedRows.every((row) => row.sha256 !== undefined && row.seal !== undefined), 'the sealed command and answer are recorded as binary rows of the ciphertext, with their seal');
        assert.ok(!spy.carried(secret));
        // The requester reads its own rows opened: its command (sealed for itself too) and the answer.
        const page = await client.history({ token });
        const final = page.rows.find((row) => row.kind === 'final')!;
        assert.equal(final.opened, true);
        assert.deepEqual(JSON.parse(final.data), { back: secret });
        assert.equal(final.sha256, undefined);
        assert.ok(final.seal, 'seal kept on the opened row');
        const command = page.rows.find((row) => row.kind === 'command')!;
        assert.equal(command.opened, true);
        assert.deepEqual(JSON.parse(command.data), { secret });
        // The handler opens the command row, not the answer (sealed for alice only); a client holding no key of a row opens nothing.
        const stored = await rowsOf(router, token);
        const [commandForServer, finalForServer] = server.openRows([stored.find((row) => row.kind === 'command')!, stored.find((row) => row.kind === 'final')!]);
        assert.deepEqual(JSON.parse(commandForServer!.data), { secret });
        assert.equal(finalForServer!.opened, undefined);
        const sealedRows2 = stored.filter((row) => row.seal !== undefined);
        assert.deepEqual(watcher.openRows(sealedRows2), sealedRows2);
        const followed = [];
        for await (const row of client.follow(token, { timeout: 10_000 })) followed.push(row);
        assert.deepEqual(JSON.parse(followed.find((row) => row.kind === 'final')!.data), { back: secret });
      } finally {
        await router?.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('retry elsewhere - sealed for every identity serving it: a handler that stops answering is replaced by one that opens it', async () => {
      const action = `test/sealed/retry${uniqueId('a').replace(/-/g, '')}`;
      const logs = recordingLogger();
      const frozen = await startSealedHandler(kit.broker.url, session('svc2'), action, keys);
      children.push(frozen.child);
      const healthy = await connectAs('svc');
      await healthy.handle(action, (payload: unknown, ctx) => ({ got: payload, by: healthy.id, sealed: ctx.sealed }), { sealed: 'require' });
      const client = await connectAs('alice', { logger: logs.logger, ackTimeout: 500 });
      await waitFor(() => (client.directory.providers(action).size === 2 ? true : undefined), client.directory, 'change', 10_000);
      const command = spy.next(`${action}/request/${healthy.id}`);
      frozen.child.kill('SIGSTOP');
      const answers = await Promise.all(Array.from({ length: 4 }, (_, n) => client.request<{ got: unknown; by: string; sealed: boolean }>(action, { n }, { seal: true, timeout: 20_000 })));
      assert.deepEqual(answers.map((answer) => answer.got), [{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
      assert.ok(answers.every((answer) => answer.by === healthy.id && answer.sealed), 'every one answered, opened, by the handler still running');
      const moved = logs.records().filter((record) => String(record.msg).startsWith('request sent to another handler'));
      assert.ok(moved.length > 0, 'some went to the stopped handler first and moved');
      const { header } = split(await command);
      assert.deepEqual(new Set((header.seal as { to: Array<{ kid: string }> }).to.map((recipient) => recipient.kid)), new Set([keys.kid.svc, keys.kid.svc2, keys.kid.alice]));
      frozen.child.kill('SIGCONT');
    });

    it('notification sealed for a list: each recipient opens it, anyone else sees ciphertext; an identity without a key throws, nothing sent', async () => {
      const category = `test/sealed/news${uniqueId('c').replace(/-/g, '')}`;
      const sender = await connectAs('alice');
      const carol = await connectAs('carol');
      const erin = await connectAs('erin');
      const mallory = await connectAs('mallory');
      const secret = `note-${randomBytes(6).toString('hex')}`;
      const waits = await Promise.all([carol, erin, mallory].map((bus) => subscribedForNext(bus, `${category}/notification`)));
      sender.notify(category, { secret }, { sealFor: ['carol', 'erin'] });
      const [toCarol, toErin, toMallory] = await Promise.all(waits.map((wait) => wait.arrived));
      for (const opened of [toCarol!, toErin!]) {
        assert.equal(opened.sealed, 'opened');
        assert.deepEqual(opened.envelope.payload, { secret });
      }
      assert.equal(toMallory!.sealed, 'unopened');
      assert.ok(Buffer.isBuffer(toMallory!.envelope.payload));
      assert.ok(!spy.carried(secret));
      const before = spy.payloads.length;
      assert.throws(() => sender.notify(category, { secret }, { sealFor: ['carol', 'dave'] }), (error: unknown) => error instanceof SealingError && /no sealing key for identity dave/.test(error.message));
      assert.throws(() => sender.notify(category, { secret }, { sealFor: [] }), TypeError);
      // A marker after the refused ones: the spy reads in order, so nothing else was sent between.
      const marker = spy.next(`${category}/marker/notification`);
      sender.notify(`${category}/marker`, 'after');
      await marker;
      assert.equal(spy.payloads.length, before + 1);
    });

    it('sealed and signed: signatures cover the sealed bytes and are checked before opening', async () => {
      const action = `test/sealed/signed${uniqueId('a').replace(/-/g, '')}`;
      const signingFile = path.join(keys.dir, `signing-${uniqueId('k')}.json`);
      const signingDir = fs.mkdtempSync(path.join(keys.dir, 'signing-'));
      for (const identity of ['alice', 'svc']) generateSigningKey(signingFile, identity, signingDir);
      const verify = { keys: loadSigningKeys(signingFile) };
      const signing = (identity: string) => ({ privateKey: readPrivateKey(path.join(signingDir, `${identity}.key`)) });
      const server = await connectAs('svc', { signing: signing('svc'), verify });
      const client = await connectAs('alice', { signing: signing('alice'), verify });
      const secret = `signed-${randomBytes(6).toString('hex')}`;
      await server.handle(action, (payload: { secret: string }, ctx) => ({ back: payload.secret, sealed: ctx.sealed }), { sealed: 'require' });
      await client.waitForHandler(action, { timeout: 10_000 });
      const command = spy.next(`${action}/request/${server.id}`);
      assert.deepEqual(await client.request(action, { secret }, { seal: true }), { back: secret, sealed: true });
      const { header } = split(await command);
      assert.deepEqual(Object.keys(header).slice(-1), ['sig'], 'sig last, after the seal member');
      assert.ok(Object.keys(header).indexOf('seal') === Object.keys(header).indexOf('body') + 1, 'seal right after body');
      assert.ok((server.signatures.verified ?? 0) > 0 && (client.signatures.verified ?? 0) > 0);
      assert.equal(server.signatures.refused?.forged, 0);
      assert.ok(!spy.carried(secret));
    });

    it('bytes - a binary payload is sealed as bytes and opened as the same bytes, both ways', async () => {
      const action = `test/sealed/bytes${uniqueId('a').replace(/-/g, '')}`;
      const server = await connectAs('svc');
      const client = await connectAs('alice');
      const sent = randomBytes(50_000);
      await server.handle(action, (payload: Buffer) => Buffer.concat([payload, Buffer.from('!')]));
      await client.waitForHandler(action, { timeout: 10_000 });
      const command = spy.next(`${action}/request/${server.id}`);
      const back = await client.request<Buffer>(action, sent, { seal: true });
      assert.ok(Buffer.isBuffer(back) && back.equals(Buffer.concat([sent, Buffer.from('!')])));
      const { header, body } = split(await command);
      assert.equal((header.seal as { form: string }).form, 'bytes');
      assert.equal(body.length, sent.length + 16);
      assert.ok(!body.includes(sent.subarray(0, 32)));
    });

    it("sealed: 'require' - an unsealed command is refused (code 4) without running; connect option sealing.requests seals every request but the built-in ones", async () => {
      const action = `test/sealed/only${uniqueId('a').replace(/-/g, '')}`;
      const server = await connectAs('svc');
      let runs = 0;
      await server.handle(action, () => ++runs, { sealed: 'require' });
      const plain = await connectAs('alice');
      await plain.waitForHandler(action, { timeout: 10_000 });
      await assert.rejects(plain.request(action, { x: 1 }), (error: unknown) => error instanceof RelaisError && error.responseCode === 4 && /takes sealed commands only \(protocol §3\.6\)/.test(error.message));
      assert.equal(runs, 0);
      const sealing = await connectAs('alice', { sealing: { ...keys.sealing('alice'), requests: true } });
      await sealing.waitForHandler(action, { timeout: 10_000 });
      assert.equal(await sealing.request(action, { x: 1 }), 1);
      await assert.rejects(sealing.request(action, { x: 1 }, { seal: false }), (error: unknown) => error instanceof RelaisError && error.responseCode === 4);
      // Not the built-in actions (the router's, a client's logs): their servers may hold no key (dave has none).
      const keyless = await kit.connect(session('dave'), { sealing: { keys: loadSealingKeys(keys.file) } });
      assert.ok(await sealing.request('relais/logs/get', {}, { target: keyless.id }));
    });

    it('missing keys - no key for the handler: SealingError at once, nothing sent; a handler not holding the key: code 2 naming the kids; a requester without key: code 1, never a plain answer', async () => {
      const action = `test/sealed/keys${uniqueId('a').replace(/-/g, '')}`;
      // dave serves it but has no sealing key published.
      const dave = await kit.connect(session('dave'), { sealing: { keys: loadSealingKeys(keys.file) } });
      let daveRuns = 0;
      await dave.handle(action, () => ++daveRuns);
      const client = await connectAs('alice');
      await client.waitForHandler(action, { timeout: 10_000 });
      const before = spy.payloads.length;
      await assert.rejects(client.request(action, { x: 1 }, { seal: true, target: dave.id }), (error: unknown) => error instanceof SealingError && /no sealing key for identity dave/.test(error.message));
      await assert.rejects(client.request(action, { x: 1 }, { seal: true }), (error: unknown) => error instanceof SealingError && /dave/.test(error.message));
      assert.equal(spy.payloads.length, before, 'nothing was sent');
      assert.equal(daveRuns, 0);

      // A handler whose published key is not the one it holds (a lost private key, a mix-up).
      const logs = recordingLogger();
      const confused = await kit.connect(session('svc'), { logger: logs.logger, sealing: { privateKey: readSealingPrivateKey(path.join(keys.dir, 'carol.sealing.key')), keys: loadSealingKeys(keys.file) } });
      let confusedRuns = 0;
      const other = `${action}/b`;
      await confused.handle(other, () => ++confusedRuns);
      await client.waitForHandler(other, { timeout: 10_000 });
      await assert.rejects(client.request(other, { x: 1 }, { seal: true }), (error: unknown) => error instanceof RelaisError && error.responseCode === 2 && error.message.includes(`sealed for ${keys.kid.svc}, ${keys.kid.alice}, this client holds ${keys.kid.carol}`));
      assert.equal(confusedRuns, 0);
      assert.ok(logs.records().some((record) => record.msg === 'sealed command refused' && record.level === 40));

      // A requester whose identity has no key (it seals with the published keys, holds none): its answer cannot be sealed back.
      const server = await connectAs('svc');
      let serverRuns = 0;
      const third = `${action}/c`;
      await server.handle(third, () => ({ secret: ++serverRuns }));
      const keyless = await kit.connect(session('dave'), { sealing: { keys: loadSealingKeys(keys.file) } });
      await keyless.waitForHandler(third, { timeout: 10_000 });
      await assert.rejects(keyless.request(third, { x: 1 }, { seal: true }), (error: unknown) => error instanceof RelaisError && error.responseCode === 1 && /cannot seal the answer: no sealing key for identity dave/.test(error.message));
      assert.equal(serverRuns, 0, 'not run: its answer could not have been delivered sealed');
    });

    it('hostile answers - a plaintext answer to a sealed request, or a sealed one that does not open: the request fails with SealingError, never hands out what it got', async () => {
      const action = `test/sealed/forged${uniqueId('a').replace(/-/g, '')}`;
      const foreignId = session('mallory');
      const peer = mqtt.connect(kit.broker.url, { clientId: uniqueId('foreign'), reconnectPeriod: 0 });
      await new Promise<void>((resolve, reject) => peer.once('connect', () => resolve()).once('error', reject));
      try {
        await peer.subscribeAsync(`${action}/request/${foreignId}`, { qos: 1 });
        const client = await connectAs('alice');
        const publicKeyOf = (identity: string) => loadSealingKeys(keys.file).find((key) => key.identity === identity)!.publicKey;
        peer.on('message', (_topic, payload) => {
          const { header } = split(Buffer.from(payload));
          const fields = { v: 1, type: 'response', source: foreignId, destination: header.source, token: header.token, final: true };
          const token = header.token as string;
          let answer: Buffer;
          if (token.startsWith('plain')) answer = Buffer.from(JSON.stringify({ ...fields, payload: { forged: true }, code: 0 }));
          else {
            // Sealed, but for carol: alice cannot open it.
            const { seal, body } = sealPayload({ forged: true }, { type: 'response', source: foreignId, token }, [sealingRecipient(publicKeyOf('carol'))]);
            answer = Buffer.concat([Buffer.from(JSON.stringify({ ...fields, body: body.length, seal, code: 0 })), Buffer.from([0x0a]), Buffer.from(body)]);
          }
          peer.publish(`${action}/response/${header.source as string}`, answer, { qos: 1 });
        });
        const options = { seal: true, target: foreignId, checkHandlers: false, timeout: 10_000 };
        await assert.rejects(client.request(action, { x: 1 }, { ...options, token: uniqueId('plain') }), (error: unknown) => error instanceof SealingError && /came unsealed: refused/.test(error.message));
        await assert.rejects(client.request(action, { x: 1 }, { ...options, token: uniqueId('sealed') }), (error: unknown) => error instanceof SealingError && /did not open: not-for-me/.test(error.message));
        assert.equal(client.sealing.refused['not-for-me'], 1);
      } finally {
        await peer.endAsync();
      }
    });

    it('hostile - a truncated body, a forged seal member, an oversized recipient list: an error answer to the sender, the handler never runs, counted', async () => {
      const action = `test/sealed/hostile${uniqueId('a').replace(/-/g, '')}`;
      const server = await connectAs('svc');
      let runs = 0;
      await server.handle(action, () => ++runs);
      const peer = mqtt.connect(kit.broker.url, { clientId: uniqueId('foreign'), reconnectPeriod: 0 });
      await new Promise<void>((resolve, reject) => peer.once('connect', () => resolve()).once('error', reject));
      try {
        const source = uniqueId('foreign');
        await peer.subscribeAsync(`${action}/response/${source}`, { qos: 1 });
        const answers = new Map<string, Record<string, unknown>>();
        peer.on('message', (_topic, payload) => {
          const answer = JSON.parse(payload.toString()) as Record<string, unknown>;
          answers.set(answer.token as string, answer);
        });
        const sealedFor = (token: string) => sealPayload({ x: 1 }, { type: 'command', source, token }, [sealingRecipient(loadSealingKeys(keys.file).find((key) => key.identity === 'svc')!.publicKey)]);
        const send = (token: string, seal: unknown, body: Buffer) => {
          const header = JSON.stringify({ v: 1, type: 'command', source, destination: server.id, token, body: body.length, seal, priority: 'normal', ts: Date.now() });
          peer.publish(`${action}/request/${server.id}`, Buffer.concat([Buffer.from(header), Buffer.from([0x0a]), body]), { qos: 1 });
        };
        const truncated = sealedFor('truncated');
        send('truncated', truncated.seal, Buffer.from(truncated.body).subarray(0, truncated.body.length - 5));
        const forged = sealedFor('forged');
        send('forged', { ...forged.seal, alg: 'none' }, Buffer.from(forged.body));
        const moved = sealedFor('elsewhere');
        send('moved', moved.seal, Buffer.from(moved.body));
        const oversized = sealedFor('oversized');
        const to = Array.from({ length: 65 }, (_, n) => ({ kid: n.toString(16).padStart(16, '0'), key: oversized.seal.to[0]!.key }));
        send('oversized', { ...oversized.seal, to }, Buffer.from(oversized.body));
        const expected: Record<string, RegExp> = {
          truncated: /undecryptable/,
          forged: /malformed: field 'seal.alg'/,
          moved: /undecryptable/,
          oversized: /malformed: field 'seal.to' lists 65 recipients, over the limit of 64/,
        };
        await within(
          (async () => {
            while (Object.keys(expected).some((token) => !answers.has(token))) await new Promise((resolve) => peer.once('message', resolve));
          })(),
          10_000,
          'an answer to each hostile command',
        );
        for (const [token, why] of Object.entries(expected)) {
          const answer = answers.get(token)!;
          assert.equal(answer.code, 2, token);
          assert.equal(answer.seal, undefined, 'the refusal is not sealed');
          assert.match((answer.error as { message: string }).message, why, token);
        }
        assert.equal(runs, 0);
        assert.deepEqual(server.sealing.refused, { 'not-for-me': 0, malformed: 2, undecryptable: 2 });
        // Still serving.
        const client = await connectAs('alice');
        await client.waitForHandler(action, { timeout: 10_000 });
        assert.equal(await client.request(action, {}, { seal: true }), 1);
      } finally {
        await peer.endAsync();
      }
    });
  });
}

sealedContract('aedes', false);
sealedContract('mosquitto', peerGate('mosquitto', 'sealed payloads on Mosquitto').skip);
