/**
 * The subscriptions one connection must hold (protocol §1.1: clean sessions, so the broker
 * keeps none across a reconnection). Each is made again at every CONNACK, and its callers
 * wait for the broker's SUBACK however many reconnections that takes.
 *
 * A filter the broker answers by dropping the connection is given up after MAX_STRIKES drops
 * (protocol §1.4). Which one it was is only certain with one SUBSCRIBE in flight (a broker may
 * handle several at once, and the SUBACKs before the drop may be lost with it): after a drop
 * with SUBSCRIBEs unanswered, the next connection makes them again one at a time, and only a
 * drop then strikes the one in flight.
 */
import { clientIdOfConnection } from '../../protocol/topics.js';
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { NotAuthorizedError, NotSentError } from '../../protocol/errors.js';
import { MAX_STRIKES } from './replay-guard.js';
import { subscriptionRefused } from './subscription-refusal.js';
import type { Lane } from '../types.js';

interface Held {
  qos: 0 | 1;
  confirmed: boolean;
  /** The broker granted it once: a refusal when it is made again is taken as passing (below). */
  granted: boolean;
  /** Refusals in a row of a filter granted before: the wait before trying again doubles with each. */
  refusals: number;
  strikes: number;
  waiters: Array<{ resolve(): void; reject(error: Error): void }>;
}

export class HeldSubscriptions {
  private readonly held = new Map<string, Held>();
  /** SUBSCRIBEs sent and not yet answered. */
  private readonly inFlight: string[] = [];
  /** One at a time, since the last connection dropped with SUBSCRIBEs unanswered. */
  private careful = false;
  /** In careful mode, the filters still to make, in order. */
  private readonly waiting: string[] = [];

  constructor(
    private readonly client: MqttClient,
    private readonly logger: Logger,
    private readonly lane: Lane,
  ) {}

  /**
   * Holds `filter`; resolves on the broker's SUBACK. A connection lost before the SUBACK is
   * not a failure: the subscription is made again once reconnected. A refusal rejects.
   */
  want(filter: string, qos: 0 | 1): Promise<void> {
    let held = this.held.get(filter);
    if (held?.confirmed && held.qos === qos) return Promise.resolve();
    const changed = held !== undefined && held.qos !== qos;
    if (!held) this.held.set(filter, (held = { qos, confirmed: false, granted: false, refusals: 0, strikes: 0, waiters: [] }));
    held.qos = qos;
    held.confirmed = false;
    const waiting = new Promise<void>((resolve, reject) => held.waiters.push({ resolve, reject }));
    if (!this.client.connected || (!changed && (this.inFlight.includes(filter) || this.waiting.includes(filter)))) return waiting;
    if (this.careful && (this.inFlight.length > 0 || this.waiting.length > 0)) this.waiting.push(filter);
    else this.send(filter);
    return waiting;
  }

  /** Stops holding `filter` (the caller unsubscribes); whoever still waits for it is told. */
  drop(filter: string): void {
    const held = this.held.get(filter);
    this.held.delete(filter);
    for (const waiter of held?.waiters.splice(0) ?? []) waiter.reject(new NotSentError(`unsubscribed from ${filter} before the broker confirmed it`));
  }

  /** A new connection: the broker kept nothing, every subscription is made again. */
  renewAll(): void {
    this.inFlight.length = 0;
    this.waiting.length = 0;
    for (const held of this.held.values()) held.confirmed = false;
    if (!this.careful) {
      for (const filter of this.held.keys()) this.send(filter);
      return;
    }
    this.waiting.push(...this.held.keys());
    this.sendNext();
  }

  /** The connection dropped after a CONNACK: a SUBSCRIBE left unanswered may be the cause. */
  blameOldest(): void {
    const suspects = [...this.inFlight];
    this.inFlight.length = 0;
    if (suspects.length === 0) return;
    if (!this.careful || suspects.length > 1) {
      this.careful = true;
      return;
    }
    const filter = suspects[0]!;
    const held = this.held.get(filter);
    if (!held) return;
    held.strikes += 1;
    if (held.strikes < MAX_STRIKES) return;
    this.held.delete(filter);
    const error = new NotSentError(`the broker dropped the connection ${MAX_STRIKES} times when subscribing to ${filter}: it refuses this filter`);
    this.logger.warn({ lane: this.lane, filter }, error.message);
    for (const waiter of held.waiters.splice(0)) waiter.reject(error);
  }

  /** Careful mode: the next filter, once the previous one is answered; back to normal when all are. */
  private sendNext(): void {
    const filter = this.waiting.shift();
    if (filter !== undefined) this.send(filter);
    else if (this.inFlight.length === 0) this.careful = false;
  }

  /** The client is closing: everyone waiting is told why. */
  rejectAll(why: string): void {
    for (const [filter, held] of this.held) {
      for (const waiter of held.waiters.splice(0)) waiter.reject(new NotSentError(`${why} before subscribing to ${filter}`));
    }
  }

  /** Who subscribes, as the policy's ownership rules know it: the client id (a session's `<identity>~<session>`; the lane's `~rt` is its own client's, protocol §2.1). */
  private identity(): string {
    const { username, clientId } = this.client.options;
    return clientId ? clientIdOfConnection(clientId) : (username ?? '');
  }

  private send(filter: string): void {
    const held = this.held.get(filter);
    if (!held) return;
    this.inFlight.push(filter);
    this.client.subscribe(filter, { qos: held.qos }, (error, granted) => {
      const index = this.inFlight.indexOf(filter);
      if (index >= 0) this.inFlight.splice(index, 1);
      if (this.held.get(filter) !== held) {
        if (this.careful && this.client.connected) this.sendNext();
        return; // dropped or given up meanwhile
      }
      // Lost with the connection: made again at the next CONNACK (or failed by the close).
      if (error && !this.client.connected) return;
      // SUBACK 0x80 (MQTT.js: "Subscribe error: Unspecified error", the SUBACK in `packet`): the broker's policy refused it.
      const suback = (error as { packet?: { granted?: unknown[] } } | null)?.packet;
      const refused = suback?.granted?.some((code) => typeof code === 'number' && (code & 0x80) !== 0) || granted?.some((grant) => grant.qos === 128);
      const refusal = refused ? subscriptionRefused(filter, this.identity(), error ?? undefined) : error;
      if (refused && held.granted && this.client.connected) {
        // Granted before, refused now that it is made again: not a policy (that would have
        // refused it the first time) but a broker that cannot yet, as a node of a NATS
        // cluster whose JetStream elects leaders after another node died (protocol §1.3,
        // "On a NATS cluster"). Tried again, waiting longer each time, while connected.
        held.refusals += 1;
        const delay = Math.min(100 * 2 ** (held.refusals - 1), 2000);
        if (held.refusals === 1) this.logger.warn({ lane: this.lane, filter, err: refusal!.message }, 'the broker refused a subscription it had granted before; trying again');
        setTimeout(() => {
          if (this.held.get(filter) === held && !held.confirmed && this.client.connected && !this.inFlight.includes(filter)) this.send(filter);
        }, delay).unref?.();
      } else if (refusal) {
        this.held.delete(filter);
        for (const waiter of held.waiters.splice(0)) waiter.reject(refusal);
      } else {
        held.confirmed = true;
        held.granted = true;
        held.refusals = 0;
        held.strikes = 0;
        for (const waiter of held.waiters.splice(0)) waiter.resolve();
      }
      if (this.careful) this.sendNext();
    });
  }
}
