/**
 * `bus.kv(bucket)`: one bucket of the router's key-value store (protocol §14) as methods. Values
 * go as the wire wants them (bytes as `{ "$base64": … }`, §3.5) and come back as given: a
 * `Uint8Array` put is a `Uint8Array` read. Failures are the typed errors of src/protocol/kv.ts
 * (`KeyNotFoundError`, `RevisionConflictError` with the current revision, …). `watch()` survives
 * lost connections and router restarts: it asks again from the last revision it yielded, so that
 * no change is missed or yielded twice.
 */
import { fromBase64, toBase64 } from '../protocol/binary.js';
import { BusyError, InvalidMessageError, NotAuthorizedError, stackFromCaller } from '../protocol/errors.js';
import { KV_ACTIONS, kvErrorOf, type KvEntry, type KvHistory, type KvKeysPage, type KvUpToDate, type KvWatchStep, type KvWritten } from '../protocol/kv.js';
import type { RequestOptions, Step } from './types.js';
import { resumedSteps } from './requesting/resumed-steps.js';

/** What the bucket needs of a connected client: the Bus has it. */
export interface KvClient {
  request(action: string, payload: unknown, options?: RequestOptions): Promise<unknown>;
  call(action: string, payload: unknown, options?: RequestOptions): AsyncIterableIterator<Step>;
  waitForHandler(action: string, options?: { timeout?: number; signal?: AbortSignal }): Promise<void>;
  /** A watch ends with the client: asking again on a closed one would loop for ever. */
  readonly isClosed: boolean;
  on(event: 'online', listener: () => void): unknown;
  off(event: 'online', listener: () => void): unknown;
  readonly logger: { debug(fields: object, message: string): void };
}

/** An entry as the library gives it: a bytes value as a `Uint8Array`. */
export interface KvValueEntry<T = unknown> extends Omit<KvEntry, 'value'> {
  value: T | Uint8Array | null;
}

export type KvWatchEvent<T = unknown> = KvValueEntry<T> | KvUpToDate;

export interface KvWatchOptions {
  /** Only keys that begin with this. */
  prefix?: string;
  /** Every kept change after this revision, then live; absent: each key's current value first (then live). */
  since?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
}

/** A watch runs until stopped: no time-out of its own (the longest a timer holds). */
const WATCH_TIMEOUT_MS = 2 ** 31 - 1;

export class KvBucket<T = unknown> {
  constructor(
    private readonly client: KvClient,
    readonly bucket: string,
  ) {}

  /** The key's current value, or the given kept revision; `KeyNotFoundError` when it has none. */
  async get(key: string, options: { revision?: number } = {}): Promise<KvValueEntry<T>> {
    const entry = (await this.ask(KV_ACTIONS.get, { bucket: this.bucket, key, ...(options.revision !== undefined && { revision: options.revision }) }, KvBucket.prototype.get)) as KvEntry;
    return decode(entry);
  }

  /**
   * Writes a value (JSON, or bytes); resolves with its revision. `expectRevision` makes it a
   * compare-and-set (0: create only); a conflict rejects with `RevisionConflictError`, whose
   * `details.currentRevision` is the key's revision now. `ttl` (ms): the value expires after it.
   */
  async put(key: string, value: T | Uint8Array, options: { expectRevision?: number; ttl?: number } = {}): Promise<number> {
    const written = (await this.ask(KV_ACTIONS.put, { bucket: this.bucket, key, value: encode(value), ...options }, KvBucket.prototype.put)) as KvWritten;
    return written.revision;
  }

  /** `put` only when the key has no value: `RevisionConflictError` otherwise. */
  create(key: string, value: T | Uint8Array, options: { ttl?: number } = {}): Promise<number> {
    return this.put(key, value, { ...options, expectRevision: 0 });
  }

  /** Writes a tombstone; resolves with its revision. `KeyNotFoundError` when the key has no value. */
  async delete(key: string, options: { expectRevision?: number } = {}): Promise<number> {
    const written = (await this.ask(KV_ACTIONS.delete, { bucket: this.bucket, key, ...options }, KvBucket.prototype.delete)) as KvWritten;
    return written.revision;
  }

