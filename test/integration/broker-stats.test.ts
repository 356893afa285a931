/**
 * The embedded broker's statistics on the bus (protocol §11.9: the counts are
 * visible): a real broker with security on and its `relais-broker` service; denials by kind
 * and by rule, cut-offs by limit, who may ask; then `relais stats` against `relais start` (the
 * real binary) and against Mosquitto with a router beside it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connect, InvalidMessageError, NotAuthorizedError, type Bus } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startBrokerService, type BrokerService } from '../../src/broker/broker-service.js';
import { BROKER_STATS_ACTION, type BrokerStats } from '../../src/protocol/broker-stats.js';
import { IdentityStore } from '../../src/security/identities.js';
import { DEFAULT_POLICY_DATA, defaultPolicy } from '../../src/security/default-policy.js';
import { decide, parsePolicy } from '../../src/security/policy.js';
import { formatBrokerBlock } from '../../src/cli/stats.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, startRelais, type RelaisStart, type RunningCli } from '../testkit/cli.js';
import { peerGate, setup, testLogger, waitFor, within, type Kit } from '../testkit/index.js';
import { EventEmitter } from 'node:events';

// A keep-alive limit is the operator's choice (none by default): set here so its cut-off is counted.
const LIMITS = { connectTimeoutMs: 300, stallMs: 300, maxPacketBytes: 64 * 1024, maxKeepaliveSeconds: 600 };
// The broker samples its counts every 10 s; faster here so a per-second figure is seen soon.
const SAMPLE_EVERY_MS = 300;

/** The SUBACK code of one filter (mqtt.js turns 0x80 into an error that carries the packet). */
function subackCode(client: MqttClient, filter: string): Promise<number> {
  return client.subscribeAsync(filter, { qos: 1 }).then(
    (granted) => granted[0]!.qos,
    (error: Error & { packet?: { granted: number[] } }) => error.packet?.granted[0] ?? Promise.reject(error),
  );
}

