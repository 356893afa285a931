/**
 * A client given several broker URLs (protocol §1.3, "Several brokers"), on real Mosquitto
 * processes stopped as a crash would (SIGKILL): the first connection passes over a dead URL,
 * a client whose broker dies moves to the next one with its subscriptions, handlers,
 * presence (retained there, its Last Will armed there) and real-time lane, a request under
 * way ends, every URL dead fails naming each, a refusal of the credentials is not hidden
 * behind the next URL, and no password shows in an error or a log line. The brokers are
 * independent (not a cluster): what the client does is the same, and what reaches it proves
 * which broker it is on.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { connect, HandlerGoneError, NotAuthorizedError, NotSentError, type Bus, type ReceivedMessage } from '../../src/index.js';
import { freePort, recordingLogger, startMosquitto, SUITE_TIMEOUT, testLogger, uniqueId, within, type TestBroker } from '../testkit/index.js';
import { startSecureBroker } from '../testkit/secure-broker.js';
import { runCli } from '../testkit/cli.js';

const PASSWORD = 's3cret-Pa55';
/** How long a move may take at most here: a generous bound on a busy machine, not the measure (reconnectMaxDelay is 500 ms). */
const MOVE_TIMEOUT = 20_000;
const FAST = { reconnectDelay: 50, reconnectMaxDelay: 500, connectTimeout: 3000 };

/** A URL nothing listens on. */
async function deadUrl(userinfo = ''): Promise<string> {
  return `mqtt://${userinfo}127.0.0.1:${await freePort()}`;
}

/** A raw MQTT client on one broker: what is retained there, and what its clients publish. */
async function rawClient(url: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clientId: uniqueId('raw') });
}

