/**
 * The exported Mosquitto ACL enforces what decide() says (issue 7 §4): a real Mosquitto with
 * the files `relais policy export` writes, passwords made with mosquitto_passwd, and plain
 * MQTT.js clients. A denied SUBSCRIBE gets 0x80 in its SUBACK; a denied PUBLISH is dropped
 * silently and the connection stays up (MQTT 3.1.1).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { brokerProcess, findBinary, freePort, peerGate } from '../testkit/brokers.js';
import { exportMosquitto } from '../../src/security/mosquitto-export.js';
import { decide, parsePolicy, type Policy } from '../../src/security/policy.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';

const gate = peerGate('mosquitto', 'the policy export test on a real Mosquitto');
const passwd = gate.run ? peerGate('mosquitto_passwd', 'the policy export test (it makes the password file)') : gate;

const IDENTITIES = { alice: 'client', svc: 'service', 'relais-router': 'router' } as const;
const SECRET = (identity: string) => `secret-of-${identity}`;

describe('policy - the exported ACL on a real Mosquitto', { skip: passwd.skip, timeout: 60_000 }, () => {
  let policy: Policy;
  let dir: string;
  let url: string;
  let broker: ReturnType<typeof brokerProcess>;
  const clients: MqttClient[] = [];

  const connect = async (clientId: string, username = clientId, password = SECRET(username)): Promise<MqttClient> => {
    const client = mqtt.connect(url, { clientId, username, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000 });
    clients.push(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    return client;
  };
  const subscribe = async (client: MqttClient, filter: string): Promise<number> => {
    const granted = await client.subscribeAsync(filter, { qos: 1 });
    return granted[0]!.qos;
  };

  before(async () => {
    const data = structuredClone(DEFAULT_POLICY_DATA) as { identities: Record<string, { roles: string[] }> };
    for (const [identity, role] of Object.entries(IDENTITIES)) data.identities[identity] = { roles: [role] };
    policy = parsePolicy(data);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-policy-mosquitto-'));
    const aclPath = path.join(dir, 'relais.acl');
    const passwordPath = path.join(dir, 'relais.passwd');
    const exported = exportMosquitto(policy, { aclPath, passwordPath, depth: 4 });
    fs.writeFileSync(aclPath, exported.acl);
    const mosquittoPasswd = findBinary('mosquitto_passwd')!;
    for (const [i, identity] of Object.keys(IDENTITIES).entries()) {
      execFileSync(mosquittoPasswd, [...(i === 0 ? ['-c'] : []), '-b', passwordPath, identity, SECRET(identity)], { stdio: 'pipe' });
    }
    fs.chmodSync(passwordPath, 0o600);
    const port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    const confPath = path.join(dir, 'mosquitto.conf');
    fs.writeFileSync(confPath, [
      'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice', 'log_type information',
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      exported.conf,
      `listener ${port} 127.0.0.1`,
      '',
    ].join('\n'));
    broker = brokerProcess(findBinary('mosquitto')!, ['-c', confPath], /mosquitto version .* running/, 'mosquitto', dir);
    await broker.start();
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true)));
    await broker?.close();
  });

  /**
   * Does `subscriber` (identity, client id) receive what `publisher` sends on `topic` after
   * subscribing to it? A sentinel on a topic it may read, sent after, says when to stop waiting.
   * Returns the SUBACK code and whether the message arrived.
   */
  const trySubscription = async (subscriber: [string, string], topic: string, publisher: string, sentinel: string, published = topic) => {
    const client = await connect(subscriber[1], subscriber[0]);
    const source = await connect(`${publisher}-${clients.length}`, publisher).catch(() => connect(publisher));
    const seen: string[] = [];
    client.on('message', (received) => seen.push(received));
    const code = await subscribe(client, topic);
    assert.equal(await subscribe(client, sentinel), 1, `the sentinel ${sentinel} must be readable`);
    await source.publishAsync(published, '{}', { qos: 1 });
    await source.publishAsync(sentinel, '{}', { qos: 1 });
    await waitUntil(() => seen.includes(sentinel));
    return { code, received: seen.includes(published), connected: client.connected };
  };

  // [identity, client id, filter, allowed, who publishes on it, a topic the subscriber reads (sentinel)]
  const SUBSCRIPTIONS: [string, string, string, boolean, string, string][] = [
    ['alice', 'alice', 'demo/install/response/alice', true, 'svc', 'demo/other/response/alice'],
    ['alice', 'alice', 'demo/install/response/svc', false, 'svc', 'demo/install/response/alice'],
    ['alice', 'alice~rt', 'demo/install/response/alice', true, 'svc', 'demo/other/response/alice'],
    ['svc', 'svc', 'demo/install/request/svc', true, 'alice', 'demo/other/request/svc'],
    ['svc', 'svc', 'demo/install/request/alice', false, 'alice', 'demo/install/request/svc'],
    ['svc', 'svc', 'demo/install/response/alice', false, 'svc', 'demo/install/request/svc'],
    ['relais-router', 'relais-router', 'demo/install/response/alice', true, 'svc', 'demo/install/response/svc'],
  ];
  for (const [identity, clientId, filter, allowed, publisher, sentinel] of SUBSCRIPTIONS) {
    it(`mosquitto - ${clientId} subscribes ${filter}: ${allowed ? 'receives' : 'refused (SUBACK 0x80 or nothing delivered)'}, as decide() says`, async () => {
      assert.equal(decide(policy, { identity: clientId }, 'subscribe', filter).allow, allowed, 'decide()');
      const result = await trySubscription([identity, clientId], filter, publisher, sentinel);
      assert.equal(result.received, allowed, `${filter} ${allowed ? 'not ' : ''}delivered (SUBACK ${result.code})`);
      if (allowed) assert.equal(result.code, 1);
      // Mosquitto 2.0.11's acl_file grants every SUBSCRIBE and checks each message against `read`.
      else assert.ok(result.code === 0x80 || result.code === 1, `SUBACK ${result.code}`);
      assert.ok(result.connected, 'the connection stays up');
    });
  }

  it('mosquitto - a filter beyond the read lines delivers nothing it may not read', async () => {
    assert.equal(decide(policy, { identity: 'alice' }, 'subscribe', 'demo/#').allow, false, 'decide()');
    const result = await trySubscription(['alice', 'alice'], 'demo/#', 'svc', 'demo/install/response/alice', 'demo/install/response/svc');
    assert.equal(result.received, false, `SUBACK ${result.code}`);
  });

  it("mosquitto - another's presence is dropped silently, one's own goes through (connection stays up)", async () => {
    assert.equal(decide(policy, { identity: 'alice' }, 'publish', 'relais/presence/svc').allow, false, 'decide()');
    assert.equal(decide(policy, { identity: 'alice' }, 'publish', 'relais/presence/alice').allow, true, 'decide()');
    const router = await connect('relais-router');
    const seen: string[] = [];
    router.on('message', (topic) => seen.push(topic));
    assert.equal(await subscribe(router, 'relais/presence/+'), 1);
    const alice = await connect('alice', 'alice');
    await alice.publishAsync('relais/presence/svc', '{"status":"dead"}', { qos: 1 });
    await alice.publishAsync('relais/presence/alice', '{"status":"alive"}', { qos: 1 });
    await waitUntil(() => seen.includes('relais/presence/alice'));
    assert.deepEqual(seen, ['relais/presence/alice']);
    assert.ok(alice.connected);
  });

  it('mosquitto - a request reaches its target and the response only its requester', async () => {
    assert.equal(decide(policy, { identity: 'alice' }, 'publish', 'demo/install/request/svc').allow, true, 'decide()');
    assert.equal(decide(policy, { identity: 'svc' }, 'publish', 'demo/install/response/alice').allow, true, 'decide()');
    const svc = await connect('svc');
    const alice = await connect('alice');
    const got = { svc: [] as string[], alice: [] as string[] };
    svc.on('message', (topic) => got.svc.push(topic));
    alice.on('message', (topic) => got.alice.push(topic));
    assert.equal(await subscribe(svc, 'demo/install/request/svc'), 1);
    assert.equal(await subscribe(alice, 'demo/install/response/alice'), 1);
    await alice.publishAsync('demo/install/request/svc', '{}', { qos: 1 });
    await waitUntil(() => got.svc.length > 0);
    await svc.publishAsync('demo/install/response/alice', '{}', { qos: 1 });
    await waitUntil(() => got.alice.length > 0);
    assert.deepEqual(got, { svc: ['demo/install/request/svc'], alice: ['demo/install/response/alice'] });
  });

  it('mosquitto - a wrong secret is refused at CONNECT', async () => {
    await assert.rejects(connect('alice', 'alice', 'wrong'), /Not authorized|Bad username or password/i);
  });
});

async function waitUntil(condition: () => boolean, timeout = 5_000): Promise<void> {
  const end = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
