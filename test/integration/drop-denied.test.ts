/**
 * What src/broker/drop-denied.ts relies on Aedes for, checked on a bare Aedes whose
 * `authorizePublish` empties the packets it refuses (as the embedded broker's security does):
 * the PUBLISH is acknowledged and the connection kept, and the message reaches no subscriber
 * (`#`, `+/...`, its own topic), no offline session, and no later subscriber as a retained
 * message. An Aedes that changes any of this fails here before a refused message is delivered
 * or a refusal drops a connection. Real sockets, MQTT.js.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { DROPPED_TOPIC, emptyForDrop, readsDropped } from '../../src/broker/drop-denied.js';
import { uniqueId, within } from '../testkit/index.js';

describe('a refused PUBLISH emptied by authorizePublish (drop-denied.ts) on Aedes itself', { timeout: 60_000 }, () => {
  let aedes: Aedes;
  let server: net.Server;
  let url: string;
  const clients: MqttClient[] = [];
  const published: string[] = [];

  before(async () => {
    aedes = await Aedes.createBroker({
      authorizePublish: (_client, packet, done) => {
        if (packet.topic.startsWith('denied/')) emptyForDrop(packet);
        done(null);
      },
    });
    aedes.on('publish', (packet, client) => client && published.push(packet.topic));
    server = net.createServer((socket) => aedes.handle(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true)));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const client = async (options: mqtt.IClientOptions = {}) => {
    const made = await mqtt.connectAsync(url, { clientId: uniqueId('drop'), protocolVersion: 4, reconnectPeriod: 0, ...options });
    clients.push(made);
    return made;
  };
  /** Every message `reader` gets, and a wait for one on `topic`. */
  const inbox = (reader: MqttClient) => {
    const seen: Array<{ topic: string; payload: string; retain: boolean }> = [];
    reader.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString(), retain: packet.retain }));
    const next = (topic: string) =>
      within(
        new Promise<void>((resolve) => {
          const look = () => {
            if (!seen.some((message) => message.topic === topic)) return;
            reader.off('message', look);
            resolve();
          };
          reader.on('message', look);
          look();
        }),
        5000,
        `a message on ${topic}`,
      );
    return { seen, next };
  };

  it('QoS 0 and 1 - acknowledged, the connection kept, delivered to no live subscriber (#, +/x, its own topic); the next message is', async () => {
    const reader = await client();
    const box = inbox(reader);
    await reader.subscribeAsync(['#', '+/x', 'denied/x', 'allowed/x'], { qos: 1 });
    const sender = await client();
    await sender.publishAsync('denied/x', 'secret-0', { qos: 0 });
    await sender.publishAsync('denied/x', 'secret-1', { qos: 1 }); // resolves on the PUBACK
    await sender.publishAsync('allowed/x', 'after', { qos: 1 });
    await box.next('allowed/x');
    assert.ok(sender.connected, 'the sender is still connected');
    assert.deepEqual(box.seen.filter((message) => message.topic !== 'allowed/x'), [], 'nothing refused was delivered');
    assert.ok(published.includes(DROPPED_TOPIC) && !published.includes('denied/x'), `Aedes published the emptied packet, not the refused one: ${published.join(', ')}`);
  });

  it('QoS 1 to an offline persistent session subscribed to #: nothing queued for it', async () => {
    const id = uniqueId('offline');
    const first = await client({ clientId: id, clean: false });
    await first.subscribeAsync('#', { qos: 1 });
    await first.endAsync();
    const sender = await client();
    await sender.publishAsync('denied/y', 'secret', { qos: 1 });
    await sender.publishAsync('allowed/y', 'after', { qos: 1 });
    // Back: Aedes replays its queue in order, so the allowed message comes after anything queued before it.
    const again = mqtt.connect(url, { clientId: id, clean: false, protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(again);
    const box = inbox(again); // listening before the CONNACK, after which the queue comes
    await box.next('allowed/y');
    assert.deepEqual(box.seen.map((message) => message.topic), ['allowed/y']);
  });

  it('retained: not stored, so a later subscriber gets no retained message for it (not even on the dropped topic)', async () => {
    const sender = await client();
    await sender.publishAsync('denied/r', 'secret', { qos: 1, retain: true });
    await sender.publishAsync('allowed/r', 'kept', { qos: 1, retain: true });
    const late = await client();
    const box = inbox(late);
    await late.subscribeAsync(['denied/r', '$SYS/+/dropped', 'allowed/r', '#'], { qos: 1 });
    await box.next('allowed/r');
    assert.deepEqual([...new Set(box.seen.map((message) => message.topic))], ['allowed/r']);
  });

  it('readsDropped - only filters that name $SYS and match the dropped topic (a leading wildcard never matches a $ topic)', async () => {
    for (const filter of ['$SYS/#', '$SYS/+/+', '$SYS/relais/#', '$SYS/+/dropped', DROPPED_TOPIC]) assert.equal(readsDropped(filter), true, filter);
    for (const filter of ['#', '+/relais/dropped', '$SYS/+/heartbeat', '$SYS/relais', '$SYS/relais/dropped/x', 'denied/#']) assert.equal(readsDropped(filter), false, filter);
    // What Aedes does with such a filter: it would read it (hence the refusal in the broker's hook).
    const reader = await client();
    const box = inbox(reader);
    await reader.subscribeAsync('$SYS/+/dropped', { qos: 0 });
    const sender = await client();
    await sender.publishAsync('denied/z', 'secret', { qos: 1 });
    await box.next(DROPPED_TOPIC);
    assert.deepEqual(box.seen.map(({ topic, payload, retain }) => ({ topic, payload, retain })), [{ topic: DROPPED_TOPIC, payload: '', retain: false }], 'emptied: only the fact of a refusal');
  });
});
