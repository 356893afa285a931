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
import { runCli, startCli, type RunningCli } from '../testkit/cli.js';
import { peerGate, setup, testLogger, waitFor, within, type Kit } from '../testkit/index.js';
import { EventEmitter } from 'node:events';

// A keep-alive limit is the operator's choice (none by default): set here so its cut-off is counted.
const LIMITS = { connectTimeoutMs: 300, stallMs: 300, maxPacketBytes: 64 * 1024, maxKeepaliveSeconds: 600 };

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
    service = await startBrokerService(broker, { logger: testLogger });
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
    const answer = await stats({ top: 1 });
    assert.equal(answer.denials!.topRules.length, 1);
    assert.ok(answer.denials!.rules >= 3);
    assert.match(formatBrokerBlock(answer), /^broker: up \d+s, \d+ connection\(s\) open\n {2}denials: connect \d+, subscribe \d+, publish \d+ \(of which source \d+\)\n {4} +\d+ {2}\S+.*\n {4}\(\d+ more rule\(s\)\)\n {2}cut off: packet size 1, CONNECT time-out 1, keep-alive 1, slow consumer 1$/);
  });
});

describe('broker stats - relais stats, the real binary', { timeout: 60_000 }, () => {
  let dataDir: string;
  let start: RunningCli;
  let adminUrl: string;
  let aliceToken: string;
  let brokerUrl: string;
  const env = { RELAIS_LOG_LEVEL: 'error' };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-broker-stats-cli-'));
    const store = new IdentityStore(path.join(dataDir, 'identities.json'));
    const rootToken = (await store.add('root', ['admin'])).token;
    aliceToken = (await store.add('alice', ['client'])).token;
    start = startCli(['start', '--secure', '--port', '0', '--data-dir', dataDir], env);
    [, brokerUrl] = (await start.waitFor(/listening on (mqtt:\/\/\S+)/)) as [string, string];
    await start.waitFor(/router recording/);
    adminUrl = brokerUrl.replace('mqtt://', `mqtt://root:${rootToken}@`);
  });
  after(async () => {
    await start?.stop('SIGINT');
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

describe('broker stats - relais stats on Mosquitto (a router, no embedded broker)', { skip: peerGate('mosquitto', 'relais stats on Mosquitto').skip, timeout: 60_000 }, () => {
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
