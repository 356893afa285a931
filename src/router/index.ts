/** `relais/router`: the router (history, registry) for programs that embed it. Apart from the client: it loads SQLite. */
export { startRouter, ROUTER_DEFAULTS, type Router, type RouterOptions } from './router.js';
export { METRICS_ACTION, METRICS_CATEGORY, type MetricsSnapshot, type ActionMetrics } from '../protocol/metrics.js';
export { SqliteHistoryStore, type SqliteHistoryOptions } from './sqlite-history-store.js';
export type { HistoryStore, HistoryRetention } from './history-store.js';