  /** A page of the keys that have a value, in order; ask again with `after` while `more`. */
  keys(options: { prefix?: string; after?: string; limit?: number } = {}): Promise<KvKeysPage> {
    return this.ask(KV_ACTIONS.keys, { bucket: this.bucket, ...options }, KvBucket.prototype.keys) as Promise<KvKeysPage>;
  }

  /** The kept revisions of a key, oldest first, tombstones included. */
  async history(key: string, options: { limit?: number } = {}): Promise<Array<KvValueEntry<T>>> {
    const history = (await this.ask(KV_ACTIONS.history, { bucket: this.bucket, key, ...options }, KvBucket.prototype.history)) as KvHistory;
    return history.entries.map((entry) => decode<T>(entry));
  }

  /**
   * The bucket's changes (tombstones included), in revision order, each once: first what the
   * router holds (see `since`), then `{ upToDate: true, revision }`, then live changes, again
   * `upToDate` after each catch-up following a lost connection. Ends with `signal`; throws
   * `NotAuthorizedError` when the policy does not (or no longer) let this client read.
   */
  async *watch(options: KvWatchOptions = {}): AsyncGenerator<KvWatchEvent<T>> {
    const { signal } = options;
    /** The last revision yielded, or known to hold nothing for this watch: the next ask starts after it. */
    let last = options.since;
    /** While the first answer of a watch without `since` replays current values, `revision` is not yet where it stands. */
    let replayingCurrent = options.since === undefined;
    const steps = resumedSteps(this.client, KV_ACTIONS.watch, () => ({ bucket: this.bucket, ...(options.prefix !== undefined && { prefix: options.prefix }), ...(last !== undefined && { since: last }) }), {
      ...(signal && { signal }),
      timeoutOf: () => WATCH_TIMEOUT_MS,
      // Refusals, bad input and too many watches do not get better by asking again, nor does a closed client.
      mayRetry: (error) => {
        const typed = kvErrorOf(error);
        return !(typed instanceof NotAuthorizedError || typed instanceof InvalidMessageError || typed instanceof BusyError || this.client.isClosed);
      },
      onRetry: (error) => this.client.logger.debug({ err: (error as Error).message, bucket: this.bucket }, 'kv watch: the router did not answer; asking again'),
    });
    try {
      for await (const step of steps) {
        if (step.kind !== 'progress') continue;
        const watchStep = step.payload as KvWatchStep;
        for (const change of watchStep.changes) {
          if (last !== undefined && change.revision <= last) continue;
          last = change.revision;
          yield decode<T>(change);
        }
        if (!replayingCurrent) last = Math.max(last ?? 0, watchStep.revision);
        if (watchStep.upToDate) {
          replayingCurrent = false;
          last = Math.max(last ?? 0, watchStep.revision);
          yield { upToDate: true, revision: watchStep.revision };
        }
      }
    } catch (error) {
      // Ended by its signal: the iteration ends, as a loop left does.
      if (signal?.aborted) return;
      throw kvErrorOf(error);
    }
  }

  private async ask(action: string, payload: unknown, boundary: Function): Promise<unknown> {
    try {
      return await this.client.request(action, payload);
    } catch (error) {
      const typed = kvErrorOf(error);
      stackFromCaller(typed, boundary);
      throw typed;
    }
  }
}

/** A wire entry as the library gives it: bytes as a Uint8Array. */
export function decode<T>(entry: KvEntry): KvValueEntry<T> {
  if (!entry.bytes) return entry as KvValueEntry<T>;
  return { ...entry, value: fromBase64(entry.value as { $base64: string }) };
}

/** A value as the wire carries it: bytes as `{ "$base64": … }` (§3.5). */
export function encode(value: unknown): unknown {
  return value instanceof Uint8Array ? toBase64(value) : value;
}
