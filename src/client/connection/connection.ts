/**
 * One MQTT connection (a lane, protocol §6.2): its reconnection with jittered exponential
 * backoff, moving to the next broker of the list at each attempt (protocol §1.3), the subscriptions it must hold (made again at every reconnection), the guard
 * against packets the broker refuses (protocol §1.4) and the coalescing of writes.
 * Knows nothing of envelopes.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { NotAuthorizedError, NotSentError } from '../../protocol/errors.js';
import { BROKER_PROBE_FILTER } from '../../protocol/topics.js';
import type { WireBody } from '../../protocol/framing.js';
import type { ResolvedOptions } from '../options.js';
import { BrokerEndpoints } from './broker-endpoints.js';
import { HeldSubscriptions } from './held-subscriptions.js';
import { ReconnectSchedule } from './reconnect.js';
import { MAX_STRIKES, ReplayGuardStore } from './replay-guard.js';
import type { Lane } from '../types.js';
import { afterMicrotasks, environmentVariable } from '../runtime.js';
import { waitFor } from '../wait.js';

/** Bytes the socket may hold before lower-priority messages wait in the outbound queue instead. */
const SOCKET_HIGH_WATER = 64 * 1024;
const PLAIN_QOS0 = Object.freeze({ qos: 0 as const, retain: false });
const RETAINED_QOS0 = Object.freeze({ qos: 0 as const, retain: true });

/** How long `close()` waits for the broker to acknowledge messages in flight. */
export const CLOSE_GRACE_MS = 2000;
/** MQTT.js calls its debug logger on every packet; unless DEBUG asks for it, that is wasted work. */
const MQTT_LOG = environmentVariable('DEBUG') ? {} : { log: () => {} };

export interface ConnectionHooks {
  message(topic: string, payload: Buffer, retained: boolean, qos: 0 | 1): void;
  connected(reconnected: boolean): void;
  disconnected(): void;
  /** The socket has room again after being full. */
  drained(): void;
}

interface Socket {
  setNoDelay?(on: boolean): void;
  destroy?(): void;
  on?(event: string, listener: () => void): void;
  cork?(): void;
  uncork?(): void;
  writableLength?: number;
}

export class Connection {
  private readonly client: MqttClient;
  private readonly outgoing = new ReplayGuardStore();
  private readonly incoming = new mqtt.Store();
  private readonly subscriptions: HeldSubscriptions;
  /** UNSUBSCRIBEs not yet acknowledged, by filter: a new SUBSCRIBE of one waits for it. */
  private readonly unsubscribing = new Map<string, Promise<void>>();
  private readonly schedule: ReconnectSchedule;
  private closing = false;
  private everConnected = false;
  private connackSeen = false;
  /** When the broker last sent this connection anything: a silent broker is not a silent handler (protocol §4.7). */
  heardAt = 0;
  private up = false;
  private lostAt = 0;
  private errorsThisOutage = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private corked = false;
  /** The brokers of the list; none over an in-process stream. */
  private readonly endpoints: BrokerEndpoints | undefined;
  /** The broker of the connection that was lost, while reconnecting: the 'reconnected' line says whether the client moved. */
  private lostFrom: string | undefined;
  /** The last error of the attempt under way: why it failed, once it closes. */
  private attemptError: Error | undefined;
  /** Why each attempt of the first connection failed, in order (protocol §1.3). */
  private readonly firstFailures: Array<{ broker: string; why: string; error: Error | undefined }> = [];
  /** Settles the first connection: undefined once connected, else why it cannot be made. */
  private settleFirst!: (error?: Error) => void;
  private readonly firstConnection: Promise<void>;

