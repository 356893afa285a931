/**
 * The router's metrics (protocol §11.6) kept as time series per action for the charts. The last
 * hour comes from the router: each snapshot it published is a `notification` event of category
 * `relais/metrics` in its event stream (§11.8), which keeps the newest 100,000 events; the page
 * reads it back from the newest until an hour ago, then adds each snapshot as it is published.
 * An interval with no snapshot (the router away) stays a gap in the charts.
 */
import { METRICS_ACTION, METRICS_CATEGORY, type ActionMetrics, type MetricsSnapshot } from '../../../src/protocol/metrics.js';
import { EVENTS_ACTION, notificationTopic, NotAuthorizedError, type Bus, type BusEvent, type EventsPage } from 'relais/browser';
import { QUERY_TIMEOUT_MS } from './query.js';
import { Store } from '../ui/store.js';

/** What the charts span. */
export const WINDOW_MS = 3_600_000;
/** Events asked per page when reading the hour back. */
const PAGE = 5000;
/** At most this many pages are read back: a busy bus's hour may hold more events than is worth reading. */
const MAX_PAGES = 6;

export interface MetricsPoint extends ActionMetrics {
  until: number;
}

export interface MetricsState {
  /** Per action, oldest first. */
  series: Record<string, MetricsPoint[]>;
  /** The end of every snapshot kept, oldest first: an action missing from one had no request then. */
  intervals: number[];
  /** Snapshots read back from the router's event stream when the page opened. */
  fromHistory: number;
  /** Snapshots received live since. */
  live: number;
  /** Why the hour could not be read back, or live ones not followed. */
  problem?: string;
  /** Set once the hour has been read back (or could not be). */
  loaded: boolean;
}

export async function watchMetrics(bus: Bus): Promise<Store<MetricsState>> {
  const store = new Store<MetricsState>({ series: {}, intervals: [], fromHistory: 0, live: 0, loaded: false });
  const seen = new Set<number>();
  const add = (snapshots: MetricsSnapshot[], origin: 'fromHistory' | 'live') => {
    const fresh = snapshots.filter((snapshot) => snapshot && typeof snapshot.until === 'number' && snapshot.actions && !seen.has(snapshot.until));
    if (fresh.length === 0) return;
    for (const snapshot of fresh) seen.add(snapshot.until);
    store.update((state) => {
      const horizon = Math.max(...fresh.map((snapshot) => snapshot.until), ...state.intervals) - WINDOW_MS;
      const series: Record<string, MetricsPoint[]> = {};
      for (const [action, points] of Object.entries(state.series)) series[action] = points.filter((point) => point.until > horizon);
      for (const snapshot of fresh) {
        for (const [action, metrics] of Object.entries(snapshot.actions)) (series[action] ??= []).push({ ...metrics, until: snapshot.until });
      }
      for (const points of Object.values(series)) points.sort((a, b) => a.until - b.until);
      for (const [action, points] of Object.entries(series)) if (points.length === 0) delete series[action];
      const intervals = [...state.intervals, ...fresh.map((snapshot) => snapshot.until)].filter((until) => until > horizon).sort((a, b) => a - b);
      return { ...state, series, intervals, [origin]: state[origin] + fresh.length };
    });
  };
  await bus
    .subscribe(notificationTopic(METRICS_CATEGORY), ({ envelope }) => {
      if (envelope.type === 'notification') add([envelope.payload as MetricsSnapshot], 'live');
    })
    .catch((error: unknown) => {
      if (!(error instanceof NotAuthorizedError)) throw error;
      store.set({ ...store.value, problem: 'the policy does not let this identity read relais/metrics/notification' });
    });
  // Not awaited: the page shows itself at once, and the hour when it has been read.
  void readHour(bus).then(
    (snapshots) => {
      add(snapshots, 'fromHistory');
      store.set({ ...store.value, loaded: true });
    },
    async (error: Error) => {
      // Without the event stream, at least the latest snapshot.
      const latest = await bus.request<MetricsSnapshot | null>(METRICS_ACTION, {}, { timeout: QUERY_TIMEOUT_MS }).catch(() => null);
      if (latest) add([latest], 'fromHistory');
      store.set({ ...store.value, loaded: true, problem: `could not read the last hour from the router's event stream (${EVENTS_ACTION}): ${error.message}` });
    },
  );
  return store;
}

/** The metrics snapshots of the last hour in the router's event stream, newest page first. */
async function readHour(bus: Bus): Promise<MetricsSnapshot[]> {
  const found: MetricsSnapshot[] = [];
  const horizon = Date.now() - WINDOW_MS;
  let page = await bus.request<EventsPage>(EVENTS_ACTION, { limit: PAGE }, { timeout: QUERY_TIMEOUT_MS });
  for (let read = 1; ; read++) {
    found.push(...page.events.map(snapshotOf).filter((snapshot): snapshot is MetricsSnapshot => snapshot !== undefined && snapshot.until > horizon));
    const oldest = page.events[0];
    if (!oldest || oldest.time <= horizon || oldest.cursor <= 1 || read >= MAX_PAGES) return found;
    const since = Math.max(0, oldest.cursor - 1 - PAGE);
    page = await bus.request<EventsPage>(EVENTS_ACTION, { since, limit: oldest.cursor - 1 - since }, { timeout: QUERY_TIMEOUT_MS });
  }
}

function snapshotOf(event: BusEvent): MetricsSnapshot | undefined {
  if (event.type !== 'notification' || event.data.category !== METRICS_CATEGORY || event.data.truncated) return undefined;
  const payload = event.data.payload as MetricsSnapshot | undefined;
  return payload && typeof payload.until === 'number' && typeof payload.actions === 'object' ? payload : undefined;
}
