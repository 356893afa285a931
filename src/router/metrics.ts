/**
 * Per-action request rates, error rates and latency percentiles, derived from the rows the
 * router sees on the bus (protocol §11.6): nothing is asked of the clients. One snapshot per interval,
 * published as a notification and answered on request.
 */
import type { HistoryRow } from '../protocol/history.js';
import type { ActionMetrics, MetricsSnapshot } from '../protocol/metrics.js';
import { ResponseCode } from '../protocol/errors.js';

/** Requests whose command was seen and whose end was not yet: bounded, the oldest forgotten first. */
const MAX_OPEN_REQUESTS = 100_000;
/** Latencies kept per action and interval for the percentiles (a uniform sample beyond). */
const MAX_SAMPLES = 10_000;

interface Window {
  requests: number;
  completed: number;
  errors: number;
  refused: number;
  latencies: number[];
  seen: number;
}

export class Metrics {
  private readonly open = new Map<string, { action: string; etime: number }>();
  private windows = new Map<string, Window>();
  private rows = 0;
  private from: number;
  private last: MetricsSnapshot;

  constructor(private readonly now: () => number = Date.now) {
    this.from = now();
    this.last = { from: this.from, until: this.from, actions: {}, rows: 0, rowsPerSecond: 0 };
  }

  /**
   * Feeds the rows of one batch the router saw, each once, whether it or another router sharing
   * the store stored them: every router then answers the same figures.
   */
  readonly onRows = (rows: readonly Pick<HistoryRow, 'kind' | 'token' | 'action' | 'etime' | 'code'>[]): void => {
    this.rows += rows.length;
    for (const row of rows) {
      if (row.kind === 'command') {
        this.window(row.action).requests += 1;
        if (this.open.size >= MAX_OPEN_REQUESTS) this.open.delete(this.open.keys().next().value!);
        this.open.set(row.token, { action: row.action, etime: row.etime });
      } else if (row.kind === 'final' || row.kind === 'error') {
        const window = this.window(row.action);
        window.completed += 1;
        if (row.kind === 'error') window.errors += 1;
        // The requester's mistake (code 2, protocol §5.2): the handler logs it at debug only, so it is counted here.
        if (row.kind === 'error' && row.code === ResponseCode.INVALID_REQUEST) window.refused += 1;
        const start = this.open.get(row.token);
        if (start) {
          this.open.delete(row.token);
          sample(window, Math.max(0, row.etime - start.etime));
        }
      }
    }
  };

  /**
   * Counts a requester's mistake answered by one of the router's own services (a kill of a
   * request that has already ended): their requests are not in the history (protocol §11.1),
   * so their rows never reach `onRows`.
   */
  readonly refuse = (action: string): void => {
    this.window(action).refused += 1;
  };

  /** Ends the current interval: its snapshot becomes `latest`. */
  roll(): MetricsSnapshot {
    const until = this.now();
    const seconds = Math.max(0.001, (until - this.from) / 1000);
    const actions: Record<string, ActionMetrics> = {};
    for (const [action, window] of this.windows) {
      actions[action] = {
        requests: window.requests,
        completed: window.completed,
        errors: window.errors,
        refused: window.refused,
        rate: round(window.requests / seconds),
        errorRate: window.completed === 0 ? 0 : round(window.errors / window.completed),
        ...(window.latencies.length > 0 && { latency: percentiles(window.latencies) }),
      };
    }
    this.last = { from: this.from, until, actions, rows: this.rows, rowsPerSecond: round(this.rows / seconds) };
    this.windows = new Map();
    this.rows = 0;
    this.from = until;
    return this.last;
  }

  get latest(): MetricsSnapshot {
    return this.last;
  }

  private window(action: string): Window {
    let window = this.windows.get(action);
    if (!window) {
      window = { requests: 0, completed: 0, errors: 0, refused: 0, latencies: [], seen: 0 };
      this.windows.set(action, window);
    }
    return window;
  }
}

/** Reservoir sampling: every latency of the interval has the same chance to be kept. */
function sample(window: Window, latency: number): void {
  window.seen += 1;
  if (window.latencies.length < MAX_SAMPLES) window.latencies.push(latency);
  else {
    const slot = Math.floor(Math.random() * window.seen);
    if (slot < MAX_SAMPLES) window.latencies[slot] = latency;
  }
}

function percentiles(latencies: number[]): NonNullable<ActionMetrics['latency']> {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.at(-1)!, samples: sorted.length };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
