/**
 * Turns what the router sees on the bus into history rows and stores them in batches
 * (protocol §11.1): one transaction per ~10 ms under a flood, at once before a QoS 1
 * message is acknowledged to the broker, and at once when the embedded broker's journal asks
 * (a sync), so that what is acknowledged is stored. Appends run one at a time, in order (the
 * Batcher): rows that arrive while one runs wait for the next. Rows the store refused (a full disk) wait
 * in a WriteBacklog and are stored once it has room, even if nothing new comes; past
 * MAX_UNSTORED waiting, the newest are given up, counted by kind, and reported once the store
 * works again (`onLoss`: a `history.gap` event, protocol §11.8).
 */
import { hash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ReceivedMessage } from '../client/types.js';
import { checkClientId, isSystemAction, parseTopic } from '../protocol/topics.js';
import { toBase64 } from '../protocol/binary.js';
import { encodeBase64 } from '../protocol/bytes.js';
import { isBytes } from '../protocol/framing.js';
import type { Envelope } from '../protocol/envelope.js';
import type { HistoryGap } from '../protocol/history-feed.js';
import { Batcher } from './batcher.js';
import type { HistoryKind, HistoryRow, HistoryRowInput } from '../protocol/history.js';
import { readSealMember, SEAL_MEMBER, type SealMember } from '../protocol/sealing.js';
import type { HistoryStore } from './history-store.js';
import { WriteBacklog } from './write-backlog.js';
import { RecentKeys } from './recent-keys.js';

/** Rows the store refused, kept to be tried again; past this many the newest are given up (counted, and reported by `onLoss`). */
export const MAX_UNSTORED = 10_000;
/** Rows remembered to tell a redelivery from a new row for the seen listeners (metrics): a redelivery comes within seconds. */
const MAX_RECENT_ROWS = 100_000;

export interface RecorderOptions {
  /** A payload longer than this (bytes of JSON) is stored cut, flagged `truncated`. */
  maxDataBytes: number;
  /** Rows buffered before a flush is forced within the same turn. */
  maxBatch: number;
  logger: Logger;
  /** Clients whose commands name their author in `onBehalfOf` (the HTTP API; protocol §11.1). */
  delegates?: ReadonlySet<string>;
}


/** Rows the router saw on the bus, each once (its own dedupe of redeliveries), once they are in the store: stored by this router or by another sharing it. */
export type SeenListener = (rows: readonly HistoryRowInput[]) => void;
/** Rows given up (the store refused them past MAX_UNSTORED waiting), by kind, and when they happened (their etime). */
export type LossListener = (loss: HistoryGap) => void;

export class Recorder {
  private readonly batcher: Batcher<HistoryRowInput>;
  private readonly seenListeners = new Set<SeenListener>();
  /** The rows seen lately, by token and digest: a redelivery is not seen twice. */
  private readonly seen = new RecentKeys(MAX_RECENT_ROWS);
  private readonly lossListeners = new Set<LossListener>();
  private readonly caughtUpListeners = new Set<() => void>();
  /** Rows given up since the router started (the store refused them past MAX_UNSTORED waiting). */
  failed = 0;
  /** Rows this router stored (not those another router sharing the store stored first). */
  recorded = 0;
  /** Rows the store refused, in order, waiting for it. */
  private readonly backlog = new WriteBacklog<HistoryRowInput>({ max: MAX_UNSTORED, giveUp: 'newest', retry: () => this.flush() });
  /** Rows given up since the store last worked: reported once it works again. */
  private loss: HistoryGap | undefined;

  constructor(
    private readonly store: HistoryStore,
    private readonly options: RecorderOptions,
  ) {
    this.batcher = new Batcher((batch) => this.storeBatch(batch), options.maxBatch);
  }

  /**
   * Called for every message on `#`; a QoS 1 message is appended at once (a store that writes
   * synchronously, SQLite, has stored it before its PUBACK leaves), or right after the append
   * running, if one runs.
   */
  readonly onMessage = (message: ReceivedMessage): void => {
    const row = rowOf(message, this.options.maxDataBytes, this.options.delegates);
    if (!row) return;
    this.batcher.add(row, message.qos === 1);
  };

  /**
   * Stores a row that did not come from the bus (a put), after every row received before it;
   * resolves with it as stored, or undefined for a repeat. Rejects while the store refuses.
   */
  storeNow(row: HistoryRowInput): Promise<HistoryRow | undefined> {
    // What waits for a refusing store is tried now: the put must come after it.
    void this.backlog.retryNow();
    return this.batcher.exclusive(async () => {
      if (this.backlog.size > 0) throw new Error(`the history's store refuses to write (${this.backlog.size} rows wait for it): nothing stored`);
      const [stored] = await this.store.append([row]);
      this.notifySeen([row]);
      return stored;
    });
  }

  /**
   * Called with every batch of rows the router saw (each once), once they are in the store,
   * whoever stored them: what metrics count, and what a follow or a kill waits for, so that any
   * router sharing the store answers the same.
   */
  watchSeen(listener: SeenListener): () => void {
    this.seenListeners.add(listener);
    return () => this.seenListeners.delete(listener);
  }

