/**
 * Scenario "router" (protocol §11.1): what recording the history costs, and how fast it records.
 *
 * 1. The store alone, in this process: `SqliteHistoryStore.append` of realistic rows (made by
 *    the recorder's own `rowOf` from a command and a final as the library sends them), in
 *    batches like the recorder's (one transaction per batch), on a fresh file per batch size.
 * 2. Through the bus: the peers harness (bench/scenarios/peers.ts) with the Relais requester
 *    and handler processes (bench/peers/relais.ts) on the real `bin/relais.js start` (broker
 *    and router in one process, the router on the in-memory stream) and on `relais start
 *    --no-router`, in interleaved rounds; optionally also on Mosquitto with the router as its
 *    own process (`relais router --broker URL`) and without. Each load window reads the
 *    history file's row count before and after (rows stored per second); after the last one
 *    the run waits for the router to store everything, the brokers stop (SIGTERM: the router
 *    flushes), and the file is opened read-only to count the rows by kind against what the
 *    requester sent and got back and what the handler served.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ReceivedMessage } from '../../src/client/types.js';
import type * as RecorderModule from '../../src/router/recorder.js';
import type * as RouterModule from '../../src/router/index.js';
import { log, ms, rate, ratio, summarize, waitForQuiet, type Table } from '../lib/util.js';
import { BROKER_LABELS, type PeerBrokerKind } from '../peers/brokers.js';
import { routerContenders } from '../peers/contenders.js';
import { countHistory, type HistoryCounts } from '../peers/history.js';
import { makePayload } from '../peers/protocol.js';
import { figures, pct, type Figures } from '../peers/report.js';
import { runPeers, type PeersConfig, type PeersResult } from './peers.js';

// The compiled code, as bench/lib/relais.ts loads the library (dist/ is what users run).
const { SqliteHistoryStore } = (await import(new URL('../../dist/router/index.js', import.meta.url).href)) as typeof RouterModule;
const { rowOf } = (await import(new URL('../../dist/router/recorder.js', import.meta.url).href)) as typeof RecorderModule;

/** The action of bench/peers/relais.ts. */
const ACTION = 'bench/echo';
/** ROUTER_DEFAULTS.maxDataBytes. */
const MAX_DATA_BYTES = 8192;

export interface RouterConfig {
  peers: Omit<PeersConfig, 'contenders' | 'filter'>;
  /** Store alone: batch sizes, and how long each is timed. */
  storeBatches: number[];
  storeMs: number;
  /** Also Mosquitto with the router as its own process, and without. */
  mosquitto: boolean;
}

export interface StoreRun {
  batch: number;
  /** append() of rows made beforehand. */
  appendRowsPerSec: number;
  /** rowOf() (digest, payload cut) then append(): the recorder's work per message, minus MQTT. */
  recorderRowsPerSec: number;
}

export interface HistoryCheck {
  kind: PeerBrokerKind;
  counts?: HistoryCounts;
  /** Why it could not be read. */
  error?: string;
  sent: number;
  answered: number;
  served?: number;
  /** Command rows missing for requests sent, final rows missing for requests answered. */
  lostCommands: number;
  lostFinals: number;
}

export interface RouterResult {
  config: RouterConfig;
  store: StoreRun[];
  peers: PeersResult;
  checks: HistoryCheck[];
  failed: boolean;
}