  constructor(
    private readonly options: ResolvedOptions,
    readonly clientId: string,
    readonly lane: Lane,
    will: { topic: string; payload: string } | undefined,
    private readonly hooks: ConnectionHooks,
  ) {
    this.firstConnection = new Promise<void>((resolve, reject) => {
      this.settleFirst = (error) => (error ? reject(error) : resolve());
    });
    this.firstConnection.catch(() => {});
    this.schedule = new ReconnectSchedule(options.reconnectDelay, options.reconnectMaxDelay);
    const sessionOptions: IClientOptions = {
      clientId,
      protocolVersion: 4, // MQTT 3.1.1: Aedes and NATS do not speak 5 (protocol §1.1)
      // A persistent session keeps what is published to us at QoS 1 while we are away (protocol §1.3).
      clean: !(options.persistentSession && lane === 'main'),
      keepalive: options.keepalive,
      // Reconnection is ours (backoff that survives a CONNACK), and so is resubscription.
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: options.connectTimeout,
      outgoingStore: this.outgoing,
      incomingStore: this.incoming,
      ...(will && { will: { topic: will.topic, payload: will.payload, qos: 1, retain: true } }),
      ...MQTT_LOG,
    };
    // The same credentials and TLS options for every broker of the list (protocol §1.3).
    const accessOptions: IClientOptions = {
      ...(options.username !== undefined && { username: options.username }),
      ...(options.password !== undefined && { password: options.password }),
      ...(options.tls ?? {}),
      ...MQTT_LOG,
    };
    const stream = options.stream;
    if (stream) {
      this.endpoints = undefined;
      this.client = new mqtt.MqttClient(() => stream(), { ...sessionOptions, ...accessOptions });
    } else {
      this.endpoints = new BrokerEndpoints(options.broker, accessOptions);
      this.client = new mqtt.MqttClient(this.endpoints.builder(), sessionOptions);
    }
    this.subscriptions = new HeldSubscriptions(this.client, options.logger, lane);
    this.client.on('packetreceive', (packet) => {
      this.heardAt = Date.now();
      if (packet.cmd === 'connack' && !packet.returnCode) this.connackSeen = true;
      // The main lane holds its writes while a packet is handled (see coalesceWrites).
      if (lane === 'main') this.coalesceWrites();
    });
    this.client.on('message', (topic, payload, packet) => hooks.message(topic, payload, packet.retain, packet.qos === 0 ? 0 : 1));
    this.client.on('connect', () => this.onConnect());
    this.client.on('close', () => this.onClose());
    // One warning per outage: a broker that is down for an hour must not write a line per attempt.
    this.client.on('error', (error) => {
      if (this.closing) return;
      this.attemptError = error;
      this.errorsThisOutage += 1;
      const first = this.errorsThisOutage === 1;
      // Before the first CONNACK, ready() rejects with this error (connect() throws it): a warning too would say it twice.
      this.logger[first && this.everConnected ? 'warn' : 'debug']({ lane, broker: this.brokerLabel, err: error.message, attempts: this.schedule.attempts }, first ? 'MQTT connection error' : 'MQTT connection error (again)');
    });
  }

  /** The broker this connection uses, or the one its attempt under way goes to, as logs and errors show it (password masked). */
  get brokerLabel(): string {
    return this.endpoints?.current.label ?? 'the in-process broker';
  }

