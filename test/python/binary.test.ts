/**
 * Bytes payloads across languages (protocol §3.5) on Mosquitto, every message signed and every
 * signature required on both sides (§12.2: a binary message's signature covers its body): a
 * Python handler called by the TypeScript library with bytes, a TypeScript handler called from
 * Python with bytes (progress and final as bytes both ways), notifications of bytes both ways,
 * with paho 1.6 and paho 2.x. Bytes cross the peer's JSON lines as `{"$bytes": <base64>}`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bus } from '../../src/index.js';
import { generateSigningKey, loadSigningKeys, readPrivateKey } from '../../src/security/signing-keys.js';
import { peerGate, setup, subscribedForNext, uniqueId, type Kit } from '../testkit/index.js';
import { PAHO_VERSIONS, pythonGate, startPythonPeer, stopPythonPeers } from '../testkit/python.js';

const mosquitto = peerGate('mosquitto', 'the cross-language bytes tests');
const python = mosquitto.run ? pythonGate('the cross-language bytes tests') : { skip: false as const };

/** Every byte value, LFs, NULs and a header-looking part among them. */
const ALL_BYTES = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from('\n{"body":3}\n\0')]);
const lines = (bytes: Uint8Array) => ({ $bytes: Buffer.from(bytes).toString('base64') });

describe('Python client with bytes payloads, signed', { skip: mosquitto.skip || python.skip, timeout: 300_000 }, () => {
  let kit: Kit;
  let dir: string;
  let keysFile: string;
  let keysDir: string;
  let ts: Bus;
  const tsId = uniqueId('ts-bin');
  before(async () => {
    kit = await setup('mosquitto');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-py-bin-'));
    keysFile = path.join(dir, 'signing-keys.json');
    keysDir = path.join(dir, 'keys');
    generateSigningKey(keysFile, tsId, keysDir);
    for (const version of PAHO_VERSIONS) generateSigningKey(keysFile, `py${version}-bin`, keysDir);
    ts = await kit.connect(tsId, { signing: { privateKey: readPrivateKey(path.join(keysDir, `${tsId}.key`)) }, verify: { keys: loadSigningKeys(keysFile) } });
  });
  after(async () => {
    await stopPythonPeers();
    await kit?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const version of PAHO_VERSIONS) {
    it(`bytes (paho ${version}) - a Python handler called by the TypeScript library, a TypeScript handler called from Python, notifications both ways, all signed`, { skip: pythonGate(`the cross-language bytes tests with paho ${version}.x`, version).skip }, async () => {
      const pyId = `py${version}-bin`;
      const peer = await startPythonPeer({ id: pyId, broker: kit.broker.url, signing_key: path.join(keysDir, `${pyId}.key`), trusted_keys: keysFile }, version);

      // Python handler, TypeScript requester.
      const pyAction = `bin${version}/py/reverse`;
      await peer.send('serve', { action: pyAction, behaviour: 'reverse' });
      await ts.waitForHandler(pyAction, { target: peer.id, timeout: 15_000 });
      const token = uniqueId('bin');
      const steps: Array<[string, unknown]> = [];
      for await (const step of ts.call(pyAction, ALL_BYTES, { token, timeout: 15_000 })) {
        if (step.kind !== 'accepted') steps.push([step.kind, step.payload]);
      }
      assert.deepEqual(steps, [['progress', ALL_BYTES.subarray(0, 3)], ['final', Buffer.from(ALL_BYTES).reverse()]]);
      const run = await peer.next((line) => line.event === 'run' && line.token === token, 'the Python handler run');
      assert.deepEqual([run.type, run.payload], ['bytes', lines(ALL_BYTES)]);

      // TypeScript handler, Python requester.
      const tsAction = `bin${version}/ts/append`;
      const received: unknown[] = [];
      await ts.handle(tsAction, async (payload: Uint8Array, ctx) => {
        received.push(payload);
        await ctx.progress(0.5, payload.subarray(0, 2));
        return Buffer.concat([payload, Buffer.from([0, 10, 0xff])]);
      });
      await peer.send('wait_for_handler', { action: tsAction, options: { timeout: 15 } });
      const pySteps = await peer.send<Array<{ kind: string; payload: unknown }>>('call', { action: tsAction, payload: lines(ALL_BYTES), options: { timeout: 15 } });
      assert.deepEqual(pySteps.filter((step) => step.kind !== 'accepted').map((step) => [step.kind, step.payload]),
        [['progress', lines(ALL_BYTES.subarray(0, 2))], ['final', lines(Buffer.concat([ALL_BYTES, Buffer.from([0, 10, 0xff])]))]]);
      assert.equal(received.length, 1);
      assert.ok(received[0] instanceof Uint8Array);
      assert.deepEqual(Buffer.from(received[0] as Uint8Array), ALL_BYTES);

      // Notifications of bytes both ways.
      const { arrived } = await subscribedForNext(ts, `bin${version}/cam/+/notification`);
      await peer.send('notify', { category: `bin${version}/cam/py`, payload: lines(Buffer.from([0, 10, 0xff])) });
      const message = await arrived;
      assert.equal(message.envelope.source, peer.id);
      assert.deepEqual(Buffer.from(message.envelope.payload as Uint8Array), Buffer.from([0, 10, 0xff]));
      const subscription = peer.start('subscribe', { filter: `bin${version}/door/#` });
      await peer.next((line) => line.event === 'subscribed' && line.sub === subscription, 'the Python subscription in place');
      ts.notify(`bin${version}/door`, Buffer.from('\n\0ts'));
      const got = await peer.next((line) => line.event === 'message' && line.sub === subscription, 'the notification on the Python side');
      assert.deepEqual([got.source, got.payload], [ts.id, lines(Buffer.from('\n\0ts'))]);

      // Nothing was refused on either side, and signed binary messages were verified on both.
      const pySignatures = await peer.send<{ verified: number; refused: Record<string, number> }>('signatures');
      assert.deepEqual(Object.values(pySignatures.refused).filter((count) => count > 0), [], JSON.stringify(pySignatures.refused));
      assert.ok(pySignatures.verified >= 4, `the Python side verified ${pySignatures.verified}`);
      assert.deepEqual(Object.values(ts.signatures.refused ?? {}).filter((count) => count > 0), [], JSON.stringify(ts.signatures.refused));
      await peer.stop();
    });
  }
});