export async function runRouter(config: RouterConfig): Promise<RouterResult> {
  const quiet = await waitForQuiet(30_000);
  log(`router: the store alone (machine ${(quiet.busy * 100).toFixed(0)}% of a core busy after ${(quiet.waitedMs / 1000).toFixed(1)} s of waiting for quiet)`);
  const store: StoreRun[] = [];
  for (const batch of config.storeBatches) store.push(await measureStore(batch, config.storeMs));
  log(`router: through the bus, relais start with and without its router${config.mosquitto ? ', Mosquitto with a router process and without' : ''}`);
  const peers = await runPeers({ ...config.peers, contenders: routerContenders(config.mosquitto) });
  const checks: HistoryCheck[] = [];
  for (const broker of peers.brokers) {
    if (!broker.history) continue;
    const result = peers.results.find((r) => r.contender.broker === broker.kind);
    const sent = result?.totals?.sent ?? 0;
    const answered = result?.totals?.received ?? 0;
    const check: HistoryCheck = { kind: broker.kind, sent, answered, ...(result?.served !== undefined && { served: result.served }), lostCommands: NaN, lostFinals: NaN };
    try {
      check.counts = countHistory(broker.history.database, ACTION);
      check.lostCommands = sent - (check.counts.byKind.command ?? 0);
      check.lostFinals = answered - (check.counts.byKind.final ?? 0);
    } catch (error) {
      check.error = (error as Error).message;
    }
    broker.history.remove();
    checks.push(check);
  }
  const failed =
    peers.results.some((r) => r.failed) ||
    peers.leftovers.length > 0 ||
    checks.some((c) => c.error !== undefined || c.lostCommands !== 0 || c.lostFinals !== 0 || (c.counts?.commandTokens ?? 0) !== (c.counts?.byKind.command ?? -1));
  return { config, store, peers, checks, failed };
}

/** A command and its final as bench/peers/relais.ts sends them (envelope fields of protocol §3), through the recorder's rowOf. */
function messages(n: number): ReceivedMessage[] {
  const token = `${n.toString(36)}-${Math.random().toString(36).slice(2, 12)}-peers-bench`;
  const ts = Date.now();
  const command = { v: 1, type: 'command', source: 'peers-relais-relais-start-r', destination: '*', token, payload: makePayload(n), acceptBy: ts + 2000, ts } as const;
  const final = { v: 1, type: 'response', source: 'peers-relais-relais-start-h', destination: command.source, token, code: 0, final: true, payload: makePayload(n), ts } as const;
  return [
    { topic: `${ACTION}/request`, envelope: command, retained: false, qos: 0, raw: Buffer.from(JSON.stringify(command)) },
    { topic: `${ACTION}/response/${command.source}`, envelope: final, retained: false, qos: 0, raw: Buffer.from(JSON.stringify(final)) },
  ];
}

let pool: ReceivedMessage[] | undefined;
/** Made once, beforehand: enough distinct messages for any window (a repeat would be skipped, not stored); each file is fresh. */
function messagePool(): ReceivedMessage[] {
  if (!pool) {
    pool = [];
    for (let n = 0; pool.length < 400_000; n++) pool.push(...messages(n));
  }
  return pool;
}

