/**
 * `relais/metrics/get` (protocol §11.6): the latest snapshot, or with `{"since": ms}` the
 * snapshots published since then, of the last hour the router keeps (what `relais stats --since`
 * and the page's Metrics read: not only what arrived since they started).
 */
import type { Bus } from '../client/bus.js';
import type { Registration } from '../client/types.js';
import { METRICS_ACTION, METRICS_KEPT_MS, metricsQuerySchema, type MetricsHistory, type MetricsSnapshot } from '../protocol/metrics.js';
import { parsed } from './history-service.js';

/** The snapshots published in the last hour, oldest first. */
export class RecentSnapshots {
  private readonly kept: MetricsSnapshot[] = [];

  constructor(private readonly keptMs = METRICS_KEPT_MS) {}

  add(snapshot: MetricsSnapshot): void {
    this.kept.push(snapshot);
    const oldest = snapshot.until - this.keptMs;
    let drop = 0;
    while (drop < this.kept.length && this.kept[drop]!.until <= oldest) drop++;
    if (drop > 0) this.kept.splice(0, drop);
  }

  /** The snapshots whose interval ends after `since` (epoch ms). */
  since(since: number): MetricsSnapshot[] {
    return this.kept.filter((snapshot) => snapshot.until > since);
  }
}

export function serveMetrics(bus: Bus, latest: () => MetricsSnapshot, recent: RecentSnapshots): Promise<Registration> {
  return bus.handle(METRICS_ACTION, (payload: unknown): MetricsSnapshot | MetricsHistory => {
    const { since } = parsed(() => metricsQuerySchema.parse(payload ?? {}));
    return since === undefined ? latest() : { snapshots: recent.since(since) };
  });
}
