/**
 * An embedded broker with security on, identities of each role made as `relais identity add`
 * makes them, and raw MQTT.js clients (the hostile side, and plain peers): for the tests of
 * docs/security.md. Disposable: closes every client, the broker and its folder.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { startEmbeddedBroker, type EmbeddedBroker, type EmbeddedBrokerOptions } from '../../src/broker/index.js';
import type { BrokerSecurity } from '../../src/broker/enforce.js';
import { defaultPolicy } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import type { Policy } from '../../src/security/policy.js';
import { within } from './index.js';

export interface SecureBroker {
  broker: EmbeddedBroker;
  store: IdentityStore;
  dir: string;
  tokens: Map<string, string>;
  /** Every line the broker logged. */
  logs: string[];
  /** Resolves once a logged line matches `pattern` (lines before the call count). */
  logged(pattern: RegExp, timeout?: number): Promise<string>;
  /** A raw MQTT 3.1.1 client as `identity` (its own token unless given); resolves on CONNACK 0, rejects with the refusal. */
  raw(identity: string, options?: IClientOptions & { url?: string }): Promise<MqttClient>;
  /** The CONNACK return code that refuses this CONNECT. */
  refusedWith(identity: string, options?: IClientOptions & { url?: string }): Promise<number>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startSecureBroker(
  people: Array<[string, string[]]>,
  options: { policy?: Policy | (() => Policy); broker?: EmbeddedBrokerOptions; security?: Partial<BrokerSecurity>; byPath?: boolean; unix?: boolean } = {},
): Promise<SecureBroker> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-secure-'));
  const logs: string[] = [];
  const lines = new EventEmitter();
  const log = (line: string) => {
    logs.push(line);
    lines.emit('line');
  };
  // The store's own lines (a changed file refused) go with the broker's.
  const store = new IdentityStore(path.join(dir, 'identities.json'), { log });
  const tokens = new Map<string, string>();
  for (const [name, roles] of people) tokens.set(name, (await store.add(name, roles)).token);
  const broker = await startEmbeddedBroker({
    port: 0,
    ...(options.unix && { unixPath: path.join(dir, 'broker.sock') }),
    ...options.broker,
    // By default the default policy, its service `svc` serving demo/ (relais identity add svc --serves 'demo/#').
    security: { identities: options.byPath ? store.file : store, policy: options.policy ?? defaultPolicy({ serves: { svc: ['demo/#'] } }), ...options.security },
    log,
  });
  const clients: MqttClient[] = [];
  const raw = async (identity: string, extra: IClientOptions & { url?: string } = {}) => {
    const { url, ...rest } = extra;
    const client = mqtt.connect(url ?? broker.url!, { clientId: identity, username: identity, password: tokens.get(identity), protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...rest });
    clients.push(client);
    await within(
      new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error(`${identity}: closed before CONNACK`)));
      }),
      15_000,
      `CONNACK for ${identity}`,
    );
    return client;
  };
  const close = async () => {
    await Promise.all(clients.map((client) => client.endAsync(true)));
    await broker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return {
    broker,
    store,
    dir,
    tokens,
    logs,
    logged: (pattern, timeout = 5000) =>
      within(
        new Promise<string>((resolve) => {
          const look = () => {
            const line = logs.find((candidate) => pattern.test(candidate));
            if (line === undefined) return;
            lines.off('line', look);
            resolve(line);
          };
          lines.on('line', look);
          look();
        }),
        timeout,
        `a log line matching ${pattern}`,
      ),
    raw,
    async refusedWith(identity, extra) {
      const error = await raw(identity, extra).then(
        () => assert.fail(`${identity} was let in`),
        (caught: Error & { code?: number }) => caught,
      );
      assert.equal(typeof error.code, 'number', `not a CONNACK refusal: ${error.message}`);
      return error.code!;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Messages arriving at `client`, and a wait for the next one on a topic. */
export function inbox(client: MqttClient) {
  const seen: Array<{ topic: string; payload: Buffer }> = [];
  const arrivals = new EventEmitter();
  client.on('message', (topic, payload) => {
    seen.push({ topic, payload });
    arrivals.emit('message');
  });
  const next = (topic: string, timeout = 5000) =>
    within(
      new Promise<Record<string, unknown>>((resolve) => {
        const look = () => {
          const at = seen.findIndex((message) => message.topic === topic);
          if (at < 0) return;
          arrivals.off('message', look);
          resolve(JSON.parse(seen.splice(at, 1)[0]!.payload.toString()) as Record<string, unknown>);
        };
        arrivals.on('message', look);
        look();
      }),
      timeout,
      `a message on ${topic}`,
    );
  return { seen, next };
}

/** Resolves when `client`'s connection closes. */
export function closed(client: MqttClient, timeout = 5000): Promise<void> {
  return within(new Promise<void>((resolve) => (client.connected ? client.once('close', () => resolve()) : resolve())), timeout, 'the connection to close');
}