/** Rows per second into a fresh file, `batch` rows per transaction, for `durationMs`: appended alone, and made by rowOf then appended. */
async function measureStore(batch: number, durationMs: number): Promise<StoreRun> {
  const timed = async (withRowOf: boolean): Promise<number> => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bench-store-'));
    const store = new SqliteHistoryStore(path.join(dir, 'history.db'));
    try {
      const pool = messagePool();
      const rows = withRowOf ? [] : pool.map((message) => rowOf(message, MAX_DATA_BYTES)!);
      let next = 0;
      let stored = 0;
      const start = performance.now();
      while (performance.now() - start < durationMs && next + batch <= pool.length) {
        const slice = withRowOf ? pool.slice(next, next + batch).map((message) => rowOf(message, MAX_DATA_BYTES)!) : rows.slice(next, next + batch);
        stored += (await store.append(slice)).length;
        next += batch;
      }
      const elapsed = performance.now() - start;
      if (stored !== next) throw new Error(`store alone: ${next} rows appended, ${stored} stored`);
      return (stored / elapsed) * 1000;
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const run = { batch, appendRowsPerSec: await timed(false), recorderRowsPerSec: await timed(true) };
  log(`router: store alone, batch ${batch}: ${rate(run.appendRowsPerSec)} rows/s appended, ${rate(run.recorderRowsPerSec)} with rowOf`);
  return run;
}

/** Rows stored per second in each load window, and how far behind the requests the history was at its end. */
function windowRows(f: Figures): { rates: number[]; perRequest: number[]; behind: number[]; drainMs: number[] } {
  const rates: number[] = [];
  const perRequest: number[] = [];
  const behind: number[] = [];
  const drainMs: number[] = [];
  for (const load of f.result.loads) {
    if (!load.history) continue;
    const stored = load.history.after - load.history.before;
    rates.push((stored / load.history.elapsedMs) * 1000);
    // Every request is a command row and a final row (an echo answered in the same turn is not acknowledged apart).
    perRequest.push(stored / load.samples.length);
    behind.push(load.totals.sent + load.totals.received - load.history.after);
    drainMs.push(load.history.drainMs);
  }
  return { rates, perRequest, behind, drainMs };
}

const median = (values: number[]) => summarize(values).p50;
const range = (values: number[]) => (values.length > 1 ? ` (${rate(Math.min(...values))}–${rate(Math.max(...values))})` : '');

export function routerTables(run: RouterResult): Table[] {
  const all = run.peers.results.map(figures);
  const find = (kind: PeerBrokerKind) => all.find((f) => f.result.contender.broker === kind && !f.result.skipped);
  const tables: Table[] = [];

  const recording: string[][] = run.store.map((s) => [`store alone (one process), ${s.batch} row(s) per transaction`, rate(s.appendRowsPerSec), `${rate(s.recorderRowsPerSec)} with rowOf`, '', '', '']);
  for (const kind of ['relais-start', 'mosquitto-router'] as const) {
    const f = find(kind);
    if (!f || f.result.loads.length === 0) continue;
    const rows = windowRows(f);
    recording.push([
      kind === 'relais-start' ? 'router inside `relais start` (in-memory stream), 100 in flight' : 'router as its own process on Mosquitto, 100 in flight',
      `${rate(median(rows.rates))}${range(rows.rates)}`,
      '',
      `${rate(f.tput)}`,
      median(rows.perRequest).toFixed(2),
      `${rate(Math.max(...rows.behind))}, stored ${(Math.max(...rows.drainMs) / 1000).toFixed(1)} s later`,
    ]);
  }
  tables.push({
    title: 'Router: rows into SQLite, the store alone and the router under a command flood',
    columns: ['what', 'rows/s stored (median; lowest–highest)', 'recorder work in-process', 'req/s of the flood', 'rows stored in the window per request answered in it', 'rows behind the requests at the end of a window (worst), and the time to store them'],
    rows: recording,
    notes: [
      `store alone: SqliteHistoryStore.append (WAL, synchronous NORMAL, 7 indexes) on a fresh file per batch size, ${run.config.storeMs} ms each, rows of a ~95-byte payload made by the recorder's rowOf (sha1 digest, payload cut at 8 KiB) from a command and a final as the library sends them; "with rowOf": rowOf timed too`,
      'router: rows stored during each load window (the history file\'s max(id) read by the benchmark, read-only, before and after the window) / the time between the two reads; the flood is the Relais requester and handler, each its own process, 100 requests in flight',
      'rows behind: requests sent + answered by the end of a window (one command and one final row each) minus the rows stored by then; what the router still had to store. The benchmark waits for it (row count still for 0.5 s) before the next window, so a lagging router never competes with the next set-up',
    ],
  });

  tables.push({
    title: 'Router: rows lost (the history file read after the flood stopped and the router flushed)',
    columns: ['broker', 'requests sent / answered / served', 'command rows', 'final rows', 'other rows of the action', 'distinct tokens (command / final)', 'lost (command / final)'],
    rows: run.checks.map((c) => {
      const k = c.counts;
      const others = k ? Object.entries(k.byKind).filter(([kind]) => kind !== 'command' && kind !== 'final').map(([kind, n]) => `${kind} ${n}`).join(', ') || 'none' : '';
      return [
        BROKER_LABELS[c.kind],
        `${c.sent.toLocaleString('en-US')} / ${c.answered.toLocaleString('en-US')} / ${c.served?.toLocaleString('en-US') ?? '?'}`,
        k ? (k.byKind.command ?? 0).toLocaleString('en-US') : `**unreadable: ${c.error}**`,
        k ? (k.byKind.final ?? 0).toLocaleString('en-US') : '',
        others,
        k ? `${k.commandTokens.toLocaleString('en-US')} / ${k.finalTokens.toLocaleString('en-US')}` : '',
        k ? `${c.lostCommands === 0 && c.lostFinals === 0 ? '0 / 0' : `**${c.lostCommands} / ${c.lostFinals}**`}` : '',
      ];
    }),
    notes: [
      'after the last round the benchmark waits until the row count stays still for 0.5 s, then stops the broker (SIGTERM: relais start / relais router store what they hold and exit), then opens history.db read-only and counts the rows of action bench/echo by kind',
      'lost: requests sent minus command rows, requests answered minus final rows; every request of the run counts (warm-up, sequential and load phases)',
    ],
  });

  const pairs: Array<[PeerBrokerKind, PeerBrokerKind, string]> = [
    ['relais-start', 'relais-start-no-router', 'relais start (router in the broker process)'],
    ['mosquitto-router', 'mosquitto', 'Mosquitto (router process beside it)'],
  ];
  const cost: string[][] = [];
  for (const [on, off, label] of pairs) {
    const a = find(on);
    const b = find(off);
    if (!a || !b) continue;
    const cpu = (f: Figures) => `${pct(f.cpuPercent.broker ?? NaN)}${f.cpuPercent.router !== undefined ? ` + router ${pct(f.cpuPercent.router)}` : ''} / ${pct(f.cpuPercent.requester)} / ${pct(f.cpuPercent.handler)}`;
    for (const [f, state] of [[a, 'router on'], [b, 'router off']] as const) {
      cost.push([
        label,
        state,
        `${ms(f.seq.p50)} / ${ms(f.seq.p99)}`,
        f.result.loads.length > 1 ? `${rate(f.tput)} (${rate(f.tputRange[0])}–${rate(f.tputRange[1])})` : rate(f.tput),
        `${ms(f.loaded.p50)} / ${ms(f.loaded.p99)}`,
        cpu(f),
        f.cpuPerRequest.toFixed(0),
        `${pct(f.cpuPercent.others)}${f.result.repeated ? `, ${f.result.repeated} window(s) run again` : ''}`,
        f.result.failed ? `**FAILED**: ${f.result.failed}` : `${f.result.totals?.sent.toLocaleString('en-US')} sent = answered = served`,
      ]);
    }
    cost.push([label, '**on / off**', `${ratio(a.seq.p50 / b.seq.p50)} / ${ratio(a.seq.p99 / b.seq.p99)}`, `**${ratio(a.tput / b.tput)}**`, `${ratio(a.loaded.p50 / b.loaded.p50)} / ${ratio(a.loaded.p99 / b.loaded.p99)}`, '', ratio(a.cpuPerRequest / b.cpuPerRequest), '', '']);
  }
  const c = run.peers.config;
  tables.push({
    title: 'Router: its cost on the request path (router on / off, same requester and handler processes)',
    columns: ['broker', 'router', 'sequential p50 / p99 (ms)', `req/s, ${c.inFlight} in flight (median round; lowest–highest)`, 'p50 / p99 under that load (ms)', 'CPU % broker process / requester / handler', 'CPU µs per request (all processes)', 'CPU % rest of the machine', 'checked'],
    rows: cost,
    notes: [
      `${c.rounds} round(s), interleaved: per round every set-up in turn (order reversed every other round), each a warm-up, ${c.sequential} sequential requests, then ${c.loadMs} ms with ${c.inFlight} in flight (the peers harness, bench/scenarios/peers.ts)`,
      'CPU: percent of one core during the load windows (2 cores in all); "broker process" for relais start is the broker and the router together (one Node process); the Mosquitto router process is given apart',
    ],
  });
  return tables;
}
