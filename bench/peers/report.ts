/**
 * The tables of the peers scenario: the figures of every contender, Relais against raw
 * MQTT.js on each broker, and Relais in its two recommended set-ups against every other stack.
 */
import { ms, rate, ratio, summarize, type Summary, type Table } from '../lib/util.js';
import { BUSY_SHARE, type ContenderResult, type PeersResult } from '../scenarios/peers.js';
import { brokerLabel, FAMILY_LABELS, MQTT_BROKERS, type Family } from './contenders.js';
import { BROKER_LABELS, type PeerBrokerKind } from './brokers.js';

export interface Figures {
  result: ContenderResult;
  seq: Summary;
  loaded: Summary;
  /** Requests per second inside the load window: the median round's, and the lowest and highest. */
  tput: number;
  tputRange: [number, number];
  cpuPercent: { requester: number; handler: number; broker?: number; router?: number; site?: number; others: number; steal: number };
  /** CPU of all its processes per request answered in the load phases, µs. */
  cpuPerRequest: number;
}

export function figures(result: ContenderResult): Figures {
  const { loads } = result;
  const sum = (pick: (load: ContenderResult['loads'][number]) => number) => loads.reduce((total, load) => total + pick(load), 0);
  const wall = sum((load) => load.elapsedMs);
  const percent = (cpuMs: number) => (wall > 0 ? (cpuMs / wall) * 100 : NaN);
  const broker = loads.some((load) => load.cpuMs.broker !== undefined) ? sum((load) => load.cpuMs.broker ?? 0) : undefined;
  const router = loads.some((load) => load.cpuMs.router !== undefined) ? sum((load) => load.cpuMs.router ?? 0) : undefined;
  const site = loads.some((load) => load.cpuMs.site !== undefined) ? sum((load) => load.cpuMs.site ?? 0) : undefined;
  const cpuTotal = sum((load) => load.cpuMs.requester + load.cpuMs.handler + (load.cpuMs.broker ?? 0) + (load.cpuMs.router ?? 0) + (load.cpuMs.site ?? 0));
  const answered = sum((load) => load.samples.length);
  const rates = loads.map((load) => (load.completed / load.windowMs) * 1000).sort((a, b) => a - b);
  return {
    result,
    seq: summarize(result.sequential),
    loaded: summarize(loads.flatMap((load) => load.samples)),
    tput: rates.length ? rates[Math.floor((rates.length - 1) / 2)]! : NaN,
    tputRange: [rates[0] ?? NaN, rates[rates.length - 1] ?? NaN],
    cpuPercent: {
      requester: percent(sum((load) => load.cpuMs.requester)),
      handler: percent(sum((load) => load.cpuMs.handler)),
      ...(broker !== undefined && { broker: percent(broker) }),
      ...(router !== undefined && { router: percent(router) }),
      ...(site !== undefined && { site: percent(site) }),
      others: percent(sum((load) => load.cpuMs.others)),
      steal: percent(sum((load) => load.stealMs)),
    },
    cpuPerRequest: answered ? (cpuTotal * 1000) / answered : NaN,
  };
}

const usable = (f: Figures | undefined): f is Figures => f !== undefined && !f.result.failed && !f.result.skipped && f.result.rounds > 0;

/** The cells a row of an on/off comparison shares: sequential p50/p99, throughput, loaded p50/p99, CPU % per process, CPU µs per request. */
export function figureCells(f: Figures): string[] {
  return [
    `${ms(f.seq.p50)} / ${ms(f.seq.p99)}`,
    f.result.loads.length > 1 ? `${rate(f.tput)} (${rate(f.tputRange[0])}–${rate(f.tputRange[1])})` : rate(f.tput),
    `${ms(f.loaded.p50)} / ${ms(f.loaded.p99)}`,
    `${pct(f.cpuPercent.broker ?? NaN)} / ${pct(f.cpuPercent.requester)} / ${pct(f.cpuPercent.handler)}`,
    f.cpuPerRequest.toFixed(0),
  ];
}

/** Whether every request of a run was answered (the last cell of those rows). */
export function checkedCell(f: Figures): string {
  return f.result.failed ? `**FAILED**: ${f.result.failed}` : `${f.result.totals?.sent.toLocaleString('en-US')} sent = answered = served`;
}

/**
 * A feature on / off with the same requester and handler processes, per broker (the signing
 * and sealing scenarios): each broker's row with it, without it, and their ratios.
 */
