/**
 * One Authorizer at both doors (docs/security.md "One check at both doors"): each role of the
 * default policy (admin, service, client, observer, agent-user) asks for the same thing over
 * MQTT (a raw MQTT.js client with its identity) and over the HTTP API (its token), and gets the
 * same answer, the one the table says. A change reaches both doors at once: an identity
 * revoked gets 401 at its next HTTP call and is refused at CONNECT; a policy reloaded decides
 * the next HTTP call and the next PUBLISH. A real embedded broker, router and web server in
 * this process, real sockets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { MqttClient } from 'mqtt';
import { connect, type Bus } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import type { SecuritySettings } from '../../src/security/authorizer.js';
import { DEFAULT_POLICY_DATA, defaultPolicy } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { decide, parsePolicy, type Operation, type Policy } from '../../src/security/policy.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { testLogger, uniqueId, within } from '../testkit/index.js';
import { http, openStream, tempDir } from './web-kit.js';

type Role = 'admin' | 'service' | 'client' | 'observer' | 'agent-user';
const ROLES: readonly Role[] = ['admin', 'service', 'client', 'observer', 'agent-user'];
/** The identity each role is, as `relais identity add <name> --role <role>` makes it (svc serves demo/#). */
const IDENTITY: Record<Role, string> = { admin: 'root', service: 'svc', client: 'alice', observer: 'olga', 'agent-user': 'ops' };

interface Row {
  operation: Operation;
  topic: string;
  /** The HTTP request that acts on exactly this (and nothing else). */
  http: { method: 'GET' | 'POST'; path: string; body?: unknown; stream?: true };
  allowed: readonly Role[];
}

const CALLERS: readonly Role[] = ['admin', 'service', 'client'];
const READERS: readonly Role[] = ['admin', 'service', 'client', 'observer'];
const AGENTS: readonly Role[] = ['admin', 'agent-user'];
/** The default policy by topic and role (docs/security.md "The default policy"). */
const TABLE: Row[] = [
  { operation: 'publish', topic: 'demo/echo/request', http: { method: 'POST', path: '/api/actions/demo/echo', body: { n: 1 } }, allowed: CALLERS },
  { operation: 'publish', topic: 'demo/echo/request/svc', http: { method: 'POST', path: '/api/actions/demo/echo?target=svc', body: { n: 2 } }, allowed: CALLERS },
  { operation: 'publish', topic: 'system/disks/list_disks/request/vm-1', http: { method: 'POST', path: '/api/actions/system/disks/list_disks?target=vm-1', body: {} }, allowed: AGENTS },
  { operation: 'publish', topic: 'system/command/batch/request/vm-1', http: { method: 'POST', path: '/api/nodes/vm-1/core/action/command', body: [{ command: 'true' }] }, allowed: AGENTS },
  { operation: 'publish', topic: 'relais/history/get/request', http: { method: 'GET', path: '/api/history?limit=1' }, allowed: READERS },
  { operation: 'publish', topic: 'relais/history/put/request', http: { method: 'POST', path: '/api/actions/relais/history/put', body: { token: 'doors-put', action: 'demo/echo', code: 0 } }, allowed: CALLERS },
  { operation: 'publish', topic: 'relais/clients/list/get/request', http: { method: 'GET', path: '/api/clients' }, allowed: READERS },
  { operation: 'publish', topic: 'relais/clients/detail/get/request', http: { method: 'GET', path: '/api/clients/svc' }, allowed: READERS },
  { operation: 'publish', topic: 'relais/events/get/request', http: { method: 'GET', path: '/api/events?since=0&limit=1' }, allowed: READERS },
  { operation: 'publish', topic: 'relais/requests/kill/request', http: { method: 'POST', path: '/api/kill/no-such-token', body: { wait: 100 } }, allowed: CALLERS },
  { operation: 'publish', topic: 'relais/broker/stats/get/request', http: { method: 'POST', path: '/api/actions/relais/broker/stats/get', body: {} }, allowed: ['admin'] },
  { operation: 'subscribe', topic: 'relais/events/notification', http: { method: 'GET', path: '/api/events/stream', stream: true }, allowed: READERS },
];

