/**
 * The token history in PostgreSQL (protocol §11.1), shared by several routers: the SQLite
 * store's columns and rules (sqlite-history-store.ts), and `historyStoreContract()`'s. Appends
 * are serialised by a lock on the history's counter row, which also numbers the rows: ids only
 * grow and a row is visible only once every smaller id is, so a follower paging after an id
 * never passes one (protocol §11.2). A batch is one statement (`unnest` of one array per column).
 */
import type pg from 'pg';
import type { HistoryPage, HistoryRow, HistoryRowInput, ResolvedHistoryQuery } from '../protocol/history.js';
import type { HistoryRetention, HistoryScope, HistoryStore, SitePage, SiteSyncOutcome, StoredSiteSync } from './history-store.js';
import { storableText, type PostgresDatabase } from './postgres-database.js';
import { historyPage, historyRowOf, historySelect, postgresStartsWith, sealText, siteSyncsOf, type StoredHistoryRow, type StoredSiteSyncRow } from './history-sql.js';

const STORE = 'the PostgreSQL history store';


/**
 * A batch in one statement: the rows as one JSON array (JSON.stringify is native; an array per
 * column costs pg an escape per value, ~2x the time), less those already stored and the repeats
 * within the batch (the first kept), numbered after the last id ($2) in the batch's order.
 * Within the counter's lock, so nothing else inserts meanwhile: ON CONFLICT never fires.
 */
const INSERT = `WITH input AS (
    SELECT * FROM json_to_recordset($1::json) AS x (n int, token text, kind text, code bigint, etime bigint, action text, source text, target text,
      progress float8, priority text, size bigint, truncated boolean, data text, digest text, raw boolean, via text, site text, sha256 text, seal text)
  ), fresh AS (
    SELECT DISTINCT ON (token, digest) * FROM input
    WHERE NOT EXISTS (SELECT 1 FROM relais_history h WHERE h.token = input.token AND h.digest = input.digest)
    ORDER BY token, digest, n
  )
  INSERT INTO relais_history (id, token, kind, code, ctime, etime, action, source, target, progress, priority, size, truncated, data, digest, raw, via, site, sha256, seal)
  SELECT $2::bigint + row_number() OVER (ORDER BY n), token, kind, code, $3, etime, action, source, target, progress, priority, size, truncated, data, digest,
    coalesce(raw, false), via, site, sha256, seal
  FROM fresh ORDER BY n
  ON CONFLICT (token, digest) DO NOTHING
  RETURNING id, token, digest`;

export interface PostgresHistoryOptions {
  /** The clock used for `ctime` (tests inject one). */
  now?: () => number;
  /** Called once by `close()`: the shared pool is released. */
  onClose?: () => Promise<void>;
}

export class PostgresHistoryStore implements HistoryStore {
  private readonly now: () => number;
  private closed: Promise<void> | undefined;