  /** Called once the store works again after rows were given up, with how many and of which kinds. */
  onLoss(listener: LossListener): () => void {
    this.lossListeners.add(listener);
    return () => this.lossListeners.delete(listener);
  }

  /** Called when the rows that waited for the store are stored (allStored became true). */
  onCaughtUp(listener: () => void): () => void {
    this.caughtUpListeners.add(listener);
    return () => this.caughtUpListeners.delete(listener);
  }

  /**
   * Stores what is pending now (while the store refuses, it waits for the backlog's next
   * attempt); resolves once it is stored, or waits for the store.
   */
  flush(): Promise<void> {
    return this.batcher.flush();
  }

  /** Whether every row received so far is stored (none is waiting for another try). */
  get allStored(): boolean {
    return this.backlog.size === 0;
  }

  /** Rows waiting for the store now. */
  get waiting(): number {
    return this.backlog.size;
  }

  /** Stops trying again (the router closes; what still waits is lost with it). */
  close(): void {
    this.backlog.close();
  }

  /** One batch, run by the Batcher one at a time: the store is called in this body, before any `await`. */
  private async storeBatch(batch: HistoryRowInput[]): Promise<void> {
    if (!this.backlog.mayTry) return this.giveUp(this.backlog.hold(batch));
    const rows = this.backlog.take(batch);
    if (rows.length === 0) return;
    let stored: HistoryRow[];
    try {
      stored = await this.store.append(rows);
    } catch (error) {
      this.giveUp(this.backlog.refused(rows), error as Error);
      return;
    }
    this.recorded += stored.length;
    const refusedMs = this.backlog.stored();
    // As loud as the refusal it ends: an operator who saw one sees the other.
    if (refusedMs !== undefined) this.options.logger.warn({ rows: rows.length, refusedMs }, 'history: the store works again; the rows that waited for it are stored');
    this.notifySeen(rows);
    if (this.loss) {
      const loss = this.loss;
      this.loss = undefined;
      for (const listener of this.lossListeners) listener(loss);
    }
    if (refusedMs !== undefined) for (const listener of this.caughtUpListeners) listener();
  }

  /** After a refusal (`error`) or while the store refuses: rows given up past the bound are counted, reported once the store works again, and logged. */
  private giveUp(rows: readonly HistoryRowInput[], error?: Error): void {
    const firstLoss = rows.length > 0 && this.loss === undefined;
    if (rows.length > 0) {
      this.failed += rows.length;
      this.loss = countLoss(this.loss, rows);
    }
    if (!firstLoss && !(error && this.backlog.dueForLog())) return;
    this.options.logger.error(
      { ...(error && { err: error.message }), waiting: this.backlog.size, givenUp: this.loss?.missed ?? 0, failedSoFar: this.failed },
      this.loss
        ? `history: rows could not be stored and ${MAX_UNSTORED} already wait: the newest are given up (${this.loss.missed} so far; reported as a history.gap event once the store works again)`
        : 'history: rows could not be stored (they wait and are tried again, new rows or not)',
    );
  }

  /** The rows of `batch` not seen lately, to the seen listeners. */
  private notifySeen(batch: readonly HistoryRowInput[]): void {
    if (this.seenListeners.size === 0) return;
    const fresh = batch.filter((row) => this.seen.add(`${row.token}\n${row.digest}`));
    if (fresh.length === 0) return;
    for (const listener of this.seenListeners) {
      try {
        listener(fresh);
      } catch (error) {
        this.options.logger.error({ err: (error as Error).message }, 'history: a row listener failed');
      }
    }
  }
}

/** `loss` with `rows` added: counts by kind (as the journal counts, protocol §11.1), and the span of their etimes. */
function countLoss(loss: HistoryGap | undefined, rows: readonly HistoryRowInput[]): HistoryGap {
  const total = loss ?? { missed: 0, commands: 0, responses: 0, cancels: 0, from: Number.MAX_SAFE_INTEGER, to: 0 };
  for (const row of rows) {
    total.missed += 1;
    if (row.kind === 'command') total.commands += 1;
    else if (row.kind === 'cancel') total.cancels += 1;
    else total.responses += 1;
    total.from = Math.min(total.from, row.etime);
    total.to = Math.max(total.to, row.etime);
  }
  return total;
}

/**
 * The history row a message makes, or undefined when it is not part of a request's lifecycle.
 * A command from one of `delegates` is written by the identity its `onBehalfOf` names.
 */
