/**
 * The key-value store (protocol §14), as an interface any store implements: SQLite
 * (`sqlite-kv-store.ts`, in the router's database file), PostgreSQL (`postgres-kv-store.ts`,
 * shared by several routers), memory (`memory-kv-store.ts`). Each passes `kvStoreContract()`
 * (test/kv/kv-store-contract.ts). Entries are the wire's (src/protocol/kv.ts).
 *
 * A store keeps, per bucket, one revision sequence (never reused, even once pruned) and the
 * newest `historyDepth` revisions of each key, tombstones included. A write checks its
 * compare-and-set, takes the bucket's next revision and prunes the key's history in ONE
 * transaction: two writers (two routers) never take one revision, and a revision is visible
 * only once every smaller one of its bucket is, so that a watcher reading after a revision
 * never skips one.
 */
import { fromBase64, toBase64 } from '../protocol/binary.js';
import { utf8ByteLength } from '../protocol/bytes.js';
import { RevisionConflictError, type KvEntry, type KvOperation, type StoredValue } from '../protocol/kv.js';

export interface KvWrite {
  bucket: string;
  key: string;
  operation: KvOperation;
  /** The value (absent for a tombstone). */
  value?: StoredValue;
  author: string;
  /** Compare-and-set: the key's current revision (0: the key has no value). */
  expectRevision?: number;
  ttl?: number;
  /** Revisions of this key kept, this one included. */
  historyDepth: number;
  /** The write's time (epoch ms): `updated`, and `expires` = now + ttl. */
  now: number;
}

export interface KvChangesQuery {
  /** Revisions above this one. */
  after: number;
  prefix?: string | undefined;
  limit: number;
  /**
   * Only each key's current entry, and only while it has a value (not a tombstone, not expired
   * at `now`) and its revision is at most `through`: the snapshot a watch without `since` starts
   * with.
   */
  current?: { through: number; now: number };
}

export interface KvBucketState {
  name: string;
  /** The last revision given (0 before any). */
  revision: number;
  /** Keys with a value now. */
  keys: number;
}

export interface KvStore {
  /**
   * Writes one revision; rejects with `RevisionConflictError` when `expectRevision` is not the
   * key's current revision (see `checkExpected`), writing nothing. Returns the entry written.
   */
  write(write: KvWrite): Promise<KvEntry>;
  /** The key's newest entry (a tombstone included), or the entry at `revision` while kept. */
  entry(bucket: string, key: string, revision?: number): Promise<KvEntry | undefined>;
  /** Keys with a value at `now`, in code-point order, after `after`, at most `limit`. */
  keys(bucket: string, options: { prefix?: string | undefined; after?: string | undefined; limit: number; now: number }): Promise<{ keys: string[]; more: boolean }>;
  /** The newest `limit` kept entries of a key, oldest first. */
  history(bucket: string, key: string, limit: number): Promise<KvEntry[]>;
  /** Kept entries of the bucket after `after`, by revision (see KvChangesQuery). */
  changes(bucket: string, query: KvChangesQuery): Promise<KvEntry[]>;
  /** The bucket's last revision (0 when it has none). */
  revision(bucket: string): Promise<number>;
  /** Every bucket written at least once. */
  buckets(now: number): Promise<KvBucketState[]>;
  /** Current entries whose time to live ran out at `now` (not yet tombstoned), at most `limit`. */
  expired(now: number, limit: number): Promise<KvEntry[]>;
  close(): Promise<void>;
}

/** A key's state as a compare-and-set sees it: its newest entry, if any. */
export function currentRevisionOf(latest: Pick<KvEntry, 'revision' | 'operation' | 'expires'> | undefined, now: number): number {
  if (!latest) return 0;
  return hasValue(latest, now) ? latest.revision : 0;
}

/** Whether an entry is a value now: not a tombstone, not expired. */
export function hasValue(entry: Pick<KvEntry, 'operation' | 'expires'>, now: number): boolean {
  return entry.operation === 'put' && (entry.expires === undefined || entry.expires > now);
}

