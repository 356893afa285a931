/**
 * The MQTT connections of one client: the main one and, optionally, the real-time lane
 * (protocol §6). Owns reconnection with jittered backoff, the bounded offline queue and
 * the priority-ordered outbound queue. Knows nothing of envelopes.
 */
import mqtt, { type IClientOptions, type ISubscriptionMap, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Priority } from '../protocol/envelope.js';
import { NotSentError } from '../protocol/errors.js';
import type { Lane } from './types.js';
import { redactBroker, toMqttUrl, type ResolvedOptions } from './options.js';

export interface OutboundMessage {
  topic: string;
  body: string;
  qos: 0 | 1;
  retain?: boolean;
  priority: Priority;
  deadline?: number;
  /** Called when the message is dropped instead of sent (deadline passed offline, client closed). */
  onDropped?: (error: NotSentError) => void;
}

export type IncomingHandler = (topic: string, payload: Buffer, retained: boolean, lane: Lane) => void;

/** Bytes the socket may hold before lower-priority messages wait in our queue instead. */
const SOCKET_HIGH_WATER = 64 * 1024;
const PRIORITY_ORDER: readonly Priority[] = ['realtime', 'high', 'normal', 'low'];
/** MQTT.js calls its debug logger on every packet; unless DEBUG asks for it, that is wasted work. */
const MQTT_LOG = process.env.DEBUG ? {} : { log: () => {} };

/** A connection dropped sooner than this after CONNACK counts as "young"; so many in a row suggest a twin. */
const YOUNG_CONNECTION_MS = 1000;
const YOUNG_DROPS_SUSPECT = 3;
/** Reconnection pause (to twice this, at random) once a twin is suspected. */
const TAKEOVER_PAUSE_MS = 500;

/** How long `close()` waits for the broker to acknowledge messages in flight. */
export const CLOSE_GRACE_MS = 2000;

interface Socket {
  setNoDelay?(on: boolean): void;
  destroy?(): void;
  on?(event: string, listener: () => void): void;
  cork?(): void;
  uncork?(): void;
  writableLength?: number;
}

function socketOf(client: MqttClient): Socket | undefined {
  return (client as unknown as { stream?: Socket }).stream;
}

export class Transport {
  readonly main: MqttClient;
  readonly realtime?: MqttClient;
  private readonly queues: Record<Priority, OutboundMessage[]> = { realtime: [], high: [], normal: [], low: [] };
  private queued = 0;
  private closing = false;
  private mainCorked = false;
  /** Work waiting for a connection's next CONNACK, run (and so ended) at close instead. */
  private readonly waitingForConnect = new Map<MqttClient, Array<() => void>>();
  /** The broker URL as logs and errors show it (password masked). */
  readonly brokerLabel: string;

  constructor(
    private readonly options: ResolvedOptions,
    will: { topic: string; payload: string },
    private readonly onIncoming: IncomingHandler,
    private readonly onConnect: (lane: Lane, reconnected: boolean) => void,
    private readonly onDisconnect: (lane: Lane) => void = () => {},
  ) {
    this.brokerLabel = redactBroker(options.broker);
    this.main = this.open(options.id, will, 'main');
    if (options.realtimeLane) this.realtime = this.open(`${options.id}~rt`, undefined, 'realtime');
  }

  get logger(): Logger {
    return this.options.logger;
  }

  get connected(): boolean {
    return this.main.connected;
  }

  /** Resolves on the first connection of every lane; rejects with a clear reason otherwise. */
  async ready(): Promise<void> {
    const lanes = [this.main, ...(this.realtime ? [this.realtime] : [])];
    await Promise.all(lanes.map((client) => this.firstConnect(client)));
  }

