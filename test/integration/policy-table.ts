/**
 * One allow/deny table for every broker that enforces the policy (docs/security.md "Tests (policy)"): the same
 * table-driven test runs against the embedded broker and against Mosquitto with the exported
 * files: identity class (client, its real-time lane, service, router, admin) × topic class
 * (own/others' responses, own/others' targeted requests, presence, wildcards, relais/ actions).
 * Each row's expectation is what decide() says, checked first; then the broker must agree with
 * plain MQTT.js clients: a denied SUBSCRIBE delivers nothing (SUBACK 0x80, or on Mosquitto
 * 2.0.11 a granted SUBACK whose messages its `read` lines filter), a denied PUBLISH reaches no
 * reader, and every connection stays up (MQTT 3.1.1). Run by policy-embedded.test.ts and
 * policy-mosquitto.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { decide, parsePolicy, type Policy } from '../../src/security/policy.js';
import { waitFor } from '../testkit/index.js';

/** The identities of the table and their role (each class once). */
export const IDENTITIES = { alice: 'client', svc: 'service', 'relais-router': 'router', root: 'admin' } as const;
export type Identity = keyof typeof IDENTITIES;
/** What the table's service serves (`relais identity add svc --role service --serves 'demo/#'`). */
const SERVES: Partial<Record<Identity, string[]>> = { svc: ['demo/#'] };

/** The default policy, with the table's identities named (the Mosquitto export needs them). */
export function tablePolicy(): Policy {
  const data = structuredClone(DEFAULT_POLICY_DATA) as { identities: Record<string, { roles: string[]; serves?: string[] }> };
  for (const [identity, role] of Object.entries(IDENTITIES)) data.identities[identity] = { roles: [role], ...(SERVES[identity as Identity] && { serves: SERVES[identity as Identity] }) };
  return parsePolicy(data);
}

export interface PolicyBroker {
  url: string;
  /** The password `identity` connects with. */
  secret(identity: Identity): string;
  /** Mosquitto 2.0.11 grants every SUBSCRIBE and filters each message by `read` instead of answering 0x80. */
  grantsDeniedSubscriptions: boolean;
  close(): Promise<void>;
}

interface SubscribeRow {
  identity: Identity;
  clientId: string;
  filter: string;
  allowed: boolean;
  /** Who publishes, on `published` (default: the filter itself). */
  publisher: Identity;
  published?: string;
  /** A topic the subscriber may read, sent after: when it arrives, the test stops waiting. */
  sentinel: string;
}

interface PublishRow {
  identity: Identity;
  clientId: string;
  topic: string;
  allowed: boolean;
}

export const SUBSCRIPTIONS: SubscribeRow[] = [
  { identity: 'alice', clientId: 'alice', filter: 'demo/install/response/alice', allowed: true, publisher: 'svc', sentinel: 'demo/other/response/alice' },
  { identity: 'alice', clientId: 'alice', filter: 'demo/install/response/svc', allowed: false, publisher: 'svc', sentinel: 'demo/install/response/alice' },
  { identity: 'alice', clientId: 'alice~rt', filter: 'demo/install/response/alice', allowed: true, publisher: 'svc', sentinel: 'demo/other/response/alice' },
  { identity: 'alice', clientId: 'alice', filter: 'demo/#', allowed: false, publisher: 'svc', published: 'demo/install/response/svc', sentinel: 'demo/install/response/alice' },
  { identity: 'alice', clientId: 'alice', filter: 'demo/news/notification', allowed: true, publisher: 'svc', sentinel: 'demo/install/response/alice' },
  { identity: 'svc', clientId: 'svc', filter: 'demo/install/request/svc', allowed: true, publisher: 'alice', sentinel: 'demo/other/request/svc' },
  { identity: 'svc', clientId: 'svc', filter: 'demo/install/request', allowed: true, publisher: 'alice', sentinel: 'demo/other/request/svc' },
  { identity: 'svc', clientId: 'svc', filter: 'demo/install/request/alice', allowed: false, publisher: 'alice', sentinel: 'demo/install/request/svc' },
  { identity: 'svc', clientId: 'svc', filter: 'demo/install/response/alice', allowed: false, publisher: 'svc', sentinel: 'demo/install/request/svc' },
  // a service serves only what it is granted: another's untargeted requests of other actions stay out of its reach
  { identity: 'svc', clientId: 'svc', filter: 'other/install/request', allowed: false, publisher: 'alice', sentinel: 'demo/other/request/svc' },
  { identity: 'svc', clientId: 'svc', filter: 'system/command/run/request', allowed: false, publisher: 'root', sentinel: 'demo/other/request/svc' },
  { identity: 'relais-router', clientId: 'relais-router', filter: 'demo/install/response/alice', allowed: true, publisher: 'svc', sentinel: 'demo/install/response/svc' },
  { identity: 'root', clientId: 'root', filter: 'demo/install/response/alice', allowed: true, publisher: 'svc', sentinel: 'demo/install/response/root' },
];

