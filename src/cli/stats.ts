/**
 * `relais stats`: per-action request rates, errors and latencies, as the router derives them
 * (protocol §11.6) — the last interval, or with `--since 5m` the totals of the snapshots the
 * router kept since then (up to an hour) — and the embedded broker's connections, messages and
 * bytes in and out, denials and cut-offs (protocol §11.9), over the same span with `--since`.
 */
import { Command } from 'commander';
import { NoHandlerError, NotAuthorizedError, notificationTopic, type Bus } from '../library.js';
import { BROKER_STATS_ACTION, type BrokerSpan, type BrokerStats, type InOut } from '../protocol/broker-stats.js';
import { METRICS_ACTION, METRICS_CATEGORY, METRICS_KEPT_MS, type ActionMetrics, type MetricsHistory, type MetricsSnapshot } from '../protocol/metrics.js';
import { parseSince } from './history.js';
import { addConnectionOptions, EXIT, fail, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';

interface StatsOptions extends GlobalOptions {
  watch?: boolean;
  since?: string;
  json?: boolean;
}

/** The broker's answer, or why there is none. */
export type BrokerBlock = BrokerStats | { unavailable: string };

/**
 * The snapshots of a span added up into one: counts summed, rates over the whole span; latency
 * p50 weighted by each interval's samples, p90/p99/max the worst interval's (percentiles of
 * separate samples cannot be merged exactly).
 */
export function totalOf(snapshots: readonly MetricsSnapshot[], from: number, until: number): MetricsSnapshot {
  const seconds = Math.max(0.001, (until - from) / 1000);
  const round = (value: number) => Math.round(value * 1000) / 1000;
  const actions: Record<string, ActionMetrics> = {};
  const p50s = new Map<string, { sum: number; samples: number }>();
  for (const snapshot of snapshots) {
    for (const [action, m] of Object.entries(snapshot.actions)) {
      const total = (actions[action] ??= { requests: 0, completed: 0, errors: 0, refused: 0, rate: 0, errorRate: 0 });
      total.requests += m.requests;
      total.completed += m.completed;
      total.errors += m.errors;
      total.refused = (total.refused ?? 0) + (m.refused ?? 0);
      if (m.latency) {
        const p50 = p50s.get(action) ?? { sum: 0, samples: 0 };
        p50.sum += m.latency.p50 * m.latency.samples;
        p50.samples += m.latency.samples;
        p50s.set(action, p50);
        const worst = total.latency;
        total.latency = {
          p50: 0,
          p90: Math.max(worst?.p90 ?? 0, m.latency.p90),
          p99: Math.max(worst?.p99 ?? 0, m.latency.p99),
          max: Math.max(worst?.max ?? 0, m.latency.max),
          samples: (worst?.samples ?? 0) + m.latency.samples,
        };
      }
    }
  }
  for (const [action, total] of Object.entries(actions)) {
    total.rate = round(total.requests / seconds);
    total.errorRate = total.completed === 0 ? 0 : round(total.errors / total.completed);
    const p50 = p50s.get(action);
    if (total.latency && p50) total.latency.p50 = Math.round(p50.sum / p50.samples);
  }
  const rows = snapshots.reduce((sum, snapshot) => sum + snapshot.rows, 0);
  return { from, until, actions, rows, rowsPerSecond: round(rows / seconds) };
}

export function formatSnapshot(snapshot: MetricsSnapshot): string {
  const seconds = ((snapshot.until - snapshot.from) / 1000).toFixed(1);
  const totals = Object.values(snapshot.actions).reduce((sum, m) => ({ requests: sum.requests + m.requests, errors: sum.errors + m.errors }), { requests: 0, errors: 0 });
  const header = `${new Date(snapshot.until).toISOString()}  last ${seconds} s: ${totals.requests} request(s), ${totals.errors} error(s), ${snapshot.rows} history rows (${snapshot.rowsPerSecond}/s)`;
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
  // An older broker's answer has no traffic figures.
  if (block.messages && block.bytes) {
    lines.push(`  messages: ${block.messages.inPerSecond}/s in, ${block.messages.outPerSecond}/s out; ${block.messages.in} in, ${block.messages.out} out since the start`);
    lines.push(`  bytes: ${bytes(block.bytes.inPerSecond)}/s in, ${bytes(block.bytes.outPerSecond)}/s out; ${bytes(block.bytes.in)} in, ${bytes(block.bytes.out)} out since the start`);
  }
  if (!denials) {
    lines.push('  denials: security off (nothing is checked; relais start --secure)');
  } else {
    lines.push(`  denials: connect ${denials.connect}, subscribe ${denials.subscribe}, publish ${denials.publish} (of which source ${denials.source})`);
    // Rule names come from the policy file; JSON.stringify keeps a control character harmless.
    for (const { rule, count } of denials.topRules) lines.push(`    ${String(count).padStart(8)}  ${JSON.stringify(rule).slice(1, -1)}`);
    if (denials.rules > denials.topRules.length) lines.push(`    (${denials.rules - denials.topRules.length} more rule(s))`);
  }
  lines.push(`  cut off: ${cutOffsText(cutOffs)}`);
  if (block.span) lines.push(...formatSpan(block.span));
  return lines.join('\n');
}

function cutOffsText(cutOffs: BrokerStats['cutOffs']): string {
  return `packet size ${cutOffs.packet}, CONNECT time-out ${cutOffs.connectTimeout}, keep-alive ${cutOffs.keepalive}, slow consumer ${cutOffs.slowConsumer}`;
}

/** The broker's counts over the span `--since` asked for. */
function formatSpan(span: BrokerSpan): string[] {
  const over = `  last ${duration(Math.round((span.until - span.from) / 1000))}:`;
  const inOut = (figures: InOut, show: (n: number) => string) => `${show(figures.in)} in (${show(figures.inPerSecond)}/s), ${show(figures.out)} out (${show(figures.outPerSecond)}/s)`;
  return [
    `${over} messages ${inOut(span.messages, String)}; bytes ${inOut(span.bytes, bytes)}`,
    `${over} denials ${span.denials ? `connect ${span.denials.connect}, subscribe ${span.denials.subscribe}, publish ${span.denials.publish}` : 'not checked (security off)'}; cut off: ${cutOffsText(span.cutOffs)}`,
  ];
}

/** A byte count for people: B, KiB, MiB, GiB. */
function bytes(count: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value * 100) / 100} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function duration(seconds: number): string {
  const [d, h, m, s] = [Math.floor(seconds / 86400), Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, seconds % 60];
  return d ? `${d}d ${h}h ${m}m` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

/** The embedded broker's stats; on another broker (nobody serves the action) or when refused, why not. */
async function brokerBlock(bus: Bus, since?: number): Promise<BrokerBlock> {
  try {
    return await bus.request<BrokerStats>(BROKER_STATS_ACTION, since === undefined ? {} : { since }, { timeout: 3000 });
  } catch (error) {
    if (error instanceof NoHandlerError) return { unavailable: 'not the embedded broker' };
    if (error instanceof NotAuthorizedError) return { unavailable: `not authorised: ${error.message}` };
    return { unavailable: (error as Error).message };
  }
}

/** The totals of the snapshots the router kept since `since` (at most the last hour's), as one snapshot over the span. */
async function spanSince(bus: Bus, since: number): Promise<MetricsSnapshot> {
  const now = Date.now();
  const from = Math.max(since, now - METRICS_KEPT_MS);
  const { snapshots } = await bus.request<MetricsHistory>(METRICS_ACTION, { since: from });
  if (!Array.isArray(snapshots)) fail(EXIT.ERROR, 'the router answered no snapshots: it predates relais stats --since (protocol §11.6)');
  return totalOf(snapshots, Math.min(from, snapshots[0]?.from ?? from), snapshots.at(-1)?.until ?? now);
}

export function statsCommand(): Command {
  return addConnectionOptions(new Command('stats'))
    .description("request rates, error rates and latency percentiles per action, from the router's history; the embedded broker's connections, messages/s, bytes/s, denials and cut-offs")
    .option('-w, --watch', 'go on: print each new interval as the router publishes it')
    .option('--since <when>', 'the totals since then (30s, 5m, 1h or a date), from the snapshots the router keeps (every 10 s, the last hour)')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: StatsOptions) => {
      const interactive = process.stdout.isTTY && !options.json;
      const print = (snapshot: MetricsSnapshot, broker: BrokerBlock) =>
        interactive ? process.stdout.write(`${formatSnapshot(snapshot)}\n${formatBrokerBlock(broker)}\n`) : writeLine({ ...snapshot, broker });
      const since = options.since === undefined ? undefined : parseSince(options.since);
      if (options.since !== undefined && since === undefined) fail(EXIT.USAGE, `--since must be like 30s, 5m, 1h or a date, got ${options.since}`);
      if (since !== undefined && options.watch) fail(EXIT.USAGE, '--since and --watch do not go together');
      await withRouter(options, METRICS_ACTION, 'the metrics come from the router', async (bus, signal) => {
        const from = since === undefined ? undefined : Math.max(0, Math.floor(since));
        const asked = from === undefined ? bus.request<MetricsSnapshot>(METRICS_ACTION, {}) : spanSince(bus, from);
        const [snapshot, broker] = await Promise.all([asked, brokerBlock(bus, from)]);
        print(snapshot, broker);
        if (!options.watch) return;
        await bus.subscribe(notificationTopic(METRICS_CATEGORY), (message) => {
          void brokerBlock(bus).then((latest) => print(message.envelope.payload as MetricsSnapshot, latest));
        });
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      });
    });
}
