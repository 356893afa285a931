/**
 * Random bytes and random JSON published on every topic a client listens to never crash
 * it and never stop it from serving (protocol §5.2).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import mqtt from 'mqtt';
import { setup, uniqueId, type Kit } from '../testkit/index.js';

describe('fuzz - a live client under random input', { timeout: 60_000 }, () => {
  let kit: Kit;
  before(async () => {
    kit = await setup('aedes');
  });
  after(async () => kit?.cleanup());

  it('fuzz - random bytes and JSON on request, response, cancel, presence and subscribed topics leave the client serving', async () => {
    const server = await kit.connect(uniqueId('server'));
    const client = await kit.connect(uniqueId('client'));
    await server.handle('fuzz/echo', (payload) => payload);
    await client.waitForHandler('fuzz/echo');
    const seen: unknown[] = [];
    await client.subscribe('fuzz/#', (message) => seen.push(message.envelope.type));
    assert.deepEqual(await client.request('fuzz/echo', { n: 0 }), { n: 0 });
    const raw = await mqtt.connectAsync(kit.broker.url, { clientId: uniqueId('raw'), protocolVersion: 4 });
    const topics = [
      'fuzz/echo/request',
      `fuzz/echo/request/${server.id}`,
      `fuzz/echo/response/${client.id}`,
      'fuzz/echo/cancel',
      `relais/presence/${uniqueId('ghost')}`,
      'fuzz/other/notification',
    ];
    const envelopeLike = fc.record({
      type: fc.oneof(fc.constantFrom('command', 'response', 'cancel', 'notification', 'log'), fc.jsonValue()),
      source: fc.oneof(fc.constant('vm-fuzz'), fc.jsonValue()),
      destination: fc.oneof(fc.constant('*'), fc.jsonValue()),
      token: fc.oneof(fc.string(), fc.jsonValue()),
      payload: fc.jsonValue(),
      code: fc.oneof(fc.integer(), fc.jsonValue()),
      final: fc.oneof(fc.boolean(), fc.jsonValue()),
      progress: fc.oneof(fc.double(), fc.jsonValue()),
      deadline: fc.oneof(fc.integer(), fc.jsonValue()),
    }, { requiredKeys: [] });
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
      fc.jsonValue().map((value) => JSON.stringify(value) ?? 'null'),
      envelopeLike.map((value) => JSON.stringify(value)),
    );
    const samples = fc.sample(fc.tuple(fc.constantFrom(...topics), body), { numRuns: 400, seed: 20261122 });
    try {
      for (const [topic, payload] of samples) await raw.publishAsync(topic, payload, { qos: 1 });
    } finally {
      await raw.endAsync();
    }
    // Same connection, QoS 1: once this answer is back, every sample before it was processed.
    assert.deepEqual(await client.request('fuzz/echo', { n: 1 }), { n: 1 });
    assert.ok(server.connected && client.connected);
    assert.ok(seen.length > 0, 'valid envelopes among the samples reached the subscriber');
  });
});