export const PUBLICATIONS: PublishRow[] = [
  { identity: 'alice', clientId: 'alice', topic: 'relais/presence/alice', allowed: true },
  { identity: 'alice', clientId: 'alice', topic: 'relais/presence/svc', allowed: false },
  { identity: 'alice', clientId: 'alice', topic: 'demo/install/request', allowed: true },
  { identity: 'alice', clientId: 'alice~rt', topic: 'demo/install/request/svc', allowed: true },
  { identity: 'alice', clientId: 'alice', topic: 'demo/install/response/svc', allowed: false },
  { identity: 'alice', clientId: 'alice', topic: 'relais/metrics/get/request', allowed: true },
  // the cancel of its own request to the router, as the library sends it on a time-out (protocol §4.4)
  { identity: 'alice', clientId: 'alice', topic: 'relais/history/get/cancel', allowed: true },
  { identity: 'alice', clientId: 'alice~rt', topic: 'relais/kv/get/cancel', allowed: true },
  { identity: 'svc', clientId: 'svc', topic: 'demo/install/response/alice', allowed: true },
  { identity: 'svc', clientId: 'svc', topic: 'demo/news/notification', allowed: true },
  { identity: 'svc', clientId: 'svc', topic: 'other/install/response/alice', allowed: false },
  // the agents' actions (restricted root system/): not every client's to call
  { identity: 'alice', clientId: 'alice', topic: 'system/disks/remove_file/request/svc', allowed: false },
  { identity: 'alice', clientId: 'alice~rt', topic: 'system/command/run/request', allowed: false },
  { identity: 'svc', clientId: 'svc', topic: 'system/command/run/cancel', allowed: false },
  { identity: 'root', clientId: 'root', topic: 'system/command/run/request/svc', allowed: true },
  { identity: 'root', clientId: 'root', topic: 'relais/requests/kill/request', allowed: true },
  { identity: 'relais-router', clientId: 'relais-router', topic: 'relais/history/get/response/alice', allowed: true },
];

