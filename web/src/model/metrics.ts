/**
 * The router's metrics (protocol §11.6) kept as time series per action for the charts: the
 * latest snapshot at start (`relais/metrics/get`), then one per notification.
 */
import { METRICS_ACTION, METRICS_CATEGORY, type ActionMetrics, type MetricsSnapshot } from '../../../src/protocol/metrics.js';
import { notificationTopic, NotAuthorizedError, type Bus } from 'relais/browser';
import { QUERY_TIMEOUT_MS } from './query.js';
import { Store } from '../ui/store.js';

/** An hour of 10-second intervals. */
const POINTS_KEPT = 360;

export interface MetricsPoint extends ActionMetrics {
  until: number;
}

export interface MetricsState {
  /** Per action, oldest first. */
  series: Record<string, MetricsPoint[]>;
  snapshots: number;
  problem?: string;
}

export async function watchMetrics(bus: Bus): Promise<Store<MetricsState>> {
  const store = new Store<MetricsState>({ series: {}, snapshots: 0 });
  const seen = new Set<number>();
  const add = (snapshot: MetricsSnapshot | null | undefined) => {
    if (!snapshot || typeof snapshot.until !== 'number' || !snapshot.actions || seen.has(snapshot.until)) return;
    seen.add(snapshot.until);
    store.update((state) => {
      const series = { ...state.series };
      for (const [action, metrics] of Object.entries(snapshot.actions)) {
        series[action] = [...(series[action] ?? []), { ...metrics, until: snapshot.until }].sort((a, b) => a.until - b.until).slice(-POINTS_KEPT);
      }
      return { ...state, series, snapshots: state.snapshots + 1 };
    });
  };
  await bus
    .subscribe(notificationTopic(METRICS_CATEGORY), ({ envelope }) => {
      if (envelope.type === 'notification') add(envelope.payload as MetricsSnapshot);
    })
    .catch((error: unknown) => {
      if (!(error instanceof NotAuthorizedError)) throw error;
      store.set({ ...store.value, problem: 'the policy does not let this identity read relais/metrics/notification' });
    });
  bus.request<MetricsSnapshot | null>(METRICS_ACTION, {}, { timeout: QUERY_TIMEOUT_MS }).then(add, (error: Error) => store.set({ ...store.value, problem: `could not read the metrics (${METRICS_ACTION}): ${error.message}` }));
  return store;
}