export function onOffTable(run: PeersResult, options: { onId: string; onLabel: string; title: string; column: string; notes: string[] }): Table {
  const all = run.results.map(figures);
  const find = (id: string) => all.find((f) => f.result.contender.id === id && !f.result.skipped);
  const rows: string[][] = [];
  for (const broker of ['embedded', 'mosquitto'] as const) {
    const on = find(`${options.onId}@${broker}`);
    const off = find(`relais@${broker}`);
    if (!on || !off) continue;
    const label = broker === 'embedded' ? 'embedded (Aedes, no-delay)' : 'Mosquitto, set_tcp_nodelay';
    const row = (f: Figures, state: string) => [label, state, ...figureCells(f), checkedCell(f)];
    rows.push(row(on, options.onLabel), row(off, 'off'));
    rows.push([label, '**on / off**', `${ratio(on.seq.p50 / off.seq.p50)} / ${ratio(on.seq.p99 / off.seq.p99)}`, `**${ratio(on.tput / off.tput)}**`, `${ratio(on.loaded.p50 / off.loaded.p50)} / ${ratio(on.loaded.p99 / off.loaded.p99)}`, '', ratio(on.cpuPerRequest / off.cpuPerRequest), '']);
  }
  const c = run.config;
  return {
    title: options.title,
    columns: ['broker', options.column, 'sequential p50 / p99 (ms)', `req/s, ${c.inFlight} in flight (median round; lowest–highest)`, 'p50 / p99 under that load (ms)', 'CPU % broker / requester / handler', 'CPU µs per request (all processes)', 'checked'],
    rows,
    notes: [
      `${c.rounds} round(s), interleaved: per round every set-up in turn (order reversed every other round), each a warm-up, ${c.sequential} sequential requests, then ${c.loadMs} ms with ${c.inFlight} in flight (the peers harness, bench/scenarios/peers.ts)`,
      ...options.notes,
    ],
  };
}

export function peersTables(run: PeersResult): Table[] {
  const all = run.results.map(figures);
  const find = (family: Family, broker?: PeerBrokerKind) => all.find((f) => f.result.contender.family === family && f.result.contender.broker === broker);
  return [mainTable(run, all), sameBrokerTable(find), acrossTable(all, find)];
}

function mainTable(run: PeersResult, all: Figures[]): Table {
  const rows = all.map((f) => {
    const { contender } = f.result;
    const head = [contender.label, brokerLabel(contender), contender.guarantee];
    if (f.result.skipped) return [...head, `SKIPPED: ${f.result.skipped}`, '', '', '', '', '', '', ''];
    const cpu = f.cpuPercent;
    const figuresRow = [
      `${ms(f.seq.p50)} / ${ms(f.seq.p99)}${f.seq.n < run.config.sequential * run.config.rounds ? ` (n=${f.seq.n})` : ''}`,
      f.result.loads.length > 1 ? `${rate(f.tput)} (${rate(f.tputRange[0])}–${rate(f.tputRange[1])})` : rate(f.tput),
      `${ms(f.loaded.p50)} / ${ms(f.loaded.p99)}`,
      `${pct(cpu.requester)} / ${pct(cpu.handler)} / ${cpu.broker !== undefined ? pct(cpu.broker) : '–'}`,
      Number.isFinite(f.cpuPerRequest) ? f.cpuPerRequest.toFixed(0) : 'n/a',
      `${pct(cpu.others)}${cpu.steal >= 1 ? ` (+${pct(cpu.steal)} stolen)` : ''}${f.result.repeated ? `, ${f.result.repeated} window(s) run again` : ''}`,
    ];
    const checked = f.result.failed ? `**FAILED**: ${f.result.failed}` : `${f.result.totals?.sent.toLocaleString('en-US')} sent = answered = served, echo ok`;
    return [...head, ...figuresRow, checked];
  });
  const c = run.config;
  return {
    title: 'Peers: request/response, requester, handler and broker each in its own process',
    columns: ['contender', 'broker', 'delivery', 'sequential p50 / p99 (ms)', `req/s, ${c.inFlight} in flight${c.rounds > 1 ? ' (median round; lowest–highest)' : ''}`, 'p50 / p99 under that load (ms)', 'CPU % requester / handler / broker', 'CPU µs per request (all 3)', 'CPU % rest of the machine', 'checked'],
    rows,
    notes: [
      `${c.rounds} round(s); per round and contender: warm-up (${c.warmup} requests or ${c.warmupCapMs} ms, then ${c.warmupLoadMs} ms with ${c.inFlight} in flight in the first round, a quarter of that later), ${c.sequential} sequential requests (capped at ${c.sequentialCapMs} ms: a contender that stalls shows its n), then ${c.loadMs} ms with ${c.inFlight} in flight; rounds alternate the order of the contenders`,
      'req/s: answers inside a load window / its length (the median of the rounds); latencies under load: all rounds, the tail of each window included',
      'CPU: percent of one core during the load phases (2 cores in all); requester from its own process.cpuUsage(), handler and broker from /proc/<pid>/stat; one broker process per broker kind is shared by the contenders on it, who take turns',
      `rest of the machine: /proc/stat busy time minus the three processes and the benchmark parent, in the same windows; well above a few percent means something else competed for the 2 cores and that row is pessimistic. A window where it passed ${BUSY_SHARE * 100}% was run again (${run.repeated} of at most ${c.repeats} in this run) and the quieter one kept`,
      'payload: {"n":…,"text":…} ~95 bytes of JSON; Relais and raw MQTT.js wrap it in the Relais envelope (~220 B on the wire), Moleculer in its packet, NATS and TCP send it bare; every handler parses the JSON and sends it back',
      'checked: the requester matched every answer to its request (same n, same text) and the handler served exactly as many requests as were sent',
      `${run.processes} processes started; ${run.leftovers.length ? `**${run.leftovers.length} still alive at the end: ${run.leftovers.join(', ')}**` : 'none left at the end'}`,
    ],
  };
}

