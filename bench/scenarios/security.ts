/**
 * Scenario "security" (docs/security.md): two figures with targets.
 *
 * 1. What the embedded broker's checks cost on the request path (target: at most
 *    10 % of request throughput lost): the peers harness (bench/scenarios/peers.ts) with the Relais requester and
 *    handler processes on `relais start --no-router --secure` (each process its own identity and
 *    token; the default policy; the envelope source check on every PUBLISH) and on `relais start
 *    --no-router`, in interleaved rounds. No router either way: it would add its own cost.
 * 2. The slow-consumer fault (target: healthy clients' p99 within 20 % of the no-fault run
 *    while one subscriber is frozen): bench/scenarios/slow-consumer.ts.
 */
import { log, ms, rate, ratio, summarize, type Table } from '../lib/util.js';
import { BROKER_LABELS, type PeerBrokerKind } from '../peers/brokers.js';
import { securityContenders } from '../peers/contenders.js';
import { checkedCell, figureCells, figures, pct, type Figures } from '../peers/report.js';
import { runPeers, type PeersConfig, type PeersResult } from './peers.js';
import { runSlowConsumer, SET_UPS, type SetUp, type SlowConsumerConfig, type SlowConsumerResult } from './slow-consumer.js';

export interface SecurityConfig {
  peers: Omit<PeersConfig, 'contenders' | 'filter'>;
  slowConsumer: SlowConsumerConfig;
}

export interface SecurityResult {
  config: SecurityConfig;
  checks: PeersResult;
  slowConsumer: SlowConsumerResult;
  failed: boolean;
}

export async function runSecurity(config: SecurityConfig): Promise<SecurityResult> {
  log('security: the cost of the checks, relais start --no-router with --secure and without');
  const checks = await runPeers({ ...config.peers, contenders: securityContenders() });
  log('security: the slow-consumer fault');
  const slowConsumer = await runSlowConsumer(config.slowConsumer);
  const failed = checks.results.some((r) => r.failed || r.skipped) || checks.leftovers.length > 0 || slowConsumer.failed !== undefined;
  return { config, checks, slowConsumer, failed };
}

export function securityTables(run: SecurityResult): Table[] {
  return [checksTable(run), slowConsumerTable(run)];
}

function checksTable(run: SecurityResult): Table {
  const all = run.checks.results.map(figures);
  const find = (kind: PeerBrokerKind) => all.find((f) => f.result.contender.broker === kind && !f.result.skipped);
  const on = find('relais-start-secure');
  const off = find('relais-start-no-router');
  const row = (f: Figures, state: string) => [
    BROKER_LABELS[f.result.contender.broker!],
    state,
    ...figureCells(f),
    `${pct(f.cpuPercent.others)}${f.result.repeated ? `, ${f.result.repeated} window(s) run again` : ''}`,
    checkedCell(f),
  ];
  const rows = [...(on ? [row(on, 'on')] : []), ...(off ? [row(off, 'off')] : [])];
  if (on && off) {
    const loss = 1 - on.tput / off.tput;
    rows.push([
      '**on / off**',
      '',
      `${ratio(on.seq.p50 / off.seq.p50)} / ${ratio(on.seq.p99 / off.seq.p99)}`,
      `**${ratio(on.tput / off.tput)}** (${(loss * 100).toFixed(1)} % ${loss >= 0 ? 'lost' : 'gained'}; target ≤ 10 % lost: ${loss <= 0.1 ? 'met' : '**missed**'})`,
      `${ratio(on.loaded.p50 / off.loaded.p50)} / ${ratio(on.loaded.p99 / off.loaded.p99)}`,
      '',
      ratio(on.cpuPerRequest / off.cpuPerRequest),
      '',
      '',
    ]);
  }
  const c = run.checks.config;
  return {
    title: 'Security: what the checks cost on the request path (security on / off, same requester and handler processes)',
    columns: ['broker', 'security', 'sequential p50 / p99 (ms)', `req/s, ${c.inFlight} in flight (median round; lowest–highest)`, 'p50 / p99 under that load (ms)', 'CPU % broker / requester / handler', 'CPU µs per request (all processes)', 'CPU % rest of the machine', 'checked'],
    rows,
    notes: [
      `${c.rounds} round(s), interleaved: per round both set-ups in turn (order reversed every other round), each a warm-up, ${c.sequential} sequential requests, then ${c.loadMs} ms with ${c.inFlight} in flight (the peers harness, bench/scenarios/peers.ts)`,
      'on: `relais start --no-router --secure`: every network CONNECT verified against the identity file (scrypt, once per connection), the client id bound to the identity, every SUBSCRIBE and PUBLISH decided by the default policy (decisions cached per connection and topic), and every PUBLISH\'s envelope `source` compared with the identity; the requester is an identity of role client, the handler of role service, each with its token in its broker URL',
      'CPU: percent of one core during the load windows (2 cores in all)',
    ],
  };
}

