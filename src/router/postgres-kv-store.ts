/**
 * The key-value store in PostgreSQL (protocol §14), shared by several routers: the SQLite
 * store's rules (sqlite-kv-store.ts) and `kvStoreContract()`'s. A write first locks its
 * bucket's row (SELECT … FOR UPDATE) until the commit: the writers of one bucket go one at a
 * time, the compare-and-set reads the key after the previous writer committed, the revision is
 * the row's plus one, and a revision is visible only once every smaller one of its bucket is. A
 * refused write takes no revision. Tables prefixed `relais_`, created if
 * missing under an advisory lock, like the history's (postgres-schema.ts).
 */
import { RevisionConflictError, type KvEntry } from '../protocol/kv.js';
import type { PostgresDatabase } from './postgres-database.js';
import { checkExpected, createdAt, entryOf, rowOf, type KvBucketState, type KvChangesQuery, type KvRow, type KvStore, type KvWrite, range } from './kv-store.js';

const STORE = 'the PostgreSQL key-value store';
const COLUMNS = 'bucket, key, revision, operation, json, bytes, author, created, updated, ttl, expires';

const TABLES = `
CREATE TABLE IF NOT EXISTS relais_kv_buckets (
  name     text   PRIMARY KEY,
  revision bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS relais_kv_entries (
  bucket    text   NOT NULL,
  key       text   COLLATE "C" NOT NULL,
  revision  bigint NOT NULL,
  operation text   NOT NULL,
  json      text,
  bytes     bytea,
  author    text   NOT NULL,
  created   bigint NOT NULL,
  updated   bigint NOT NULL,
  ttl       bigint,
  expires   bigint,
  PRIMARY KEY (bucket, revision)
);
CREATE INDEX IF NOT EXISTS relais_kv_entries_key ON relais_kv_entries (bucket, key, revision);
CREATE INDEX IF NOT EXISTS relais_kv_entries_expires ON relais_kv_entries (expires) WHERE expires IS NOT NULL;
`;

/** The newest revision of each key (the current entry): a row is current when none of its key is newer. */
const CURRENT = 'NOT EXISTS (SELECT 1 FROM relais_kv_entries l WHERE l.bucket = e.bucket AND l.key = e.key AND l.revision > e.revision)';

/** Creates the tables if missing; safe to run from several routers at once. */
export async function ensureKvSchema(database: PostgresDatabase): Promise<void> {
  await database.transaction(`${STORE}: creating its tables`, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('relais_kv_schema'))");
    await client.query(TABLES);
  });
}

export interface PostgresKvStoreOptions {
  /** Called once by `close()`: the shared pool is released. */
  onClose?: () => Promise<void>;
}

export class PostgresKvStore implements KvStore {
  private closed: Promise<void> | undefined;

  constructor(
    private readonly database: PostgresDatabase,
    private readonly options: PostgresKvStoreOptions = {},
  ) {}

