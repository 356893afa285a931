/**
 * `relais/router`: the router (history, registry, event stream) for programs that embed it, and
 * its stores. Apart from the client: it loads SQLite, the default store.
 */
export { startRouter, ROUTER_DEFAULTS, type Router, type RouterOptions } from './router.js';
export { METRICS_ACTION, METRICS_CATEGORY, type MetricsSnapshot, type ActionMetrics } from '../protocol/metrics.js';
export { KILL_BY, type KillBy } from './kill-service.js';
export type { HistoryStore, HistoryRetention, HistoryScope } from './history-store.js';
export type { EventLog, NewEvent } from './event-log.js';
export { SqliteHistoryStore, type SqliteHistoryOptions } from './sqlite-history-store.js';
export { SqliteEventLog, type SqliteEventLogOptions } from './sqlite-event-log.js';
export { MemoryHistoryStore, type MemoryHistoryOptions } from './memory-history-store.js';
export { MemoryEventLog, type MemoryEventLogOptions } from './memory-event-log.js';
export type { SitePage, SiteSyncOutcome, StoredSiteSync } from './history-store.js';
export { SITE_SYNC_DEFAULTS, type SiteSync, type SiteSyncEvent } from './site-sync.js';
