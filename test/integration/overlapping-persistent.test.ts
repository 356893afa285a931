/**
 * The embedded broker and a persistent session (clean: false) whose subscriptions overlap, as
 * the router's do (`#` and `relais/presence/+`): Aedes queues such a message once per matching
 * subscription and delivers one copy; clearing the others must not take another message's place
 * in the queue, which dropped the connection ('no such packet'; src/broker/refused-copies.ts).
 * Checked with MQTT.js as a standard client, and with the router itself.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import pino from 'pino';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startRouter } from '../../src/router/index.js';
import { uniqueId, within } from '../testkit/index.js';

describe('embedded broker - a persistent session with overlapping subscriptions', { timeout: 60_000 }, () => {
  let broker: EmbeddedBroker;
  const drops: string[] = [];
  before(async () => {
    broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1', log: () => {} });
    broker.aedes.on('clientError', (client, error) => drops.push(`${client?.id}: ${error.message}`));
  });
  after(async () => {
    await broker?.close();
  });

  it('overlapping - a standard client with clean: false and two filters matching each message keeps its connection and gets every message', async () => {
    const id = uniqueId('persistent');
    const subscriber = await mqtt.connectAsync(broker.url!, { clientId: id, clean: false, protocolVersion: 4, reconnectPeriod: 0 });
    const publisher = await mqtt.connectAsync(broker.url!, { clientId: uniqueId('publisher'), protocolVersion: 4 });
    try {
      let closed = false;
      subscriber.on('close', () => (closed = true));
      const received = new Set<string>();
      const all = new Promise<void>((resolve) =>
        subscriber.on('message', (topic) => {
          received.add(topic);
          if (received.size === 300) resolve();
        }),
      );
      await subscriber.subscribeAsync({ 'lab/#': { qos: 1 }, 'lab/+': { qos: 1 } });
      // Many at once, so that copies of several messages wait in the queue together.
      await Promise.all(Array.from({ length: 300 }, (_, n) => publisher.publishAsync(`lab/${n}`, 'x', { qos: 1 })));
      await within(all, 20_000, 'every message at the subscriber');
      assert.equal(closed, false, `the connection stayed up (${drops.join('; ')})`);
      assert.deepEqual(drops.filter((drop) => drop.startsWith(id)), []);
    } finally {
      await publisher.endAsync();
      await subscriber.endAsync();
    }
  });

  it('overlapping - the router (a persistent session on # and the presences) does not lose its connection as it starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-overlap-'));
    const lost: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void (line.includes('connection lost') && lost.push(line)) });
    const id = uniqueId('router');
    const router = await startRouter({ broker: broker.url!, database: join(dir, 'history.db'), id, logger });
    try {
      // The registry's first notifications and the presences cross its subscriptions as it starts.
      const client = await mqtt.connectAsync(broker.url!, { clientId: uniqueId('standard'), protocolVersion: 4 });
      await client.subscribeAsync('relais/clients/#', { qos: 1 });
      await within(new Promise((resolve) => client.once('message', resolve)), 10_000, 'a registry notification');
      await client.endAsync();
      assert.deepEqual(lost, []);
      assert.deepEqual(drops.filter((drop) => drop.startsWith(id)), []);
    } finally {
      await router.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