/**
 * The compare-and-set rule (protocol §14.4), for every store: `expectRevision` 0 asks that the
 * key have no value (never written, deleted, expired); N that the key's newest revision be N (a
 * tombstone's too, as NATS' update). Throws `RevisionConflictError` with the key's current
 * revision (0 when it has no value).
 */
export function checkExpected(write: Pick<KvWrite, 'bucket' | 'key' | 'expectRevision' | 'now'>, latest: Pick<KvEntry, 'revision' | 'operation' | 'expires'> | undefined): void {
  const expected = write.expectRevision;
  if (expected === undefined) return;
  const current = currentRevisionOf(latest, write.now);
  const ok = expected === 0 ? current === 0 : latest !== undefined && latest.revision === expected;
  if (ok) return;
  throw new RevisionConflictError(
    expected === 0
      ? `${write.bucket}/${write.key} exists (revision ${current}): expectRevision 0 creates only`
      : `${write.bucket}/${write.key} is at revision ${latest?.revision ?? 0}, not ${expected}`,
    { bucket: write.bucket, key: write.key, expectedRevision: expected, currentRevision: latest?.revision ?? 0 },
  );
}

/** When the key was created: kept from the entry before while the key had a value then, else now. */
export function createdAt(write: Pick<KvWrite, 'now'>, latest: Pick<KvEntry, 'created' | 'operation' | 'expires'> | undefined): number {
  return latest && hasValue(latest, write.now) ? latest.created : write.now;
}

/** A stored row, as every store reads it back, into the wire's entry. */
export interface KvRow {
  bucket: string;
  key: string;
  revision: number;
  operation: KvOperation;
  json: string | null;
  bytes: Uint8Array | null;
  author: string;
  created: number;
  updated: number;
  ttl: number | null;
  expires: number | null;
}

export function entryOf(row: KvRow): KvEntry {
  const entry: KvEntry = {
    bucket: row.bucket,
    key: row.key,
    value: row.bytes !== null ? toBase64(row.bytes) : row.json !== null ? (JSON.parse(row.json) as unknown) : null,
    revision: row.revision,
    created: row.created,
    updated: row.updated,
    operation: row.operation,
    author: row.author,
  };
  if (row.bytes !== null) entry.bytes = true;
  if (row.ttl !== null) entry.ttl = row.ttl;
  if (row.expires !== null) entry.expires = row.expires;
  return entry;
}

/** The row of a write at `revision`. */
export function rowOf(write: KvWrite, revision: number, created: number): KvRow {
  const value = write.operation === 'put' ? write.value : undefined;
  return {
    bucket: write.bucket,
    key: write.key,
    revision,
    operation: write.operation,
    json: value && 'json' in value ? value.json : null,
    bytes: value && 'bytes' in value ? value.bytes : null,
    author: write.author,
    created,
    updated: write.now,
    ttl: write.operation === 'put' && write.ttl !== undefined ? write.ttl : null,
    expires: write.operation === 'put' && write.ttl !== undefined ? write.now + write.ttl : null,
  };
}

/** A wire value as stored: bytes for `{ "$base64": … }`, else its JSON text. Throws TypeError on bad Base64. */
export function storedValueOf(value: unknown): StoredValue {
  if (typeof value === 'object' && value !== null && typeof (value as { $base64?: unknown }).$base64 === 'string' && Object.keys(value).length === 1) {
    return { bytes: fromBase64(value as { $base64: string }) };
  }
  return { json: JSON.stringify(value) };
}

/** The size a bucket's `maxValueBytes` counts: the bytes, or the JSON text's UTF-8 bytes. */
export function storedSize(value: StoredValue): number {
  return 'bytes' in value ? value.bytes.byteLength : utf8ByteLength(value.json);
}

/**
 * The keys a scan covers: from the prefix (inclusive), after `after`, below the first key after
 * every key beginning with the prefix (keys are ASCII below U+007F: KEY_PATTERN).
 */
export function range(prefix: string | undefined, after: string | undefined): { start: string; after: string; high: string } {
  return { start: prefix ?? '', after: after ?? '', high: `${prefix ?? ''}\u007f` };
}