  private get logger(): Logger {
    return this.options.logger;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /**
   * Resolves on the first CONNACK, each broker of the list tried in turn (protocol §1.3).
   * Rejects with `NotAuthorizedError` when a broker refuses the credentials (CONNACK 4, bad
   * user name or password; 5, not authorised: protocol §1.1), its `details.returnCode` saying
   * which, without trying the next; with `NotSentError` naming every broker tried and why it
   * failed otherwise.
   */
  ready(): Promise<void> {
    if (this.client.connected) return Promise.resolve();
    // Each attempt ends by MQTT.js's own CONNACK time-out; this only bounds a stream that never closes.
    const attempts = this.endpoints?.size ?? 1;
    const timeout = this.options.connectTimeout * (attempts + 1);
    return waitFor<void>(
      { timeout, timeoutError: () => new NotSentError(`cannot connect to ${this.brokerLabel}: no answer within ${timeout} ms`) },
      (settle) => void this.firstConnection.then(() => settle(undefined), (error: Error) => settle(error)),
    );
  }

  /**
   * An attempt of the first connection closed before its CONNACK: the next broker of the list
   * is tried at once, until each was; refused credentials end it at once (a node saying so is
   * not a node that is down).
   */
  private firstAttemptFailed(): void {
    const error = this.attemptError;
    this.attemptError = undefined;
    const why = !error ? 'connection closed before CONNACK' : error.message === 'connack timeout' ? `no answer within ${this.options.connectTimeout} ms` : error.message;
    this.firstFailures.push({ broker: this.brokerLabel, why, error });
    const returnCode = (error as { code?: unknown } | undefined)?.code;
    if (returnCode === 4 || returnCode === 5) {
      return this.settleFirst(new NotAuthorizedError(`cannot connect to the broker at ${this.brokerLabel}: ${why}`, { cause: error, details: { returnCode } }));
    }
    if (!this.endpoints || this.firstFailures.length >= this.endpoints.size) return this.settleFirst(this.firstConnectionError());
    const failed = this.brokerLabel;
    this.endpoints.next();
    this.logger.debug({ lane: this.lane, failed, broker: this.brokerLabel, why }, 'cannot connect; trying the next broker');
    this.reconnectTimer = setTimeout(() => this.attempt(), 0);
  }

  private firstConnectionError(): NotSentError {
    const [only] = this.firstFailures;
    if (this.firstFailures.length === 1 && only) return new NotSentError(`cannot connect to the broker at ${only.broker}: ${only.why}`, only.error && { cause: only.error });
    const tried = this.firstFailures.map(({ broker, why }) => `${broker} (${why})`).join('; ');
    return new NotSentError(`cannot connect to any of the ${this.firstFailures.length} brokers: ${tried}`);
  }

  /** Connects again, to the current broker of the list. */
  private attempt(): void {
    if (this.closing) return;
    try {
      this.client.reconnect({ outgoingStore: this.outgoing, incomingStore: this.incoming });
    } catch (error) {
      // A stream that cannot even be built (a URL MQTT.js refuses) fails this attempt like a refused socket.
      this.attemptError = error as Error;
      this.logger.warn({ lane: this.lane, broker: this.brokerLabel, err: (error as Error).message }, 'cannot open a connection');
      this.onClose();
    }
  }

  private onConnect(): void {
    this.up = true;
    this.schedule.connected();
    this.errorsThisOutage = 0;
    const socket = this.socket();
    socket?.setNoDelay?.(true);
    socket?.on?.('drain', () => this.hooks.drained());
    this.attemptError = undefined;
    if (this.everConnected) {
      const moved = this.lostFrom !== undefined && this.lostFrom !== this.brokerLabel;
      this.logger.info({ lane: this.lane, broker: this.brokerLabel, ...(moved && { from: this.lostFrom }), attempts: this.schedule.attempts, downMs: Date.now() - this.lostAt }, moved ? `reconnected to another broker, ${this.brokerLabel}` : 'reconnected');
    }
    this.lostFrom = undefined;
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.settleFirst();
    this.subscriptions.renewAll();
    this.hooks.connected(reconnected);
  }

  private onClose(): void {
    if (this.closing) return;
    const hadSession = this.connackSeen;
    this.connackSeen = false;
    if (hadSession) this.blameOldestPending();
    if (this.up) {
      // The connection was up (its 'connect' was emitted): an outage starts.
      this.up = false;
      this.lostAt = Date.now();
      if (this.schedule.dropped(this.lostAt)) {
        this.logger.warn({ lane: this.lane, broker: this.brokerLabel, clientId: this.clientId }, `the broker dropped this connection right after accepting it 3 times: another client is probably using the id ${this.clientId}; reconnecting more slowly`);
      }
      this.lostFrom = this.brokerLabel;
      this.logger.warn({ lane: this.lane, broker: this.brokerLabel }, 'connection lost; reconnecting');
      this.hooks.disconnected();
    }
    clearTimeout(this.reconnectTimer);
    if (!this.everConnected) return this.firstAttemptFailed();
    this.attemptError = undefined;
    const delay = this.schedule.nextDelay();
    // Each attempt after a loss goes to the next broker of the list, the first one included
    // (protocol §1.3): on a cluster any node will do, and the one just lost is the likeliest down.
    if (this.endpoints && this.endpoints.size > 1) this.endpoints.next();
    this.logger.debug({ lane: this.lane, broker: this.brokerLabel, delayMs: delay }, 'reconnecting');
    this.reconnectTimer = setTimeout(() => this.attempt(), delay);
  }

  /**
   * The connection dropped after a CONNACK: the oldest packet the broker has not answered is
   * likely what made it drop (protocol §1.4). Struck twice, it is given up.
   */
  private blameOldestPending(): void {
    const culprit = this.outgoing.strikeOldest();
    if (culprit) {
      this.logger.warn({ lane: this.lane, topic: culprit.topic }, `the broker dropped the connection ${MAX_STRIKES} times while this message was unacknowledged: it is given up so that it cannot keep the client off the broker (a topic, size or permission the broker refuses?)`);
      this.client.removeOutgoingMessage(culprit.messageId);
    }
    this.subscriptions.blameOldest();
  }

  /**
   * Subscribes; resolves on the broker's SUBACK (see HeldSubscriptions.want). After an
   * UNSUBSCRIBE of the same filter, waits for its UNSUBACK first: Aedes may apply the two out
   * of order and leave the filter unsubscribed (an SSE stream reconnecting lost every event).
   */
  subscribe(filter: string, qos: 0 | 1 = 1): Promise<void> {
    if (this.closing) return Promise.reject(new NotSentError(`the client closed before subscribing to ${filter}`));
    const leaving = this.unsubscribing.get(filter);
    if (leaving) return leaving.then(() => this.subscribe(filter, qos));
    return this.subscriptions.want(filter, qos);
  }

  /** Stops a subscription; it is not made again at reconnection. Resolves on the UNSUBACK (or the connection's end). */
  /**
   * Resolves on the broker's answer to an UNSUBSCRIBE of a filter no one holds (protocol §4.7):
   * the broker runs and reads this connection. Rejects if the connection ends first.
   */
  probe(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closing) return reject(new NotSentError('the client is closing'));
      this.client.unsubscribe(BROKER_PROBE_FILTER, (error) => (error ? reject(error) : resolve()));
    });
  }

  unsubscribe(filter: string): Promise<void> {
    this.subscriptions.drop(filter);
    if (this.closing || !this.client.connected) return Promise.resolve();
    // MQTT.js calls back on the UNSUBACK, or with an error when the connection ends first.
    const done: Promise<void> = new Promise<void>((resolve) => this.client.unsubscribe(filter, () => resolve())).finally(() => {
      if (this.unsubscribing.get(filter) === done) this.unsubscribing.delete(filter);
    });
    this.unsubscribing.set(filter, done);
    return done;
  }

  /** Whether the socket can take more now (it holds less than 64 KiB). */
  hasRoom(): boolean {
    return (this.socket()?.writableLength ?? 0) < SOCKET_HIGH_WATER;
  }

  /** Writes a PUBLISH. `onDropped` hears of a QoS 1 message given up by the replay guard. */
  write(topic: string, wire: WireBody, qos: 0 | 1, retain: boolean, onDropped?: (error: NotSentError) => void): void {
    const body = mqttPayload(wire);
    // A QoS 0 message written to a connected socket has nothing more to report: no callback made for it.
    if (qos === 0 && !onDropped) {
      this.client.publish(topic, body, retain ? RETAINED_QOS0 : PLAIN_QOS0);
      return;
    }
    this.client.publish(topic, body, { qos, retain }, (error) => {
      // 'Connection closed' is not final: MQTT.js sends a QoS 1 message again after reconnecting.
      if (!error || this.closing || error.message === 'Connection closed') return;
      this.logger.warn({ topic, err: error.message }, 'publish failed');
      onDropped?.(new NotSentError(`${topic} not sent: ${error.message}`, { cause: error }));
    });
  }

  /**
   * Publishes at QoS 1 and resolves once the broker has it. Rejects with `NotSentError` if the
   * connection closes first or, with `within`, if the broker has not acknowledged it by then.
   */
  publishNow(topic: string, wire: WireBody, retain: boolean, within?: number): Promise<void> {
    const body = mqttPayload(wire);
    return waitFor<void>(
      { ...(within !== undefined && { timeout: within }), timeoutError: () => new NotSentError(`the broker did not acknowledge ${topic} within ${within} ms`) },
      (settle) => {
        const onClose = () => settle(new NotSentError(`the connection closed before the broker acknowledged ${topic}`));
        this.client.once('close', onClose);
        this.client.publish(topic, body, { qos: 1, retain }, (error) => settle(error ?? undefined));
        return () => this.client.off('close', onClose);
      },
    );
  }

  /**
   * Holds the socket's writes while an incoming packet is handled: MQTT.js writes a request's
   * PUBACK at once, the handler's response follows a few microtasks later, as does the next
   * request of a caller that awaited a response. Released once the microtask queue has
   * drained, they leave in one system call instead of two (bench/RESULTS.md). Unlike Nagle
   * there is no timer; only the main lane does this, the real-time lane is never held.
   */
  private coalesceWrites(): void {
    if (this.corked) return;
    const socket = this.socket();
    if (!socket?.cork || !socket.uncork) return;
    this.corked = true;
    socket.cork();
    afterMicrotasks(() => {
      this.corked = false;
      socket.uncork!();
    });
  }

  /** Ends the connection; waits for the broker to acknowledge what is in flight, at most CLOSE_GRACE_MS. */
  close(): Promise<void> {
    this.stop('the client closed');
    return new Promise((resolve) => {
      if (!this.client.connected) {
        this.client.end(true, {}, () => resolve());
        return;
      }
      // MQTT.js's clean end waits for acknowledgements even from a broker that is gone.
      const giveUp = setTimeout(() => {
        this.logger.warn({ broker: this.brokerLabel, graceMs: CLOSE_GRACE_MS }, 'the broker did not acknowledge the last messages in time; connection dropped');
        // Resolved once MQTT.js has seen the socket close, so that `connected` reads false after close().
        if (!this.client.connected) return resolve();
        this.client.once('close', () => resolve());
        this.socket()?.destroy?.();
      }, CLOSE_GRACE_MS);
      this.client.end(false, {}, () => {
        clearTimeout(giveUp);
        resolve();
      });
    });
  }

  /** Drops the connection without a DISCONNECT, as a crash would (the will fires). */
  kill(): Promise<void> {
    this.stop('the client was killed');
    // Destroying the socket first guarantees no DISCONNECT packet goes out.
    this.socket()?.destroy?.();
    return new Promise((resolve) => this.client.end(true, {}, () => resolve()));
  }

  private stop(why: string): void {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.settleFirst(new NotSentError(`cannot connect to the broker at ${this.brokerLabel}: ${why}`));
    this.subscriptions.rejectAll(why);
  }

  /** Cuts the socket as a network loss would; the connection comes back by itself. For tests and tools. */
  dropSocket(): void {
    this.socket()?.destroy?.();
  }

  private socket(): Socket | undefined {
    return (this.client as unknown as { stream?: Socket }).stream;
  }
}

/** Node's Buffer, looked up on globalThis: this file is in the browser entry too (src/browser.ts), where there is none. */
const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;

/**
 * MQTT.js in Node takes text or a Buffer: a plain Uint8Array (a binary message, protocol §3.5)
 * is viewed as one, not copied. A browser has no Buffer; its MQTT.js writes the bytes as they are.
 */
export function mqttPayload(body: WireBody): string | Buffer {
  if (typeof body === 'string' || !NodeBuffer || NodeBuffer.isBuffer(body)) return body as string | Buffer;
  return NodeBuffer.from(body.buffer, body.byteOffset, body.byteLength);
}
