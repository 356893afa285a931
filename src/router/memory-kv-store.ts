/**
 * The key-value store in the process's memory (protocol §14): the same store as the SQLite one
 * (it passes `kvStoreContract()`), for a router with no disk and for the stores' tests. Nothing
 * survives the process. Values are kept as stored (JSON text or a copy of the bytes), so that
 * what is read back is a copy, as from a database.
 */
import type { KvEntry } from '../protocol/kv.js';
import { checkExpected, createdAt, entryOf, hasValue, rowOf, type KvBucketState, type KvChangesQuery, type KvRow, type KvStore, type KvWrite } from './kv-store.js';

interface Bucket {
  revision: number;
  /** Each key's kept rows, oldest first. */
  keys: Map<string, KvRow[]>;
}

export class MemoryKvStore implements KvStore {
  private readonly kept = new Map<string, Bucket>();
  private closed = false;

  async write(write: KvWrite): Promise<KvEntry> {
    this.checkOpen();
    const bucket = this.kept.get(write.bucket) ?? { revision: 0, keys: new Map<string, KvRow[]>() };
    const rows = bucket.keys.get(write.key) ?? [];
    const latest = rows.at(-1);
    const latestEntry = latest && entryOf(latest);
    checkExpected(write, latestEntry);
    const row = rowOf(write, bucket.revision + 1, createdAt(write, latestEntry));
    if (row.bytes) row.bytes = new Uint8Array(row.bytes);
    bucket.revision += 1;
    rows.push(row);
    if (rows.length > write.historyDepth) rows.splice(0, rows.length - write.historyDepth);
    bucket.keys.set(write.key, rows);
    this.kept.set(write.bucket, bucket);
    return entryOf(row);
  }

  async entry(bucket: string, key: string, revision?: number): Promise<KvEntry | undefined> {
    this.checkOpen();
    const rows = this.kept.get(bucket)?.keys.get(key) ?? [];
    const row = revision === undefined ? rows.at(-1) : rows.find((kept) => kept.revision === revision);
    return row && entryOf(row);
  }

  async keys(bucket: string, options: { prefix?: string | undefined; after?: string | undefined; limit: number; now: number }): Promise<{ keys: string[]; more: boolean }> {
    this.checkOpen();
    const live = [...(this.kept.get(bucket)?.keys ?? new Map<string, KvRow[]>())]
      .filter(([key, rows]) => (options.prefix === undefined || key.startsWith(options.prefix)) && (options.after === undefined || key > options.after) && hasValue(entryOf(rows.at(-1)!), options.now))
      .map(([key]) => key)
      .sort(codePointOrder);
    return { keys: live.slice(0, options.limit), more: live.length > options.limit };
  }

  async history(bucket: string, key: string, limit: number): Promise<KvEntry[]> {
    this.checkOpen();
    return (this.kept.get(bucket)?.keys.get(key) ?? []).slice(-limit).map(entryOf);
  }

  async changes(bucket: string, query: KvChangesQuery): Promise<KvEntry[]> {
    this.checkOpen();
    const found: KvRow[] = [];
    for (const [key, rows] of this.kept.get(bucket)?.keys ?? []) {
      if (query.prefix !== undefined && !key.startsWith(query.prefix)) continue;
      if (query.current) {
        const latest = rows.at(-1)!;
        if (latest.revision > query.after && latest.revision <= query.current.through && hasValue(entryOf(latest), query.current.now)) found.push(latest);
      } else {
        for (const row of rows) if (row.revision > query.after) found.push(row);
      }
    }
    return found.sort((a, b) => a.revision - b.revision).slice(0, query.limit).map(entryOf);
  }

  async revision(bucket: string): Promise<number> {
    this.checkOpen();
    return this.kept.get(bucket)?.revision ?? 0;
  }

  async buckets(now: number): Promise<KvBucketState[]> {
    this.checkOpen();
    return [...this.kept]
      .map(([name, bucket]) => ({ name, revision: bucket.revision, keys: [...bucket.keys.values()].filter((rows) => hasValue(entryOf(rows.at(-1)!), now)).length }))
      .sort((a, b) => codePointOrder(a.name, b.name));
  }

  async expired(now: number, limit: number): Promise<KvEntry[]> {
    this.checkOpen();
    const found: KvEntry[] = [];
    for (const bucket of this.kept.values()) {
      for (const rows of bucket.keys.values()) {
        const latest = rows.at(-1)!;
        if (latest.operation === 'put' && latest.expires !== null && latest.expires <= now) found.push(entryOf(latest));
        if (found.length >= limit) return found;
      }
    }
    return found;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.kept.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the memory key-value store is closed');
  }
}

function codePointOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
