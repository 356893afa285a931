/**
 * The page's connection to the bus: MQTT 3.1.1 over WebSocket (protocol §1.1), a plain peer
 * in the sense of protocol §10. Envelopes, topics and message builders are src/protocol's own
 * files, not copies. Requests live in request.ts; this file holds the connection, the
 * subscriptions and their dispatch.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { decode, type Envelope } from '../../../src/protocol/envelope.js';
import { checkFilter, topicMatches } from '../../../src/protocol/topics.js';
import { Requests, type RequestHandle, type RequestOptions, type WireFailure } from './request.js';

export interface Credentials {
  identity: string;
  token: string;
}

/** The broker refused the CONNECT: 4 bad identity or token, 5 not authorised (protocol §1.1, docs/security.md). */
export class ConnectRefusedError extends Error {
  constructor(readonly returnCode: number, message: string) {
    super(message);
    this.name = 'ConnectRefusedError';
  }
}

export type ConnectionState = 'connected' | 'reconnecting' | 'closed';

/** What a subscriber gets: the topic, the raw text, and the envelope when the text is one. */
export interface Delivery {
  topic: string;
  text: string;
  envelope?: Envelope;
  retain: boolean;
}
type Listener = (delivery: Delivery) => void;

export interface Subscription {
  /** false when the broker's SUBACK refused the filter (0x80: the policy denies it). */
  granted: boolean;
  close(): void;
}

/**
 * The WebSocket URL of the bus: `/mqtt` beside the page, on its own origin. Never taken from the
 * page's address: a link could otherwise send a user's token to another server.
 */
export function defaultBrokerUrl(location: Location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const folder = location.pathname.replace(/[^/]*$/, '');
  return `${scheme}//${location.host}${folder}mqtt`;
}

/** A client id of the page: the identity when logged in (the broker requires it), else a random one. */
function pageClientId(credentials?: Credentials): string {
  if (credentials) return credentials.identity;
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `web-${random[0]!.toString(36)}${random[1]!.toString(36)}`;
}

const CONNECT_TIMEOUT_MS = 10_000;
/** For display only; keeps a BOM visible rather than dropping it. */
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

export async function connectBus(url: string, credentials?: Credentials): Promise<Bus> {
  const id = pageClientId(credentials);
  const options: IClientOptions = {
    clientId: id,
    protocolVersion: 4,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 1000,
    connectTimeout: CONNECT_TIMEOUT_MS,
    ...(credentials && { username: credentials.identity, password: credentials.token }),
  };
  const client = mqtt.connect(url, options);
  await new Promise<void>((resolve, reject) => {
    const onConnect = () => {
      client.off('error', onError);
      resolve();
    };
    const onError = (error: Error & { code?: number }) => {
      if (typeof error.code === 'number' && error.code >= 1 && error.code <= 5) {
        client.end(true);
        client.off('connect', onConnect);
        reject(new ConnectRefusedError(error.code, refusalText(error.code)));
      }
    };
    client.once('connect', onConnect);
    client.on('error', onError);
    setTimeout(() => {
      if (client.connected) return;
      client.end(true);
      reject(new Error(`no answer from the bus at ${url} within ${CONNECT_TIMEOUT_MS / 1000} s`));
    }, CONNECT_TIMEOUT_MS);
  });
  return new Bus(client, id, credentials?.identity);
}

function refusalText(code: number): string {
  switch (code) {
    case 4:
      return 'the broker refused the identity or token';
    case 5:
      return 'this identity is not authorised to connect';
    case 2:
      return 'the broker refused the client id';
    default:
      return `the broker refused the connection (code ${code})`;
  }
}

export class Bus {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly stateListeners = new Set<(state: ConnectionState) => void>();
  private readonly requests: Requests;
  state: ConnectionState = 'connected';

  constructor(
    private readonly client: MqttClient,
    readonly id: string,
    readonly identity: string | undefined,
  ) {
    this.requests = new Requests(this);
    client.on('message', (topic, bytes, packet) => this.dispatch(topic, bytes, packet.retain));
    client.on('connect', () => this.setState('connected'));
    client.on('reconnect', () => this.setState('reconnecting'));
    client.on('offline', () => this.setState('reconnecting'));
    client.on('close', () => this.state === 'closed' || this.setState('reconnecting'));
  }

  /** Calls `listener` on each change of the connection; returns how to stop. */
  onState(listener: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }

  /**
   * Subscribes (QoS 1, protocol §8.3); resolves once the broker has answered. One MQTT
   * subscription per filter, shared by every listener of it.
   */
  async subscribe(filter: string, listener: Listener): Promise<Subscription> {
    const problem = checkFilter(filter);
    if (problem) throw new TypeError(problem);
    let set = this.listeners.get(filter);
    const first = !set;
    if (!set) this.listeners.set(filter, (set = new Set()));
    set.add(listener);
    let granted = true;
    if (first) {
      granted = await new Promise<boolean>((resolve, reject) =>
        this.client.subscribe(filter, { qos: 1 }, (error, grants) => {
          // MQTT.js reports a SUBACK of 0x80 (3.1.1: "failure") as an error carrying the packet.
          const refused = (error as (Error & { packet?: { granted?: unknown[] } }) | null)?.packet?.granted?.some((code) => typeof code === 'number' && (code & 0x80) !== 0);
          if (refused) resolve(false);
          else if (error) reject(error);
          else resolve((grants ?? []).every((grant) => grant.qos !== 128));
        }),
      );
    }
    if (!granted) {
      set.delete(listener);
      this.listeners.delete(filter);
    }
    return {
      granted,
      close: () => {
        if (!set.delete(listener) || set.size > 0) return;
        this.listeners.delete(filter);
        if (this.client.connected) this.client.unsubscribe(filter);
      },
    };
  }

  publish(topic: string, text: string, qos: 0 | 1 = 1): Promise<void> {
    return new Promise((resolve, reject) => this.client.publish(topic, text, { qos, retain: false }, (error) => (error ? reject(error) : resolve())));
  }

  /** Sends a command and follows its answers (protocol §4.1). */
  request(action: string, payload: unknown, options: RequestOptions = {}): RequestHandle {
    return this.requests.send(action, payload, options);
  }

  /** One answer wanted: the final payload, or a `WireFailure` (code, name, message). */
  async ask<T>(action: string, payload: unknown, options: RequestOptions = {}): Promise<T> {
    const final = await this.request(action, payload, { timeoutMs: 10_000, ...options }).done;
    if (final.ok) return final.payload as T;
    throw Object.assign(new Error(final.error.message), final.error) as Error & WireFailure;
  }

  close(): void {
    this.setState('closed');
    this.requests.abandonAll();
    this.client.end(true);
  }

  private dispatch(topic: string, bytes: Uint8Array, retain: boolean): void {
    // The topic view shows any payload as text; only what decode() accepts is an envelope, by
    // the rule every reader of ours applies (a BOM or UTF-16 is not one, protocol §3).
    const text = UTF8.decode(bytes);
    const decoded = decode(bytes, Infinity);
    const envelope: Envelope | undefined = decoded.ok ? decoded.envelope : undefined;
    const delivery: Delivery = { topic, text, retain, ...(envelope && { envelope }) };
    for (const [filter, set] of this.listeners) {
      if (!topicMatches(filter, topic)) continue;
      for (const listener of set) listener(delivery);
    }
  }
}