function slowConsumerTable(run: SecurityResult): Table {
  const { windows, config: c, failed } = run.slowConsumer;
  const of = (setUp: SetUp) => windows.filter((w) => w.setUp === setUp);
  const pooled = (setUp: SetUp) => summarize(of(setUp).flatMap((w) => w.samples));
  const perRound = (setUp: SetUp) => of(setUp).map((w) => ms(summarize(w.samples).p99)).join(', ');
  const base = pooled('none');
  const cpu = (setUp: SetUp) => {
    const ws = of(setUp);
    const wall = ws.reduce((total, w) => total + w.windowMs, 0);
    const share = (pick: (w: (typeof ws)[number]) => number) => pct((ws.reduce((total, w) => total + pick(w), 0) / wall) * 100);
    return `${share((w) => w.cpuMs.broker)} / ${share((w) => w.cpuMs.requester)} / ${share((w) => w.cpuMs.handler)} / ${share((w) => w.cpuMs.publisher)} / ${setUp === 'none' ? '-' : share((w) => w.cpuMs.subscriber)}`;
  };
  const labels: Record<SetUp, string> = { none: 'no `#` subscriber (no fault)', reading: 'a `#` subscriber that reads', frozen: 'a `#` subscriber frozen (SIGSTOP)' };
  const rows = SET_UPS.filter((setUp) => of(setUp).length).map((setUp) => {
    const s = pooled(setUp);
    const cuts = of(setUp).map((w) => (w.cutLine ? `${(w.cutAfterMs! / 1000).toFixed(1)} s` : '**not cut off**'));
    return [
      labels[setUp],
      `${s.n.toLocaleString('en-US')}`,
      `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}`,
      perRound(setUp),
      setUp === 'none' ? '1.00x' : `**${ratio(s.p99 / base.p99)}**${setUp === 'frozen' ? ` (target ≤ 1.20x: ${s.p99 / base.p99 <= 1.2 ? 'met' : '**missed**'})` : ''}`,
      cpu(setUp),
      setUp === 'frozen' ? cuts.join(', ') : '',
    ];
  });
  const cutLine = of('frozen').find((w) => w.cutLine)?.cutLine;
  return {
    title: `Security: healthy requests during a burst of ${c.count} × ${c.bytes / 1024} KiB, with one \`#\` subscriber frozen and without`,
    columns: ['set-up', 'healthy requests', 'p50 / p99 / max (ms, all rounds)', 'p99 per round (ms)', 'p99 / no-fault p99', 'CPU % broker / requester / handler / publisher / subscriber', 'frozen one cut off (after the burst started)'],
    rows: failed ? [...rows, [`**FAILED**: ${failed}`, '', '', '', '', '', '']] : rows,
    notes: [
      `${c.rounds} round(s); per round the three set-ups in turn (order reversed every other round); each a ${c.windowMs} ms window with ${c.inFlight} Relais requests in flight (requester and handler processes of bench/peers/relais.ts) through \`relais start --no-router\` (default limits: maxBufferedBytes 8 MiB, stallMs 2000), the burst (QoS 0, raw MQTT.js publisher process, bench/peers/burst.ts) starting ${c.burstAtMs} ms into it`,
      'frozen: a raw MQTT.js process subscribed to `#` at QoS 0, then SIGSTOP\'d before the window (its socket stops reading; loopback buffers fill, then the broker\'s); it is SIGCONT\'d and killed after the window',
      ...(cutLine ? [`the broker's line: \`${cutLine}\``] : []),
      'CPU: percent of one core during the windows; the frozen subscriber uses none (stopped)',
    ],
  };
}