describe('one Authorizer at both doors: MQTT and HTTP decide alike for each role', { timeout: 120_000 }, () => {
  let dir: string;
  let store: IdentityStore;
  let broker: EmbeddedBroker;
  let router: Router;
  let web: WebServer;
  let handler: Bus;
  let spy: MqttClient;
  let base: string;
  const policies = { current: defaultPolicy({ serves: { svc: ['demo/#'] } }) as Policy };
  const security: SecuritySettings = { identities: '', policy: () => policies.current };
  const tokens = new Map<string, string>();
  const clients = new Map<string, MqttClient>();
  const logs: string[] = [];
  /** Everything the broker delivers, read by a trusted in-process client subscribed to `#`. */
  const seen: Array<{ topic: string; body: Record<string, unknown> }> = [];

  const bearer = (name: string) => ({ authorization: `Bearer ${name}:${tokens.get(name)}` });
  /** A raw client of `name`, on its real-time lane's client id (`svc` itself is the handler's). */
  const mqttClient = async (name: string) => {
    const client = await mqtt.connectAsync(broker.url!, { clientId: `${name}~rt`, username: name, password: tokens.get(name), protocolVersion: 4, reconnectPeriod: 0 });
    clients.set(name, client);
    return client;
  };

  before(async () => {
    dir = tempDir('doors');
    store = new IdentityStore(path.join(dir, 'identities.json'));
    security.identities = store;
    const people: Array<[string, string[]]> = [['root', ['admin']], ['svc', ['service']], ['alice', ['client']], ['olga', ['observer']], ['ops', ['agent-user']], ['rita', ['client']]];
    for (const [name, roles] of people) tokens.set(name, (await store.add(name, roles)).token);
    broker = await startEmbeddedBroker({ port: 0, security, log: (line) => logs.push(line) });
    router = await startRouter({ stream: () => broker.connectInProcess(), database: path.join(dir, 'history.db'), logger: testLogger });
    handler = await connect({ id: 'svc', broker: broker.url!, username: 'svc', password: tokens.get('svc')!, logger: testLogger, realtimeLane: false });
    await handler.handle('demo/echo', (payload) => payload);
    web = await startWebServer({ broker, port: 0, security, log: (line) => logs.push(line), logger: testLogger });
    base = web.url.replace(/\/$/, '');
    spy = new MqttClient(() => broker.connectInProcess(), { clientId: uniqueId('doors-spy'), protocolVersion: 4, reconnectPeriod: 0 });
    spy.on('message', (topic, payload) => {
      try {
        seen.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> });
      } catch {
        // not an envelope: not one of this test's
      }
    });
    await within(new Promise((resolve) => spy.once('connect', resolve)), 5000, 'the spy');
    await spy.subscribeAsync('#', { qos: 0 });
    await web.bus.waitForHandler('demo/echo', { timeout: 10_000 });
  });

  after(async () => {
    await Promise.all([...clients.values()].map((client) => client.endAsync(true)));
    await spy?.endAsync(true);
    await web?.close();
    await handler?.close();
    await router?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** MQTT: whether the broker lets `name` do it (a PUBLISH delivered, or refused with its denial reply; a SUBACK granted or 0x80). */
  async function overMqtt(name: string, operation: Operation, topic: string): Promise<boolean> {
    const client = clients.get(name) ?? (await mqttClient(name));
    if (operation === 'subscribe') return subscribed(client, topic);
    const token = uniqueId('doors');
    const target = topic.split('/request/')[1];
    await client.publishAsync(topic, JSON.stringify({ type: 'command', source: name, destination: target ?? '*', token, payload: {} }), { qos: 1 });
    const found = () => seen.find(({ body }) => body.token === token);
    const outcome = await within(
      new Promise<{ topic: string; body: Record<string, unknown> }>((resolve) => {
        const look = () => {
          const message = found();
          if (!message) return;
          spy.off('message', look);
          resolve(message);
        };
        spy.on('message', look);
        look();
      }),
      10_000,
      `${name}'s command on ${topic}, or its denial reply`,
    );
    if (outcome.topic === topic) return true;
    assert.equal(outcome.body.code, 4, `the denial reply: ${JSON.stringify(outcome)}`);
    return false;
  }

  /** Whether the SUBACK grants `filter` (MQTT.js rejects a 0x80 with the SUBACK); a grant is undone. */
  async function subscribed(client: MqttClient, filter: string): Promise<boolean> {
    const granted = await client.subscribeAsync(filter, { qos: 1 }).then(
      () => true,
      (error: Error & { packet?: { granted?: number[] } }) => {
        assert.deepEqual(error.packet?.granted, [128], error.message);
        return false;
      },
    );
    if (granted) await client.unsubscribeAsync(filter);
    return granted;
  }

  /** HTTP: whether the API lets `name` do it (403 forbidden: no; 401 never; anything else: yes). */
  async function overHttp(name: string, request: Row['http']): Promise<boolean> {
    if (request.stream) {
      const stream = await openStream(`${base}${request.path}`, bearer(name));
      const status = stream.response.status;
      await stream.close();
      assert.notEqual(status, 401);
      return status !== 403;
    }
    const answer = await http(request.method, `${base}${request.path}`, { headers: bearer(name), ...(request.body !== undefined && { body: request.body }) });
    assert.notEqual(answer.status, 401, answer.text);
    if (answer.status === 403) assert.equal(answer.body.error?.code ?? answer.body.error, answer.body.error?.code ? 'forbidden' : 'http_error_403', answer.text);
    return answer.status !== 403;
  }

  for (const row of TABLE) {
    it(`${row.operation} ${row.topic}: ${ROLES.map((role) => `${role} ${row.allowed.includes(role) ? 'allowed' : 'denied'}`).join(', ')} - over MQTT and over HTTP (${row.http.method} ${row.http.path.split('?')[0]})`, async () => {
      for (const role of ROLES) {
        const name = IDENTITY[role];
        const expected = row.allowed.includes(role);
        const pure = decide(policies.current, { identity: name, roles: [role] }, row.operation, row.topic);
        assert.equal(pure.allow, expected, `decide() for ${role}: ${pure.rule}`);
        assert.equal(await overMqtt(name, row.operation, row.topic), expected, `MQTT as ${role} (${name})`);
        assert.equal(await overHttp(name, row.http), expected, `HTTP as ${role} (${name})`);
      }
    });
  }

  it('a policy reloaded decides the next HTTP call and the next PUBLISH alike, at once', async () => {
    const before = await overHttp('alice', { method: 'GET', path: '/api/history?limit=1' });
    assert.equal(before, true);
    // The same policy without the rule that lets clients ask the router.
    const data = structuredClone(DEFAULT_POLICY_DATA);
    data.rules = data.rules.filter((rule) => !rule.name.startsWith('clients ask the router'));
    policies.current = parsePolicy({ ...data, identities: { ...data.identities, svc: { serves: ['demo/#'] } } });
    try {
      assert.equal(await overHttp('alice', { method: 'GET', path: '/api/history?limit=1' }), false, 'HTTP, the first call after the change');
      assert.equal(await overMqtt('alice', 'publish', 'relais/history/get/request'), false, 'MQTT, the first PUBLISH after the change');
    } finally {
      policies.current = defaultPolicy({ serves: { svc: ['demo/#'] } });
    }
    assert.equal(await overHttp('alice', { method: 'GET', path: '/api/history?limit=1' }), true);
    assert.equal(await overMqtt('alice', 'publish', 'relais/history/get/request'), true);
  });

  it('an identity revoked: its next HTTP call is 401 (its token remembered or not), its CONNECT refused (5)', async () => {
    assert.equal((await http('GET', `${base}/api/clients`, { headers: bearer('rita') })).status, 200);
    const rita = await mqttClient('rita');
    const closed = new Promise<void>((resolve) => rita.once('close', () => resolve()));
    store.revoke('rita');
    const next = await http('GET', `${base}/api/clients`, { headers: bearer('rita') });
    assert.equal(next.status, 401, next.text);
    await within(closed, 5000, "rita's MQTT connection closed");
    const refused = await mqtt.connectAsync(broker.url!, { clientId: 'rita~rt', username: 'rita', password: tokens.get('rita'), protocolVersion: 4, reconnectPeriod: 0 }).then(
      () => assert.fail('rita was let in'),
      (error: Error & { code?: number }) => error.code,
    );
    assert.equal(refused, 5);
  });

  it('what the broker drops is no one\'s to read: an admin subscribing to $SYS/# gets 0x80', async () => {
    const root = clients.get('root') ?? (await mqttClient('root'));
    assert.equal(await subscribed(root, '$SYS/#'), false);
    assert.ok(logs.some((line) => line === 'denied subscribe to "$SYS/#" for identity root (client id root~rt): builtin:dropped'), logs.join('\n'));
  });
});
