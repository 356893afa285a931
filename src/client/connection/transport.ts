/**
 * The connections of one client, the main one and the real-time lane (protocol §6.2), and
 * the one place that decides which connection a message or a subscription uses. Messages
 * that cannot be written now wait in the outbound queue (protocol §6.1, §6.3).
 */
import type { Priority } from '../../protocol/envelope.js';
import { NotSentError } from '../../protocol/errors.js';
import { Connection } from './connection.js';
import type { ResolvedOptions } from '../options.js';
import { OutboundQueue, type Queued } from './outbound-queue.js';
import type { Signer } from './signing.js';
import type { WireBody } from '../../protocol/framing.js';
import type { Lane } from '../types.js';

export interface OutboundMessage extends Queued {
  /** The wire form (text, or a binary message's bytes, protocol §3.5), or a function making it when the message is written (a command stamps its `acceptBy` then). */
  body: WireBody | (() => WireBody);
  qos: 0 | 1;
  retain?: boolean;
  /** Told when the message is handed to a connection. */
  onWritten?: () => void;
}

export interface TransportHooks {
  message(topic: string, payload: Buffer, retained: boolean, qos: 0 | 1, lane: Lane): void;
  connected(lane: Lane, reconnected: boolean): void;
  disconnected(lane: Lane): void;
}

/** Who wants a subscription: the library's own machinery, or the application's `subscribe()`. */
export type SubscriptionHolder = 'library' | 'application';

export class Transport {
  readonly main: Connection;
  readonly realtime?: Connection;
  private readonly queue = new OutboundQueue<OutboundMessage>();
  /** `<lane> <filter>` each holder wants (the application's are counted by Subscriptions). */
  private readonly holders: Record<SubscriptionHolder, Set<string>> = { library: new Set(), application: new Set() };
  private closing = false;

  constructor(
    private readonly options: ResolvedOptions,
    will: { topic: string; payload: string },
    hooks: TransportHooks,
    /** Signs every message on its way to a connection, the will included (protocol §12). */
    private readonly signer?: Signer,
  ) {
    if (signer) will = { topic: will.topic, payload: signer.sign(will.topic, will.payload) };
    const open = (lane: Lane, clientId: string, withWill?: { topic: string; payload: string }) =>
      new Connection(options, clientId, lane, withWill, {
        message: (topic, payload, retained, qos) => hooks.message(topic, payload, retained, qos, lane),
        connected: (reconnected) => {
          this.pump();
          hooks.connected(lane, reconnected);
        },
        disconnected: () => hooks.disconnected(lane),
        drained: () => this.pump(),
      });
    this.main = open('main', options.id, will);
    // Client ids cannot contain '~', so `<id>~rt` is nobody else's (protocol §2.1).
    if (options.realtimeLane) this.realtime = open('realtime', `${options.id}~rt`);
  }

  get connected(): boolean {
    return this.main.connected;
  }

  /** Closed or killed: what was under way fails, and that is no news (the first connection's failure is told once, by connect()). */
  get closed(): boolean {
    return this.closing;
  }

  /**
   * The broker the main connection uses (or tries) now, as logs and errors show it (password
   * masked): with several brokers it changes as the client moves (protocol §1.3).
   */
  get brokerLabel(): string {
    return this.main.brokerLabel;
  }

  /** Resolves on the first connection of every lane; rejects with the reason otherwise. */
  async ready(): Promise<void> {
    await Promise.all(this.connections().map((connection) => connection.ready()));
  }

  /** The lane a subscription or a request of this kind uses: real-time only when the client has that lane. */
  laneOf(wanted: Lane | Priority | undefined): Lane {
    return (wanted === 'realtime' && this.realtime ? 'realtime' : 'main');
  }

  /** The connection holding a lane's subscriptions. */
  connection(lane: Lane): Connection {
    return lane === 'realtime' && this.realtime ? this.realtime : this.main;
  }

  /**
   * Where a message of `priority` can be written now, or undefined. A real-time message takes
   * the real-time lane when it is up, else the main connection (protocol §6.2); everything
   * else takes the main connection while its socket has room.
   */
  private writableFor(priority: Priority): Connection | undefined {
    if (priority === 'realtime' && this.realtime?.connected) return this.realtime;
    return this.main.connected && this.main.hasRoom() ? this.main : undefined;
  }

  /**
   * Writes a message, or queues it: behind a full socket in priority order; while the main
   * connection is down in the bounded offline queue. Throws `NotSentError` when the client is
   * closed or the offline queue is full.
   */
  send(message: OutboundMessage): void {
    if (this.closing) throw new NotSentError('the client is closed');
    // Nothing may overtake what waits, except real-time messages, first in line anyway.
    if (this.queue.size === 0 || message.priority === 'realtime') {
      const connection = this.writableFor(message.priority);
      if (connection) return this.write(connection, message);
    }
    const offline = !this.main.connected;
    this.queue.push(message, offline ? this.options.maxOfflineMessages : Infinity, `offline queue full while disconnected from ${this.brokerLabel}`);
  }

  private write(connection: Connection, message: OutboundMessage): void {
    const text = typeof message.body === 'function' ? message.body() : message.body;
    // Signed when written, not when queued: the sequence follows the order on the wire (protocol §12.3).
    const body = this.signer ? this.signer.sign(message.topic, text) : text;
    connection.write(message.topic, body, message.qos, message.retain ?? false, message.onDropped);
    message.onWritten?.();
  }

  /** Writes what waits, in priority order, as far as the connections allow. */
  private pump(): void {
    this.queue.drain((message) => {
      const connection = this.writableFor(message.priority);
      if (!connection) return false;
      this.write(connection, message);
      return true;
    });
  }

  /**
   * Holds `filter` on `lane` for `holder`. The library (its response topics, its handlers'
   * topics, the presence filters of its directory) and the application's subscriptions may
   * want the same filter; MQTT has one subscription per filter, so it is given up only when
   * neither holds it any more.
   */
  subscribe(filter: string, lane: Lane, qos: 0 | 1 = 1, holder: SubscriptionHolder = 'library'): Promise<void> {
    this.holders[holder].add(`${lane} ${filter}`);
    return this.connection(lane).subscribe(filter, qos);
  }

  unsubscribe(filter: string, lane: Lane, holder: SubscriptionHolder = 'library'): Promise<void> {
    const key = `${lane} ${filter}`;
    this.holders[holder].delete(key);
    if (this.holders[holder === 'library' ? 'application' : 'library'].has(key)) return Promise.resolve();
    return this.connection(lane).unsubscribe(filter);
  }

  /** Publishes on the main connection (QoS 1) and resolves once the broker has it (presence). */
  publishNow(topic: string, body: WireBody, retain: boolean, within?: number): Promise<void> {
    return this.main.publishNow(topic, this.signer ? this.signer.sign(topic, body) : body, retain, within);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.queue.clear(() => new NotSentError('the client closed before the message could be sent'));
    await Promise.all(this.connections().map((connection) => connection.close()));
  }

  /** Drops the connections without a clean DISCONNECT, as a crash would (the will fires). */
  async kill(): Promise<void> {
    this.closing = true;
    this.queue.clear(() => new NotSentError('the client was killed before the message could be sent'));
    await Promise.all(this.connections().map((connection) => connection.kill()));
  }

  private connections(): Connection[] {
    return this.realtime ? [this.main, this.realtime] : [this.main];
  }
}