export function rowOf(message: ReceivedMessage, maxDataBytes: number, delegates?: ReadonlySet<string>): HistoryRowInput | undefined {
  const { envelope } = message;
  const token = envelope.token;
  if (typeof token !== 'string' || token.length === 0) return undefined;
  const topic = parseTopic(message.topic);
  let kind: HistoryKind;
  let target: string | undefined;
  switch (topic.kind) {
    case 'request':
      if (envelope.type !== 'command') return undefined;
      kind = 'command';
      target = topic.target ?? (envelope.destination === '*' ? '*' : undefined);
      break;
    case 'response':
      if (envelope.type !== 'response') return undefined;
      kind = responseKind(envelope);
      target = topic.requester;
      break;
    case 'cancel':
      kind = 'cancel';
      // A cancel's topic names no one (protocol §4.4): its destination is the handler it is for, or `*`.
      target = envelope.destination;
      break;
    default:
      return undefined;
  }
  if (isSystemAction(topic.action)) return undefined;
  const seal = sealOf(envelope);
  // A sealed row is the ciphertext, whatever its kind (protocol §11.1): no one here can open it.
  const { data, size, truncated, raw, sha256 } = seal
    ? capBytes(envelope.payload as Uint8Array, maxDataBytes)
    : capData(kind === 'error' ? { error: envelope.error ?? null, payload: jsonOf(envelope.payload) ?? null } : envelope.payload, maxDataBytes, message.raw);
  const author = kind === 'command' && delegates?.has(envelope.source) ? authorOf(envelope) : envelope.source;
  return {
    token,
    kind,
    action: topic.action,
    source: author,
    via: author === envelope.source ? undefined : envelope.source,
    target,
    code: typeof envelope.code === 'number' ? envelope.code : undefined,
    progress: typeof envelope.progress === 'number' ? envelope.progress : undefined,
    priority: envelope.priority,
    etime: typeof envelope.ts === 'number' && Number.isFinite(envelope.ts) ? envelope.ts : Date.now(),
    data,
    size,
    truncated,
    raw,
    sha256,
    seal,
    // The same bytes to the same target are the same message: a retried command, a QoS 1 redelivery.
    digest: `${target ?? ''}:${messageDigest(message.raw)}`,
  };
}

/** What identifies a message by its bytes: the same bytes are the same message (a redelivery, or another router's copy of it). */
export function messageDigest(raw: Buffer): string {
  return hash('sha1', raw, 'base64url').slice(0, 16);
}

function responseKind(envelope: Envelope): HistoryKind {
  if (envelope.final !== true) return envelope.accepted === true ? 'accepted' : 'progress';
  return (envelope.code ?? 0) === 0 && envelope.error === undefined ? 'final' : 'error';
}

/** The identity a delegate's command names in `onBehalfOf` when it is a client id, else the delegate. */
function authorOf(envelope: Envelope): string {
  const named = envelope.onBehalfOf;
  return typeof named === 'string' && checkClientId(named) === undefined ? named : envelope.source;
}

export interface CappedData {
  data: string;
  size: number;
  truncated: boolean;
  /** `data` is the message's own bytes: its payload could not be encoded again (protocol §11.1). */
  raw?: true;
  /** A binary payload (protocol §3.5): `data` is the Base64 of its first bytes, `size` counts them all, this is their SHA-256 (hex). */
  sha256?: string;
}

/** A binary payload kept as a history row keeps it (protocol §11.1): the Base64 of as many bytes as `maxBytes` of text hold, the size and digest of all. */
export function capBytes(bytes: Uint8Array, maxBytes: number): CappedData & { sha256: string } {
  const kept = Math.floor(maxBytes / 4) * 3;
  const truncated = bytes.length > kept;
  return { data: encodeBase64(truncated ? bytes.subarray(0, kept) : bytes), size: bytes.length, truncated, sha256: hash('sha256', bytes, 'hex') };
}

/**
 * The seal member of a sealed message (protocol §3.6): a binary message whose header's `seal`
 * is well formed. Otherwise undefined: a malformed one no recipient can open either, and its
 * body is kept as any binary payload.
 */
export function sealOf(envelope: Envelope): SealMember | undefined {
  const member = envelope[SEAL_MEMBER];
  if (member === undefined || !isBytes(envelope.payload)) return undefined;
  const seal = readSealMember(member);
  return typeof seal === 'string' ? undefined : seal;
}

/** Bytes nested in a JSON value (an error row's payload) as `{ "$base64" }` (protocol §3.5). */
function jsonOf(payload: unknown): unknown {
  return isBytes(payload) ? toBase64(payload) : payload;
}

/**
 * The payload as JSON, cut to `maxBytes`. JSON.parse reads any depth but JSON.stringify
 * recurses, so a payload nested deeply enough arrives and cannot be written again: then the
 * message's bytes are kept instead, flagged `raw` (without `message`, that throws).
 */
export function capData(payload: unknown, maxBytes: number, message?: Buffer): CappedData {
  if (isBytes(payload)) return capBytes(payload, maxBytes);
  let json: string;
  try {
    json = JSON.stringify(payload ?? null) ?? 'null';
  } catch (error) {
    if (!message) throw error;
    return { ...cut(message.toString('utf8'), maxBytes), raw: true };
  }
  return cut(json, maxBytes);
}

function cut(json: string, maxBytes: number): CappedData {
  const size = Buffer.byteLength(json);
  if (size <= maxBytes) return { data: json, size, truncated: false };
  // Cut on a character boundary: a lone half of a surrogate pair would not survive SQLite's UTF-8.
  let data = Buffer.from(json).subarray(0, maxBytes).toString('utf8');
  if (data.endsWith('\uFFFD')) data = data.slice(0, -1);
  return { data, size, truncated: true };
}
