/**
 * The subscriptions one connection must hold (protocol §1.1: clean sessions, so the broker
 * keeps none across a reconnection). Each is made again at every CONNACK, and its callers
 * wait for the broker's SUBACK however many reconnections that takes. A filter the broker
 * answers by dropping the connection is given up after MAX_STRIKES drops (protocol §1.4).
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { NotSentError } from '../protocol/errors.js';
import { MAX_STRIKES } from './replay-guard.js';
import type { Lane } from './types.js';

interface Held {
  qos: 0 | 1;
  confirmed: boolean;
  strikes: number;
  waiters: Array<{ resolve(): void; reject(error: Error): void }>;
}

export class HeldSubscriptions {
  private readonly held = new Map<string, Held>();
  /** SUBSCRIBEs sent and not yet answered, oldest first: the first is blamed for a drop. */
  private readonly inFlight: string[] = [];

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
    if (!held) this.held.set(filter, (held = { qos, confirmed: false, strikes: 0, waiters: [] }));
    held.qos = qos;
    held.confirmed = false;
    const waiting = new Promise<void>((resolve, reject) => held.waiters.push({ resolve, reject }));
    if (this.client.connected && (changed || !this.inFlight.includes(filter))) this.send(filter);
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
    for (const [filter, held] of this.held) {
      held.confirmed = false;
      this.send(filter);
    }
  }

  /** The connection dropped after a CONNACK: the oldest unanswered SUBSCRIBE gets a strike. */
  blameOldest(): void {
    const filter = this.inFlight[0];
    this.inFlight.length = 0;
    const held = filter === undefined ? undefined : this.held.get(filter);
    if (filter === undefined || !held) return;
    held.strikes += 1;
    if (held.strikes < MAX_STRIKES) return;
    this.held.delete(filter);
    const error = new NotSentError(`the broker dropped the connection ${MAX_STRIKES} times when subscribing to ${filter}: it refuses this filter`);
    this.logger.warn({ lane: this.lane, filter }, error.message);
    for (const waiter of held.waiters.splice(0)) waiter.reject(error);
  }

  /** The client is closing: everyone waiting is told why. */
  rejectAll(why: string): void {
    for (const [filter, held] of this.held) {
      for (const waiter of held.waiters.splice(0)) waiter.reject(new NotSentError(`${why} before subscribing to ${filter}`));
    }
  }

  private send(filter: string): void {
    const held = this.held.get(filter);
    if (!held) return;
    this.inFlight.push(filter);
    this.client.subscribe(filter, { qos: held.qos }, (error, granted) => {
      const index = this.inFlight.indexOf(filter);
      if (index >= 0) this.inFlight.splice(index, 1);
      if (this.held.get(filter) !== held) return; // dropped or given up meanwhile
      // Lost with the connection: made again at the next CONNACK (or failed by the close).
      if (error && !this.client.connected) return;
      const refusal = error ?? (granted?.some((grant) => grant.qos === 128) ? new Error(`the broker refused the subscription to ${filter}`) : undefined);
      if (refusal) {
        this.held.delete(filter);
        for (const waiter of held.waiters.splice(0)) waiter.reject(refusal);
        return;
      }
      held.confirmed = true;
      held.strikes = 0;
      for (const waiter of held.waiters.splice(0)) waiter.resolve();
    });
  }
}
