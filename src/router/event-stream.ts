/**
 * One event stream for every screen (protocol §11.8): client status changes,
 * requests started and finished, notifications, logs at warning or above. Each event is
 * stored with its cursor, then pushed; a consumer that lost its connection replays from
 * its last cursor with `relais/events/get`. Events the store refused (a full disk) wait in a
 * WriteBacklog and are stored once it has room, before any newer one; past MAX_UNSTORED_EVENTS
 * waiting, the oldest are given up and leave their cursors unused, so every consumer is told
 * exactly how many it missed. Events carry a key (an event is what happened, not which
 * router saw it), so that routers sharing one store keep each once (protocol §11.8).
 */
import { hash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Bus } from '../client/bus.js';
import type { ReceivedMessage, Registration } from '../client/types.js';
import { EVENTS_ACTION, EVENTS_CATEGORY, eventsQuerySchema, type BusEvent } from '../protocol/events.js';
import type { HistoryRowInput } from '../protocol/history.js';
import type { SealMember } from '../protocol/sealing.js';
import { REGISTRY_CATEGORIES } from '../protocol/registry.js';
import { parseTopic } from '../protocol/topics.js';
import type { EventLog, NewEvent } from './event-log.js';
import { parsed } from './history-service.js';
import { Batcher } from './batcher.js';
import { capData, messageDigest, sealOf } from './recorder.js';
import { WriteBacklog } from './write-backlog.js';
import { ClientEventKeys } from './client-event-keys.js';

/** Events per pushed notification: a batch stays well under the message size limit. */
const EVENTS_PER_MESSAGE = 100;
/** Requests whose start is remembered for the duration of their end event. */
const MAX_OPEN_REQUESTS = 100_000;
const LOUD_LEVELS = new Set(['warn', 'error', 'fatal']);
/** Events the store refused, kept to be tried again; past this many the oldest are given up (their cursors left unused). */
export const MAX_UNSTORED_EVENTS = 10_000;

export interface EventStreamOptions {
  maxDataBytes: number;
  logger: Logger;
}

export class EventStream {
  private readonly batcher = new Batcher<NewEvent>((batch) => this.storeAndPush(batch));
  private readonly started = new Map<string, number>();
  private readonly clientKeys = new ClientEventKeys();
  /** Events the store refused, in order, waiting for it. */
  private readonly backlog = new WriteBacklog<NewEvent>({ max: MAX_UNSTORED_EVENTS, giveUp: 'oldest', retry: () => this.flush() });
  /** Events given up since the store last worked: as many cursors are left unused before the next stored one. */
  private givenUp = 0;

  /** Set once connected: events stored before (what a persistent session kept) are replayed, not pushed. */
  private bus: Bus | undefined;

  constructor(
    private readonly log: EventLog,
    private readonly options: EventStreamOptions,
  ) {}

  serve(bus: Bus): Promise<Registration> {
    this.bus = bus;
    return bus.handle(EVENTS_ACTION, async (payload: unknown) => {
      const query = parsed(() => eventsQuerySchema.parse(payload ?? {}));
      await this.flush(); // what is buffered is older than the question
      return this.log.page(query.since, query.limit);
    });
  }

  /** From now on events are stored only (the router is closing): consumers replay them later. */
  stopPushing(): void {
    this.bus = undefined;
  }

