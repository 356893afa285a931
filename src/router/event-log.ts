/**
 * The event stream's store (protocol §11.8): events in SQLite with a cursor that increases by
 * one per event and is never reused (AUTOINCREMENT), so a consumer resumes from its last one.
 */
import Database from 'better-sqlite3';
import type { BusEvent, EventsPage, EventType } from '../protocol/events.js';

export interface NewEvent {
  type: EventType;
  data: Record<string, unknown>;
}

export class SqliteEventLog {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly appendAll: (events: readonly NewEvent[]) => BusEvent[];

  constructor(file: string, private readonly now: () => number = Date.now) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // Checkpoint every ~40 MB of WAL instead of 4 MB: a flood is stored at ~1.3x the rate (bench/RESULTS.md).
    this.db.pragma('wal_autocheckpoint = 10000');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec('CREATE TABLE IF NOT EXISTS events (cursor INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL)');
    this.insert = this.db.prepare('INSERT INTO events (time, type, data) VALUES (?, ?, ?)');
    this.appendAll = this.db.transaction((events: readonly NewEvent[]) => {
      const time = this.now();
      return events.map((event) => ({ cursor: Number(this.insert.run(time, event.type, JSON.stringify(event.data)).lastInsertRowid), time, ...event }));
    });
  }

  /** Stores events in one transaction; returns them with their cursors. */
  append(events: readonly NewEvent[]): BusEvent[] {
    return events.length === 0 ? [] : this.appendAll(events);
  }

  /** Events after `since` (absent: the newest `limit`), oldest first; says how many retention removed after `since`. */
  page(since: number | undefined, limit: number): EventsPage {
    const latest = (this.db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().get('events') as number | undefined) ?? 0;
    const rows = (
      since === undefined
        ? (this.db.prepare('SELECT * FROM (SELECT cursor, time, type, data FROM events ORDER BY cursor DESC LIMIT ?) ORDER BY cursor').all(limit) as StoredEvent[])
        : (this.db.prepare('SELECT cursor, time, type, data FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?').all(since, limit + 1) as StoredEvent[])
    ).map(toEvent);
    const more = since !== undefined && rows.length > limit;
    const events = rows.slice(0, limit);
    const page: EventsPage = { events, more, latest };
    if (since !== undefined && since < latest) {
      // The first event after `since` should be since + 1; whatever is below the oldest kept is gone.
      const first = events[0]?.cursor ?? latest + 1;
      if (first > since + 1) page.missed = first - since - 1;
    }
    return page;
  }

  /** Keeps the newest `maxEvents`; removes at most `batch` per call; returns how many it removed. */
  prune(maxEvents: number, batch: number): number {
    const keepFrom = this.db.prepare('SELECT cursor FROM events ORDER BY cursor DESC LIMIT 1 OFFSET ?').pluck().get(maxEvents - 1) as number | undefined;
    if (keepFrom === undefined) return 0;
    return this.db.prepare('DELETE FROM events WHERE cursor IN (SELECT cursor FROM events WHERE cursor < ? ORDER BY cursor LIMIT ?)').run(keepFrom, batch).changes;
  }

  close(): void {
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
