/**
 * The connection pool the PostgreSQL stores share (`pg`): a few connections, errors that name
 * the store and the server (its URL redacted) and never crash the process, transactions that
 * give their connection back whatever happens. The pool reconnects by itself: a call made while
 * the server is down rejects, the next one after it is back works.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { maskStoreUrl, redactStoreUrl } from './store-url.js';

/** A store's call PostgreSQL refused or could not answer: names the store, the call and the server; `code` is PostgreSQL's or the socket's. */
export class PostgresStoreError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'PostgresStoreError';
    this.code = code;
  }
}

/** The connection failed (rather than the statement): the server went away, or had before the call. */
function isConnectionLost(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'EPIPE' || code === 'ECONNRESET' || /Connection terminated|not queryable/.test((error as Error).message ?? '');
}

/** The server did not answer a statement within the client's time-out (`query_timeout`). */
function isUnanswered(error: unknown): boolean {
  return (error as Error | undefined)?.message === QUERY_READ_TIMEOUT;
}

/** int8 (ids, times, counts) as numbers, not strings: every value the stores keep is below 2^53. For this pool only, not the process. */
const INT8 = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8 && format !== 'binary' ? Number : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

/**
 * PostgreSQL's text cannot hold U+0000, nor a lone surrogate, which a JSON string can
 * (`"\u0000"`, `"\ud800"`): such a character, in a site's row say, would make PostgreSQL
 * refuse the whole batch again at each retry. It is stored as U+FFFD instead (the same way each
 * time, so that a repeat is still a repeat; a lone surrogate has no UTF-8 form anyway).
 */
export function storableText(text: string): string;
export function storableText(text: string | undefined): string | undefined;
export function storableText(text: string | undefined): string | undefined {
  if (text === undefined) return text;
  const whole = text.isWellFormed() ? text : text.toWellFormed();
  return whole.includes('\u0000') ? whole.replaceAll('\u0000', '\uFFFD') : whole;
}

export interface PostgresDatabaseOptions {
  logger: Logger;
  /** Connections at most (default 4: appends run one at a time per store, queries beside them). */
  maxConnections?: number;
  /**
   * How long one statement may take, and a transaction stay open between two, in ms (default
   * 30,000). Past it the server cancels the statement, or ends the session that holds a
   * transaction open (a router frozen, or cut off, while it held the counter row's lock, which
   * every router's appends wait for); a server that does not answer at all (a frozen host, a
   * network cut) is given up by this process a little later (`CLIENT_GRACE_MS`).
   */
  statementTimeoutMs?: number;
}

/** Default of `statementTimeoutMs`: far above any statement of the stores, far below TCP's own hours. */
const STATEMENT_TIMEOUT_MS = 30_000;
/** The client waits this much longer than the server's own time-out, so that the server's answer (an error naming the cause) normally comes first. */
const CLIENT_GRACE_MS = 5_000;
/** What pg says when `query_timeout` passes: the server did not answer at all. */
const QUERY_READ_TIMEOUT = 'Query read timeout';

export class PostgresDatabase {
  /** The URL, redacted: what errors and logs name. */
  readonly label: string;
  private readonly pool: pg.Pool;
  private readonly logger: Logger;
  private readonly maxConnections: number;
  private readonly statementTimeoutMs: number;
  /** An outage is logged once, when it is first seen; a call that works again ends it. */
  private outage = false;
  private ended: Promise<void> | undefined;

