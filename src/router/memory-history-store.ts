/**
 * The token history in the process's memory (protocol §11.1): the same store as the SQLite one
 * (it passes `historyStoreContract()`), for a router with no disk to write to (an embedded or
 * short-lived bus, tests). Nothing survives the process; the retention bounds it like any store.
 * Pure TypeScript: no Node module.
 */
import { matchesQuery, type HistoryPage, type HistoryRow, type HistoryRowInput, type ResolvedHistoryQuery } from '../protocol/history.js';
import { identityOfClientId } from '../protocol/topics.js';
import type { HistoryRetention, HistoryScope, HistoryStore, SitePage, SiteSyncOutcome, StoredSiteSync } from './history-store.js';

export interface MemoryHistoryOptions {
  /** The clock used for `ctime` (tests inject one). */
  now?: () => number;
}

interface Entry {
  row: HistoryRow;
  /** The (token, digest) pair that makes a repeat. */
  key: string;
  digest: string;
}

export class MemoryHistoryStore implements HistoryStore {
  /** Every row, by increasing id. */
  private entries: Entry[] = [];
  /** Each token's rows, by increasing id: a token filter reads only these. */
  private readonly byToken = new Map<string, Entry[]>();
  private readonly keys = new Map<string, Entry>();
  /** Where the central stands in each site's history (protocol §13.5). */
  private readonly syncs = new Map<string, StoredSiteSync>();
  /** How many rows of each token each party is the source or target of (protocol §11.2 scope). */
  private readonly parties = new Map<string, Map<string, number>>();
  private lastId = 0;
  private closed = false;
  private readonly now: () => number;

