/**
 * The event log in PostgreSQL (protocol §11.8), one cursor sequence shared by several routers:
 * the SQLite log's rules (sqlite-event-log.ts) and `eventLogContract()`'s. Appends are
 * serialised by a lock on the events' counter row, which holds the last cursor ever given: a
 * cursor is visible only once every smaller one is (or was given up), it is never reused even
 * once pruned, and an event whose key another router already stored takes none.
 */
import type pg from 'pg';
import type { BusEvent, EventsPage, EventType } from '../protocol/events.js';
import { eventsPage, type EventLog, type NewEvent } from './event-log.js';
import { storableText, type PostgresDatabase } from './postgres-database.js';

const STORE = 'the PostgreSQL event log';

export interface PostgresEventLogOptions {
  /** The clock of each event's `time` (tests inject one). */
  now?: () => number;
  /** Called once by `close()`: the shared pool is released. */
  onClose?: () => Promise<void>;
}

interface StoredEvent {
  cursor: number;
  time: number;
  type: EventType;
  data: string;
}

export class PostgresEventLog implements EventLog {
  private readonly now: () => number;
  private closed: Promise<void> | undefined;

  constructor(
    private readonly database: PostgresDatabase,
    private readonly options: PostgresEventLogOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  async append(events: readonly NewEvent[], skipped = 0): Promise<BusEvent[]> {
    if (events.length === 0 && skipped === 0) return [];
    // Encoded first: an event that is not JSON fails the whole append before any statement.
    const encoded = events.map((event) => JSON.stringify(event.data));
    return this.database.transaction(`${STORE}: append`, (client) => this.insertEvents(client, events, encoded, skipped));
  }

  async page(since: number | undefined, limit: number): Promise<EventsPage> {
    // One statement, one snapshot: `latest` and the events agree.
    const events =
      since === undefined
        ? 'SELECT * FROM (SELECT cursor, time, type, data FROM relais_events ORDER BY cursor DESC LIMIT $1) newest ORDER BY cursor'
        : 'SELECT cursor, time, type, data FROM relais_events WHERE cursor > $2 ORDER BY cursor LIMIT $1';
    const { rows } = await this.database.query<{ latest: number } & { [field in keyof StoredEvent]: StoredEvent[field] | null }>(
      `${STORE}: page`,
      `SELECT c.value AS latest, e.* FROM relais_counters c LEFT JOIN LATERAL (${events}) e ON true WHERE c.name = 'events' ORDER BY e.cursor`,
      since === undefined ? [limit] : [limit + 1, since],
    );
    const latest = rows[0]?.latest ?? 0;
    const stored = rows.filter((row): row is { latest: number } & StoredEvent => row.cursor !== null).map(toEvent);
    return eventsPage(stored, since, limit, latest);
  }

  async prune(maxEvents: number, batch: number): Promise<number> {
    const what = `${STORE}: prune`;
    // The newest is always kept, as in SQLite.
    const { rows } = await this.database.query<{ cursor: number }>(what, 'SELECT cursor FROM relais_events ORDER BY cursor DESC LIMIT 1 OFFSET $1', [Math.max(0, maxEvents - 1)]);
    const keepFrom = rows[0]?.cursor;
    if (keepFrom === undefined) return 0;
    const removed = await this.database.query(what, 'DELETE FROM relais_events WHERE cursor IN (SELECT cursor FROM relais_events WHERE cursor < $1 ORDER BY cursor LIMIT $2)', [keepFrom, batch]);
    return removed.rowCount ?? 0;
  }

  /** Releases this log's share of the pool (the history store may still use it). */
  close(): Promise<void> {
    this.closed ??= this.options.onClose?.() ?? Promise.resolve();
    return this.closed;
  }

  /**
   * Within the caller's transaction: locks the counter row (the next appender waits until this
   * one commits), leaves out the events whose key is stored (or repeated in the batch), and
   * numbers the others after the `skipped` cursors left unused.
   */
  private async insertEvents(client: pg.PoolClient, events: readonly NewEvent[], encoded: readonly string[], skipped: number): Promise<BusEvent[]> {
    const counter = await client.query<{ value: number }>("SELECT value FROM relais_counters WHERE name = 'events' FOR UPDATE");
    const last = counter.rows[0]!.value;
    const keys = events.map((event) => storableText(event.key) ?? null);
    const seen = new Set<string>();
    if (keys.some((key) => key !== null)) {
      const stored = await client.query<{ key: string }>('SELECT key FROM relais_events WHERE key = ANY($1::text[])', [keys.filter((key) => key !== null)]);
      for (const { key } of stored.rows) seen.add(key);
    }
    const fresh: number[] = [];
    events.forEach((_, i) => {
      const key = keys[i];
      if (key === null || key === undefined) return void fresh.push(i);
      if (seen.has(key)) return; // another router stored it
      seen.add(key);
      fresh.push(i);
    });
    const time = this.now();
    const first = last + skipped + 1;
    if (fresh.length > 0) {
      await client.query(
        'INSERT INTO relais_events (cursor, time, type, data, key) SELECT cursor, $1, type, data, key FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) AS input (cursor, type, data, key)',
        [time, fresh.map((_, n) => first + n), fresh.map((i) => storableText(events[i]!.type)), fresh.map((i) => encoded[i]!), fresh.map((i) => keys[i])],
      );
    }
    if (skipped > 0 || fresh.length > 0) await client.query("UPDATE relais_counters SET value = $1 WHERE name = 'events'", [last + skipped + fresh.length]);
    return fresh.map((i, n) => ({ cursor: first + n, time, type: events[i]!.type, data: events[i]!.data }));
  }
}

function toEvent(stored: StoredEvent): BusEvent {
  return { cursor: stored.cursor, time: stored.time, type: stored.type, data: JSON.parse(stored.data) as Record<string, unknown> };
}
