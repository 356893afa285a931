/** `relais/router`: the router (history, registry) for programs that embed it. Apart from the client: it loads SQLite. */
export { startRouter, ROUTER_DEFAULTS, METRICS_ACTION, METRICS_CATEGORY, type Router, type RouterOptions } from './router.js';
export type { MetricsSnapshot, ActionMetrics } from './metrics.js';
export { SqliteHistoryStore, type SqliteHistoryOptions } from './sqlite-history-store.js';
export type { HistoryStore, HistoryRetention } from './history-store.js';
