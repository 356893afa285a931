/**
 * Both stores in a database several routers share (protocol §11.8): PostgreSQL, loaded only when
 * asked for (`pg` is not loaded by a router on SQLite). The URL may hold a password: every log
 * line and error names it redacted.
 */
import type { Logger } from 'pino';
import { redactBroker } from '../client/options.js';
import type { EventLog } from './event-log.js';
import type { HistoryStore } from './history-store.js';

/** What `openPostgresStores` gives (src/router/postgres-stores.ts). */
export interface SharedStores {
  historyStore: HistoryStore;
  eventLog: EventLog;
  /** Closes both (the pool). */
  close(): Promise<void>;
}

/** The module src/router/postgres-stores.ts, as the router uses it. */
interface PostgresStoresModule {
  openPostgresStores(url: string, options: { logger: Logger }): Promise<SharedStores>;
}

/** URL schemes of the shared stores. */
const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** Opens the shared stores at `url`; rejects with an error naming it redacted. */
export async function openSharedStores(url: string, logger: Logger): Promise<SharedStores> {
  const label = redactStoreUrl(url);
  if (!POSTGRES_URL.test(url)) throw new TypeError(`store: ${label}: not a postgres:// URL (without one, the router keeps its history in SQLite)`);
  let stores: SharedStores;
  try {
    // A path in a variable: TypeScript does not follow it, and `pg` loads only here.
    const modulePath = './postgres-stores.js';
    const postgres = (await import(modulePath)) as PostgresStoresModule;
    stores = await postgres.openPostgresStores(url, { logger });
  } catch (error) {
    throw new Error(`the store ${label} could not be opened: ${maskUrl((error as Error).message ?? String(error), url)}`);
  }
  logger.info({ store: label }, 'router: history and events in a shared store');
  return stores;
}

/** The store URL with its password and query masked (a query may carry `password=`). */
export function redactStoreUrl(url: string): string {
  return redactBroker(url);
}

/** `text` with the URL, and its password as written and decoded, masked: a driver's error may quote either. */
function maskUrl(text: string, url: string): string {
  let masked = text.split(url).join(redactStoreUrl(url));
  let password = '';
  try {
    password = new URL(url).password;
  } catch {
    // Not a URL: nothing more to find in it.
  }
  for (const secret of new Set([password, safeDecode(password)])) if (secret.length > 0) masked = masked.split(secret).join('***');
  return masked;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