  constructor(options: MemoryHistoryOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  async append(rows: readonly HistoryRowInput[]): Promise<HistoryRow[]> {
    this.checkOpen();
    return this.insertRows(rows);
  }

  /** Stores the rows not stored yet, in one step (nothing here can fail half-way); returns them as stored. */
  private insertRows(rows: readonly HistoryRowInput[]): HistoryRow[] {
    const ctime = this.now();
    const added: HistoryRow[] = [];
    for (const input of rows) {
      const key = JSON.stringify([input.token, input.digest]);
      if (this.keys.has(key)) continue; // a repeat of a stored message
      const entry = { row: rowOf(input, (this.lastId += 1), ctime), key, digest: input.digest };
      this.keys.set(key, entry);
      this.entries.push(entry);
      const ofToken = this.byToken.get(input.token);
      if (ofToken) ofToken.push(entry);
      else this.byToken.set(input.token, [entry]);
      for (const party of partiesOf(entry.row)) this.countParty(party, input.token, 1);
      added.push({ ...entry.row });
    }
    return added;
  }

  /** A page and its position together: nothing here can fail half-way, so this is one step, as SQLite's one transaction. */
  async appendFromSite(site: string, page: SitePage): Promise<HistoryRow[]> {
    this.checkOpen();
    const added = this.insertRows(page.rows.map((row) => ({ ...row, site: row.site ?? site })));
    if (added.length < page.rows.length) {
      // A row recorded live as it crossed the link is the same row: it now says whose history holds it.
      for (const row of page.rows) {
        const entry = this.keys.get(JSON.stringify([row.token, row.digest]));
        if (entry && entry.row.site === undefined) entry.row.site = row.site ?? site;
      }
    }
    const lastSync = this.syncs.get(site)?.lastSync;
    this.syncs.set(site, { position: page.position, ...(page.positionCtime !== undefined && { positionCtime: page.positionCtime }), lag: page.lag, ...(lastSync && { lastSync }) });
    return added;
  }

  async recordSiteSync(site: string, outcome: SiteSyncOutcome, lag?: number): Promise<void> {
    this.checkOpen();
    const before = this.syncs.get(site) ?? { position: 0 };
    this.syncs.set(site, { ...before, ...(lag !== undefined && { lag }), lastSync: { ...outcome } });
  }

  async siteSyncs(): Promise<Record<string, StoredSiteSync>> {
    this.checkOpen();
    return Object.fromEntries([...this.syncs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([site, sync]) => [site, structuredClone(sync)]));
  }

  async query(query: ResolvedHistoryQuery, scope?: HistoryScope): Promise<HistoryPage> {
    this.checkOpen();
    const source = query.token === undefined ? this.entries : (this.byToken.get(query.token) ?? []);
    const from = query.afterId === undefined ? 0 : firstAbove(source, query.afterId);
    const to = query.beforeId === undefined ? source.length : firstAbove(source, query.beforeId - 1);
    const newest = query.order === 'newest';
    const found: HistoryRow[] = [];
    // One more than asked tells whether there is a next page.
    for (let i = newest ? to - 1 : from; newest ? i >= from : i < to; i += newest ? -1 : 1) {
      const { row, digest } = source[i]!;
      if (!matchesQuery(row, query) || (scope && !this.isParty(scope.party, row.token))) continue;
      found.push(query.digests ? { ...row, digest } : { ...row });
      if (found.length > query.limit) break;
    }
    return { rows: found.slice(0, query.limit), more: found.length > query.limit };
  }

  async prune(retention: HistoryRetention, now: number, batch: number): Promise<number> {
    this.checkOpen();
    const cutoff = now - retention.maxAgeMs;
    const byAge = this.remove(this.oldest(batch, (row) => row.ctime < cutoff));
    if (byAge >= batch) return byAge;
    // Beyond the newest `maxRows` (at least the newest one is kept, as in SQLite), the oldest go.
    const surplus = this.entries.length - Math.max(1, retention.maxRows);
    return surplus > 0 ? byAge + this.remove(this.entries.slice(0, Math.min(surplus, batch - byAge))) : byAge;
  }

  async count(): Promise<number> {
    this.checkOpen();
    return this.entries.length;
  }

  /** Lets the rows go; any later call throws, as a closed database does. */
  async close(): Promise<void> {
    this.closed = true;
    this.entries = [];
    this.byToken.clear();
    this.keys.clear();
    this.syncs.clear();
    this.parties.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the memory history store is closed');
  }

  /** The oldest `limit` entries whose row passes `pick`. */
  private oldest(limit: number, pick: (row: HistoryRow) => boolean): Entry[] {
    const chosen: Entry[] = [];
    for (const entry of this.entries) {
      if (chosen.length >= limit) break;
      if (pick(entry.row)) chosen.push(entry);
    }
    return chosen;
  }

  private remove(gone: readonly Entry[]): number {
    if (gone.length === 0) return 0;
    const set = new Set(gone);
    // Retention removes the oldest: usually the first entries, cut without a copy.
    if (gone.every((entry, i) => this.entries[i] === entry)) this.entries.splice(0, gone.length);
    else this.entries = this.entries.filter((entry) => !set.has(entry));
    for (const token of new Set(gone.map((entry) => entry.row.token))) {
      const left = this.byToken.get(token)!.filter((entry) => !set.has(entry));
      if (left.length > 0) this.byToken.set(token, left);
      else this.byToken.delete(token);
    }
    for (const { row, key } of gone) {
      this.keys.delete(key);
      for (const party of partiesOf(row)) this.countParty(party, row.token, -1);
    }
    return gone.length;
  }

  private countParty(party: string, token: string, change: 1 | -1): void {
    let tokens = this.parties.get(party);
    if (!tokens) this.parties.set(party, (tokens = new Map()));
    const count = (tokens.get(token) ?? 0) + change;
    if (count > 0) tokens.set(token, count);
    else tokens.delete(token);
    if (tokens.size === 0) this.parties.delete(party);
  }

  private isParty(party: string, token: string): boolean {
    return this.parties.get(party)?.has(token) ?? false;
  }
}

/** The stored row: the input without its digest and without absent fields, as SQLite gives it back. */
function rowOf(input: HistoryRowInput, id: number, ctime: number): HistoryRow {
  const row: HistoryRow = {
    id,
    token: input.token,
    kind: input.kind,
    action: input.action,
    source: input.source,
    ctime,
    etime: input.etime,
    size: input.size,
    truncated: input.truncated,
    data: input.data,
  };
  if (input.raw) row.raw = true;
  if (input.sha256 !== undefined) row.sha256 = input.sha256;
  if (input.seal !== undefined) row.seal = input.seal;
  if (input.via !== undefined) row.via = input.via;
  if (input.site !== undefined) row.site = input.site;
  if (input.code !== undefined) row.code = input.code;
  if (input.target !== undefined) row.target = input.target;
  if (input.progress !== undefined) row.progress = input.progress;
  if (input.priority !== undefined) row.priority = input.priority;
  return row;
}

/** Who a row makes a party to its token: the identities of its source and its target (a session's rows are its identity's, protocol §2.1). */
function partiesOf(row: HistoryRow): string[] {
  const source = identityOfClientId(row.source);
  const target = row.target === undefined ? undefined : identityOfClientId(row.target);
  return target === undefined || target === source ? [source] : [source, target];
}

/** The index of the first entry whose id is above `id` (entries are by increasing id). */
function firstAbove(entries: readonly Entry[], id: number): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (entries[middle]!.row.id <= id) low = middle + 1;
    else high = middle;
  }
  return low;
}
