/**
 * The token history (protocol §11.1, §11.2; Gorgone's GETLOG / PUTLOG), as an interface any store implements: SQLite
 * (`sqlite-history-store.ts`, the default), memory (`memory-history-store.ts`). Each passes
 * `historyStoreContract()` (test/router/history-store-contract.ts). Rows and queries are the
 * wire's, imported from src/protocol/history.ts, their one home.
 */
import type { HistoryPage, HistoryRow, HistoryRowInput, ResolvedHistoryQuery } from '../protocol/history.js';

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

export interface HistoryStore {
  /** Stores rows in one transaction; a row whose (token, digest) is already stored is skipped. Returns the new rows as stored. */
  append(rows: readonly HistoryRowInput[]): HistoryRow[];
  /** Rows matching the query and the scope, in its order, at most `limit`: the scope is part of the store's query, not a filter after it. */
  query(query: ResolvedHistoryQuery, scope?: HistoryScope): HistoryPage;
  /** Removes at most `batch` rows past the retention; returns how many (call again while it returns `batch`). */
  prune(retention: HistoryRetention, now: number, batch: number): number;
  /** Row count (for metrics and retention). */
  count(): number;
  close(): void;
}