  async write(write: KvWrite): Promise<KvEntry> {
    // A conflict is the caller's answer, not a store failure: it leaves the transaction as a
    // value (rolled back by the throw below), so that the database layer does not wrap it.
    const written = await this.database.transaction(`${STORE}: write`, async (client): Promise<KvEntry | RevisionConflictError> => {
      // Locks the bucket's row until the commit: its writers go one at a time.
      await client.query('INSERT INTO relais_kv_buckets (name, revision) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING', [write.bucket]);
      const locked = await client.query<{ revision: number }>('SELECT revision FROM relais_kv_buckets WHERE name = $1 FOR UPDATE', [write.bucket]);
      const found = await client.query<KvRow>(`SELECT ${COLUMNS} FROM relais_kv_entries WHERE bucket = $1 AND key = $2 ORDER BY revision DESC LIMIT 1`, [write.bucket, write.key]);
      const before = found.rows[0] && entryOf(found.rows[0]);
      try {
        checkExpected(write, before);
      } catch (error) {
        if (error instanceof RevisionConflictError) return error;
        throw error;
      }
      const revision = locked.rows[0]!.revision + 1;
      await client.query('UPDATE relais_kv_buckets SET revision = $2 WHERE name = $1', [write.bucket, revision]);
      const row = rowOf(write, revision, createdAt(write, before));
      await client.query(`INSERT INTO relais_kv_entries (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, [
        row.bucket, row.key, row.revision, row.operation, row.json, row.bytes && Buffer.from(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength), row.author, row.created, row.updated, row.ttl, row.expires,
      ]);
      await client.query(
        'DELETE FROM relais_kv_entries WHERE bucket = $1 AND key = $2 AND revision <= (SELECT revision FROM relais_kv_entries WHERE bucket = $1 AND key = $2 ORDER BY revision DESC LIMIT 1 OFFSET $3)',
        [write.bucket, write.key, write.historyDepth],
      );
      return entryOf(row);
    });
    if (written instanceof RevisionConflictError) throw written;
    return written;
  }

  async entry(bucket: string, key: string, revision?: number): Promise<KvEntry | undefined> {
    const { rows } =
      revision === undefined
        ? await this.database.query<KvRow>(`${STORE}: get`, `SELECT ${COLUMNS} FROM relais_kv_entries WHERE bucket = $1 AND key = $2 ORDER BY revision DESC LIMIT 1`, [bucket, key])
        : await this.database.query<KvRow>(`${STORE}: get`, `SELECT ${COLUMNS} FROM relais_kv_entries WHERE bucket = $1 AND key = $2 AND revision = $3`, [bucket, key, revision]);
    return rows[0] && entryOf(rows[0]);
  }

  async keys(bucket: string, options: { prefix?: string | undefined; after?: string | undefined; limit: number; now: number }): Promise<{ keys: string[]; more: boolean }> {
    const { start, after, high } = range(options.prefix, options.after);
    const { rows } = await this.database.query<{ key: string }>(
      `${STORE}: keys`,
      `SELECT key FROM relais_kv_entries e WHERE bucket = $1 AND key >= $2 AND key > $3 AND key < $4 AND operation = 'put' AND (expires IS NULL OR expires > $5) AND ${CURRENT} ORDER BY key LIMIT $6`,
      [bucket, start, after, high, options.now, options.limit + 1],
    );
    const keys = rows.map((row) => row.key);
    return { keys: keys.slice(0, options.limit), more: keys.length > options.limit };
  }

  async history(bucket: string, key: string, limit: number): Promise<KvEntry[]> {
    const { rows } = await this.database.query<KvRow>(`${STORE}: history`, `SELECT ${COLUMNS} FROM relais_kv_entries WHERE bucket = $1 AND key = $2 ORDER BY revision DESC LIMIT $3`, [bucket, key, limit]);
    return rows.reverse().map(entryOf);
  }

  async changes(bucket: string, query: KvChangesQuery): Promise<KvEntry[]> {
    const { start, high } = range(query.prefix, undefined);
    const { rows } = query.current
      ? await this.database.query<KvRow>(
          `${STORE}: changes`,
          `SELECT ${COLUMNS} FROM relais_kv_entries e WHERE bucket = $1 AND revision > $2 AND revision <= $3 AND key >= $4 AND key < $5 AND operation = 'put' AND (expires IS NULL OR expires > $6) AND ${CURRENT} ORDER BY revision LIMIT $7`,
          [bucket, query.after, query.current.through, start, high, query.current.now, query.limit],
        )
      : await this.database.query<KvRow>(
          `${STORE}: changes`,
          `SELECT ${COLUMNS} FROM relais_kv_entries WHERE bucket = $1 AND revision > $2 AND key >= $3 AND key < $4 ORDER BY revision LIMIT $5`,
          [bucket, query.after, start, high, query.limit],
        );
    return rows.map(entryOf);
  }

  async revision(bucket: string): Promise<number> {
    const { rows } = await this.database.query<{ revision: number }>(`${STORE}: revision`, 'SELECT revision FROM relais_kv_buckets WHERE name = $1', [bucket]);
    return rows[0]?.revision ?? 0;
  }

  async buckets(now: number): Promise<KvBucketState[]> {
    const { rows } = await this.database.query<KvBucketState>(
      `${STORE}: buckets`,
      `SELECT b.name AS name, b.revision AS revision,
         (SELECT COUNT(*)::bigint FROM relais_kv_entries e WHERE e.bucket = b.name AND e.operation = 'put' AND (e.expires IS NULL OR e.expires > $1) AND ${CURRENT}) AS keys
       FROM relais_kv_buckets b ORDER BY b.name COLLATE "C"`,
      [now],
    );
    return rows;
  }

  async expired(now: number, limit: number): Promise<KvEntry[]> {
    const { rows } = await this.database.query<KvRow>(
      `${STORE}: expired`,
      `SELECT ${COLUMNS} FROM relais_kv_entries e WHERE expires IS NOT NULL AND expires <= $1 AND operation = 'put' AND ${CURRENT} LIMIT $2`,
      [now, limit],
    );
    return rows.map(entryOf);
  }

  /** Releases this store's share of the pool. */
  close(): Promise<void> {
    this.closed ??= this.options.onClose?.() ?? Promise.resolve();
    return this.closed;
  }
}
