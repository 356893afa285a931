/**
 * Application subscriptions (protocol §8): MQTT filters delivered as async iterators or
 * to a callback, validated envelopes only unless invalid ones are asked for.
 */
import { checkFilter, topicMatches } from '../protocol/topics.js';
import type { DecodeResult } from '../protocol/envelope.js';
import { AsyncQueue } from './async-queue.js';
import type { ResolvedOptions } from './options.js';
import type { Transport } from './connection/index.js';
import type { Delivery, Lane, SubscribeOptions, Subscription } from './types.js';

interface Entry {
  filter: string;
  lane: Lane;
  includeInvalid: boolean;
  invalidLog: 'warn' | 'debug';
  deliver(delivery: Delivery): void;
  dropped(): number;
  end(): void;
}

const INVALID_TEXT_LIMIT = 4096;

export class Subscriptions {
  private readonly entries = new Set<Entry>();
  /** How many entries use each filter on each lane, so the MQTT subscription is shared. */
  private readonly filterUse = new Map<string, number>();

  constructor(
    private readonly options: ResolvedOptions,
    private readonly transport: Transport,
  ) {}

  async subscribe(filter: string, options: SubscribeOptions, callback?: (delivery: Delivery) => void): Promise<Subscription<Delivery>> {
    const problem = checkFilter(filter);
    if (problem) throw new TypeError(problem);
    const lane = this.transport.laneOf(options.lane);
    const useKey = `${lane} ${filter}`;
    let closed = false;
    const unsubscribe = async () => {
      if (closed) return;
      closed = true;
      this.entries.delete(entry);
      queue?.end();
      const left = (this.filterUse.get(useKey) ?? 1) - 1;
      if (left > 0) this.filterUse.set(useKey, left);
      else {
        this.filterUse.delete(useKey);
        // The transport keeps what the library holds itself: its directory's presence filters
        // (protocol §7.2, §13.4), its response and request topics.
        await this.transport.unsubscribe(filter, lane, 'application');
      }
    };
    const queue = callback ? undefined : new AsyncQueue<Delivery>(options.bufferSize ?? 10_000, () => void unsubscribe());
    let warnedDrop = false;
    const entry: Entry = {
      filter,
      lane,
      includeInvalid: options.includeInvalid ?? false,
      invalidLog: options.invalidLog ?? 'warn',
      deliver: (delivery) => {
        if (callback) {
          try {
            callback(delivery);
          } catch (error) {
            this.options.logger.warn({ filter, err: (error as Error).message }, 'subscription callback threw');
          }
          return;
        }
        const before = queue!.dropped;
        queue!.push(delivery);
        if (queue!.dropped > before && !warnedDrop) {
          warnedDrop = true;
          this.options.logger.warn({ filter }, 'slow subscriber: dropping the oldest messages');
        }
      },
      dropped: () => queue?.dropped ?? 0,
      end: () => queue?.end(),
    };
    this.filterUse.set(useKey, (this.filterUse.get(useKey) ?? 0) + 1);
    this.entries.add(entry);
    try {
      await this.transport.subscribe(filter, lane, options.qos ?? 1, 'application');
    } catch (error) {
      await unsubscribe();
      throw error;
    }
    const iterable = queue ?? emptyIterator();
    return {
      filter,
      get dropped() {
        return entry.dropped();
      },
      unsubscribe,
      [Symbol.asyncIterator]: () => iterable,
    };
  }

  /**
   * The `subscriptions` connect option, registered before any packet is read: what a persistent
   * session kept arrives right after the CONNACK, and only these see it (protocol §11).
   */
  subscribeFromStart(early: NonNullable<ResolvedOptions['subscriptions']>): void {
    for (const { filter, qos, callback, invalidLog } of early) {
      this.subscribe(filter, { qos: qos ?? 1, ...(invalidLog && { invalidLog }) }, callback as (delivery: Delivery) => void).catch((error: Error) => {
        // Closing before the first connection was made: connect() rejects with the reason, once.
        if (!this.transport.closed) this.options.logger.error({ filter, err: error.message }, 'subscribing failed');
      });
    }
  }

  /** Delivers one incoming message to every matching subscription; `sealed` says what became of a sealed one (protocol §3.6), read after `decoded()`. */
  dispatch(topic: string, lane: Lane, raw: Buffer, decoded: () => DecodeResult, retained: boolean, qos: 0 | 1, sealed: () => 'opened' | 'unopened' | undefined = () => undefined): void {
    if (this.entries.size === 0) return;
    for (const entry of this.entries) {
      // A message arrives once per connection whose subscriptions match: each lane delivers its own.
      if (entry.lane !== lane || !topicMatches(entry.filter, topic)) continue;
      const result = decoded();
      const state = result.ok ? sealed() : undefined;
      if (result.ok) entry.deliver(state === undefined ? { topic, envelope: result.envelope, retained, qos, raw } : { topic, envelope: result.envelope, retained, qos, raw, sealed: state });
      else if (entry.includeInvalid) entry.deliver({ topic, invalid: result.error.message, text: raw.toString('utf8', 0, INVALID_TEXT_LIMIT), retained, qos, raw });
      // An empty message clears a retained topic (a client that left cleared its presence): routine.
      else if (raw.length === 0) this.options.logger.debug({ topic }, 'a retained message was cleared');
      else this.options.logger[entry.invalidLog]({ topic, err: result.error.message }, 'invalid message on a subscribed topic');
    }
  }

  closeAll(): void {
    for (const entry of this.entries) entry.end();
    this.entries.clear();
  }
}

function emptyIterator(): AsyncIterableIterator<never> {
  const iterator: AsyncIterableIterator<never> = {
    next: () => Promise.resolve({ value: undefined as never, done: true }),
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