  constructor(
    private readonly database: PostgresDatabase,
    private readonly options: PostgresHistoryOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  async append(rows: readonly HistoryRowInput[]): Promise<HistoryRow[]> {
    if (rows.length === 0) return [];
    return this.database.transaction(`${STORE}: append`, (client) => this.insertRows(client, rows));
  }

  async appendFromSite(site: string, page: SitePage): Promise<HistoryRow[]> {
    return this.database.transaction(`${STORE}: append a page of site ${JSON.stringify(site)}`, async (client) => {
      const rows = page.rows.map((row) => ({ ...row, site: row.site ?? site }));
      const added = await this.insertRows(client, rows);
      if (added.length < rows.length) {
        // A row recorded live as it crossed the link is the same row: it now says whose history holds it.
        await client.query(
          `UPDATE relais_history h SET site = u.site FROM unnest($1::text[], $2::text[], $3::text[]) AS u (site, token, digest)
           WHERE h.token = u.token AND h.digest = u.digest AND h.site IS NULL`,
          [rows.map((row) => storableText(row.site)), rows.map((row) => storableText(row.token)), rows.map((row) => storableText(row.digest))],
        );
      }
      await client.query(
        `INSERT INTO relais_site_sync (site, position, position_ctime, lag) VALUES ($1, $2, $3, $4)
         ON CONFLICT (site) DO UPDATE SET position = excluded.position, position_ctime = excluded.position_ctime, lag = excluded.lag`,
        [storableText(site), page.position, page.positionCtime ?? null, page.lag],
      );
      return added;
    });
  }

  async recordSiteSync(site: string, outcome: SiteSyncOutcome, lag?: number): Promise<void> {
    await this.database.query(
      `${STORE}: record the sync of site ${JSON.stringify(site)}`,
      `INSERT INTO relais_site_sync (site, position, lag, last_sync_at, last_outcome, rows, last_ms, last_error) VALUES ($1, 0, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (site) DO UPDATE SET lag = coalesce(excluded.lag, relais_site_sync.lag), last_sync_at = excluded.last_sync_at,
         last_outcome = excluded.last_outcome, rows = excluded.rows, last_ms = excluded.last_ms, last_error = excluded.last_error`,
      [storableText(site), lag ?? null, outcome.at, outcome.outcome, outcome.rows, outcome.ms, storableText(outcome.error) ?? null],
    );
  }

  async siteSyncs(): Promise<Record<string, StoredSiteSync>> {
    const { rows } = await this.database.query<StoredSiteSyncRow>(`${STORE}: read the site syncs`, 'SELECT * FROM relais_site_sync ORDER BY site');
    return siteSyncsOf(rows);
  }

  async query(query: ResolvedHistoryQuery, scope?: HistoryScope): Promise<HistoryPage> {
    const values: Array<string | number> = [];
    const sql = historySelect('relais_history', query, scope, (value) => `$${values.push(typeof value === 'string' ? storableText(value) : value)}`, postgresStartsWith);
    const { rows } = await this.database.query<StoredHistoryRow>(`${STORE}: query`, sql, values);
    return historyPage(rows, query.limit);
  }


  async prune(retention: HistoryRetention, now: number, batch: number): Promise<number> {
    const what = `${STORE}: prune`;
    const byAge =
      (await this.database.query(what, 'DELETE FROM relais_history WHERE id IN (SELECT id FROM relais_history WHERE ctime < $1 ORDER BY id LIMIT $2)', [now - retention.maxAgeMs, batch]))
        .rowCount ?? 0;
    if (byAge >= batch) return byAge;
    // The id of the oldest row to keep; everything below it goes.
    const { rows } = await this.database.query<{ id: number }>(what, 'SELECT id FROM relais_history ORDER BY id DESC LIMIT 1 OFFSET $1', [Math.max(0, retention.maxRows - 1)]);
    const keepFrom = rows[0]?.id;
    if (keepFrom === undefined) return byAge;
    const byCount =
      (await this.database.query(what, 'DELETE FROM relais_history WHERE id IN (SELECT id FROM relais_history WHERE id < $1 ORDER BY id LIMIT $2)', [keepFrom, batch - byAge])).rowCount ?? 0;
    return byAge + byCount;
  }

  async count(): Promise<number> {
    const { rows } = await this.database.query<{ count: number }>(`${STORE}: count`, 'SELECT count(*) AS count FROM relais_history');
    return rows[0]!.count;
  }

  /** Releases this store's share of the pool (the other store may still use it). */
  close(): Promise<void> {
    this.closed ??= this.options.onClose?.() ?? Promise.resolve();
    return this.closed;
  }

  /**
   * Inserts within the caller's transaction; returns the new rows as stored. Locks the history's
   * counter row first (the next appender waits until this one commits), then leaves out the
   * rows already stored and the repeats within the batch, so that the ids given are gapless.
   */
  private async insertRows(client: pg.PoolClient, input: readonly HistoryRowInput[]): Promise<HistoryRow[]> {
    const rows = input.map(storableRow);
    const counter = await client.query<{ value: number }>("SELECT value FROM relais_counters WHERE name = 'history' FOR UPDATE");
    const last = counter.rows[0]!.value;
    const ctime = this.now();
    const batch = JSON.stringify(rows.map((row, n) => ({ n, ...row, seal: sealText(row) })));
    const inserted = await client.query<{ id: number; token: string; digest: string }>(INSERT, [batch, last, ctime]);
    if (inserted.rows.length === 0) return [];
    await client.query("UPDATE relais_counters SET value = $1 WHERE name = 'history'", [last + inserted.rows.length]);
    const byKey = new Map(rows.map((row) => [JSON.stringify([row.token, row.digest]), row] as const).reverse());
    return inserted.rows
      .sort((a, b) => a.id - b.id)
      .map((stored) => historyRowOf(storedRowOf(byKey.get(JSON.stringify([stored.token, stored.digest]))!, stored.id, ctime)));
  }
}

/** The row with its texts as PostgreSQL can store them (`storableText`). */
function storableRow(row: HistoryRowInput): HistoryRowInput {
  return {
    ...row,
    token: storableText(row.token),
    kind: storableText(row.kind) as HistoryRowInput['kind'],
    action: storableText(row.action),
    source: storableText(row.source),
    target: storableText(row.target),
    priority: storableText(row.priority),
    data: storableText(row.data),
    digest: storableText(row.digest),
    via: storableText(row.via),
    site: storableText(row.site),
  };
}

/** A row as it reads back once stored: absent fields are NULL. */
function storedRowOf(row: HistoryRowInput, id: number, ctime: number): StoredHistoryRow {
  return {
    id,
    ctime,
    token: row.token,
    kind: row.kind,
    code: row.code ?? null,
    etime: row.etime,
    action: row.action,
    source: row.source,
    target: row.target ?? null,
    progress: row.progress ?? null,
    priority: row.priority ?? null,
    size: row.size,
    truncated: row.truncated,
    data: row.data,
    raw: row.raw === true,
    via: row.via ?? null,
    site: row.site ?? null,
    sha256: row.sha256 ?? null,
    seal: sealText(row),
  };
}