describe('broker stats - the embedded broker with security on', { timeout: 60_000 }, () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let service: BrokerService;
  let admin: Bus;
  const tokens = new Map<string, string>();
  const logs: string[] = [];
  const logged = new EventEmitter();
  const raws: MqttClient[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-broker-stats-'));
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    for (const [name, roles] of [['root', ['admin']], ['alice', ['client']], ['bob', ['client']]] as const) tokens.set(name, (await store.add(name, [...roles])).token);
    const log = (line: string) => {
      logs.push(line);
      logged.emit('line');
    };
    broker = await startEmbeddedBroker({ port: 0, security: { identities: store.file, policy: defaultPolicy() }, limits: LIMITS, log });
    service = await startBrokerService(broker, { logger: testLogger, sampleEveryMs: SAMPLE_EVERY_MS });
    admin = await connect({ id: 'root', broker: broker.url!, username: 'root', password: tokens.get('root')!, logger: testLogger, realtimeLane: false });
  });
  after(async () => {
    await Promise.all(raws.map((client) => client.endAsync(true)));
    await admin?.close();
    await service?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const raw = async (name: string): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(broker.url!, { clientId: name, username: name, password: tokens.get(name)!, protocolVersion: 4, reconnectPeriod: 0 });
    raws.push(client);
    return client;
  };
  const stats = (payload: unknown = {}) => admin.request<BrokerStats>(BROKER_STATS_ACTION, payload, { timeout: 5000 });
  const ruleCount = (answer: BrokerStats, rule: string) => answer.denials!.topRules.find((entry) => entry.rule === rule)?.count ?? 0;
  const waitForLog = (pattern: RegExp) => waitFor(() => logs.find((line) => pattern.test(line)), logged, 'line', 5000);

  it('broker stats - each PUBLISH counts once in, each copy to a subscriber once out, with its payload bytes; per second and over a span', async () => {
    const [alice, bob] = [await raw('alice'), await raw('bob')];
    const topic = 'demo/traffic/notification';
    const received = new EventEmitter();
    let count = 0;
    bob.on('message', () => (count++, received.emit('message')));
    await bob.subscribeAsync(topic, { qos: 1 });
    const before = await stats();
    const since = Date.now();
    const payload = JSON.stringify({ v: 1, type: 'notification', source: 'alice', destination: '*', payload: { fill: 'x'.repeat(10_000) } });
    const size = Buffer.byteLength(payload);
    for (let i = 0; i < 5; i++) await alice.publishAsync(topic, payload, { qos: 1 });
    await waitFor(() => count >= 5 || undefined, received, 'message', 5000);

    const answer = await stats({ since });
    const delta = (now: BrokerStats, key: 'messages' | 'bytes', way: 'in' | 'out') => now[key][way] - before[key][way];
    // Besides the five: the stats request and answers (small), so a payload counted twice would show.
    const slack = 8 * 1024;
    assert.ok(delta(answer, 'messages', 'in') >= 5 && delta(answer, 'messages', 'in') <= 12, `messages in ${delta(answer, 'messages', 'in')}`);
    assert.ok(delta(answer, 'bytes', 'in') >= 5 * size && delta(answer, 'bytes', 'in') < 5 * size + slack, `bytes in ${delta(answer, 'bytes', 'in')}`);
    assert.ok(delta(answer, 'messages', 'out') >= 5 && delta(answer, 'messages', 'out') <= 12, `messages out ${delta(answer, 'messages', 'out')}`);
    assert.ok(delta(answer, 'bytes', 'out') >= 5 * size && delta(answer, 'bytes', 'out') < 5 * size + slack, `bytes out ${delta(answer, 'bytes', 'out')}`);
    // The span holds the five from the sample before `since`: at most one interval earlier.
    const span = answer.span!;
    assert.ok(span.from <= since && since - span.from <= SAMPLE_EVERY_MS * 2, `span from ${since - span.from} ms before since`);
    assert.ok(span.messages.in >= 5 && span.bytes.in >= 5 * size && span.bytes.out >= 5 * size, JSON.stringify(span));
    assert.equal(span.messages.inPerSecond, Math.round((span.messages.in / ((span.until - span.from) / 1000)) * 100) / 100);
    assert.equal(before.span, undefined, 'a span only when asked with since');
    // Once an interval holding the burst is sampled, the per-second figure shows it.
    let busiest = 0;
    const deadline = Date.now() + 5000;
    while (busiest * (SAMPLE_EVERY_MS / 1000) < size && Date.now() < deadline) {
      busiest = Math.max(busiest, (await stats()).bytes.inPerSecond);
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS / 3));
    }
    assert.ok(busiest * (SAMPLE_EVERY_MS / 1000) >= size, `bytes in per second ${busiest}: at least one message in an interval`);
  });

  it('broker stats - a denied subscribe and a spoofed source are reported by kind and by rule', async () => {
    const before = await stats();
    const alice = await raw('alice');
    assert.equal(await subackCode(alice, '#'), 0x80);
    await alice.publishAsync('demo/news/notification', JSON.stringify({ v: 1, type: 'notification', source: 'svc', destination: '*', payload: {} }), { qos: 1 });
    await waitForLog(/denied publish on "demo\/news\/notification" for identity alice: builtin:source/);

    const answer = await stats();
    const kinds = (s: BrokerStats) => [s.denials!.subscribe, s.denials!.publish, s.denials!.source];
    assert.deepEqual(kinds(answer).map((n, i) => n - kinds(before)[i]!), [1, 1, 1]);
    assert.equal(ruleCount(answer, 'builtin:wildcard-subscription') - ruleCount(before, 'builtin:wildcard-subscription'), 1);
    assert.equal(ruleCount(answer, 'builtin:source') - ruleCount(before, 'builtin:source'), 1);
    assert.ok(!answer.denials!.topRules.some((entry) => entry.rule.includes('"svc"')), 'the claimed source is not a rule of its own');
    // root (main lane), alice, the broker service itself.
    assert.ok(answer.connections.open >= 3, `open ${answer.connections.open}`);
    assert.ok(answer.uptimeSeconds >= 0 && answer.startedAt <= answer.now);
  });

  it('broker stats - a refused CONNECT is counted by its reason', async () => {
    const before = await stats();
    await assert.rejects(mqtt.connectAsync(broker.url!, { clientId: 'alice', username: 'alice', password: 'not-the-token', reconnectPeriod: 0 }));
    const answer = await stats();
    assert.equal(answer.denials!.connect - before.denials!.connect, 1);
    assert.equal(ruleCount(answer, 'connect:wrong token') - ruleCount(before, 'connect:wrong token'), 1);
  });

  it('broker stats - each resource limit that closes a connection is counted under its name', async () => {
    const before = await stats();
    const socket = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(broker.port!, '127.0.0.1', () => resolve(s));
        s.on('error', () => {}); // writes after the broker closed it: expected
        s.once('error', reject);
        s.resume(); // a socket that reads nothing never sees its end
      });
    const closed = (s: net.Socket) => (s.destroyed ? Promise.resolve() : within(new Promise((resolve) => s.once('close', resolve)), 5000, 'the broker closing the socket'));

    const huge = await socket(); // a PUBLISH header claiming more than maxPacketBytes
    huge.write(mqttPacket.generate({ cmd: 'connect', clientId: 'bob', username: 'bob', password: Buffer.from(tokens.get('bob')!), keepalive: 30, protocolVersion: 4, clean: true }));
    huge.write(Buffer.from([0x30, 0xff, 0xff, 0x7f]));
    const silent = await socket(); // no CONNECT at all
    const sleepy = await socket(); // keep-alive 0
    sleepy.write(mqttPacket.generate({ cmd: 'connect', clientId: 'bob', username: 'bob', password: Buffer.from(tokens.get('bob')!), keepalive: 0, protocolVersion: 4, clean: true }));
    await Promise.all([closed(huge), closed(silent), closed(sleepy)]);

    // A `#` reader that stops reading during a burst (root may read everything).
    const frozen = await socket();
    const subacked = new Promise<void>((resolve) => {
      const parser = mqttPacket.parser();
      parser.on('packet', (packet) => packet.cmd === 'suback' && resolve());
      frozen.on('data', (chunk) => parser.parse(chunk));
    });
    frozen.write(mqttPacket.generate({ cmd: 'connect', clientId: 'root~rt', username: 'root', password: Buffer.from(tokens.get('root')!), keepalive: 30, protocolVersion: 4, clean: true }));
    frozen.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] }));
    await within(subacked, 5000, 'the SUBACK of #');
    frozen.pause();
    const alice = await raw('alice');
    const chunk = JSON.stringify({ v: 1, type: 'notification', source: 'alice', destination: '*', payload: { fill: 'x'.repeat(60_000) } });
    for (let i = 0; i < 300 && !frozen.destroyed; i++) await alice.publishAsync('demo/burst/notification', chunk, { qos: 0 });
    await waitForLog(/cut off slow consumer client root~rt/);

    const answer = await stats();
    const delta = Object.fromEntries(Object.entries(answer.cutOffs).map(([limit, n]) => [limit, n - before.cutOffs[limit as keyof BrokerStats['cutOffs']]]));
    assert.deepEqual(delta, { packet: 1, connectTimeout: 1, keepalive: 1, slowConsumer: 1 });
    frozen.destroy();
  });

  it('broker stats - a client identity may not ask (the default policy grants it to admins): NotAuthorizedError', async () => {
    const alice = await connect({ id: 'alice', broker: broker.url!, username: 'alice', password: tokens.get('alice')!, logger: testLogger, realtimeLane: false });
    try {
      await assert.rejects(alice.request(BROKER_STATS_ACTION, {}, { timeout: 5000 }), NotAuthorizedError);
    } finally {
      await alice.close();
    }
  });

  it('broker stats - the default policy grants the action to admins by a rule of its own, not only through the grant "system"', () => {
    const data = structuredClone(DEFAULT_POLICY_DATA);
    data.roles.admin.grants = data.roles.admin.grants.filter((grant) => grant !== 'system');
    const decision = decide(parsePolicy(data), { identity: 'root', roles: ['admin'] }, 'publish', `${BROKER_STATS_ACTION}/request`);
    assert.deepEqual([decision.allow, /protocol §11\.9/.test(decision.rule)], [true, true], decision.rule);
    assert.equal(decide(defaultPolicy(), { identity: 'alice', roles: ['client'] }, 'publish', `${BROKER_STATS_ACTION}/request`).allow, false);
  });

  it('broker stats - a bad query gets code 2 naming the field; top limits the rules listed', async () => {
    await assert.rejects(stats({ top: 0 }), (error: Error) => error instanceof InvalidMessageError && /top/.test(error.message));
    await assert.rejects(stats({ since: 'yesterday' }), (error: Error) => error instanceof InvalidMessageError && /since/.test(error.message));
    const answer = await stats({ top: 1 });
    assert.equal(answer.denials!.topRules.length, 1);
    assert.ok(answer.denials!.rules >= 3);
    assert.match(formatBrokerBlock(answer), /^broker: up \d+s, \d+ connection\(s\) open\n {2}messages: [\d.]+\/s in, [\d.]+\/s out; \d+ in, \d+ out since the start\n {2}bytes: [\d.]+ \S+\/s in, [\d.]+ \S+\/s out; [\d.]+ \S+ in, [\d.]+ \S+ out since the start\n {2}denials: connect \d+, subscribe \d+, publish \d+ \(of which source \d+\)\n {4} +\d+ {2}\S+.*\n {4}\(\d+ more rule\(s\)\)\n {2}cut off: packet size 1, CONNECT time-out 1, keep-alive 1, slow consumer 1$/);
  });
});

