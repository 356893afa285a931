/**
 * `relais stats`: per-action request rates, errors and latencies, as the router derives them
 * (protocol §11.6), and the embedded broker's denials, connections and cut-offs (protocol §11.9).
 */
import { Command } from 'commander';
import { NoHandlerError, NotAuthorizedError, notificationTopic, type Bus } from '../index.js';
import { BROKER_STATS_ACTION, type BrokerStats } from '../protocol/broker-stats.js';
import { METRICS_ACTION, METRICS_CATEGORY, type MetricsSnapshot } from '../protocol/metrics.js';
import { addConnectionOptions, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';

interface StatsOptions extends GlobalOptions {
  watch?: boolean;
  json?: boolean;
}

/** The broker's answer, or why there is none. */
export type BrokerBlock = BrokerStats | { unavailable: string };

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

export function formatBrokerBlock(block: BrokerBlock): string {
  if ('unavailable' in block) return `broker stats: not available (${block.unavailable})`;
  const { denials, cutOffs } = block;
  const lines = [`broker: up ${duration(block.uptimeSeconds)}, ${block.connections.open} connection(s) open`];
  if (!denials) {
    lines.push('  denials: security off (nothing is checked; relais start --secure)');
  } else {
    lines.push(`  denials: connect ${denials.connect}, subscribe ${denials.subscribe}, publish ${denials.publish} (of which source ${denials.source})`);
    // Rule names come from the policy file; JSON.stringify keeps a control character harmless.
    for (const { rule, count } of denials.topRules) lines.push(`    ${String(count).padStart(8)}  ${JSON.stringify(rule).slice(1, -1)}`);
    if (denials.rules > denials.topRules.length) lines.push(`    (${denials.rules - denials.topRules.length} more rule(s))`);
  }
  lines.push(`  cut off: packet size ${cutOffs.packet}, CONNECT time-out ${cutOffs.connectTimeout}, keep-alive ${cutOffs.keepalive}, slow consumer ${cutOffs.slowConsumer}`);
  return lines.join('\n');
}

function duration(seconds: number): string {
  const [d, h, m, s] = [Math.floor(seconds / 86400), Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, seconds % 60];
  return d ? `${d}d ${h}h ${m}m` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

/** The embedded broker's stats; on another broker (nobody serves the action) or when refused, why not. */
async function brokerBlock(bus: Bus): Promise<BrokerBlock> {
  try {
    return await bus.request<BrokerStats>(BROKER_STATS_ACTION, {}, { timeout: 3000 });
  } catch (error) {
    if (error instanceof NoHandlerError) return { unavailable: 'not the embedded broker' };
    if (error instanceof NotAuthorizedError) return { unavailable: `not authorised: ${error.message}` };
    return { unavailable: (error as Error).message };
  }
}

export function statsCommand(): Command {
  return addConnectionOptions(new Command('stats'))
    .description("request rates, error rates and latency percentiles per action, from the router's history; the embedded broker's denials, connections and cut-offs")
    .option('-w, --watch', 'go on: print each new interval as the router publishes it')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: StatsOptions) => {
      const interactive = process.stdout.isTTY && !options.json;
      const print = (snapshot: MetricsSnapshot, broker: BrokerBlock) =>
        interactive ? process.stdout.write(`${formatSnapshot(snapshot)}\n${formatBrokerBlock(broker)}\n`) : writeLine({ ...snapshot, broker });
      await withRouter(options, METRICS_ACTION, 'the metrics come from the router', async (bus, signal) => {
        const [snapshot, broker] = await Promise.all([bus.request(METRICS_ACTION, {}) as Promise<MetricsSnapshot>, brokerBlock(bus)]);
        print(snapshot, broker);
        if (!options.watch) return;
        await bus.subscribe(notificationTopic(METRICS_CATEGORY), (message) => {
          void brokerBlock(bus).then((latest) => print(message.envelope.payload as MetricsSnapshot, latest));
        });
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      });
    });
}
