/**
 * The event log in one SQLite file (better-sqlite3, WAL; protocol §11.8): the cursor is an
 * AUTOINCREMENT key, so it is never reused, even after retention removed the newest events
 * and the file was opened again. Several handles (routers) may share the file: each append is
 * one IMMEDIATE transaction, so cursors follow each other whoever writes.
 */
import Database from 'better-sqlite3';
import type { BusEvent, EventsPage, EventType } from '../protocol/events.js';
import { eventsPage, type EventLog, type NewEvent } from './event-log.js';

export interface SqliteEventLogOptions {
  /** The clock of each event's `time` (tests inject one). */
  now?: () => number;
}

export class SqliteEventLog implements EventLog {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly appendAll: (events: readonly NewEvent[], skipped: number) => BusEvent[];
  private readonly now: () => number;

  /** `file` is a path, or `:memory:`. Creates the table if needed. */
  constructor(file: string, options: SqliteEventLogOptions = {}) {
    this.now = options.now ?? Date.now;
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // Checkpoint every ~40 MB of WAL instead of 4 MB: a flood is stored at ~1.3x the rate (bench/RESULTS.md).
    this.db.pragma('wal_autocheckpoint = 10000');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec('CREATE TABLE IF NOT EXISTS events (cursor INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, key TEXT)');
    // A log written before event keys gets the column, empty (never a repeat) for its events.
    const columns = new Set((this.db.pragma('table_info(events)') as Array<{ name: string }>).map((column) => column.name));
    if (!columns.has('key')) this.db.exec('ALTER TABLE events ADD COLUMN key TEXT');
    // Partial: an event without a key costs this index nothing on insert.
    this.db.exec('CREATE UNIQUE INDEX IF NOT EXISTS events_key ON events (key) WHERE key IS NOT NULL');
    this.insert = this.db.prepare('INSERT INTO events (time, type, data, key) VALUES (?, ?, ?, ?)');
    // Looked up before the insert rather than INSERT OR IGNORE: a repeat must not take a cursor.
    const stored = this.db.prepare('SELECT 1 FROM events WHERE key = ?').pluck();
    const skip = this.db.prepare("UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'events'");
    const skipFirst = this.db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)");
    const appendAll = this.db.transaction((events: readonly NewEvent[], skipped: number) => {
      // SQLite's AUTOINCREMENT takes the next cursor after sqlite_sequence's: raising it leaves a hole.
      if (skipped > 0 && skip.run(skipped).changes === 0) skipFirst.run(skipped);
      const time = this.now();
      const added: BusEvent[] = [];
      for (const { key, ...event } of events) {
        // A key stored before, by this handle or another on the file, or earlier in this append.
        if (key !== undefined && stored.get(key) !== undefined) continue;
        added.push({ cursor: Number(this.insert.run(time, event.type, JSON.stringify(event.data), key ?? null).lastInsertRowid), time, ...event });
      }
      return added;
    });
    // IMMEDIATE: the write lock is taken before the key lookups, so that another handle cannot store the same key in between.
    this.appendAll = appendAll.immediate;
  }

  /** Writes before returning (no `await` inside): the events are stored when the call returns. */
  async append(events: readonly NewEvent[], skipped = 0): Promise<BusEvent[]> {
    return events.length === 0 && skipped === 0 ? [] : this.appendAll(events, skipped);
  }

  async page(since: number | undefined, limit: number): Promise<EventsPage> {
    const latest = (this.db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().get('events') as number | undefined) ?? 0;
    const rows = (
      since === undefined
        ? (this.db.prepare('SELECT * FROM (SELECT cursor, time, type, data FROM events ORDER BY cursor DESC LIMIT ?) ORDER BY cursor').all(limit) as StoredEvent[])
        : (this.db.prepare('SELECT cursor, time, type, data FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?').all(since, limit + 1) as StoredEvent[])
    ).map(toEvent);
    return eventsPage(rows, since, limit, latest);
  }

  async prune(maxEvents: number, batch: number): Promise<number> {
    const keepFrom = this.db.prepare('SELECT cursor FROM events ORDER BY cursor DESC LIMIT 1 OFFSET ?').pluck().get(maxEvents - 1) as number | undefined;
    if (keepFrom === undefined) return 0;
    return this.db.prepare('DELETE FROM events WHERE cursor IN (SELECT cursor FROM events WHERE cursor < ? ORDER BY cursor LIMIT ?)').run(keepFrom, batch).changes;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

interface StoredEvent {
  cursor: number;
  time: number;
  type: EventType;
  data: string;
}

function toEvent(stored: StoredEvent): BusEvent {
  return { cursor: stored.cursor, time: stored.time, type: stored.type, data: JSON.parse(stored.data) as Record<string, unknown> };
}
