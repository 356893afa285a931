/**
 * A plain MQTT peer (mosquitto_pub / mosquitto_sub, no Relais code) talks to a library
 * handler with the PSEC message shape (DESIGN.md "Wire contract").
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { findBinary, peerGate, setup, uniqueId, type BrokerKind, type Kit } from '../testkit/index.js';

const gate = peerGate('mosquitto_pub', 'the mosquitto_pub/mosquitto_sub interop tests');
const kinds: BrokerKind[] = gate.run && !findBinary('mosquitto') ? ['aedes'] : ['aedes', 'mosquitto'];

for (const kind of kinds) {
  describe(`interop with mosquitto_pub/mosquitto_sub on ${kind}`, { skip: gate.skip, timeout: 30_000 }, () => {
    let kit: Kit;
    before(async () => {
      kit = await setup(kind);
    });
    after(async () => kit?.cleanup());

    it('interop - a mosquitto_pub command reaches a library handler; mosquitto_sub sees the answer with token t1', async () => {
      const server = await kit.connect(uniqueId('echo'));
      await server.handle('system/demo/echo', (payload) => payload);
      const lines = await exchange(kit.broker.url, 'system/demo/echo/response/vm-x', 'system/demo/echo/request', '{"type":"command","source":"vm-x","destination":"*","token":"t1","payload":{"a":1}}');
      assert.equal(lines.length, 1, lines.join('\n'));
      const response = JSON.parse(lines[0]!);
      assert.equal(response.type, 'response');
      assert.equal(response.token, 't1');
      assert.equal(response.code, 0);
      assert.equal(response.final, true);
      assert.equal(response.source, server.id);
      assert.equal(response.destination, 'vm-x');
      assert.deepEqual(response.payload, { a: 1 });
    });

    it('interop - a plain mosquitto_pub command to a handler that takes its time gets one response, the final: no acknowledgement it did not ask for', async () => {
      const server = await kit.connect(uniqueId('slow'));
      await server.handle('system/demo/slow', async (payload) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return payload;
      });
      const lines = await exchange(kit.broker.url, 'system/demo/slow/response/vm-y', `system/demo/slow/request/${server.id}`, '{"type":"command","source":"vm-y","destination":"*","token":"t2","payload":{"b":2}}');
      assert.equal(lines.length, 1, lines.join('\n'));
      const response = JSON.parse(lines[0]!);
      assert.equal(response.final, true, `the first response is the final one: ${lines[0]}`);
      assert.deepEqual(response.payload, { b: 2 });
    });
  });
}

/**
 * `mosquitto_sub -C 1` on `responses`, then `mosquitto_pub -q 1` of `command` on `topic` once
 * it has subscribed: the JSON lines the subscriber printed (the first message only).
 */
async function exchange(url: string, responses: string, topic: string, command: string): Promise<string[]> {
  const port = new URL(url).port;
  // stdbuf: mosquitto_sub block-buffers a piped stdout, which would hide its SUBACK line.
  const sub = spawn('stdbuf', ['-oL', findBinary('mosquitto_sub')!, '-h', '127.0.0.1', '-p', port, '-t', responses, '-C', '1', '-W', '10', '-d'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const answer = new Promise<string>((resolve) => {
    let text = '';
    sub.stdout.on('data', (chunk: Buffer) => (text += chunk));
    sub.on('close', () => resolve(text));
  });
  // -d prints "received SUBACK" once subscribed: only then is the command sent.
  await waitForSuback(sub);
  const pub = spawn(findBinary('mosquitto_pub')!, ['-h', '127.0.0.1', '-p', port, '-q', '1', '-t', topic, '-m', command]);
  assert.equal(await new Promise((resolve) => pub.on('close', resolve)), 0);
  return (await answer).split('\n').filter((line) => line.startsWith('{'));
}

function waitForSuback(child: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`mosquitto_sub did not subscribe: ${seen}`)), 10_000);
    child.stdout!.on('data', function onData(chunk: Buffer) {
      seen += chunk;
      if (/received SUBACK/.test(seen)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve();
      }
    });
  });
}

