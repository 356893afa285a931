/**
 * The token history (protocol §11.1, §11.2; Gorgone's GETLOG / PUTLOG), as an interface any store implements: SQLite
 * (`sqlite-history-store.ts`, the default), memory (`memory-history-store.ts`). Each passes
 * `historyStoreContract()` (test/router/history-store-contract.ts). Rows and queries are the
 * wire's, imported from src/protocol/history.ts, their one home.
 *
 * Every method is asynchronous, so that a store may be a server (PostgreSQL) that several routers
 * share (protocol §11.8). A store that cannot write (disk full, server down) rejects: the router
 * keeps the rows and tries again. A store that writes synchronously (SQLite) writes in the body of
 * the method, before its first `await`: the router relies on it to store a message before its
 * PUBACK leaves (recorder.ts).
 */
import type { HistoryPage, HistoryRow, HistoryRowInput, ResolvedHistoryQuery } from '../protocol/history.js';
import type { SiteSyncState } from '../protocol/sites.js';

/** Retention: rows older than `maxAgeMs` or beyond the newest `maxRows` are pruned. */
export interface HistoryRetention {
  maxAgeMs: number;
  maxRows: number;
}

/**
 * Whose rows a query may see (protocol §11.2): only those of tokens `party` is a party to, that
 * is the source or target of one of the token's rows (its requester, its handlers, the author
 * of the put that opened it). Absent: every row.
 */
export interface HistoryScope {
  party: string;
}

/** One page of a site's history as the central writes it (protocol §13.5): its rows and where the central then stands. */
export interface SitePage {
  /** The site's rows, oldest first, each with the digest the site stored it under. */
  rows: readonly HistoryRowInput[];
  /** The site's id of the last row of the page: the next page starts after it. */
  position: number;
  /** That row's `ctime` on the site. */
  positionCtime?: number;
  /** Rows the site still had past `position` when the sync began. */
  lag: number;
}

/** How a sync of a site ended (protocol §13.5). */
export type SiteSyncOutcome = NonNullable<SiteSyncState['lastSync']>;

/** Where the central stands in a site's history, as the store keeps it (`site_sync`): a sync's lock is not stored. */
export type StoredSiteSync = Omit<SiteSyncState, 'runningSince'>;

export interface HistoryStore {
  /**
   * Stores rows in one transaction; a row whose (token, digest) is already stored (by this router
   * or another sharing the store) is skipped. Returns exactly the rows this call inserted, as
   * stored. Ids only grow, and a row is visible to `query` only once every row with a smaller id
   * is: a reader paging with `afterId` never skips a row, even with two routers appending at once.
   */
  append(rows: readonly HistoryRowInput[]): Promise<HistoryRow[]>;
  /** Rows matching the query and the scope, in its order, at most `limit`: the scope is part of the store's query, not a filter after it. */
  query(query: ResolvedHistoryQuery, scope?: HistoryScope): Promise<HistoryPage>;
  /**
   * Stores a page of `site`'s history and the position after it in ONE transaction (protocol
   * §13.5): both or neither. Rows get `site`; a row already stored (same token and digest: a row
   * recorded live as it crossed the link, or a page stored before) is not stored again, and gets
   * `site` if it had none. Returns the new rows as stored.
   */
  appendFromSite(site: string, page: SitePage): Promise<HistoryRow[]>;
  /** Records how the last sync of `site` ended (and the lag it left). */
  recordSiteSync(site: string, outcome: SiteSyncOutcome, lag?: number): Promise<void>;
  /** Where the central stands in each site's history it has synced: by site name. */
  siteSyncs(): Promise<Record<string, StoredSiteSync>>;
  /** Removes at most `batch` rows past the retention; returns how many (call again while it returns `batch`). */
  prune(retention: HistoryRetention, now: number, batch: number): Promise<number>;
  /** Row count (for metrics and retention). */
  count(): Promise<number>;
  close(): Promise<void>;
}