  /** Notifications and logs, from the router's subscription to everything. */
  readonly onMessage = (message: ReceivedMessage): void => {
    if (message.retained) return; // an old message, not something happening now
    const topic = parseTopic(message.topic);
    const { envelope } = message;
    if (topic.kind === 'notification') {
      if (topic.category === EVENTS_CATEGORY || topic.category === REGISTRY_CATEGORIES.list) return;
      if (topic.category === REGISTRY_CATEGORIES.detail) return this.onClients(envelope.payload);
      const seal = sealOf(envelope);
      // A sealed notification (protocol §3.6) is told by whom it is sealed for and its size; neither its ciphertext nor anything opened is in an event.
      const payload = seal ? sealedSummary(seal, envelope.payload as Uint8Array) : this.payloadOf(envelope.payload, message.raw);
      this.add({ type: 'notification', data: { category: topic.category, source: envelope.source, ...payload }, key: messageKey(message) });
    } else if (topic.kind === 'log') {
      const log = (envelope.payload ?? {}) as { level?: unknown; message?: unknown; data?: unknown };
      if (typeof log.level !== 'string' || !LOUD_LEVELS.has(log.level)) return;
      this.add({ type: 'log', data: { category: topic.category, source: envelope.source, level: log.level, message: String(log.message ?? ''), ...this.payloadOf(log.data, message.raw) }, key: messageKey(message) });
    }
  };

  /**
   * Requests started and finished, from the rows the router saw once they are in the store
   * (`Recorder.watchSeen`), keyed by the row: whichever router stored a row, and even if it died
   * before storing its event, every router adds it and the store keeps it once.
   */
  readonly onRows = (rows: readonly HistoryRowInput[]): void => {
    for (const row of rows) {
      if (row.kind === 'command') {
        if (this.started.size >= MAX_OPEN_REQUESTS) this.started.delete(this.started.keys().next().value!);
        this.started.set(row.token, row.etime);
        this.add({ type: 'request.started', data: { token: row.token, action: row.action, source: row.source, ...(row.target !== undefined && { target: row.target }) }, key: `request.started\n${row.token}\n${row.digest}` });
      } else if (row.kind === 'final' || row.kind === 'error') {
        const start = this.started.get(row.token);
        this.started.delete(row.token);
        this.add({
          type: 'request.finished',
          data: { token: row.token, action: row.action, handler: row.source, requester: row.target, code: row.code ?? (row.kind === 'error' ? 1 : 0), ...(start !== undefined && { durationMs: row.etime - start }) },
          key: `request.finished\n${row.token}\n${row.digest}`,
        });
      }
    }
  };

  /**
   * Requests the history did not record (protocol §11.8 `history.gap`): reported by the embedded
   * broker's journal with exact counts, or by the router itself after an absence on a broker that
   * keeps no journal. Stored at once (resolves once stored, or waiting for the store): the
   * journal is told only after.
   */
  onGap(data: Record<string, unknown>): Promise<void> {
    this.add({ type: 'history.gap', data });
    // Tried now even while the store refused events (the history's store just worked again, say).
    return this.backlog.retryNow();
  }

  /**
   * A link came up or went down (keyed by site, status and since: every router sees the same
   * change), or a sync of a site's history ended (this router's own sync) (protocol §11.8, §13.5).
   */
  onSite(type: 'site.up' | 'site.down' | 'site.sync', data: Record<string, unknown>): void {
    const since = data.since;
    const key = type !== 'site.sync' && since !== undefined ? `${type}\n${String(data.site)}\n${String(since)}` : undefined;
    this.add({ type, data, ...(key !== undefined && { key }) });
  }

  /**
   * A change of the key-value store (protocol §14.7): bucket, key, revision, author and
   * operation, never the value. Keyed by bucket and revision: routers sharing a store that both
   * see the change keep it once.
   */
  onKv(type: 'kv.put' | 'kv.delete', data: { bucket: string; key: string; revision: number; author: string; operation: string }): void {
    this.add({ type, data: { ...data }, key: `kv\n${data.bucket}\n${data.revision}` });
  }

  /** The registry's detail notification carries only the clients that changed (protocol §11.3). */
  private onClients(payload: unknown): void {
    const clients = (payload as { clients?: Record<string, { status?: string; host?: string; pid?: number; since?: number; reason?: string } | null> } | null)?.clients;
    if (!clients || typeof clients !== 'object') return;
    for (const [id, detail] of Object.entries(clients)) {
      const status = detail?.status ?? 'forgotten';
      const since = typeof detail?.since === 'number' ? detail.since : undefined;
      const key = this.clientKeys.keyOf(id, { status, ...(since !== undefined && { since }), ...(typeof detail?.reason === 'string' && { reason: detail.reason }) });
      this.add({ type: 'client', data: { id, status, ...(detail?.host !== undefined && { host: detail.host }), ...(detail?.pid !== undefined && { pid: detail.pid }) }, ...(key !== undefined && { key }) });
    }
  }