describe('broker stats - relais stats, the real binary', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let dataDir: string;
  let start: RelaisStart;
  let adminUrl: string;
  let aliceToken: string;
  let brokerUrl: string;
  const env = { RELAIS_LOG_LEVEL: 'error' };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-broker-stats-cli-'));
    const store = new IdentityStore(path.join(dataDir, 'identities.json'));
    const rootToken = (await store.add('root', ['admin'])).token;
    aliceToken = (await store.add('alice', ['client'])).token;
    start = await startRelais(['--secure', '--data-dir', dataDir], { env });
    brokerUrl = start.url;
    adminUrl = brokerUrl.replace('mqtt://', `mqtt://root:${rootToken}@`);
  });
  after(async () => {
    await start?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('stats - against relais start --secure, an admin sees the broker block with the denials by rule', async () => {
    const alice = await mqtt.connectAsync(brokerUrl, { clientId: 'alice', username: 'alice', password: aliceToken, protocolVersion: 4, reconnectPeriod: 0 });
    try {
      assert.equal(await subackCode(alice, '#'), 0x80);
    } finally {
      await alice.endAsync();
    }
    const result = await runCli(['stats', '--broker', adminUrl, '--id', 'root'], env);
    assert.equal(result.code, 0, result.stderr);
    const line = JSON.parse(result.stdout) as { actions: object; broker: BrokerStats };
    assert.equal(typeof line.actions, 'object', 'the router metrics are still there');
    assert.equal(line.broker.denials!.subscribe, 1);
    assert.deepEqual(line.broker.denials!.topRules.find((entry) => entry.rule === 'builtin:wildcard-subscription'), { rule: 'builtin:wildcard-subscription', count: 1 });
    assert.deepEqual(line.broker.cutOffs, { packet: 0, connectTimeout: 0, keepalive: 0, slowConsumer: 0 });
    assert.ok(line.broker.connections.open >= 3, 'the router, the broker service and relais stats itself');
  });
});

describe('broker stats - relais stats on Mosquitto (a router, no embedded broker)', { skip: peerGate('mosquitto', 'relais stats on Mosquitto').skip, timeout: CLI_SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let router: RunningCli;
  let dataDir: string;

  before(async () => {
    kit = await setup('mosquitto');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-broker-stats-mosquitto-'));
    router = startCli(['router', '--broker', kit.broker.url, '--data-dir', dataDir], { RELAIS_LOG_LEVEL: 'error' });
    await router.waitFor(/router recording the history/);
  });
  after(async () => {
    await router?.stop();
    await kit?.cleanup();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('stats - says the broker stats are not available and still prints the metrics, exit 0', async () => {
    const result = await runCli(['stats', '--broker', kit.broker.url], { RELAIS_LOG_LEVEL: 'error' });
    assert.equal(result.code, 0, result.stderr);
    const line = JSON.parse(result.stdout) as { actions: object; broker: { unavailable: string } };
    assert.equal(typeof line.actions, 'object');
    assert.deepEqual(line.broker, { unavailable: 'not the embedded broker' });
    assert.equal(formatBrokerBlock(line.broker), 'broker stats: not available (not the embedded broker)');
  });
});
