/**
 * Signed envelopes end to end (protocol §12): a requester and a handler that both
 * sign and require signatures, on the embedded broker and on Mosquitto (which cannot check an
 * envelope's source), while a raw MQTT.js client forges, replays and sends stale messages.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { connect, NoHandlerError, type Bus, type Refusal } from '../../src/index.js';
import { encode } from '../../src/protocol/envelope.js';
import { commandMessage, responseMessage } from '../../src/protocol/messages.js';
import { keyIdOf, signBody } from '../../src/security/ed25519.js';
import { generateSigningKey, loadSigningKeys, readPrivateKey } from '../../src/security/signing-keys.js';
import { peerGate, recordingLogger, startBroker, uniqueId, waitFor, within, type BrokerKind, type TestBroker } from '../testkit/index.js';

const ACTION = 'demo/signed';

for (const kind of ['aedes', 'mosquitto'] as BrokerKind[]) {
  const skip = kind === 'mosquitto' ? peerGate('mosquitto', 'signed envelopes on Mosquitto').skip : false;
  describe(`signed envelopes on ${kind}`, { skip, timeout: 60_000 }, () => {
    let dir: string;
    let broker: TestBroker;
    let requester: Bus;
    let handler: Bus;
    let attacker: MqttClient;
    const requesterLog = recordingLogger();
    const handlerLog = recordingLogger();
    const requesterId = uniqueId('req');
    const handlerId = uniqueId('hdl');
    const refusedAtRequester: Refusal[] = [];
    const refusedAtHandler: Refusal[] = [];
    /** Every message seen on the action's response topics, as written on the wire. */
    const captured: Array<{ topic: string; text: string }> = [];
    /** Emits `captured` for each of them. */
    const wire = new EventEmitter();
    let handlerRuns = 0;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-signing-'));
      const keysFile = path.join(dir, 'signing-keys.json');
      const keysDir = path.join(dir, 'keys');
      generateSigningKey(keysFile, requesterId, keysDir);
      generateSigningKey(keysFile, handlerId, keysDir);
      // Mallory has a registered key of her own: it signs for mallory, not for the handler.
      generateSigningKey(keysFile, 'mallory', keysDir);
      const keys = loadSigningKeys(keysFile);
      broker = await startBroker(kind);
      const signed = (id: string) => ({ signing: { privateKey: readPrivateKey(path.join(keysDir, `${id}.key`)) }, verify: { keys } });
      handler = await connect({ id: handlerId, broker: broker.url, logger: handlerLog.logger, ...signed(handlerId) });
      handler.on('refused', (refusal) => refusedAtHandler.push(refusal));
      await handler.handle(ACTION, async (payload: { n: number }, ctx) => {
        handlerRuns += 1;
        ctx.progress(0.5, { step: 'genuine progress' });
        if (payload.n === 2) await released;
        return { genuine: payload.n };
      });
      requester = await connect({ id: requesterId, broker: broker.url, logger: requesterLog.logger, ...signed(requesterId) });
      requester.on('refused', (refusal) => refusedAtRequester.push(refusal));
      await requester.waitForHandler(ACTION, { timeout: 10_000 });
      attacker = await mqtt.connectAsync(broker.url, { clientId: uniqueId('mallory'), protocolVersion: 4, reconnectPeriod: 0 });
      attacker.on('message', (topic, payload) => {
        captured.push({ topic, text: payload.toString() });
        wire.emit('captured');
      });
      await attacker.subscribeAsync(`${ACTION}/response/+`, { qos: 1 });
    });
    after(async () => {
      release();
      await requester?.close();
      await handler?.close();
      await attacker?.endAsync(true);
      await broker?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it(`signing on ${kind} - a requester and a handler that require signatures serve a request end to end`, async () => {
      assert.deepEqual(await requester.request(ACTION, { n: 1 }, { timeout: 10_000 }), { genuine: 1 });
      assert.equal(refusedAtRequester.length, 0, JSON.stringify(refusedAtRequester));
      assert.equal(refusedAtHandler.length, 0, JSON.stringify(refusedAtHandler));
      assert.ok((requester.signatures.verified ?? 0) > 0 && (handler.signatures.verified ?? 0) > 0);
      // The attacker's copy of the final may come after the requester's.
      const final = await waitFor(() => captured.find(({ text }) => text.includes('"genuine":1')), wire, 'captured');
      assert.ok(final.text.includes(`"sig":{"kid":"${handler.signatures.kid}"`), 'what the handler writes is signed');
    });

    it(`signing on ${kind} - a forged, a replayed and a stale final are refused and logged; the genuine result still comes`, async () => {
      const responseTo = `${ACTION}/response/${requesterId}`;
      const earlierFinal = captured.find(({ topic, text }) => topic === responseTo && text.includes('"genuine":1'));
      assert.ok(earlierFinal, 'the first request left a genuine final to replay');
      const pending = requester.request<{ genuine: number }>(ACTION, { n: 2 }, { timeout: 15_000 });
      // The handler has taken the command and sent its progress: its token is on the wire.
      const progress = await waitFor(() => captured.find(({ text }) => text.includes('genuine progress')), wire, 'captured');
      const token = (JSON.parse(progress.text) as { token: string }).token;
      const forgedFinal = encode(responseMessage({ source: handlerId, destination: requesterId, token, priority: 'normal' }, { step: 'result', payload: { genuine: 666 } }));
      const mallory = readPrivateKey(path.join(dir, 'keys', 'mallory.key'));
      const handlerKey = readPrivateKey(path.join(dir, 'keys', `${handlerId}.key`));
      const header = (ts: number) => ({ kid: keyIdOf(handlerKey), boot: 'feedfacefeedface', seq: 1, ts });
      const attacks: Array<[string, string]> = [
        ['unsigned', forgedFinal],
        ['wrong-identity', signBody(responseTo, forgedFinal, { ...header(Date.now()), kid: keyIdOf(mallory) }, mallory)],
        ['forged', signBody(responseTo, forgedFinal.replace('666', '667'), header(Date.now()), handlerKey).replace('667', '666')],
        ['replayed', progress.text],
        ['replayed', earlierFinal.text],
        // As if captured long ago: signed by the handler's own key, two minutes old.
        ['stale', signBody(responseTo, forgedFinal, header(Date.now() - 120_000), handlerKey)],
      ];
      for (const [, text] of attacks) await attacker.publishAsync(responseTo, text, { qos: 1 });
      await waitFor(() => (refusedAtRequester.length >= attacks.length ? true : undefined), requester, 'refused', 10_000);
      assert.deepEqual(refusedAtRequester.map((refusal) => refusal.reason), attacks.map(([reason]) => reason));
      assert.ok(refusedAtRequester.every((refusal) => refusal.source === handlerId && refusal.topic === responseTo));
      const warnings = requesterLog.records().filter((record) => record.msg?.toString().startsWith('message refused'));
      assert.equal(warnings.length, attacks.length);
      assert.deepEqual(warnings.map((record) => [record.reason, record.source, record.topic]), attacks.map(([reason]) => [reason, handlerId, responseTo]));
      assert.ok(!requesterLog.lines.some((line) => line.includes('666')), 'no payload in a log line');
      assert.equal(requester.signatures.refused?.replayed, 2);
      release();
      assert.deepEqual(await within(pending, 15_000, 'the genuine answer'), { genuine: 2 });
    });

    it(`signing on ${kind} - a handler that requires signatures does not run an unsigned or forged command`, async () => {
      const runsBefore = handlerRuns;
      const requestTopic = `${ACTION}/request/${handlerId}`;
      const command = encode(commandMessage({ source: requesterId, destination: handlerId, token: 'forged-1', payload: { n: 3 }, priority: 'normal', deadline: Date.now() + 10_000 }));
      const mallory = readPrivateKey(path.join(dir, 'keys', 'mallory.key'));
      await attacker.publishAsync(requestTopic, command, { qos: 1 });
      await attacker.publishAsync(requestTopic, signBody(requestTopic, command, { kid: keyIdOf(mallory), boot: 'feedfacefeedface', seq: 2, ts: Date.now() }, mallory), { qos: 1 });
      await waitFor(() => (refusedAtHandler.length >= 2 ? true : undefined), handler, 'refused', 10_000);
      assert.deepEqual(refusedAtHandler.map((refusal) => refusal.reason), ['unsigned', 'wrong-identity']);
      assert.equal(handlerRuns, runsBefore, 'the handler did not run');
      // The handler still serves genuine requests afterwards.
      assert.deepEqual(await requester.request(ACTION, { n: 4 }, { timeout: 10_000 }), { genuine: 4 });
      assert.equal(handlerRuns, runsBefore + 1);
    });

    it(`signing on ${kind} - an unsigned handler is not believed by a verifying requester, whose "no handler" error says why`, async () => {
      const unsignedId = uniqueId('unsigned');
      const unsigned = await connect({ id: unsignedId, broker: broker.url, logger: handlerLog.logger });
      try {
        await unsigned.handle('demo/unsigned', () => ({ read: true }));
        await waitFor(() => (requester.directory.refusedBecause(unsignedId) ? true : undefined), requester, 'refused', 10_000);
        await assert.rejects(requester.request('demo/unsigned', {}, { target: unsignedId, timeout: 5000 }), (error: unknown) => {
          assert.ok(error instanceof NoHandlerError, String(error));
          assert.match(error.message, new RegExp(`target ${unsignedId} is not known: its presence was refused \\(unsigned\\), and this client verifies signatures`));
          return true;
        });
        await assert.rejects(requester.request('demo/unsigned', {}, { timeout: 5000 }), (error: unknown) => {
          assert.ok(error instanceof NoHandlerError, String(error));
          assert.match(error.message, new RegExp(`no connected client serves demo/unsigned \\(this client verifies signatures and refused the presences of .*${unsignedId} \\(unsigned\\)`));
          return true;
        });
      } finally {
        await unsigned.close();
      }
    });
  });
}
