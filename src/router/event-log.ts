/**
 * The event stream's store (protocol §11.8): events in SQLite with a cursor that increases by
 * one per event and is never reused (AUTOINCREMENT), so a consumer resumes from its last one.
 * Events the router had to give up (its store refused them too long) leave their cursors
 * unused: a page ends before such a hole, and the next one says how many were `missed`, as for
 * the events retention removed.
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
  private readonly appendAll: (events: readonly NewEvent[], skipped: number) => BusEvent[];

  constructor(file: string, private readonly now: () => number = Date.now) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // Checkpoint every ~40 MB of WAL instead of 4 MB: a flood is stored at ~1.3x the rate (bench/RESULTS.md).
    this.db.pragma('wal_autocheckpoint = 10000');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec('CREATE TABLE IF NOT EXISTS events (cursor INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL)');
    this.insert = this.db.prepare('INSERT INTO events (time, type, data) VALUES (?, ?, ?)');
    const skip = this.db.prepare("UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'events'");
    const skipFirst = this.db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)");
    this.appendAll = this.db.transaction((events: readonly NewEvent[], skipped: number) => {
      // SQLite's AUTOINCREMENT takes the next cursor after sqlite_sequence's: raising it leaves a hole.
      if (skipped > 0 && skip.run(skipped).changes === 0) skipFirst.run(skipped);
      const time = this.now();
      return events.map((event) => ({ cursor: Number(this.insert.run(time, event.type, JSON.stringify(event.data)).lastInsertRowid), time, ...event }));
    });
  }

  /**
   * Stores events in one transaction; returns them with their cursors. `skipped` events given up
   * before them leave as many cursors unused before the first (all or nothing, with the events).
   */
  append(events: readonly NewEvent[], skipped = 0): BusEvent[] {
    return events.length === 0 && skipped === 0 ? [] : this.appendAll(events, skipped);
  }

  /** Events after `since` (absent: the newest `limit`), oldest first; says how many retention removed after `since`. */
  page(since: number | undefined, limit: number): EventsPage {
    const latest = (this.db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().get('events') as number | undefined) ?? 0;
    const rows = (
      since === undefined
        ? (this.db.prepare('SELECT * FROM (SELECT cursor, time, type, data FROM events ORDER BY cursor DESC LIMIT ?) ORDER BY cursor').all(limit) as StoredEvent[])
        : (this.db.prepare('SELECT cursor, time, type, data FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?').all(since, limit + 1) as StoredEvent[])
    ).map(toEvent);
    let more = since !== undefined && rows.length > limit;
    let events = rows.slice(0, limit);
    // A hole inside the page (events given up): the page ends before it; the next one reports it as missed.
    const hole = events.findIndex((event, index) => index > 0 && event.cursor !== events[index - 1]!.cursor + 1);
    if (since !== undefined && hole > 0) {
      events = events.slice(0, hole);
      more = true;
    }
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
