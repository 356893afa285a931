/**
 * What the two SQL history stores (sqlite-history-store.ts, postgres-history-store.ts) share:
 * the SELECT a history query makes, its scope (protocol §11.2) part of the SQL, and how a stored
 * row and a site's sync read back. Only the placeholders differ (`?` in SQLite, `$n` in
 * PostgreSQL): each store passes how it adds a parameter.
 */
import type { HistoryPage, HistoryRow, ResolvedHistoryQuery } from '../protocol/history.js';
import type { HistoryScope, StoredSiteSync } from './history-store.js';

const COLUMNS = 'id, token, kind, code, ctime, etime, action, source, target, progress, priority, size, truncated, data, raw, via, site';

/** Filters and their comparison, before the parameter's placeholder; the order is the WHERE clause's. */
const FILTERS = [
  ['token', 'token ='],
  ['action', 'action ='],
  ['source', 'source ='],
  ['target', 'target ='],
  ['kind', 'kind ='],
  ['code', 'code ='],
  ['ctimeFrom', 'ctime >='],
  ['ctimeTo', 'ctime <'],
  ['etimeFrom', 'etime >='],
  ['etimeTo', 'etime <'],
  ['afterId', 'id >'],
  ['beforeId', 'id <'],
  ['site', 'site ='],
] as const;

/** Adds a value to the statement's parameters and answers its placeholder. */
export type AddParameter = (value: string | number) => string;

/**
 * The SELECT of `query` on `table`, within `scope`, asking one row more than the query's limit
 * (it tells whether there is a next page: `historyPage`). The scope: rows of the tokens the party
 * is the source or target of a row of. With a token filter, whether the party belongs to that
 * one token (evaluated once, from the token index); otherwise the set of the party's tokens from
 * the source and target indexes (measured in SQLite on 1M rows: 4-11 ms for a client's newest
 * 100, ~0.4 s for a handler of a quarter of them; the other form took 1.3 s for a party with no row).
 */
export function historySelect(table: string, query: ResolvedHistoryQuery, scope: HistoryScope | undefined, parameter: AddParameter): string {
  const clauses: string[] = [];
  for (const [field, comparison] of FILTERS) {
    const value = query[field];
    if (value !== undefined) clauses.push(`${comparison} ${parameter(value)}`);
  }
  if (scope) {
    const { party } = scope;
    clauses.push(
      query.token !== undefined
        ? `EXISTS (SELECT 1 FROM ${table} p WHERE p.token = ${table}.token AND (p.source = ${parameter(party)} OR p.target = ${parameter(party)}))`
        : `token IN (SELECT token FROM ${table} WHERE source = ${parameter(party)} UNION SELECT token FROM ${table} WHERE target = ${parameter(party)})`,
    );
  }
  const where = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
  return `SELECT ${COLUMNS}${query.digests ? ', digest' : ''} FROM ${table} ${where} ORDER BY id ${query.order === 'newest' ? 'DESC' : 'ASC'} LIMIT ${parameter(query.limit + 1)}`;
}

/** A row as the SELECT reads it: NULL for an absent field; flags as SQLite's 0/1 or PostgreSQL's booleans. */
export interface StoredHistoryRow {
  id: number;
  token: string;
  kind: HistoryRow['kind'];
  code: number | null;
  ctime: number;
  etime: number;
  action: string;
  source: string;
  target: string | null;
  progress: number | null;
  priority: string | null;
  size: number;
  truncated: boolean | 0 | 1;
  data: string;
  raw: boolean | 0 | 1;
  via: string | null;
  site: string | null;
  digest?: string;
}

/** The page the rows of `historySelect` make: at most `limit`, `more` when it read one more. */
export function historyPage(stored: readonly StoredHistoryRow[], limit: number): HistoryPage {
  return { rows: stored.slice(0, limit).map(historyRowOf), more: stored.length > limit };
}

export function historyRowOf(stored: StoredHistoryRow): HistoryRow {
  const row: HistoryRow = {
    id: stored.id,
    token: stored.token,
    kind: stored.kind,
    action: stored.action,
    source: stored.source,
    ctime: stored.ctime,
    etime: stored.etime,
    size: stored.size,
    truncated: Boolean(stored.truncated),
    data: stored.data,
  };
  if (stored.raw) row.raw = true;
  if (stored.via !== null) row.via = stored.via;
  if (stored.site !== null) row.site = stored.site;
  if (stored.digest !== undefined) row.digest = stored.digest;
  if (stored.code !== null) row.code = stored.code;
  if (stored.target !== null) row.target = stored.target;
  if (stored.progress !== null) row.progress = stored.progress;
  if (stored.priority !== null) row.priority = stored.priority;
  return row;
}

/** A row of the `site_sync` table, the same columns in both stores. */
export interface StoredSiteSyncRow {
  site: string;
  position: number;
  position_ctime: number | null;
  lag: number | null;
  last_sync_at: number | null;
  last_outcome: 'done' | 'timeout' | 'failed' | null;
  rows: number | null;
  last_ms: number | null;
  last_error: string | null;
}

/** Where the central stands in each site's history, by site name, from the `site_sync` rows. */
export function siteSyncsOf(stored: readonly StoredSiteSyncRow[]): Record<string, StoredSiteSync> {
  const syncs: Record<string, StoredSiteSync> = {};
  for (const row of stored) {
    syncs[row.site] = {
      position: row.position,
      ...(row.position_ctime !== null && { positionCtime: row.position_ctime }),
      ...(row.lag !== null && { lag: row.lag }),
      ...(row.last_sync_at !== null &&
        row.last_outcome !== null && {
          lastSync: { at: row.last_sync_at, outcome: row.last_outcome, rows: row.rows ?? 0, ms: row.last_ms ?? 0, ...(row.last_error !== null && { error: row.last_error }) },
        }),
    };
  }
  return syncs;
}
