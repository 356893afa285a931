/**
 * One of a link's two raw MQTT connections (protocol §13.1): to the other end across the WAN,
 * or to this process's own broker. It reconnects by itself with full-jitter back-off, holds its
 * subscriptions across reconnections (clean sessions), and never queues a publish while it is
 * down: what a link carries is republished at the next connection, not replayed stale.
 * Knows nothing of envelopes.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ReconnectSchedule } from '../client/connection/reconnect.js';
import { brokerUrlOptions } from '../client/options.js';

/** Subscriptions are sent in batches of this many filters (a member may serve many actions). */
const FILTERS_PER_SUBSCRIBE = 200;
/** How long a clean close waits for the last publishes to be acknowledged. */
const CLOSE_GRACE_MS = 2000;

export interface LinkConnectionOptions {
  /** Names the connection in log lines (no secret: the broker URL is redacted by the caller). */
  label: string;
  clientId: string;
  /** The broker's URL, or a stream to it (this process's broker). */
  url?: string;
  stream?: () => Duplex;
  /** TLS, credentials, will, keep-alive: given to MQTT.js as they are. */
  mqtt?: IClientOptions;
  reconnect: { firstMs: number; maxMs: number };
}

export interface LinkConnectionEvents {
  up: [];
  down: [reason: string];
  /** An attempt to connect failed (the connection was not up). */
  attemptFailed: [reason: string];
  message: [topic: string, payload: Buffer, qos: 0 | 1, retained: boolean];
}

export class LinkConnection extends EventEmitter<LinkConnectionEvents> {
  readonly label: string;
  readonly clientId: string;
  private readonly client: MqttClient;
  private readonly schedule: ReconnectSchedule;
  private readonly wanted = new Set<string>();
  /** SUBSCRIBE and UNSUBSCRIBE leave one at a time: a broker may apply the two out of order. */
  private subscriptionQueue: Promise<void> = Promise.resolve();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;
  private isUp = false;
  private closing = false;

  constructor(options: LinkConnectionOptions) {
    super();
    this.label = options.label;
    this.clientId = options.clientId;
    this.schedule = new ReconnectSchedule(options.reconnect.firstMs, options.reconnect.maxMs);
    const mqttOptions: IClientOptions = {
      clientId: options.clientId,
      protocolVersion: 4, // MQTT 3.1.1 (protocol §1.1)
      clean: true,
      reconnectPeriod: 0, // reconnection is ours: back-off with jitter
      resubscribe: false,
      connectTimeout: 30_000,
      queueQoSZero: false,
      log: () => {},
      ...options.mqtt,
    };
    this.client = options.stream ? new mqtt.MqttClient(options.stream, mqttOptions) : mqtt.connect({ ...brokerUrlOptions(options.url!), ...mqttOptions });
    this.client.on('connect', () => this.onConnect());
    this.client.on('close', () => this.onClose());
    this.client.on('error', (error) => (this.lastError = error.message));
    this.client.on('message', (topic, payload, packet) => this.emit('message', topic, payload, packet.qos === 0 ? 0 : 1, packet.retain));
  }

  get up(): boolean {
    return this.isUp;
  }

  /** Publishes when connected; returns false (nothing kept) when not. Resolves once a QoS 1 publish is acknowledged. */
  publish(topic: string, payload: Buffer | string, qos: 0 | 1, retain = false): Promise<boolean> {
    if (!this.isUp) return Promise.resolve(false);
    return new Promise((resolve) => this.client.publish(topic, payload, { qos, retain }, (error) => resolve(!error)));
  }

  /** Holds `filters` from now on, across reconnections. */
  subscribe(filters: readonly string[]): Promise<void> {
    const fresh = filters.filter((filter) => !this.wanted.has(filter));
    for (const filter of fresh) this.wanted.add(filter);
    return this.isUp && fresh.length > 0 ? this.send('subscribe', fresh) : this.subscriptionQueue;
  }

  unsubscribe(filters: readonly string[]): Promise<void> {
    const held = filters.filter((filter) => this.wanted.delete(filter));
    return this.isUp && held.length > 0 ? this.send('unsubscribe', held) : this.subscriptionQueue;
  }

  /** Ends the connection: a clean DISCONNECT (no will) once the last publishes are acknowledged, or at once after CLOSE_GRACE_MS. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.client.end(true, {}, () => resolve()), CLOSE_GRACE_MS);
      this.client.end(false, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private send(kind: 'subscribe' | 'unsubscribe', filters: string[]): Promise<void> {
    const batches: string[][] = [];
    for (let i = 0; i < filters.length; i += FILTERS_PER_SUBSCRIBE) batches.push(filters.slice(i, i + FILTERS_PER_SUBSCRIBE));
    for (const batch of batches) {
      this.subscriptionQueue = this.subscriptionQueue.then(
        () =>
          new Promise<void>((resolve) => {
            if (!this.isUp) return resolve(); // sent again at the next connection
            if (kind === 'subscribe') this.client.subscribe(batch, { qos: 1 }, () => resolve());
            else this.client.unsubscribe(batch, () => resolve());
          }),
      );
    }
    return this.subscriptionQueue;
  }

  private onConnect(): void {
    this.isUp = true;
    this.lastError = undefined;
    this.schedule.connected();
    // As the library's own connections (protocol §1.2): a progress then its final must not wait for a delayed ACK. An in-process stream has no such setting.
    (this.client as unknown as { stream?: { setNoDelay?: (on: boolean) => void } }).stream?.setNoDelay?.(true);
    // A subscription must be in place before `up` listeners publish what its answers need.
    if (this.wanted.size > 0) void this.send('subscribe', [...this.wanted]);
    this.emit('up');
  }

  private onClose(): void {
    if (this.isUp) {
      this.isUp = false;
      this.schedule.dropped();
      this.emit('down', this.lastError ?? (this.closing ? 'closed' : 'connection lost'));
    } else if (!this.closing) this.emit('attemptFailed', this.lastError ?? 'connection closed before CONNACK');
    if (this.closing) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (!this.closing) this.client.reconnect();
    }, this.schedule.nextDelay());
  }
}