/** Runs the table against the broker `start` gives (started once, closed at the end). */
export function policyTable(name: string, start: (policy: Policy) => Promise<PolicyBroker>, options: { skip?: string | false } = {}): void {
  describe(`policy - the allow/deny table on ${name}`, { skip: options.skip ?? false, timeout: 60_000 }, () => {
    const policy = tablePolicy();
    let broker: PolicyBroker;
    const clients: MqttClient[] = [];

    before(async () => {
      broker = await start(policy);
    });
    after(async () => {
      await Promise.all(clients.map((client) => client.endAsync(true)));
      await broker?.close();
    });

    const connect = async (clientId: string, identity: Identity, password = broker.secret(identity)): Promise<MqttClient> => {
      const client = mqtt.connect(broker.url, { clientId, username: identity, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000 });
      clients.push(client);
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
      return client;
    };
    /** Receives until `sentinel` arrives (bounded), then says what came. */
    const collect = (client: MqttClient) => {
      const seen: string[] = [];
      client.on('message', (topic) => seen.push(topic));
      return { seen, until: (sentinel: string) => waitFor(() => seen.includes(sentinel) || undefined, client as unknown as NodeJS.EventEmitter, 'message', 5000) };
    };
    /** A second connection of `identity` that does not take over `besides` (same identity, other lane). */
    const otherLane = (identity: Identity, besides: string) => (besides === identity ? `${identity}~rt` : identity);

    for (const row of SUBSCRIPTIONS) {
      const published = row.published ?? row.filter;
      it(`${name} - ${row.clientId} subscribes ${row.filter}: ${row.allowed ? 'receives' : 'refused, nothing delivered'}, as decide() says`, async () => {
        assert.equal(decide(policy, { identity: row.clientId }, 'subscribe', row.filter).allow, row.allowed, 'decide()');
        const subscriber = await connect(row.clientId, row.identity);
        const source = await connect(otherLane(row.publisher, row.clientId), row.publisher);
        const inbox = collect(subscriber);
        const code = await subackCode(subscriber, row.filter);
        assert.equal(await subackCode(subscriber, row.sentinel), 1, `the sentinel ${row.sentinel} must be readable`);
        await source.publishAsync(published, '{}', { qos: 1 });
        await source.publishAsync(row.sentinel, '{}', { qos: 1 });
        await inbox.until(row.sentinel);
        assert.equal(inbox.seen.includes(published), row.allowed, `${published} ${row.allowed ? 'not ' : ''}delivered (SUBACK ${code})`);
        if (row.allowed) assert.equal(code, 1);
        else assert.ok(code === 0x80 || (broker.grantsDeniedSubscriptions && code === 1), `SUBACK ${code}`);
        assert.ok(subscriber.connected, 'the connection stays up');
      });
    }

    for (const row of PUBLICATIONS) {
      it(`${name} - ${row.clientId} publishes on ${row.topic}: ${row.allowed ? 'delivered' : 'dropped, connection kept'}, as decide() says`, async () => {
        assert.equal(decide(policy, { identity: row.clientId }, 'publish', row.topic).allow, row.allowed, 'decide()');
        // An admin reads `#` (the router identity would get the embedded broker's journal too:
        // every command and response not yet stored, earlier rows' included; protocol §11.1).
        const reader = await connect(otherLane('root', row.clientId), 'root');
        const inbox = collect(reader);
        assert.equal(await subackCode(reader, '#'), 1);
        const publisher = await connect(row.clientId, row.identity);
        // Its own presence: every identity may write it, and the reader gets it after the row's message.
        const sentinel = `relais/presence/${row.identity}`;
        await publisher.publishAsync(row.topic, '{}', { qos: 1 });
        await publisher.publishAsync(sentinel, '{}', { qos: 1 });
        await inbox.until(sentinel);
        assert.equal(inbox.seen.includes(row.topic), row.allowed || row.topic === sentinel, `${row.topic} ${row.allowed ? 'not ' : ''}delivered`);
        assert.ok(publisher.connected, 'the connection stays up');
      });
    }

    it(`${name} - a wrong secret is refused at CONNECT`, async () => {
      await assert.rejects(connect('alice', 'alice', 'wrong'), /Not authorized|Bad username or password/i);
    });
  });
}

/** The SUBACK code of one filter (mqtt.js turns 0x80 into an error that carries the packet). */
export function subackCode(client: MqttClient, filter: string): Promise<number> {
  return client.subscribeAsync(filter, { qos: 1 }).then(
    (granted) => granted[0]!.qos,
    (error: Error & { packet?: { granted: number[] } }) => error.packet?.granted[0] ?? Promise.reject(error),
  );
}
