/**
 * The token history in one SQLite file (better-sqlite3, WAL): Gorgone's columns (token, code,
 * ctime, etime, data) plus what a user filters on. protocol §11.1
 *
 * Synchronous inside: each method writes in its body, before it returns its promise, so that a
 * message is stored before its PUBACK leaves (recorder.ts). Several handles (routers) may share
 * the file: each append is one IMMEDIATE transaction.
 */
import Database from 'better-sqlite3';
import type { HistoryPage, HistoryRow, HistoryRowInput, ResolvedHistoryQuery } from '../protocol/history.js';
import type { HistoryRetention, HistoryScope, HistoryStore, SitePage, SiteSyncOutcome, StoredSiteSync } from './history-store.js';
import { historyPage, historyRowOf, historySelect, sealText, siteSyncsOf, type StoredHistoryRow, type StoredSiteSyncRow } from './history-sql.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS history (
  id        INTEGER PRIMARY KEY,
  token     TEXT    NOT NULL,
  kind      TEXT    NOT NULL,
  code      INTEGER,
  ctime     INTEGER NOT NULL,
  etime     INTEGER NOT NULL,
  action    TEXT    NOT NULL,
  source    TEXT    NOT NULL,
  target    TEXT,
  progress  REAL,
  priority  TEXT,
  size      INTEGER NOT NULL,
  truncated INTEGER NOT NULL DEFAULT 0,
  data      TEXT    NOT NULL,
  digest    TEXT    NOT NULL,
  raw       INTEGER NOT NULL DEFAULT 0,
  via       TEXT,
  site      TEXT,
  sha256    TEXT,
  seal      TEXT
);
-- Where the central stands in each site's history (protocol §13.5; Centreon's synchistory):
-- written in the same transaction as the rows of each page.
CREATE TABLE IF NOT EXISTS site_sync (
  site           TEXT PRIMARY KEY,
  position       INTEGER NOT NULL,
  position_ctime INTEGER,
  lag            INTEGER,
  last_sync_at   INTEGER,
  last_outcome   TEXT,
  rows           INTEGER,
  last_ms        INTEGER,
  last_error     TEXT
);
-- Each index costs every insert (~1.5 µs a row here): those of the common filters only. A code
-- or etime filter walks the action/source/target/ctime index it is combined with, or the ids.
CREATE UNIQUE INDEX IF NOT EXISTS history_token_digest ON history (token, digest);
CREATE INDEX IF NOT EXISTS history_action ON history (action, id);
CREATE INDEX IF NOT EXISTS history_source ON history (source, id);
CREATE INDEX IF NOT EXISTS history_target ON history (target, id);
CREATE INDEX IF NOT EXISTS history_ctime ON history (ctime);
`;

export interface SqliteHistoryOptions {
  /** `normal` (default) survives a killed process; `full` also a power cut, at a cost per transaction. */
  synchronous?: 'normal' | 'full';
  /** The clock used for `ctime` (tests inject one). */
  now?: () => number;
}

export class SqliteHistoryStore implements HistoryStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly appendAll: (rows: readonly HistoryRowInput[]) => HistoryRow[];
  private readonly appendSitePage: (site: string, page: SitePage) => HistoryRow[];
  private readonly saveOutcome: Database.Statement;
  private readonly queries = new Map<string, Database.Statement>();
  private readonly now: () => number;

  /** `file` is a path, or `:memory:`. Creates the schema if needed. */
  constructor(file: string, options: SqliteHistoryOptions = {}) {
    this.now = options.now ?? Date.now;
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // Checkpoint every ~40 MB of WAL instead of 4 MB: a flood is stored at ~1.3x the rate (bench/RESULTS.md).
    this.db.pragma('wal_autocheckpoint = 10000');
    this.db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.exec(SCHEMA);
    // A history written before these columns (protocol §11.1) gets them, empty for its rows.
    const columns = new Set((this.db.pragma('table_info(history)') as Array<{ name: string }>).map((column) => column.name));
    if (!columns.has('raw')) this.db.exec('ALTER TABLE history ADD COLUMN raw INTEGER NOT NULL DEFAULT 0');
    if (!columns.has('via')) this.db.exec('ALTER TABLE history ADD COLUMN via TEXT');
    if (!columns.has('site')) this.db.exec('ALTER TABLE history ADD COLUMN site TEXT');
    if (!columns.has('sha256')) this.db.exec('ALTER TABLE history ADD COLUMN sha256 TEXT');
    if (!columns.has('seal')) this.db.exec('ALTER TABLE history ADD COLUMN seal TEXT');
    // Partial: the router's own rows (no site) cost this index nothing on insert.
    this.db.exec('CREATE INDEX IF NOT EXISTS history_site ON history (site, id) WHERE site IS NOT NULL');
    this.insert = this.db.prepare(
      `INSERT OR IGNORE INTO history (token, kind, code, ctime, etime, action, source, target, progress, priority, size, truncated, data, digest, raw, via, site, sha256, seal)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const markSite = this.db.prepare('UPDATE history SET site = ? WHERE token = ? AND digest = ? AND site IS NULL');
    const savePosition = this.db.prepare(
      `INSERT INTO site_sync (site, position, position_ctime, lag) VALUES (?, ?, ?, ?)
       ON CONFLICT (site) DO UPDATE SET position = excluded.position, position_ctime = excluded.position_ctime, lag = excluded.lag`,
    );
    this.saveOutcome = this.db.prepare(
      `INSERT INTO site_sync (site, position, lag, last_sync_at, last_outcome, rows, last_ms, last_error) VALUES (?, 0, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (site) DO UPDATE SET lag = coalesce(excluded.lag, lag), last_sync_at = excluded.last_sync_at, last_outcome = excluded.last_outcome,
         rows = excluded.rows, last_ms = excluded.last_ms, last_error = excluded.last_error`,
    );
    this.appendAll = this.db.transaction((rows: readonly HistoryRowInput[]) => this.insertRows(rows)).immediate;
    this.appendSitePage = this.db.transaction((site: string, page: SitePage) => {
      const added = this.insertRows(page.rows.map((row) => ({ ...row, site: row.site ?? site })));
      // A row recorded live as it crossed the link is the same row: it now says whose history holds it.
      if (added.length < page.rows.length) for (const row of page.rows) markSite.run(row.site ?? site, row.token, row.digest);
      savePosition.run(site, page.position, page.positionCtime ?? null, page.lag);
      return added;
    }).immediate;
  }

  /** Inserts within the caller's transaction; returns the new rows as stored. */
  private insertRows(rows: readonly HistoryRowInput[]): HistoryRow[] {
    const ctime = this.now();
    const added: HistoryRow[] = [];
    for (const row of rows) {
      // Positional, not named, parameters: ~1.5x the rows per second (no object to read per row).
      const result = this.insert.run(
        row.token,
        row.kind,
        row.code ?? null,
        ctime,
        row.etime,
        row.action,
        row.source,
        row.target ?? null,
        row.progress ?? null,
        row.priority ?? null,
        row.size,
        row.truncated ? 1 : 0,
        row.data,
        row.digest,
        row.raw ? 1 : 0,
        row.via ?? null,
        row.site ?? null,
        row.sha256 ?? null,
        sealText(row),
      );
      if (result.changes === 0) continue; // a repeat of a stored message
      const { digest: _digest, site, ...stored } = row;
      added.push({ ...stored, ...(site !== undefined && { site }), id: Number(result.lastInsertRowid), ctime });
    }
    return added;
  }

  async appendFromSite(site: string, page: SitePage): Promise<HistoryRow[]> {
    return this.appendSitePage(site, page);
  }

  async recordSiteSync(site: string, outcome: SiteSyncOutcome, lag?: number): Promise<void> {
    this.saveOutcome.run(site, lag ?? null, outcome.at, outcome.outcome, outcome.rows, outcome.ms, outcome.error ?? null);
  }

  async siteSyncs(): Promise<Record<string, StoredSiteSync>> {
    return siteSyncsOf(this.db.prepare('SELECT * FROM site_sync ORDER BY site').all() as StoredSiteSyncRow[]);
  }

  async append(rows: readonly HistoryRowInput[]): Promise<HistoryRow[]> {
    return rows.length === 0 ? [] : this.appendAll(rows);
  }

  async query(query: ResolvedHistoryQuery, scope?: HistoryScope): Promise<HistoryPage> {
    const values: Array<string | number> = [];
    const sql = historySelect('history', query, scope, (value) => {
      values.push(value);
      return '?';
    });
    let statement = this.queries.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.queries.set(sql, statement); // at most 2^13 × 2 × 2 × 2 shapes
    }
    return historyPage(statement.all(...values) as StoredHistoryRow[], query.limit);
  }

  async prune(retention: HistoryRetention, now: number, batch: number): Promise<number> {
    const byAge = this.db
      .prepare('DELETE FROM history WHERE id IN (SELECT id FROM history WHERE ctime < ? ORDER BY id LIMIT ?)')
      .run(now - retention.maxAgeMs, batch).changes;
    if (byAge >= batch) return byAge;
    // The id of the oldest row to keep; everything below it goes.
    const keepFrom = this.db.prepare('SELECT id FROM history ORDER BY id DESC LIMIT 1 OFFSET ?').pluck().get(retention.maxRows - 1) as number | undefined;
    if (keepFrom === undefined) return byAge;
    const byCount = this.db
      .prepare('DELETE FROM history WHERE id IN (SELECT id FROM history WHERE id < ? ORDER BY id LIMIT ?)')
      .run(keepFrom, batch - byAge).changes;
    return byAge + byCount;
  }

  async count(): Promise<number> {
    return this.db.prepare('SELECT count(*) FROM history').pluck().get() as number;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