function sameBrokerTable(find: (family: Family, broker?: PeerBrokerKind) => Figures | undefined): Table {
  const rows: string[][] = [];
  for (const broker of MQTT_BROKERS) {
    const relais = find('relais', broker);
    if (!usable(relais)) continue;
    for (const family of ['raw-qos0', 'raw-qos1'] as const) {
      const other = find(family, broker);
      if (usable(other)) rows.push([BROKER_LABELS[broker], `Relais / ${FAMILY_LABELS[family]}`, ...ratios(relais, other)]);
    }
    if (broker === 'mosquitto') {
      const moleculer = find('moleculer-mqtt', 'mosquitto');
      if (usable(moleculer)) rows.push([BROKER_LABELS[broker], `Relais / ${FAMILY_LABELS['moleculer-mqtt']}`, ...ratios(relais, moleculer)]);
    }
  }
  return {
    title: 'Peers: Relais against the others on the same broker (Relais / other)',
    columns: ['broker', 'ratio', 'sequential p50', 'sequential p99', 'req/s', 'p99 under load', 'CPU per request'],
    rows,
    notes: [
      'latency and CPU ratios above 1.00x: Relais is slower or costlier; req/s ratio below 1.00x: Relais carries less',
      'on plain Aedes and on Mosquitto at its defaults, every QoS 1 round trip waits ~44 ms (Nagle on the broker: a PUBACK then the PUBLISH); QoS 0 has no PUBACK to wait behind, hence the large sequential ratios there',
      'the raw MQTT.js clients set no-delay on their own sockets, as Relais does; Moleculer\'s MQTT.js client does not (its default)',
    ],
  };
}

function acrossTable(all: Figures[], find: (family: Family, broker?: PeerBrokerKind) => Figures | undefined): Table {
  const embedded = find('relais', 'embedded');
  const mosquitto = find('relais', 'mosquitto');
  const raw0 = find('raw-qos0', 'mosquitto');
  // The stacks a user would pick instead; raw MQTT.js only on the well-configured Mosquitto (the other brokers: the same-broker table).
  const others = all.filter((f) => usable(f) && f.result.contender.family !== 'relais' && (!f.result.contender.family.startsWith('raw') || f.result.contender.broker === 'mosquitto'));
  const against = (relais: Figures | undefined, other: Figures) =>
    usable(relais) ? [ratio(relais.seq.p50 / other.seq.p50), ratio(relais.tput / other.tput), ratio(relais.cpuPerRequest / other.cpuPerRequest)] : ['', '', ''];
  const rows = others.map((other) => [
    other.result.contender.broker ? `${other.result.contender.label} on ${brokerLabel(other.result.contender)}` : other.result.contender.label,
    ...against(embedded, other),
    ...against(mosquitto, other),
    usable(raw0) && raw0 !== other ? `${ratio(other.seq.p50 / raw0.seq.p50)} / ${ratio(other.tput / raw0.tput)}` : '',
  ]);
  return {
    title: 'Peers: Relais in its two recommended set-ups against the other stacks (Relais / other)',
    columns: ['other', 'Relais embedded: p50', 'req/s', 'CPU/req', 'Relais on Mosquitto (no-delay): p50', 'req/s', 'CPU/req', 'other / raw QoS 0 on Mosquitto (no-delay): p50 / req/s'],
    rows,
    notes: [
      'Relais / other: sequential p50 and CPU per request above 1.00x mean Relais is slower or costlier, req/s below 1.00x that it carries less',
      'last column: the other contender against raw MQTT.js QoS 0 on Mosquitto with set_tcp_nodelay (what that stack costs over a hand-written QoS 0 client on a well-configured broker)',
    ],
  };
}

function ratios(relais: Figures, other: Figures): string[] {
  return [
    ratio(relais.seq.p50 / other.seq.p50),
    ratio(relais.seq.p99 / other.seq.p99),
    ratio(relais.tput / other.tput),
    ratio(relais.loaded.p99 / other.loaded.p99),
    ratio(relais.cpuPerRequest / other.cpuPerRequest),
  ];
}

export function pct(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(0)}` : 'n/a';
}