  private firstConnect(client: MqttClient): Promise<void> {
    if (client.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const broker = this.brokerLabel;
      const timer = setTimeout(() => fail(new Error(`no answer from the broker at ${broker} within ${this.options.connectTimeout} ms`)), this.options.connectTimeout);
      const fail = (error: Error) => {
        cleanup();
        reject(new NotSentError(`cannot connect to the broker at ${broker}: ${error.message}`, { cause: error }));
      };
      const onError = (error: Error) => fail(error);
      const onClose = () => fail(new Error('connection closed before CONNACK'));
      const onConnect = () => {
        cleanup();
        resolve();
      };
      const cleanup = () => {
        clearTimeout(timer);
        client.off('error', onError);
        client.off('close', onClose);
        client.off('connect', onConnect);
      };
      client.on('error', onError);
      client.on('close', onClose);
      client.on('connect', onConnect);
    });
  }

  private open(clientId: string, will: { topic: string; payload: string } | undefined, lane: Lane): MqttClient {
    const { options } = this;
    const mqttOptions: IClientOptions = {
      clientId,
      protocolVersion: 4, // MQTT 3.1.1: Aedes and NATS do not speak 5 (protocol §1)
      clean: true,
      keepalive: options.keepalive,
      // MQTT.js only re-subscribes after a reconnection it made itself, so it reconnects, and
      // we re-draw its period after each attempt to get jittered exponential backoff.
      reconnectPeriod: this.backoff(0),
      connectTimeout: options.connectTimeout,
      resubscribe: true,
      ...(options.username !== undefined && { username: options.username }),
      ...(options.password !== undefined && { password: options.password }),
      ...(options.tls ?? {}),
      ...(will && { will: { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: true } }),
      ...MQTT_LOG,
    };
    const client = mqtt.connect(toMqttUrl(options.broker), mqttOptions);
    let everConnected = false;
    let attempts = 0;
    let lostAt = 0;
    let errorsThisOutage = 0;
    client.on('connect', () => {
      const waiting = this.waitingForConnect.get(client);
      this.waitingForConnect.delete(client);
      for (const run of waiting ?? []) run();
      const stream = socketOf(client);
      stream?.setNoDelay?.(true);
      if (lane === 'main') stream?.on?.('drain', () => this.pump());
      if (everConnected) this.logger.info({ lane, broker: this.brokerLabel, attempts, downMs: Date.now() - lostAt }, 'reconnected');
      attempts = 0;
      errorsThisOutage = 0;
      client.options.reconnectPeriod = this.backoff(0);
      this.onConnect(lane, everConnected);
      everConnected = true;
      this.pump();
    });
    if (lane === 'main') client.on('packetreceive', () => this.coalesceMainWrites());
    client.on('message', (topic, payload, packet) => this.onIncoming(topic, payload, packet.retain, lane));
    // One warning per outage: a broker that is down for an hour must not write a line per attempt.
    client.on('error', (error) => {
      if (this.closing) return;
      errorsThisOutage += 1;
      const level = errorsThisOutage === 1 ? 'warn' : 'debug';
      this.logger[level]({ lane, broker: this.brokerLabel, err: error.message, attempts }, errorsThisOutage === 1 ? 'MQTT connection error' : 'MQTT connection error (again)');
    });
    let up = false;
    let upSince = 0;
    let youngDrops = 0;
    client.on('connect', () => {
      up = true;
      upSince = Date.now();
    });
    client.on('close', () => {
      if (this.closing || !everConnected) return;
      if (up) {
        up = false;
        lostAt = Date.now();
        youngDrops = lostAt - upSince < YOUNG_CONNECTION_MS ? youngDrops + 1 : 0;
        if (youngDrops === YOUNG_DROPS_SUSPECT) {
          this.logger.warn({ lane, broker: this.brokerLabel, clientId }, `the broker dropped this connection right after accepting it ${youngDrops} times: another client is probably using the id ${clientId}; reconnecting more slowly`);
        }
        this.logger.warn({ lane, broker: this.brokerLabel }, 'connection lost; reconnecting');
        this.onDisconnect(lane);
      }
      attempts += 1;
      // Two clients with one id knock each other off at once, too fast for either to hear the
      // other's presence (§7.5): slowing down lets the presences through.
      const pause = youngDrops >= YOUNG_DROPS_SUSPECT ? TAKEOVER_PAUSE_MS * (1 + Math.random()) : 0;
      client.options.reconnectPeriod = Math.max(this.backoff(attempts), pause);
    });
    return client;
  }

  /**
   * Delay before reconnection attempt `attempt`: "full jitter" exponential backoff, so clients
   * that lost the broker together do not all return in the same millisecond.
   */
  private backoff(attempt: number): number {
    const { reconnectDelay, reconnectMaxDelay } = this.options;
    const ceiling = Math.min(reconnectMaxDelay, reconnectDelay * 2 ** Math.min(attempt, 16));
    return Math.max(1, Math.round(Math.random() * ceiling));
  }

  private laneFor(priority: Priority): MqttClient {
    return priority === 'realtime' && this.realtime ? this.realtime : this.main;
  }

  /**
   * Sends a message, or queues it: behind the socket's high-water mark it waits in the
   * priority queue; while disconnected it waits in the bounded offline queue.
   * Throws `NotSentError` when the client is closed or the offline queue is full.
   */
  send(message: OutboundMessage): void {
    if (this.closing) throw new NotSentError('the client is closed');
    const client = this.laneFor(message.priority);
    if (client !== this.main && client.connected) {
      this.write(client, message);
      return;
    }
    if (this.queued === 0 && this.main.connected && this.socketHasRoom()) {
      this.write(this.main, message);
      return;
    }
    if (!this.main.connected && this.queued >= this.options.maxOfflineMessages) {
      throw new NotSentError(`offline queue full (${this.options.maxOfflineMessages} messages) while disconnected from ${this.brokerLabel}`);
    }
    this.queues[message.priority].push(message);
    this.queued += 1;
  }

  private socketHasRoom(): boolean {
    return (socketOf(this.main)?.writableLength ?? 0) < SOCKET_HIGH_WATER;
  }

  /**
   * Holds the main socket's writes while an incoming packet is being handled. MQTT.js writes a
   * request's PUBACK as soon as the request is delivered; the handler's response follows a few
   * microtasks later, as does the next request of a caller that was awaiting a response.
   * Released once the microtask queue has drained (a microtask that schedules a tick), they
   * leave in one system call instead of two: +60 % requests/s with 100 in flight, the same
   * sequential latency (bench/RESULTS.md). Unlike Nagle there is no timer, and the real-time
   * lane is never held.
   */
  private coalesceMainWrites(): void {
    if (this.mainCorked) return;
    const stream = socketOf(this.main);
    if (!stream?.cork || !stream.uncork) return;
    this.mainCorked = true;
    stream.cork();
    queueMicrotask(() =>
      process.nextTick(() => {
        this.mainCorked = false;
        stream.uncork!();
      }),
    );
  }

  private write(client: MqttClient, message: OutboundMessage): void {
    client.publish(message.topic, message.body, { qos: message.qos, retain: message.retain ?? false }, (error) => {
      if (error && !this.closing) this.logger.warn({ topic: message.topic, err: error.message }, 'publish failed');
    });
  }

  /** Drains the queue in priority order while connected and the socket has room; drops what expired. */
  private pump(): void {
    if (this.queued === 0) return;
    const now = Date.now();
    for (const priority of PRIORITY_ORDER) {
      const queue = this.queues[priority];
      while (queue.length > 0) {
        const client = this.laneFor(priority);
        if (!client.connected || (client === this.main && !this.socketHasRoom())) break;
        const message = queue.shift()!;
        this.queued -= 1;
        if (message.deadline !== undefined && message.deadline <= now) {
          message.onDropped?.(new NotSentError(`deadline passed before ${message.topic} could be sent (disconnected or backlogged)`));
          continue;
        }
        this.write(client, message);
      }
    }
  }

  /**
   * Subscribes, and resolves on the broker's SUBACK. A connection lost before the SUBACK is
   * not a failure: the subscription is made again once reconnected (or fails with
   * `NotSentError` if the client closes first). A refusal by the broker rejects.
   */
  subscribe(filter: string, lane: Lane, qos: 0 | 1 = 1): Promise<void> {
    const client = lane === 'realtime' && this.realtime ? this.realtime : this.main;
    return new Promise((resolve, reject) => {
      const attempt = () => {
        if (this.closing) return reject(new NotSentError(`the client closed before subscribing to ${filter}`));
        // `resubscribe` makes MQTT.js send a real SUBSCRIBE even for a filter it already holds
        // for resubscription, so a retry gets the broker's answer (a refusal included).
        // MQTT.js reads `resubscribe` from the map at run time; its types do not list it.
        const subscription = { [filter]: { qos }, resubscribe: true } as unknown as ISubscriptionMap;
        client.subscribe(subscription, (error, granted) => {
          if (error && !this.closing && !client.connected) {
            this.logger.debug({ filter, err: error.message }, 'subscription interrupted by a lost connection; retrying once reconnected');
            this.afterNextConnect(client, attempt);
            return;
          }
          if (error && this.closing) return reject(new NotSentError(`the client closed before subscribing to ${filter}`, { cause: error }));
          if (error) return reject(error);
          if (granted?.some((grant) => grant.qos === 128)) return reject(new Error(`the broker refused the subscription to ${filter}`));
          resolve();
        });
      };
      attempt();
    });
  }

  /** Runs `run` at the next CONNACK of `client`, or at close (where it finds `closing` set). */
  private afterNextConnect(client: MqttClient, run: () => void): void {
    const waiting = this.waitingForConnect.get(client) ?? [];
    waiting.push(run);
    this.waitingForConnect.set(client, waiting);
  }

  /** Ends what waits for a reconnection: each one sees `closing` and fails. */
  private releaseWaiters(): void {
    const waiting = [...this.waitingForConnect.values()].flat();
    this.waitingForConnect.clear();
    for (const run of waiting) run();
  }

  /**
   * Unsubscribes. Offline, MQTT.js is still told, or it would subscribe again on reconnection;
   * the broker kept nothing for our clean session, so there is nothing to wait for.
   */
  unsubscribe(filter: string, lane: Lane): Promise<void> {
    const client = lane === 'realtime' && this.realtime ? this.realtime : this.main;
    if (this.closing) return Promise.resolve();
    if (!client.connected) {
      client.unsubscribe(filter, () => {});
      return Promise.resolve();
    }
    return new Promise((resolve) => client.unsubscribe(filter, () => resolve()));
  }

  /**
   * Publishes directly on the main connection and resolves once the broker has it (QoS 1).
   * Rejects with `NotSentError` if the connection closes first (MQTT.js would keep it for a
   * resend and never call back) or, with `within`, if the broker has not acknowledged it by then.
   */
  publishNow(topic: string, body: string, retain: boolean, within?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = (error?: Error) => {
        clearTimeout(timer);
        this.main.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const timer = within === undefined ? undefined : setTimeout(() => settle(new NotSentError(`the broker did not acknowledge ${topic} within ${within} ms`)), within);
      const onClose = () => settle(new NotSentError(`the connection closed before the broker acknowledged ${topic}`));
      this.main.once('close', onClose);
      this.main.publish(topic, body, { qos: 1, retain }, (error) => settle(error ?? undefined));
    });
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.releaseWaiters();
    for (const priority of PRIORITY_ORDER) {
      for (const message of this.queues[priority].splice(0)) message.onDropped?.(new NotSentError('the client closed before the message could be sent'));
    }
    this.queued = 0;
    const lanes = [this.main, ...(this.realtime ? [this.realtime] : [])];
    await Promise.all(lanes.map((client) => this.end(client)));
  }

  /**
   * Ends a connection, waiting for the broker to acknowledge what is in flight, but not
   * forever: MQTT.js's clean end waits for those acknowledgements even when the broker is
   * gone, which made `close()` hang when the broker was down.
   */
  private end(client: MqttClient): Promise<void> {
    return new Promise((resolve) => {
      if (!client.connected) {
        client.end(true, {}, () => resolve());
        return;
      }
      const giveUp = setTimeout(() => {
        this.logger.warn({ broker: this.brokerLabel, graceMs: CLOSE_GRACE_MS }, 'the broker did not acknowledge the last messages in time; connection dropped');
        socketOf(client)?.destroy?.();
        resolve();
      }, CLOSE_GRACE_MS);
      client.end(false, {}, () => {
        clearTimeout(giveUp);
        resolve();
      });
    });
  }

  /** Drops the connections without a clean DISCONNECT, as a crash would (the will fires). For tests and tools. */
  async kill(): Promise<void> {
    this.closing = true;
    this.releaseWaiters();
    const lanes = [this.main, ...(this.realtime ? [this.realtime] : [])];
    // Destroying the socket first guarantees no DISCONNECT packet goes out, so the will fires.
    for (const client of lanes) (client as unknown as { stream?: { destroy(): void } }).stream?.destroy();
    await Promise.all(lanes.map((client) => new Promise<void>((resolve) => client.end(true, {}, () => resolve()))));
  }
}