  constructor(
    private readonly url: string,
    options: PostgresDatabaseOptions,
  ) {
    this.label = redactStoreUrl(url);
    this.logger = options.logger;
    this.maxConnections = options.maxConnections ?? 4;
    this.statementTimeoutMs = options.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS;
    this.pool = new pg.Pool({
      connectionString: url,
      max: this.maxConnections,
      // A server that does not answer a connection (a dead host) fails the call, which the router retries, instead of hanging it.
      connectionTimeoutMillis: 10_000,
      // Without these a statement, or a lock another router holds, could wait for ever: the
      // router's appends run one at a time, so its whole history would wait with it.
      statement_timeout: this.statementTimeoutMs,
      idle_in_transaction_session_timeout: this.statementTimeoutMs,
      query_timeout: this.statementTimeoutMs + CLIENT_GRACE_MS,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'relais-router',
      types,
    });
    // pg's pool emits 'error' when an idle connection dies (the server restarted): without a
    // listener that would end the process. The pool drops that connection and opens another
    // at the next call.
    this.pool.on('error', (error) => this.noteOutage(error));
  }

  /** One statement; rejects with a `PostgresStoreError` naming `what`. */
  async query<Row extends pg.QueryResultRow>(what: string, sql: string, values?: readonly unknown[]): Promise<pg.QueryResult<Row>> {
    return this.transaction(what, (client) => client.query<Row>(sql, values as unknown[] | undefined), { begin: false });
  }

  /**
   * `body` on one connection, in one transaction (unless `begin: false`, for one statement):
   * committed when it resolves, rolled back when it throws. A connection that failed is closed,
   * not given back to the pool. A connection that was idle in the pool may have died unnoticed
   * (the server restarted, its close not yet read): when the first statement on it fails for
   * that, nothing was done, and the call is made again on another (each fails at once), so that
   * the first call after PostgreSQL is back works.
   */
  async transaction<T>(what: string, body: (client: pg.PoolClient) => Promise<T>, options: { begin?: boolean } = {}): Promise<T> {
    const begin = options.begin ?? true;
    for (let attempt = 1; ; attempt += 1) {
      this.checkOpen(what);
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw this.failure(what, error);
      }
      // A checked-out connection emits 'error' when the server goes away between two
      // statements: heard here, so that it cannot end the process; the statement in flight
      // rejects anyway.
      let broken: Error | undefined;
      const onError = (error: Error) => {
        broken = error;
        this.noteOutage(error);
      };
      client.on('error', onError);
      let first = true;
      try {
        if (begin) {
          await client.query('BEGIN');
          first = false;
        }
        const result = await body(client);
        if (begin) await client.query('COMMIT');
        this.outage = false;
        return result;
      } catch (error) {
        broken ??= error instanceof Error ? error : new Error(String(error));
        // Each idle connection may be such a one: at most all of them, then a new one.
        if (first && attempt <= this.maxConnections && isConnectionLost(error)) continue;
        // A server that did not answer would not answer the ROLLBACK either: the connection is
        // dropped below, and the server rolls back what it had when it sees it go.
        if (begin && !isUnanswered(error)) await client.query('ROLLBACK').catch(() => undefined);
        throw this.failure(what, error);
      } finally {
        client.off('error', onError);
        client.release(broken !== undefined);
      }
    }
  }

  /** Ends the pool (idempotent): later calls reject. */
  end(): Promise<void> {
    this.ended ??= this.pool.end();
    return this.ended;
  }

  private checkOpen(what: string): void {
    if (this.ended) throw new PostgresStoreError(`${what} on ${this.label}: the store is closed`, undefined);
  }

  private noteOutage(error: Error): void {
    if (this.outage) return;
    this.outage = true;
    this.logger.warn({ err: maskStoreUrl(error.message, this.url), store: this.label }, 'PostgreSQL: a connection was lost; the next calls reconnect');
  }

  private failure(what: string, error: unknown): PostgresStoreError {
    const code = (error as { code?: unknown }).code;
    const message = isUnanswered(error)
      ? `the server did not answer within ${this.statementTimeoutMs + CLIENT_GRACE_MS} ms (the connection is dropped; the next call opens another)`
      : maskStoreUrl(error instanceof Error ? error.message : String(error), this.url);
    return new PostgresStoreError(`${what} failed on ${this.label}: ${message}`, typeof code === 'string' ? code : undefined);
  }

}
