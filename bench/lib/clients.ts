/**
 * The two sides compared: Relais clients (src/) and raw MQTT.js clients doing the same
 * exchange by hand — same topics, same JSON envelope fields (so the same bytes on the
 * wire), same QoS. The raw side is the least a careful hand-written client would do:
 * parse the JSON, match the token, no schema validation, no timers per request.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import type { Bus, ConnectOptions } from '../../src/index.js';
import { relais } from './relais.js';
import { withDeadline } from './util.js';

/** Relais warnings still reach stderr; the benchmark must not produce any. */
const logger = pino({ name: 'relais-bench', level: process.env.RELAIS_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));

export function relaisConnect(url: string, id: string, extra: Partial<ConnectOptions> = {}): Promise<Bus> {
  return withDeadline(relais.connect({ id, broker: url, logger, timeout: 30_000, ...extra }), 15_000, `Relais connect ${id}`);
}

/**
 * A raw MQTT.js client with the options Relais gives its own (MQTT 3.1.1, clean session,
 * no-delay on the socket, no automatic reconnect), so only the layer above differs.
 */
export async function rawConnect(url: string, clientId: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId, protocolVersion: 4, clean: true, keepalive: 30, reconnectPeriod: 0, connectTimeout: 10_000 });
  client.on('error', () => {}); // reported through the connect promise or the scenario's deadline
  await withDeadline(
    new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    }),
    15_000,
    `MQTT.js connect ${clientId}`,
  );
  (client as unknown as { stream?: { setNoDelay?: (on: boolean) => void } }).stream?.setNoDelay?.(true);
  return client;
}

export function rawSubscribe(client: MqttClient, filter: string, qos: 0 | 1): Promise<void> {
  return withDeadline(
    new Promise<void>((resolve, reject) => client.subscribe(filter, { qos }, (error) => (error ? reject(error) : resolve()))),
    10_000,
    `subscribe ${filter}`,
  );
}

export function rawEnd(client: MqttClient): Promise<void> {
  return withDeadline(new Promise<void>((resolve) => client.end(false, {}, () => resolve())), 5000, 'MQTT.js end').catch(() => {
    client.end(true);
  });
}

export async function closeAll(closers: Array<Bus | MqttClient | undefined>): Promise<void> {
  await Promise.all(
    closers.map(async (item) => {
      if (!item) return;
      if (item instanceof relais.Bus) await withDeadline(item.close(), 5000, 'Relais close').catch(() => item.kill());
      else await rawEnd(item);
    }),
  );
}

/** The notification envelope Relais' `notify` builds, field for field (src/client/bus.ts sendEnvelope). */
export function notificationBody(source: string, payload: unknown, priority: 'normal' | 'realtime' = 'normal'): string {
  return JSON.stringify({ v: 1, type: 'notification', payload, destination: '*', source, priority, ts: Date.now() });
}

/**
 * Sends commands on `<action>/request/<target>`, matches responses on `<action>/response/<id>` by token.
 * QoS 1 unless told (the peers benchmark also runs it at QoS 0, what most hand-written clients use).
 */
export class RawRequester {
  private readonly pending = new Map<string, { onFinal: (payload: unknown) => void; onProgress?: (envelope: { progress?: number }) => void }>();
  private readonly prefix = randomBytes(6).toString('base64url');
  private counter = 0;
  private readonly responseTopic: string;

  private constructor(
    readonly client: MqttClient,
    readonly id: string,
    readonly action: string,
    readonly target: string,
    readonly qos: 0 | 1,
  ) {
    this.responseTopic = `${action}/response/${id}`;
    client.on('message', (topic, payload) => {
      if (topic !== this.responseTopic) return;
      const envelope = JSON.parse(payload.toString('utf8')) as { token: string; final?: boolean; payload: unknown; progress?: number };
      const entry = this.pending.get(envelope.token);
      if (!entry) return;
      if (envelope.final === false) {
        entry.onProgress?.(envelope);
        return;
      }
      this.pending.delete(envelope.token);
      entry.onFinal(envelope.payload);
    });
  }

  static async create(url: string, id: string, action: string, target: string, qos: 0 | 1 = 1): Promise<RawRequester> {
    const client = await rawConnect(url, id);
    const requester = new RawRequester(client, id, action, target, qos);
    await rawSubscribe(client, requester.responseTopic, qos);
    return requester;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Resolves with the final payload; `onProgress` sees each progress response. */
  request(payload: unknown, onProgress?: (envelope: { progress?: number }) => void): Promise<unknown> {
    const token = `${this.prefix}.${(this.counter++).toString(36)}`;
    const now = Date.now();
    const body = JSON.stringify({ v: 1, type: 'command', source: this.id, destination: this.target, token, payload, priority: 'normal', deadline: now + 30_000, ts: now });
    return new Promise((resolve) => {
      this.pending.set(token, { onFinal: resolve, ...(onProgress && { onProgress }) });
      this.client.publish(`${this.action}/request/${this.target}`, body, { qos: this.qos });
    });
  }
}

/**
 * Serves `<action>/request/<id>`: `steps` progress responses, then the final one echoing the
 * payload. Targeted, as Relais sends a request without `target` to the handler it picks.
 */
export class RawResponder {
  /** Requests answered so far. */
  served = 0;

  private constructor(
    readonly client: MqttClient,
    readonly id: string,
    readonly action: string,
    steps: readonly number[],
    qos: 0 | 1,
  ) {
    const requestTopic = `${action}/request/${id}`;
    client.on('message', (topic, payload) => {
      if (topic !== requestTopic) return;
      const request = JSON.parse(payload.toString('utf8')) as { source: string; token: string; payload: unknown; priority?: string };
      this.served++;
      const responseTopic = `${action}/response/${request.source}`;
      const priority = request.priority ?? 'normal';
      // Same fields, same order as src/client/serving/handlers.ts reply().
      for (const progress of steps) {
        const body = JSON.stringify({ v: 1, type: 'response', source: id, destination: request.source, token: request.token, final: false, payload: null, progress, priority, ts: Date.now() });
        client.publish(responseTopic, body, { qos });
      }
      const body = JSON.stringify({ v: 1, type: 'response', source: id, destination: request.source, token: request.token, final: true, payload: request.payload ?? null, code: 0, priority, ts: Date.now() });
      client.publish(responseTopic, body, { qos });
    });
  }

  static async create(url: string, id: string, action: string, steps: readonly number[] = [], qos: 0 | 1 = 1): Promise<RawResponder> {
    const client = await rawConnect(url, id);
    const responder = new RawResponder(client, id, action, steps, qos);
    await rawSubscribe(client, `${action}/request/${id}`, qos);
    return responder;
  }
}

/**
 * Subscribes a throw-away raw client to `filters`, runs `exchange`, and returns the size in
 * bytes of each message seen per topic: proof that both sides put the same bytes on the wire.
 */
export async function wireSizes(url: string, filters: string[], exchange: () => Promise<void>): Promise<Map<string, number[]>> {
  const spy = await rawConnect(url, `bench-spy-${randomBytes(3).toString('hex')}`);
  const sizes = new Map<string, number[]>();
  spy.on('message', (topic, payload) => {
    const list = sizes.get(topic) ?? [];
    list.push(payload.length);
    sizes.set(topic, list);
  });
  try {
    for (const filter of filters) await rawSubscribe(spy, filter, 1);
    await exchange();
    // The spy's copies follow the requester's; give them a moment (bounded) to land.
    await new Promise((resolve) => setTimeout(resolve, 100));
  } finally {
    await rawEnd(spy);
  }
  return sizes;
}
