/**
 * What the two SQL history stores (sqlite-history-store.ts, postgres-history-store.ts) share:
 * the SELECT a history query makes, its scope (protocol §11.2) part of the SQL, and how a stored
 * row and a site's sync read back. Only the placeholders differ (`?` in SQLite, `$n` in
 * PostgreSQL): each store passes how it adds a parameter.
 */
import type { HistoryPage, HistoryRow, HistoryRowInput, ResolvedHistoryQuery } from '../protocol/history.js';
import type { HistoryScope, StoredSiteSync } from './history-store.js';

const COLUMNS = 'id, token, kind, code, ctime, etime, action, source, target, progress, priority, size, truncated, data, raw, via, site, sha256, seal';

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
 * `column` begins with `prefix`, as a range of its index. The characters after a session's `~`
 * are all below U+007F (protocol §2.1), so `[prefix, prefix + U+007F)` holds exactly the ids
 * beginning with it when the column compares by code point (SQLite's BINARY; PostgreSQL's "C").
 */
export type StartsWith = (column: string, prefix: string, parameter: AddParameter) => string;

const binaryStartsWith: StartsWith = (column, prefix, parameter) => `(${column} >= ${parameter(prefix)} AND ${column} < ${parameter(`${prefix}\u007f`)})`;

/** PostgreSQL's text compares by the database's collation: the range is in "C" (indexed by relais_history_source_c, _target_c). */
export const postgresStartsWith: StartsWith = (column, prefix, parameter) =>
  `(${column} COLLATE "C" >= ${parameter(prefix)} AND ${column} COLLATE "C" < ${parameter(`${prefix}\u007f`)})`;

/**
 * The SELECT of `query` on `table`, within `scope`, asking one row more than the query's limit
 * (it tells whether there is a next page: `historyPage`). The scope: rows of the tokens the party
 * is the source or target of a row of. With a token filter, whether the party belongs to that
 * one token (evaluated once, from the token index); otherwise the set of the party's tokens from
 * the source and target indexes (measured in SQLite on 1M rows: 4-11 ms for a client's newest
 * 100, ~0.4 s for a handler of a quarter of them; the other form took 1.3 s for a party with no row).
 */
export function historySelect(table: string, query: ResolvedHistoryQuery, scope: HistoryScope | undefined, parameter: AddParameter, startsWith: StartsWith = binaryStartsWith): string {
  const clauses: string[] = [];
  for (const [field, comparison] of FILTERS) {
    const value = query[field];
    if (value !== undefined) clauses.push(`${comparison} ${parameter(value)}`);
  }
  if (scope) {
    // The party is an identity: its rows are those of its client id and of its sessions `<identity>~<session>` (protocol §2.1).
    const { party } = scope;
    const sessions = `${party}~`;
    const of = (column: string) => `(${column} = ${parameter(party)} OR ${startsWith(column, sessions, parameter)})`;
    clauses.push(
      query.token !== undefined
        ? `EXISTS (SELECT 1 FROM ${table} p WHERE p.token = ${table}.token AND (${of('p.source')} OR ${of('p.target')}))`
        : `token IN (${['source', 'target'].flatMap((column) => [`SELECT token FROM ${table} WHERE ${column} = ${parameter(party)}`, `SELECT token FROM ${table} WHERE ${startsWith(column, sessions, parameter)}`]).join(' UNION ')})`,
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
  /** A binary payload's SHA-256 (protocol §11.1); NULL for JSON. */
  sha256: string | null;
  /** A sealed payload's header `seal` member as JSON text (protocol §3.6, §11.1); NULL otherwise. */
  seal: string | null;
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
  if (stored.sha256 !== null && stored.sha256 !== undefined) row.sha256 = stored.sha256;
  const seal = sealOfText(stored.seal);
  if (seal !== undefined) row.seal = seal;
  if (stored.via !== null) row.via = stored.via;
  if (stored.site !== null) row.site = stored.site;
  if (stored.digest !== undefined) row.digest = stored.digest;
  if (stored.code !== null) row.code = stored.code;
  if (stored.target !== null) row.target = stored.target;
  if (stored.progress !== null) row.progress = stored.progress;
  if (stored.priority !== null) row.priority = stored.priority;
  return row;
}

/** The `seal` column's text for a row's seal member (protocol §11.1), NULL for a row not sealed. */
export function sealText(row: Pick<HistoryRowInput, 'seal'>): string | null {
  return row.seal === undefined ? null : JSON.stringify(row.seal);
}

/** The seal member the `seal` column holds; a column the router did not write (not JSON, not an object) reads as absent. */
function sealOfText(text: string | null | undefined): HistoryRow['seal'] {
  if (text === null || text === undefined) return undefined;
  try {
    const seal: unknown = JSON.parse(text);
    return typeof seal === 'object' && seal !== null && !Array.isArray(seal) ? (seal as HistoryRow['seal']) : undefined;
  } catch {
    return undefined;
  }
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
