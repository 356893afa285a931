/**
 * The key-value store in SQLite (better-sqlite3, WAL; protocol §14), in the router's database
 * file beside the history (its own tables, `kv_buckets` and `kv_entries`). Each write is one
 * IMMEDIATE transaction: the compare-and-set, the bucket's next revision, the row and the prune
 * of the key's history, so that two handles on the file (two routers) never take one revision.
 * The bucket's sequence lives in `kv_buckets`, not in the rows: it never goes back, even once
 * the newest rows are pruned.
 */
import Database from 'better-sqlite3';
import type { KvEntry } from '../protocol/kv.js';
import { checkExpected, createdAt, entryOf, range, rowOf, type KvBucketState, type KvChangesQuery, type KvRow, type KvStore, type KvWrite } from './kv-store.js';

const COLUMNS = 'bucket, key, revision, operation, json, bytes, author, created, updated, ttl, expires';

/** A row as SQLite gives it: BLOBs as Buffers (a Uint8Array), integers as numbers. */
type SqliteRow = KvRow;

export class SqliteKvStore implements KvStore {
  private readonly db: Database.Database;
  private readonly writeOne: (write: KvWrite) => KvEntry;

  /** `file` is a path (the router's database), or `:memory:`. Creates the tables if needed. */
  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    // Another handle (the history's) may hold the write lock for a moment.
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS kv_buckets (name TEXT PRIMARY KEY, revision INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS kv_entries (
        bucket    TEXT    NOT NULL,
        key       TEXT    NOT NULL,
        revision  INTEGER NOT NULL,
        operation TEXT    NOT NULL,
        json      TEXT,
        bytes     BLOB,
        author    TEXT    NOT NULL,
        created   INTEGER NOT NULL,
        updated   INTEGER NOT NULL,
        ttl       INTEGER,
        expires   INTEGER,
        PRIMARY KEY (bucket, revision)
      );
      CREATE INDEX IF NOT EXISTS kv_entries_key ON kv_entries (bucket, key, revision);
      CREATE INDEX IF NOT EXISTS kv_entries_expires ON kv_entries (expires) WHERE expires IS NOT NULL;
    `);
    const latest = this.db.prepare(`SELECT ${COLUMNS} FROM kv_entries WHERE bucket = ? AND key = ? ORDER BY revision DESC LIMIT 1`);
    const next = this.db.prepare('INSERT INTO kv_buckets (name, revision) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET revision = revision + 1 RETURNING revision').pluck();
    const insert = this.db.prepare(`INSERT INTO kv_entries (${COLUMNS}) VALUES (@bucket, @key, @revision, @operation, @json, @bytes, @author, @created, @updated, @ttl, @expires)`);
    const prune = this.db.prepare('DELETE FROM kv_entries WHERE bucket = ? AND key = ? AND revision <= (SELECT revision FROM kv_entries WHERE bucket = ? AND key = ? ORDER BY revision DESC LIMIT 1 OFFSET ?)');
    const writeOne = this.db.transaction((write: KvWrite): KvEntry => {
      const found = latest.get(write.bucket, write.key) as SqliteRow | undefined;
      const before = found && entryOf(found);
      checkExpected(write, before);
      const row = rowOf(write, next.get(write.bucket) as number, createdAt(write, before));
      insert.run({ ...row, bytes: row.bytes && Buffer.from(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength) });
      prune.run(write.bucket, write.key, write.bucket, write.key, write.historyDepth);
      return entryOf(row);
    });
    // IMMEDIATE: the write lock before reading the key, so that no other handle writes it in between.
    this.writeOne = writeOne.immediate;
  }

  /** Writes before returning (no `await` inside). */
  async write(write: KvWrite): Promise<KvEntry> {
    return this.writeOne(write);
  }

  async entry(bucket: string, key: string, revision?: number): Promise<KvEntry | undefined> {
    const row = (
      revision === undefined
        ? this.db.prepare(`SELECT ${COLUMNS} FROM kv_entries WHERE bucket = ? AND key = ? ORDER BY revision DESC LIMIT 1`).get(bucket, key)
        : this.db.prepare(`SELECT ${COLUMNS} FROM kv_entries WHERE bucket = ? AND key = ? AND revision = ?`).get(bucket, key, revision)
    ) as SqliteRow | undefined;
    return row && entryOf(row);
  }

  async keys(bucket: string, options: { prefix?: string | undefined; after?: string | undefined; limit: number; now: number }): Promise<{ keys: string[]; more: boolean }> {
    const { start, after, high } = range(options.prefix, options.after);
    const keys = this.db
      .prepare(
        `SELECT key FROM kv_entries e WHERE bucket = ? AND key >= ? AND key > ? AND key < ? AND operation = 'put' AND (expires IS NULL OR expires > ?)
         AND revision = (SELECT MAX(revision) FROM kv_entries l WHERE l.bucket = e.bucket AND l.key = e.key)
         ORDER BY key LIMIT ?`,
      )
      .pluck()
      .all(bucket, start, after, high, options.now, options.limit + 1) as string[];
    return { keys: keys.slice(0, options.limit), more: keys.length > options.limit };
  }

  async history(bucket: string, key: string, limit: number): Promise<KvEntry[]> {
    const rows = this.db.prepare(`SELECT ${COLUMNS} FROM kv_entries WHERE bucket = ? AND key = ? ORDER BY revision DESC LIMIT ?`).all(bucket, key, limit) as SqliteRow[];
    return rows.reverse().map(entryOf);
  }

  async changes(bucket: string, query: KvChangesQuery): Promise<KvEntry[]> {
    const { start, high } = range(query.prefix, undefined);
    const rows = query.current
      ? this.db
          .prepare(
            `SELECT ${COLUMNS} FROM kv_entries e WHERE bucket = ? AND revision > ? AND revision <= ? AND key >= ? AND key < ? AND operation = 'put' AND (expires IS NULL OR expires > ?)
             AND revision = (SELECT MAX(revision) FROM kv_entries l WHERE l.bucket = e.bucket AND l.key = e.key)
             ORDER BY revision LIMIT ?`,
          )
          .all(bucket, query.after, query.current.through, start, high, query.current.now, query.limit)
      : this.db.prepare(`SELECT ${COLUMNS} FROM kv_entries WHERE bucket = ? AND revision > ? AND key >= ? AND key < ? ORDER BY revision LIMIT ?`).all(bucket, query.after, start, high, query.limit);
    return (rows as SqliteRow[]).map(entryOf);
  }

  async revision(bucket: string): Promise<number> {
    return (this.db.prepare('SELECT revision FROM kv_buckets WHERE name = ?').pluck().get(bucket) as number | undefined) ?? 0;
  }

  async buckets(now: number): Promise<KvBucketState[]> {
    return this.db
      .prepare(
        `SELECT b.name AS name, b.revision AS revision,
           (SELECT COUNT(*) FROM kv_entries e WHERE e.bucket = b.name AND e.operation = 'put' AND (e.expires IS NULL OR e.expires > ?)
              AND e.revision = (SELECT MAX(revision) FROM kv_entries l WHERE l.bucket = e.bucket AND l.key = e.key)) AS keys
         FROM kv_buckets b ORDER BY b.name`,
      )
      .all(now) as KvBucketState[];
  }

  async expired(now: number, limit: number): Promise<KvEntry[]> {
    const rows = this.db
      .prepare(
        `SELECT ${COLUMNS} FROM kv_entries e WHERE expires IS NOT NULL AND expires <= ? AND operation = 'put'
         AND revision = (SELECT MAX(revision) FROM kv_entries l WHERE l.bucket = e.bucket AND l.key = e.key) LIMIT ?`,
      )
      .all(now, limit) as SqliteRow[];
    return rows.map(entryOf);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
