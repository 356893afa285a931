/**
 * The router's metrics on the wire (protocol §11.6): the notification category they are
 * published on, the action that answers the latest snapshot (or the last hour's), and what a
 * snapshot holds.
 */
import { z } from 'zod';

export const METRICS_CATEGORY = 'relais/metrics';
export const METRICS_ACTION = 'relais/metrics/get';

export interface ActionMetrics {
  /** Commands sent in the interval. */
  requests: number;
  /** Requests that ended in the interval (final or error). */
  completed: number;
  errors: number;
  /** Of `errors`, those answered with code 2 (`InvalidMessageError` and its kinds): the requester's mistake, such as a kill of a request that has already ended. */
  refused: number;
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

/** How long the router keeps its published snapshots for `relais/metrics/get` with `since` (protocol §11.6): an hour. */
export const METRICS_KEPT_MS = 3_600_000;

/** `relais/metrics/get` takes `{}` (the latest snapshot) or `{"since": ms}` (the snapshots kept since then). */
export const metricsQuerySchema = z.object({ since: z.number().int().nonnegative().optional() }).strict();

/** The answer to `{"since": ms}`: the published snapshots that end after `since`, oldest first, at most the last hour's. */
export interface MetricsHistory {
  snapshots: MetricsSnapshot[];
}
