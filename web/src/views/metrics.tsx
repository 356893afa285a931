/**
 * Metrics: the broker's figures (protocol §11.9), then per action the last hour of request
 * rate, error rate and latency percentiles (§11.6), on a time axis, with the intervals the router
 * did not cover shown as gaps.
 */
import { useEffect, useState } from 'preact/hooks';
import { BROKER_STATS_ACTION, type BrokerStats } from '../../../src/protocol/broker-stats.js';
import { NoHandlerError, NotAuthorizedError } from 'relais/browser';
import { QUERY_TIMEOUT_MS } from '../model/query.js';
import type { MetricsPoint } from '../model/metrics.js';
import type { Session } from '../session.js';
import { LineChart } from '../ui/chart.js';
import { dateTime, duration } from '../ui/format.js';
import { useStore } from '../ui/store.js';

/** The router publishes a snapshot every 10 s: a longer silence between two is a gap (the router away). */
const GAP_MS = 25_000;
const BROKER_REFRESH_MS = 10_000;

export function MetricsView({ session }: { session: Session }) {
  const state = useStore(session.metrics);
  const actions = Object.keys(state.series).sort();
  const first = state.intervals[0];
  const last = state.intervals[state.intervals.length - 1];
  const domain: [number, number] | undefined = first !== undefined && last !== undefined ? [first, last] : undefined;
  return (
    <section aria-labelledby="metrics-title">
      <h1 id="metrics-title">Metrics</h1>
      <BrokerFigures session={session} />
      <h2>Requests per action</h2>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      <p data-testid="metrics-span">
        {!state.loaded ? 'Reading the last hour from the router…' : first === undefined ? 'The router has published no snapshot in the last hour.' : `${state.intervals.length} snapshots of 10 s from ${dateTime(first)} (${state.fromHistory} read back from the router, ${state.live} since this page opened).`}
      </p>
      {state.loaded && actions.length === 0 && <p>No request in the last hour.</p>}
      {actions.map((action) => {
        const points = state.series[action]!;
        const latest = points[points.length - 1]!;
        // An interval the router covered without a request of this action: a rate of 0, not a gap.
        const rate = ratePoints(points, state.intervals);
        return (
          <section class="metrics-action" data-action={action} aria-label={`metrics of ${action}`}>
            <h3>{action}</h3>
            <p>Last interval with requests (to {dateTime(latest.until)}): {latest.requests} requests, {latest.completed} completed, {latest.errors} errors.</p>
            <div class="charts">
              <LineChart title="Request rate" unit="/s" gapMs={GAP_MS} domain={domain} series={[{ name: 'rate', colour: '#2563eb', points: rate }]} />
              <LineChart title="Error rate" unit="" gapMs={GAP_MS} domain={domain} series={[{ name: 'errors/completed', colour: '#dc2626', points: alongIntervals(points, state.intervals, (p) => (p.completed > 0 ? p.errorRate : undefined)) }]} />
              <LineChart
                title="Latency"
                unit=" ms"
                gapMs={GAP_MS}
                domain={domain}
                series={(['p50', 'p90', 'p99'] as const).map((name, index) => ({
                  name,
                  colour: ['#16a34a', '#ca8a04', '#9333ea'][index]!,
                  points: alongIntervals(points, state.intervals, (p) => p.latency?.[name]),
                }))}
              />
            </div>
          </section>
        );
      })}
    </section>
  );
}

function ratePoints(points: MetricsPoint[], intervals: number[]): [number, number][] {
  const byUntil = new Map(points.map((point) => [point.until, point.rate]));
  return intervals.map((until) => [until, byUntil.get(until) ?? 0]);
}

/** One point per interval the router covered: NaN (a break in the line) where the action has no such value then. */
function alongIntervals(points: MetricsPoint[], intervals: number[], value: (point: MetricsPoint) => number | undefined): [number, number][] {
  const byUntil = new Map(points.map((point) => [point.until, point]));
  return intervals.map((until) => {
    const point = byUntil.get(until);
    return [until, (point && value(point)) ?? Number.NaN];
  });
}

type BrokerState = { stats: BrokerStats; at: number } | { unavailable: string } | undefined;

/** The embedded broker's own figures, asked every 10 s; the admin role may ask (protocol §11.9). */
function BrokerFigures({ session }: { session: Session }) {
  const [state, setState] = useState<BrokerState>();
  useEffect(() => {
    let stopped = false;
    const ask = () =>
      session.bus.request<BrokerStats>(BROKER_STATS_ACTION, {}, { timeout: QUERY_TIMEOUT_MS }).then(
        (stats) => !stopped && setState({ stats, at: Date.now() }),
        (error: Error) =>
          !stopped &&
          setState({
            unavailable:
              error instanceof NoHandlerError ? 'not available: the broker is not the embedded one (relais start)' : error instanceof NotAuthorizedError ? 'not available: the policy lets the admin role ask them' : `not available: ${error.message}`,
          }),
      );
    void ask();
    const timer = setInterval(() => void ask(), BROKER_REFRESH_MS);
    return () => ((stopped = true), clearInterval(timer));
  }, [session]);
  return (
    <section aria-labelledby="broker-title" class="broker">
      <h2 id="broker-title">Broker</h2>
      {!state ? (
        <p>Asking the broker…</p>
      ) : 'unavailable' in state ? (
        <p class="hint" data-testid="broker-unavailable">{state.unavailable}</p>
      ) : (
        <dl class="figures" data-testid="broker-figures">
          <div><dt>Connections open</dt><dd data-figure="connections">{state.stats.connections.open}</dd></div>
          <div><dt>Up for</dt><dd>{duration(state.stats.uptimeSeconds * 1000)}</dd></div>
          {extraFigures(state.stats).map(([name, value]) => <div><dt>{name}</dt><dd>{value}</dd></div>)}
          <div><dt>Denials</dt><dd data-figure="denials">{state.stats.denials ? `${state.stats.denials.connect} connect, ${state.stats.denials.subscribe} subscribe, ${state.stats.denials.publish} publish` : 'security off'}</dd></div>
          <div><dt>Cut-offs</dt><dd data-figure="cut-offs">{Object.entries(state.stats.cutOffs).map(([name, count]) => `${count} ${name}`).join(', ')}</dd></div>
        </dl>
      )}
    </section>
  );
}

/** Figures a newer broker adds (messages and bytes per second…): every number of its other top-level objects. */
function extraFigures(stats: BrokerStats): [string, string][] {
  const known = new Set(['startedAt', 'now', 'uptimeSeconds', 'connections', 'denials', 'cutOffs']);
  const figures: [string, string][] = [];
  for (const [key, value] of Object.entries(stats)) {
    if (known.has(key)) continue;
    if (typeof value === 'number') figures.push([key, String(value)]);
    else if (typeof value === 'object' && value !== null) {
      for (const [inner, number] of Object.entries(value)) if (typeof number === 'number') figures.push([`${key} ${inner}`, String(Math.round(number * 100) / 100)]);
    }
  }
  return figures;
}
