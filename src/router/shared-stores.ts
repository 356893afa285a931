/**
 * Both stores in a database several routers share (protocol §11.8): PostgreSQL, loaded only when
 * asked for (`pg` is not loaded by a router on SQLite). The URL may hold a password: every log
 * line and error names it redacted.
 */
import type { Logger } from 'pino';
import { maskStoreUrl, redactStoreUrl } from './store-url.js';
import type { EventLog } from './event-log.js';
import type { HistoryStore } from './history-store.js';
import type { KvStore } from './kv-store.js';

/** What `openPostgresStores` gives (src/router/postgres-stores.ts). */
export interface SharedStores {
  historyStore: HistoryStore;
  eventLog: EventLog;
  /** The key-value store (protocol §14). */
  kvStore: KvStore;
  /** Closes them all (the pool). */
  close(): Promise<void>;
}

/** URL schemes of the shared stores. */
const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** Opens the shared stores at `url`; rejects with an error naming it redacted. */
export async function openSharedStores(url: string, logger: Logger): Promise<SharedStores> {
  const label = redactStoreUrl(url);
  if (!POSTGRES_URL.test(url)) throw new TypeError(`store: ${label}: not a postgres:// URL (without one, the router keeps its history in SQLite)`);
  let stores: SharedStores;
  try {
    // Loaded here only: a router on SQLite never loads `pg`.
    const postgres = await import('./postgres-stores.js');
    stores = await postgres.openPostgresStores(url, { logger });
  } catch (error) {
    throw new Error(`the store ${label} could not be opened: ${maskStoreUrl((error as Error).message ?? String(error), url)}`);
  }
  logger.info({ store: label }, 'router: history and events in a shared store');
  return stores;
}
