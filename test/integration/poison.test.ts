/**
 * A packet the broker refuses by dropping the connection must not keep the client off the
 * bus (protocol §1.4): MQTT.js sends an unacknowledged QoS 1 message, and the library makes
 * its subscriptions again, first thing after every reconnection. Brokers that drop instead
 * of answering: Aedes when an authorisation hook fails, the NATS gateway for topics it cannot
 * map (a space). The library gives such a packet up after two drops, says so, and carries on.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { connect, NotSentError, type Bus } from '../../src/index.js';
import { peerGate, recordingLogger, uniqueId, type TestBroker } from '../testkit/index.js';
import { startNats } from '../testkit/nats.js';
import { startHookedAedes, type HookedAedes } from '../testkit/hooked-aedes.js';

const fast = { reconnectDelay: 20, reconnectMaxDelay: 200 };

/** Serves demo/alive on `server`; resolves once `bus` can reach it, proving `bus` is back on the bus. */
async function stillServes(bus: Bus, server: Bus): Promise<void> {
  await bus.waitForHandler('demo/alive', { timeout: 5000 });
  assert.equal(await bus.request('demo/alive', { from: bus.id }, { timeout: 5000 }), `hello ${bus.id}`);
  assert.equal(await server.request('demo/alive', { from: server.id }, { timeout: 5000 }), `hello ${server.id}`);
}

describe('poison - on an Aedes that drops connections to refuse', { timeout: 60_000 }, () => {
  let broker: HookedAedes;
  let server: Bus;
  before(async () => {
    broker = await startHookedAedes({ refuse: (topic) => topic.startsWith('forbidden/') });
    server = await broker.join(uniqueId('server'));
    await server.handle('demo/alive', (payload: { from: string }) => `hello ${payload.from}`);
  });
  after(async () => {
    await broker?.close();
  });

  it('poison - a QoS 1 message the broker refuses is given up after two drops; the client comes back, says so and still works', async () => {
    const { logger, records } = recordingLogger();
    const bus = await broker.join(uniqueId('publisher'), { logger });
    let offline = 0;
    bus.on('offline', () => (offline += 1));
    bus.publish('forbidden/topic', { secret: 'nope' });
    await once(bus, 'offline');
    // Back for good: the second drop gives the message up, the third connection stays.
    await stillServes(bus, server);
    const givenUp = records().find((record) => /given up so that it cannot keep the client off the broker/.test(String(record.msg)));
    assert.equal(givenUp?.topic, 'forbidden/topic', 'the warning names the refused topic');
    // Two drops, one outage: the second came while the message was sent again, before the
    // connection was back; the third connection holds.
    assert.equal(offline, 1);
    assert.equal(broker.connections.get(bus.id), 3);
    assert.equal(bus.connected, true);
  });

  it('poison - a subscription the broker refuses by dropping the connection ends with NotSentError after two drops; handle() too', async () => {
    const bus = await broker.join(uniqueId('subscriber'));
    await assert.rejects(bus.subscribe('forbidden/#'), (error: unknown) => error instanceof NotSentError && /dropped the connection 2 times when subscribing to forbidden\/#/.test(error.message));
    await assert.rejects(bus.handle('forbidden/action', () => 'never'), NotSentError);
    await stillServes(bus, server);
    // Each refusal costs at most three drops (one, then two with the filter alone in flight), then none.
    const connections = broker.connections.get(bus.id) ?? 0;
    assert.ok(connections >= 4 && connections <= 7, `connections: ${connections}`);
  });
});

const nats = peerGate('nats-server', 'the poisoned-topic test on the NATS MQTT gateway');

describe('poison - on the NATS MQTT gateway', { skip: nats.skip, timeout: 60_000 }, () => {
  let broker: TestBroker;
  const clients: Bus[] = [];
  before(async () => {
    broker = await startNats();
  });
  after(async () => {
    await Promise.all(clients.map((bus) => bus.close()));
    await broker?.close();
  });

  it('poison - a topic the gateway cannot map (a space) costs two reconnections, not the client', async () => {
    const server = await connect({ id: uniqueId('server'), broker: broker.url, logger: recordingLogger().logger });
    clients.push(server);
    await server.handle('demo/alive', (payload: { from: string }) => `hello ${payload.from}`);
    const { logger, records } = recordingLogger();
    const bus = await connect({ id: uniqueId('publisher'), broker: broker.url, logger, ...fast });
    clients.push(bus);
    // MQTT allows spaces in a topic (so the library does); the NATS gateway drops the connection.
    bus.publish('sensors/Field Devices/temp', { celsius: 21 });
    await once(bus, 'offline');
    await stillServes(bus, server);
    assert.equal(bus.connected, true);
    const givenUp = records().find((record) => /given up so that it cannot keep the client off the broker/.test(String(record.msg)));
    assert.equal(givenUp?.topic, 'sensors/Field Devices/temp', 'the warning names the refused topic');
    assert.match(String(givenUp?.msg), /dropped the connection 2 times/);
  });
});
