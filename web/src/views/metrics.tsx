/** Metrics: per action, request rate, error rate and latency percentiles (protocol §11.6). */
import type { Session } from '../session.js';
import { LineChart } from '../ui/chart.js';
import { dateTime } from '../ui/format.js';
import { useStore } from '../ui/store.js';

export function MetricsView({ session }: { session: Session }) {
  const state = useStore(session.metrics);
  const actions = Object.keys(state.series).sort();
  return (
    <section aria-labelledby="metrics-title">
      <h1 id="metrics-title">Metrics</h1>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      <p>The router publishes a snapshot every 10 s; {state.snapshots} received since this page opened.</p>
      {actions.length === 0 && <p>No request seen yet.</p>}
      {actions.map((action) => {
        const points = state.series[action]!;
        const last = points[points.length - 1]!;
        return (
          <section class="metrics-action" data-action={action} aria-label={`metrics of ${action}`}>
            <h2>{action}</h2>
            <p>Last interval (to {dateTime(last.until)}): {last.requests} requests, {last.completed} completed, {last.errors} errors.</p>
            <div class="charts">
              <LineChart title="Request rate" unit="/s" series={[{ name: 'rate', colour: '#2563eb', points: points.map((p) => [p.until, p.rate]) }]} />
              <LineChart title="Error rate" unit="" series={[{ name: 'errors/completed', colour: '#dc2626', points: points.map((p) => [p.until, p.errorRate]) }]} />
              <LineChart
                title="Latency"
                unit=" ms"
                series={(['p50', 'p90', 'p99'] as const).map((name, index) => ({
                  name,
                  colour: ['#16a34a', '#ca8a04', '#9333ea'][index]!,
                  points: points.filter((p) => p.latency).map((p) => [p.until, p.latency![name]] as [number, number]),
                }))}
              />
            </div>
          </section>
        );
      })}
    </section>
  );
}
