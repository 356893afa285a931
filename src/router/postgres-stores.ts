/**
 * The history and the event log in one PostgreSQL database, which several routers share
 * (protocol §11.1, §11.8): `relais router --store postgres://…`. The router loads this module
 * only when asked for PostgreSQL, so that `pg` is not loaded otherwise.
 */
import type { Logger } from 'pino';
import type { EventLog } from './event-log.js';
import type { HistoryStore } from './history-store.js';
import { PostgresDatabase } from './postgres-database.js';
import { PostgresEventLog } from './postgres-event-log.js';
import { PostgresHistoryStore } from './postgres-history-store.js';
import { ensureSchema } from './postgres-schema.js';
import type { KvStore } from './kv-store.js';
import { ensureKvSchema, PostgresKvStore } from './postgres-kv-store.js';

export { PostgresStoreError } from './postgres-database.js';

export interface PostgresStoresOptions {
  logger: Logger;
  /** The clock of rows' `ctime` and events' `time` (tests inject one). */
  now?: () => number;
  /** Connections at most, both stores together (default 4). */
  maxConnections?: number;
  /** How long a statement may take, or a transaction stay open between two, in ms (default 30,000): `PostgresDatabaseOptions`. */
  statementTimeoutMs?: number;
}

export interface PostgresStores {
  historyStore: HistoryStore;
  eventLog: EventLog;
  /** The key-value store (protocol §14). */
  kvStore: KvStore;
  /** Closes the stores and the pool. */
  close(): Promise<void>;
}

/**
 * Connects to `url` (`postgres://user:password@host:5432/db`, or `postgres://user@/db?host=/run/postgresql`
 * for a Unix socket), creates the tables if missing, and gives both stores over one pool. The
 * pool is closed once both stores are (or by `close()`). Rejects, naming the URL redacted, when
 * the server cannot be reached or its tables are a newer version's.
 */
export async function openPostgresStores(url: string, options: PostgresStoresOptions): Promise<PostgresStores> {
  const database = new PostgresDatabase(url, {
    logger: options.logger,
    ...(options.maxConnections !== undefined && { maxConnections: options.maxConnections }),
    ...(options.statementTimeoutMs !== undefined && { statementTimeoutMs: options.statementTimeoutMs }),
  });
  try {
    await ensureSchema(database);
    await ensureKvSchema(database);
  } catch (error) {
    await database.end();
    throw error;
  }
  let open = 2;
  const release = async () => {
    open -= 1;
    if (open === 0) await database.end();
  };
  const clock = options.now ? { now: options.now } : {};
  const historyStore = new PostgresHistoryStore(database, { ...clock, onClose: release });
  const eventLog = new PostgresEventLog(database, { ...clock, onClose: release });
  // The key-value store holds no share of the pool: it ends with the two others (callers that
  // use only one of those close the other, as before the key-value store was added).
  const kvStore = new PostgresKvStore(database);
  return {
    historyStore,
    eventLog,
    kvStore,
    close: async () => {
      await Promise.all([historyStore.close(), eventLog.close(), kvStore.close()]);
    },
  };
}