  /** The payload as the event carries it; one that cannot be encoded again (nested too deeply) is told by its size alone. */
  private payloadOf(payload: unknown, message: Buffer): Record<string, unknown> {
    const { data, size, truncated, raw, sha256 } = capData(payload, this.options.maxDataBytes, message);
    if (raw) return { raw: true, size };
    // A binary payload (protocol §3.5) is told by its size and digest; its bytes are in no event.
    if (sha256) return { binary: true, size, sha256 };
    return truncated ? { truncated: true, size } : { payload: JSON.parse(data) as unknown };
  }

  private add(event: NewEvent): void {
    this.batcher.add(event);
  }

  /** Stores and pushes what is pending now (while the store refuses, it waits for the backlog's next attempt); resolves once done. */
  flush(): Promise<void> {
    return this.batcher.flush();
  }

  /** Stops trying again (the router closes; what still waits is lost with it). */
  close(): void {
    this.backlog.close();
  }

  /** Stores the events (after those that waited), then pushes them: a pushed event can always be replayed. */
  private async storeAndPush(batch: NewEvent[]): Promise<void> {
    if (!this.backlog.mayTry) return this.giveUp(this.backlog.hold(batch).length);
    const events = this.backlog.take(batch);
    if (events.length === 0 && this.givenUp === 0) return;
    let stored: BusEvent[];
    try {
      stored = await this.log.append(events, this.givenUp);
    } catch (error) {
      this.giveUp(this.backlog.refused(events).length, error as Error);
      return;
    }
    const refusedMs = this.backlog.stored();
    if (refusedMs !== undefined) this.options.logger.warn({ events: events.length, givenUp: this.givenUp, refusedMs }, 'events: the store works again; the events that waited for it are stored');
    this.givenUp = 0;
    for (let from = 0; this.bus && from < stored.length; from += EVENTS_PER_MESSAGE) {
      try {
        this.bus.notify(EVENTS_CATEGORY, { events: stored.slice(from, from + EVENTS_PER_MESSAGE) });
      } catch (error) {
        // Stored all the same: consumers find them with relais/events/get.
        this.options.logger.warn({ err: (error as Error).message }, 'events not pushed');
      }
    }
  }

  /** After a refusal (`error`) or while the store refuses: events given up past the bound are counted (as many cursors left unused) and logged. */
  private giveUp(count: number, error?: Error): void {
    const firstLoss = count > 0 && this.givenUp === 0;
    this.givenUp += count;
    if (!firstLoss && !(error && this.backlog.dueForLog())) return;
    this.options.logger.error(
      { ...(error && { err: error.message }), waiting: this.backlog.size, givenUp: this.givenUp },
      this.givenUp > 0
        ? `events could not be stored and ${MAX_UNSTORED_EVENTS} already wait: the oldest are given up (${this.givenUp} so far; their cursors stay unused, so consumers are told how many they missed)`
        : 'events could not be stored (they wait and are tried again, new events or not)',
    );
  }
}

/** What an event says of a sealed payload: the key ids it is sealed for, the ciphertext's size and digest. */
function sealedSummary(seal: SealMember, ciphertext: Uint8Array): Record<string, unknown> {
  return { sealed: true, kids: seal.to.map((recipient) => recipient.kid), size: ciphertext.length, sha256: hash('sha256', ciphertext, 'hex') };
}

/** A notification or log event is its message: the same bytes on the same topic, whichever router saw them (or saw them again). */
function messageKey(message: ReceivedMessage): string {
  return `${message.topic}\n${messageDigest(message.raw)}`;
}
