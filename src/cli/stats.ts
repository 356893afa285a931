/** `relais stats`: per-action request rates, errors and latencies, as the router derives them (protocol §11.6). */
import { Command } from 'commander';
import { notificationTopic } from '../index.js';
import { METRICS_ACTION, METRICS_CATEGORY, type MetricsSnapshot } from '../router/index.js';
import { addConnectionOptions, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';

interface StatsOptions extends GlobalOptions {
  watch?: boolean;
  json?: boolean;
}

export function formatSnapshot(snapshot: MetricsSnapshot): string {
  const seconds = ((snapshot.until - snapshot.from) / 1000).toFixed(1);
  const header = `${new Date(snapshot.until).toISOString()}  last ${seconds} s, ${snapshot.rows} history rows (${snapshot.rowsPerSecond}/s)`;
  const lines = Object.entries(snapshot.actions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([action, m]) => {
      const latency = m.latency ? `${m.latency.p50} / ${m.latency.p90} / ${m.latency.p99} / ${m.latency.max}` : '-';
      return `  ${action.padEnd(32)} ${String(m.rate).padStart(9)} ${String(m.requests).padStart(8)} ${String(m.errors).padStart(7)} ${`${(m.errorRate * 100).toFixed(1)}%`.padStart(7)}  ${latency}`;
    });
  if (lines.length === 0) return `${header}\n  (no requests in this interval)`;
  return [header, `  ${'action'.padEnd(32)} ${'req/s'.padStart(9)} ${'requests'.padStart(8)} ${'errors'.padStart(7)} ${'err %'.padStart(7)}  p50 / p90 / p99 / max (ms)`, ...lines].join('\n');
}

export function statsCommand(): Command {
  return addConnectionOptions(new Command('stats'))
    .description("request rates, error rates and latency percentiles per action, from the router's history")
    .option('-w, --watch', 'go on: print each new interval as the router publishes it')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: StatsOptions) => {
      const interactive = process.stdout.isTTY && !options.json;
      const print = (snapshot: MetricsSnapshot) => (interactive ? process.stdout.write(`${formatSnapshot(snapshot)}\n`) : writeLine(snapshot));
      await withRouter(options, METRICS_ACTION, 'the metrics come from the router', async (bus, signal) => {
        print((await bus.request(METRICS_ACTION, {})) as MetricsSnapshot);
        if (!options.watch) return;
        await bus.subscribe(notificationTopic(METRICS_CATEGORY), (message) => print(message.envelope.payload as MetricsSnapshot));
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      });
    });
}
