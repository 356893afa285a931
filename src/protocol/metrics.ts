/**
 * The router's metrics on the wire (protocol §11.6): the notification category they are
 * published on, the action that answers the latest snapshot, and what a snapshot holds.
 */

export const METRICS_CATEGORY = 'relais/metrics';
export const METRICS_ACTION = 'relais/metrics/get';

export interface ActionMetrics {
  /** Commands sent in the interval. */
  requests: number;
  /** Requests that ended in the interval (final or error). */
  completed: number;
  errors: number;
  /** requests per second over the interval. */
  rate: number;
  /** errors / completed, 0 when nothing completed. */
  errorRate: number;
  /** From the command's `ts` to the final's `ts` (ms), for requests whose command was seen. */
  latency?: { p50: number; p90: number; p99: number; max: number; samples: number };
}

export interface MetricsSnapshot {
  /** The interval covered (epoch ms, from inclusive, until exclusive). */
  from: number;
  until: number;
  actions: Record<string, ActionMetrics>;
  /** Rows the router stored in the interval, and per second. */
  rows: number;
  rowsPerSecond: number;
}