/** The next message on `topic` that `match` accepts, seen by a raw client (retained ones too). */
async function nextMessage(client: MqttClient, topic: string, match: (payload: string, retained: boolean) => boolean, timeout = MOVE_TIMEOUT): Promise<string> {
  const seen = new Promise<string>((resolve) => {
    const onMessage = (received: string, payload: Buffer, packet: { retain: boolean }) => {
      if (received !== topic || !match(payload.toString(), packet.retain)) return;
      client.off('message', onMessage);
      resolve(payload.toString());
    };
    client.on('message', onMessage);
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return within(seen, timeout, `a message on ${topic}`);
}

function status(payload: string): string | undefined {
  if (payload === '') return 'cleared';
  return (JSON.parse(payload) as { payload?: { status?: string } }).payload?.status;
}

describe('broker failover', { timeout: SUITE_TIMEOUT }, () => {
  let first: TestBroker;
  let second: TestBroker;
  const buses: Bus[] = [];
  const raws: MqttClient[] = [];
  const open = async (...args: Parameters<typeof connect>) => {
    const bus = await connect(...args);
    buses.push(bus);
    return bus;
  };
  const raw = async (url: string) => {
    const client = await rawClient(url);
    raws.push(client);
    return client;
  };

  before(async () => {
    [first, second] = await Promise.all([startMosquitto({ unix: true }), startMosquitto({ unix: true })]);
  });
  after(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    await Promise.all(raws.map((client) => client.endAsync(true)));
    await Promise.all([first?.close(), second?.close()]);
  });

  it('failover - a dead first URL is passed over: the client connects to the next, a list or a string, a Unix socket among them', async () => {
    const asString = await open({ id: uniqueId('string'), broker: `${await deadUrl()}, ${second.url}`, logger: testLogger, ...FAST });
    assert.equal(asString.broker, second.url);
    const asList = await open({ id: uniqueId('list'), broker: [await deadUrl(), second.unixUrl!], logger: testLogger, ...FAST });
    assert.equal(asList.broker, second.unixUrl);
    // What one publishes reaches the other: both are on the second broker.
    let arrived!: (message: ReceivedMessage) => void;
    const got = new Promise<ReceivedMessage>((resolve) => (arrived = resolve));
    await asList.subscribe('test/failover/first/notification', (message) => arrived(message));
    asString.notify('test/failover/first', { hello: 1 });
    assert.deepEqual((await within(got, 10_000, 'the publish')).envelope.payload, { hello: 1 });
  });

  it('failover - the broker in use dies: the client is on the next within a backoff step, with its subscriptions, handlers, real-time lane, retained presence and Last Will', async (t) => {
    await first.start();
    const { logger, lines, records } = recordingLogger();
    const id = uniqueId('mover');
    const mover = await open({ id, broker: `${first.url},mqtt://alice:${PASSWORD}@${second.url.slice('mqtt://'.length)}`, logger, ...FAST });
    assert.equal(mover.broker, first.url);
    const received: unknown[] = [];
    await mover.subscribe('test/failover/moved/notification', (message) => received.push(message.envelope.payload));
    await mover.handle('failover/echo', (payload) => ({ echoed: payload }));
    const watcher = await raw(second.url);

    const online = once(mover, 'online');
    const realtimeBack = new Promise<void>((resolve) => mover.on('lane', (lane, up) => lane === 'realtime' && up && resolve()));
    const stoppedAt = Date.now();
    await first.stop();
    await within(Promise.all([online, realtimeBack]), MOVE_TIMEOUT, 'both lanes back on the second broker');
    const movedMs = Date.now() - stoppedAt;
    assert.equal(mover.broker, `mqtt://alice:***@${second.url.slice('mqtt://'.length)}`);

    // Its presence, republished there, is retained there: a newcomer gets it from the broker's store.
    await nextMessage(watcher, `relais/presence/${id}`, (payload) => status(payload) === 'alive');
    const newcomer = await raw(second.url);
    await nextMessage(newcomer, `relais/presence/${id}`, (payload, retained) => retained && status(payload) === 'alive', 5000);
    // Its subscription was made there: a publish on the second broker reaches it.
    const peer = await open({ id: uniqueId('peer'), broker: second.url, logger: testLogger, ...FAST });
    await within(
      (async () => {
        while (received.length === 0) {
          peer.notify('test/failover/moved', { n: 1 });
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })(),
      10_000,
      'the publish on the second broker reaching the moved client',
    );
    // Its handler serves there, on either lane.
    assert.deepEqual(await peer.request('failover/echo', { n: 2 }, { timeout: 10_000 }), { echoed: { n: 2 } });
    assert.deepEqual(await peer.request('failover/echo', { n: 3 }, { timeout: 10_000, priority: 'realtime' }), { echoed: { n: 3 } });
    // And so does its own real-time request (the real-time lane moved too).
    await peer.handle('failover/peer', () => 'ok');
    assert.equal(await mover.request('failover/peer', {}, { timeout: 10_000, priority: 'realtime' }), 'ok');

    // The log names where it went, never the password.
    const reconnected = records().find((record) => record.msg === `reconnected to another broker, mqtt://alice:***@${second.url.slice('mqtt://'.length)}` && record.lane === 'main');
    assert.ok(reconnected, lines.join(''));
    assert.equal(reconnected.from, first.url);
    assert.ok(!lines.join('').includes(PASSWORD), 'no password in the log');
    t.diagnostic(`both lanes on the second broker ${movedMs} ms after the first was killed`);

    // Its Last Will was armed there: killed, the second broker announces it dead.
    const dead = nextMessage(watcher, `relais/presence/${id}`, (payload) => status(payload) === 'dead');
    await mover.kill();
    await dead;
  });

  it('failover - a request under way while both sides move ends (its result, or an error), never hangs', async (t) => {
    await first.start();
    const both = `${first.url},${second.url}`;
    const handler = await open({ id: uniqueId('slow'), broker: both, logger: testLogger, ...FAST });
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    await handler.handle('failover/slow', async () => {
      started();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return 'done';
    });
    const requester = await open({ id: uniqueId('asker'), broker: both, logger: testLogger, ...FAST });
    assert.equal(requester.broker, first.url);
    const outcome = requester.request('failover/slow', {}, { timeout: 30_000 }).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    await within(running, 10_000, 'the handler starting the request');
    await first.stop();
    const ended = await within(outcome, 40_000, 'the request ending');
    // protocol §1.3: after both reconnect, the requester asks again and the handler answers
    // the final it remembers; HandlerGoneError only if it could not within reconnectGrace.
    t.diagnostic('error' in ended ? `ended with ${String(ended.error)}` : `ended with its result ${JSON.stringify(ended.value)}`);
    if ('error' in ended) assert.ok(ended.error instanceof HandlerGoneError, String(ended.error));
    else assert.equal(ended.value, 'done');
    assert.equal(requester.broker, second.url);
    assert.equal(handler.broker, second.url);
  });

  it('failover - every URL dead: connect() fails naming each and why, passwords masked, in the error and the log', async () => {
    const urls = [await deadUrl(`alice:${PASSWORD}@`), await deadUrl(), await deadUrl()];
    const { logger, lines } = recordingLogger();
    const error = await connect({ id: uniqueId('stranded'), broker: urls.join(','), logger, ...FAST }).then(
      (bus) => bus.close().then(() => assert.fail('connected to closed ports')),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof NotSentError, String(error));
    assert.match(error.message, /^cannot connect to any of the 3 brokers: /);
    for (const url of urls) {
      const shown = url.replace(PASSWORD, '***');
      assert.ok(error.message.includes(`${shown} (connect ECONNREFUSED`), `${shown} in: ${error.message}`);
    }
    assert.ok(!error.message.includes(PASSWORD), error.message);
    assert.ok(!lines.join('').includes(PASSWORD), lines.join(''));
  });

  it('failover - a broker refusing the credentials fails connect() with NotAuthorizedError at once, not hidden behind the next URL', async () => {
    await using secure = await startSecureBroker([]);
    const error = await connect({ id: uniqueId('intruder'), broker: [secure.broker.url!, second.url], username: 'nobody', password: PASSWORD, logger: testLogger, ...FAST }).then(
      (bus) => bus.close().then(() => assert.fail('connected with credentials the first broker refuses')),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof NotAuthorizedError, String(error));
    assert.match(error.message, new RegExp(`^cannot connect to the broker at ${secure.broker.url!.replace(/[.]/g, '\\.')}: `));
    assert.ok(!error.message.includes(PASSWORD), error.message);
  });

  it('failover - a list holding a bad URL is refused, naming which, without repeating it', async () => {
    for (const broker of [`${second.url},http://eve:${PASSWORD}@host:1`, [second.url, `eve:${PASSWORD}@host:1`], `${second.url},`]) {
      const error = await connect({ id: uniqueId('typo'), broker, logger: testLogger }).then(
        (bus) => bus.close().then(() => assert.fail(`accepted ${String(broker)}`)),
        (failure: unknown) => failure,
      );
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, /^broker URL 2 of 2 (must be mqtt:\/\/, mqtts:\/\/, ws:\/\/, wss:\/\/ or unix:\/\/|is empty)/);
      assert.ok(!error.message.includes(PASSWORD), error.message);
    }
  });

  it('failover - the CLI takes --broker dead,live (relais pub, relais call), and RELAIS_BROKER the same', async () => {
    const live = `${await deadUrl()},${second.url}`;
    const handler = await open({ id: uniqueId('cli-handler'), broker: second.url, logger: testLogger, ...FAST });
    await handler.handle('failover/cli', (payload) => ({ served: payload }));
    const watcher = await raw(second.url);
    const published = nextMessage(watcher, 'test/failover/cli', (payload) => payload.includes('from-cli'), 60_000);
    const pub = await runCli(['pub', 'test/failover/cli', '"from-cli"', '--broker', live]);
    assert.equal(pub.code, 0, pub.stderr);
    await published;
    const call = await runCli(['call', 'failover/cli', '{"n":1}', '--json'], { RELAIS_BROKER: live });
    assert.equal(call.code, 0, call.stderr);
    assert.match(call.stdout, /"served":\{"n":1\}/);
  });
});
