/**
 * Scenario "sites" (protocol §13): what a link between a site and its central costs, every
 * client and every `relais start` in its own process (the compiled CLI, bin/relais.js).
 *
 * 1. Requests across a link: the peers harness (bench/scenarios/peers.ts) with the Relais
 *    requester and handler processes (bench/peers/relais.ts), in interleaved rounds, on three
 *    set-ups: the requester on a central `relais start` and the handler on a site `relais start
 *    --site bench-site --uplink <central>` (pull, loopback, no added latency); both on that
 *    site (the same pair of starts, nothing crossing the link); both on a lone `relais start`.
 *    Every start runs its router, which records every request it sees: across the link both
 *    the central's and the site's do. After the run each history file is counted.
 * 2. The link's CPU per message: the site process's CPU per request when the request crosses
 *    the link, minus the same process's CPU per request when both clients are on the site
 *    (its broker routes one command and one answer either way, and its router records both;
 *    what differs is the link: the WAN connection's MQTT.js client and the in-process one).
 * 3. Sync: a site whose history already holds `syncRows` rows (written before it starts with
 *    the router's own store, rows made by the recorder's rowOf), a central with a short
 *    `--site-sync-interval`, then the site with `--uplink`: the time from the link up (the
 *    site's `link up` line) until the central's `relais/sites/get` says its position is the
 *    site's last row with lag 0; then, the starts stopped, the central's history file is
 *    counted read-only (rows with `site` = bench-site). On loopback, and across a WAN proxy
 *    (test/testkit/wan-proxy.ts) adding 50 ± 10 ms each way.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import type { ReceivedMessage } from '../../src/client/types.js';
import type * as RecorderModule from '../../src/router/recorder.js';
import type * as RouterModule from '../../src/router/index.js';
import { ROUTER_ID } from '../../src/protocol/history-feed.js';
import { SITES_ACTION, type SitesAnswer, type SiteSyncState } from '../../src/protocol/sites.js';
import { startWanProxy, type Latency, type WanProxy } from '../../test/testkit/wan-proxy.js';
import { log, ms, processCpuSeconds, rate, ratio, sleep, waitForQuiet, type Table } from '../lib/util.js';
import { relais } from '../lib/relais.js';
import { BENCH_SITE, BROKER_LABELS, startSitePair, type PeerBrokerKind, type RunningStart } from '../peers/brokers.js';
import { sitesContenders } from '../peers/contenders.js';
import { countHistory, type HistoryCounts } from '../peers/history.js';
import { makePayload } from '../peers/protocol.js';
import { checkedCell, figures, pct, type Figures } from '../peers/report.js';
import { runPeers, type PeersConfig, type PeersResult } from './peers.js';

// The compiled code, as bench/lib/relais.ts loads the library (dist/ is what users run).
const { SqliteHistoryStore } = (await import(new URL('../../dist/router/index.js', import.meta.url).href)) as typeof RouterModule;
const { rowOf } = (await import(new URL('../../dist/router/recorder.js', import.meta.url).href)) as typeof RecorderModule;

/** The action of bench/peers/relais.ts. */
const ACTION = 'bench/echo';
/** ROUTER_DEFAULTS.maxDataBytes. */
const MAX_DATA_BYTES = 8192;
/** How often the benchmark asks the central's router where its sync stands. */
const POLL_MS = 100;
const WAN: Latency = { ms: 50, jitterMs: 10 };
const logger = pino({ name: 'relais-bench-sites', level: process.env.RELAIS_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));

export interface SitesConfig {
  peers: Omit<PeersConfig, 'contenders' | 'filter'>;
  /** Rows in the site's history before it starts. */
  syncRows: number;
  /** Also the sync across a 50 ± 10 ms WAN. */
  wan: boolean;
  /** The longest a catch-up may take (also the central's --site-sync-timeout). */
  syncCapMs: number;
}

export interface RowCheck {
  kind: PeerBrokerKind;
  where: 'central' | 'site' | 'alone';
  counts?: HistoryCounts;
  error?: string;
}

export interface SyncRun {
  wan?: Latency;
  rows: number;
  /** The site's last row id (what the central's position must reach). */
  lastId: number;
  /** From the site's `link up` line to the first relais/sites/get answer at the last row with lag 0. */
  catchUpMs?: number;
  /** The central's last sync as it recorded it (its own time, rows stored). */
  lastSync?: SiteSyncState['lastSync'];
  /** CPU ms of the two starts during the catch-up. */
  cpuMs?: { central: number; site: number };
  /** The central's history after it stopped: rows with site = bench-site, distinct (token, digest) among them, rows in all. */
  stored?: { siteRows: number; distinct: number; total: number };
  /** The WAN proxy's bytes each way. */
  wanBytes?: { toTarget: number; fromTarget: number };
  error?: string;
}

export interface SitesResult {
  config: SitesConfig;
  peers: PeersResult;
  checks: RowCheck[];
  syncs: SyncRun[];
  failed: boolean;
}

export async function runSites(config: SitesConfig): Promise<SitesResult> {
  log('sites: requests across a link, on the site alone and on a lone relais start');
  const peers = await runPeers({ ...config.peers, contenders: sitesContenders() });
  const checks: RowCheck[] = [];
  for (const broker of peers.brokers) {
    const databases: Array<[RowCheck['where'], string]> =
      broker.kind === 'relais-sites-pull' ? [['central', broker.history!.database], ['site', broker.site!.database]] : broker.kind === 'relais-sites-on-site' ? [['site', broker.site!.database]] : broker.history ? [['alone', broker.history.database]] : [];
    for (const [where, database] of databases) {
      const check: RowCheck = { kind: broker.kind, where };
      try {
        check.counts = countHistory(database, ACTION);
      } catch (error) {
        check.error = (error as Error).message;
      }
      checks.push(check);
    }
    broker.history?.remove();
  }

  const syncs: SyncRun[] = [];
  const template = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bench-sites-rows-'));
  try {
    const written = performance.now();
    const lastId = await writeRows(path.join(template, 'history.db'), config.syncRows);
    log(`sites: ${config.syncRows.toLocaleString('en-US')} rows written into a site history in ${((performance.now() - written) / 1000).toFixed(1)} s`);
    for (const wan of config.wan ? [undefined, WAN] : [undefined]) {
      const quiet = await waitForQuiet(5000);
      log(`sites: sync of ${config.syncRows.toLocaleString('en-US')} rows${wan ? ` across a ${wan.ms} ± ${wan.jitterMs} ms WAN` : ' on loopback'} (machine ${(quiet.busy * 100).toFixed(0)}% of a core busy)`);
      syncs.push(await measureSync(template, config, lastId, wan));
    }
  } finally {
    fs.rmSync(template, { recursive: true, force: true });
  }

  const failed =
    peers.results.some((r) => r.failed || r.skipped) ||
    peers.leftovers.length > 0 ||
    checks.some((c) => c.error !== undefined) ||
    syncs.some((s) => s.error !== undefined || s.stored?.siteRows !== s.rows || s.stored?.distinct !== s.rows);
  return { config, peers, checks, syncs, failed };
}

/** Rows as the recorder makes them from the traffic of a few agents: commands and their finals, several actions and clients. */
async function writeRows(file: string, count: number): Promise<number> {
  const actions = ['system/exec', 'system/file/put', 'poller/check/host', 'poller/check/service', ACTION];
  const store = new SqliteHistoryStore(file);
  try {
    let last = 0;
    const start = Date.now() - count * 10;
    for (let n = 0; n * 2 < count; ) {
      const batch: NonNullable<ReturnType<typeof rowOf>>[] = [];
      for (; batch.length < 1000 && n * 2 < count; n++) {
        const action = actions[n % actions.length]!;
        const requester = `operator-${n % 7}`;
        const handler = `agent-${n % 13}`;
        const token = `${n.toString(36)}-${Math.random().toString(36).slice(2, 12)}-sites-bench`;
        const ts = start + n * 20;
        const command = { v: 1, type: 'command', source: requester, destination: handler, token, payload: makePayload(n), acceptBy: ts + 2000, ts } as const;
        const final = { v: 1, type: 'response', source: handler, destination: requester, token, code: 0, final: true, payload: makePayload(n), ts: ts + 3 } as const;
        const messages: ReceivedMessage[] = [
          { topic: `${action}/request/${handler}`, envelope: command, retained: false, qos: 0, raw: Buffer.from(JSON.stringify(command)) },
          { topic: `${action}/response/${requester}`, envelope: final, retained: false, qos: 0, raw: Buffer.from(JSON.stringify(final)) },
        ];
        for (const message of messages.slice(0, count - n * 2)) batch.push(rowOf(message, MAX_DATA_BYTES)!);
      }
      const stored = await store.append(batch);
      last = stored[stored.length - 1]?.id ?? last;
      if (stored.length !== batch.length) throw new Error(`site rows: ${batch.length} appended, ${stored.length} stored`);
    }
    return last;
  } finally {
    await store.close();
  }
}

/** One catch-up: a fresh central, then a site whose history is a copy of the template's. */
async function measureSync(template: string, config: SitesConfig, lastId: number, wan: Latency | undefined): Promise<SyncRun> {
  const run: SyncRun = { ...(wan && { wan }), rows: config.syncRows, lastId };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bench-sites-sync-'));
  fs.mkdirSync(path.join(dir, 'site'), { mode: 0o700 });
  for (const name of fs.readdirSync(template)) fs.copyFileSync(path.join(template, name), path.join(dir, 'site', name));
  let proxy: WanProxy | undefined;
  let observer: Awaited<ReturnType<typeof relais.connect>> | undefined;
  let pair: Awaited<ReturnType<typeof startSitePair>> | undefined;
  try {
    pair = await startSitePair('sites sync', dir, {
      centralArgs: ['--site-sync-interval', '1000', '--site-sync-timeout', String(config.syncCapMs)],
      noWaitForLink: true,
      beforeSite: async (central: RunningStart) => {
        observer = await relais.connect({ id: 'bench-sites-observer', broker: central.url, logger });
      },
      ...(wan && {
        uplinkFor: async (port: number) => {
          proxy = await startWanProxy(port, { toTarget: wan, fromTarget: wan });
          return proxy.url;
        },
      }),
    });
    const { central, site } = pair;
    const upAt = await site.line(new RegExp(`site ${BENCH_SITE}: link up`), 30_000);
    const cpu0 = { central: processCpuSeconds(central.pid) ?? 0, site: processCpuSeconds(site.pid) ?? 0 };
    const ask = async (): Promise<SiteSyncState | undefined> => {
      const answer = (await observer!.request(SITES_ACTION, { site: BENCH_SITE }, { target: ROUTER_ID, timeout: 10_000 })) as SitesAnswer;
      return answer.sites[BENCH_SITE]?.sync;
    };
    let sync: SiteSyncState | undefined;
    for (;;) {
      sync = await ask();
      if (sync && sync.position >= lastId && sync.lag === 0) break;
      if (performance.now() - upAt > config.syncCapMs) throw new Error(`not caught up ${config.syncCapMs} ms after the link came up: ${JSON.stringify(sync)}`);
      await sleep(POLL_MS);
    }
    run.catchUpMs = performance.now() - upAt;
    run.cpuMs = { central: ((processCpuSeconds(central.pid) ?? 0) - cpu0.central) * 1000, site: ((processCpuSeconds(site.pid) ?? 0) - cpu0.site) * 1000 };
    // The sync ends right after its last page: its record (time, rows) follows.
    for (let tries = 0; !(sync?.lastSync && sync.runningSince === undefined) && tries < 50; tries++) {
      await sleep(POLL_MS);
      sync = await ask();
    }
    if (sync?.lastSync) run.lastSync = sync.lastSync;
    log(`sites: caught up ${run.rows.toLocaleString('en-US')} rows in ${(run.catchUpMs / 1000).toFixed(1)} s${wan ? ' across the WAN' : ''} (the central's sync: ${JSON.stringify(sync?.lastSync)})`);
  } catch (error) {
    run.error = (error as Error).message;
    log(`sites: sync FAILED: ${run.error}`);
  } finally {
    await observer?.close().catch(() => {});
    await pair?.close();
    if (proxy) run.wanBytes = { ...proxy.bytes };
    await proxy?.close();
  }
  try {
    const db = new Database(path.join(dir, 'central', 'history.db'), { readonly: true, fileMustExist: true });
    try {
      run.stored = {
        siteRows: db.prepare('SELECT count(*) FROM history WHERE site = ?').pluck().get(BENCH_SITE) as number,
        distinct: db.prepare('SELECT count(*) FROM (SELECT DISTINCT token, digest FROM history WHERE site = ?)').pluck().get(BENCH_SITE) as number,
        total: db.prepare('SELECT count(*) FROM history').pluck().get() as number,
      };
    } finally {
      db.close();
    }
  } catch (error) {
    run.error ??= `the central's history: ${(error as Error).message}`;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return run;
}

/** CPU µs per request answered in the load windows, of one process (picked from each window). */
function perRequest(f: Figures, pick: (load: Figures['result']['loads'][number]) => number | undefined): number {
  const answered = f.result.loads.reduce((total, load) => total + load.samples.length, 0);
  const cpuMs = f.result.loads.reduce((total, load) => total + (pick(load) ?? 0), 0);
  return answered ? (cpuMs * 1000) / answered : NaN;
}

export function sitesTables(run: SitesResult): Table[] {
  const all = run.peers.results.map(figures);
  const find = (kind: PeerBrokerKind) => all.find((f) => f.result.contender.broker === kind && !f.result.skipped && f.result.rounds > 0);
  const link = find('relais-sites-pull');
  const onSite = find('relais-sites-on-site');
  const alone = find('relais-start-no-web');
  const c = run.peers.config;
  const tables: Table[] = [];

  const places: Record<string, string> = {
    'relais-sites-pull': 'requester on the central, handler on the site',
    'relais-sites-on-site': 'both on the site (the link idle)',
    'relais-start-no-web': 'both on the lone start',
  };
  const cpuCell = (f: Figures) => `${pct(f.cpuPercent.broker ?? NaN)} / ${f.cpuPercent.site !== undefined ? pct(f.cpuPercent.site) : '–'} / ${pct(f.cpuPercent.requester)} / ${pct(f.cpuPercent.handler)}`;
  const rows = ([link, onSite, alone].filter(Boolean) as Figures[]).map((f) => [
    BROKER_LABELS[f.result.contender.broker!],
    places[f.result.contender.broker!]!,
    `${ms(f.seq.p50)} / ${ms(f.seq.p99)}`,
    f.result.loads.length > 1 ? `${rate(f.tput)} (${rate(f.tputRange[0])}–${rate(f.tputRange[1])})` : rate(f.tput),
    `${ms(f.loaded.p50)} / ${ms(f.loaded.p99)}`,
    cpuCell(f),
    f.cpuPerRequest.toFixed(0),
    `${pct(f.cpuPercent.others)}${f.result.repeated ? `, ${f.result.repeated} window(s) run again` : ''}`,
    checkedCell(f),
  ]);
  for (const f of all.filter((f) => f.result.failed || f.result.skipped)) rows.push([BROKER_LABELS[f.result.contender.broker!], '', `**${f.result.skipped ? 'SKIPPED' : 'FAILED'}**: ${f.result.skipped ?? f.result.failed}`, '', '', '', '', '', '']);
  const ratioRow = (a: Figures, b: Figures, label: string) => [
    label,
    '',
    `${ratio(a.seq.p50 / b.seq.p50)} / ${ratio(a.seq.p99 / b.seq.p99)}`,
    `**${ratio(a.tput / b.tput)}**`,
    `${ratio(a.loaded.p50 / b.loaded.p50)} / ${ratio(a.loaded.p99 / b.loaded.p99)}`,
    '',
    ratio(a.cpuPerRequest / b.cpuPerRequest),
    '',
    '',
  ];
  if (link && alone) rows.push(ratioRow(link, alone, '**link / alone**'));
  if (link && onSite) rows.push(ratioRow(link, onSite, '**link / on the site**'));
  tables.push({
    title: 'Sites: a request across a link (central → site handler → central) against the same processes on one start',
    columns: ['set-up', 'clients', 'sequential p50 / p99 (ms)', `req/s, ${c.inFlight} in flight (median round; lowest–highest)`, 'p50 / p99 under that load (ms)', 'CPU % central (or lone start) / site / requester / handler', 'CPU µs per request (all processes)', 'CPU % rest of the machine', 'checked'],
    rows,
    notes: [
      `${c.rounds} round(s), interleaved: per round every set-up in turn (order reversed every other round), each a warm-up, ${c.sequential} sequential requests, then ${c.loadMs} ms with ${c.inFlight} in flight (the peers harness, bench/scenarios/peers.ts); the Relais requester and handler of bench/peers/relais.ts, each its own process`,
      `processes: the central is \`relais start --no-web\` (its broker and its router, one process); the site is \`relais start --no-web --site ${BENCH_SITE} --uplink <the central's mqtt:// URL>\` (its broker, its router, and the link's end: the WAN connection to the central and the in-process connection to its own broker), loopback, no added latency; the lone start is \`relais start --no-web\`. Each start records its history (SQLite) and keeps every row of the run (--keep-rows)`,
      'across the link both routers record every request (the central\'s as the command and the answer cross its broker, the site\'s as they cross the site\'s): two SQLite writers on the request path, counted below',
      'CPU: percent of one core during the load windows (2 cores in all); the site column is empty for the lone start; the central in "both on the site" only holds the presences the link carried',
    ],
  });

  tables.push({
    title: 'Sites: rows each router recorded (history files counted after the starts stopped)',
    columns: ['set-up', 'history', 'requests sent / answered', 'command rows', 'final rows', 'distinct tokens (command / final)', 'missing (command / final)'],
    rows: run.checks.map((check) => {
      const f = all.find((x) => x.result.contender.broker === check.kind);
      const sent = f?.result.totals?.sent ?? 0;
      const answered = f?.result.totals?.received ?? 0;
      const k = check.counts;
      const lost = k ? [sent - (k.byKind.command ?? 0), answered - (k.byKind.final ?? 0)] : [NaN, NaN];
      return [
        BROKER_LABELS[check.kind],
        check.where === 'central' ? "the central's" : check.where === 'site' ? "the site's" : "the lone start's",
        `${sent.toLocaleString('en-US')} / ${answered.toLocaleString('en-US')}`,
        k ? (k.byKind.command ?? 0).toLocaleString('en-US') : `**unreadable: ${check.error}**`,
        k ? (k.byKind.final ?? 0).toLocaleString('en-US') : '',
        k ? `${k.commandTokens.toLocaleString('en-US')} / ${k.finalTokens.toLocaleString('en-US')}` : '',
        k ? (lost[0] === 0 && lost[1] === 0 ? '0 / 0' : `**${lost[0]} / ${lost[1]}**`) : '',
      ];
    }),
    notes: ['every request of the run counts (warm-up, sequential and load phases); rows of action bench/echo by kind'],
  });

  if (link && onSite) {
    const siteLink = perRequest(link, (load) => load.cpuMs.site);
    const siteLocal = perRequest(onSite, (load) => load.cpuMs.site);
    const centralLink = perRequest(link, (load) => load.cpuMs.broker);
    const loneStart = alone ? perRequest(alone, (load) => load.cpuMs.broker) : NaN;
    const linkPerMessage = (siteLink - siteLocal) / 2;
    tables.push({
      title: "Sites: the link's CPU per message (the site process, request across the link against the same request between two clients of the site)",
      columns: ['process', 'request across the link (µs per request)', 'both clients on the site (µs per request)', 'difference (µs per request)', 'per message carried (command down, answer up)'],
      rows: [
        [`site (\`relais start --site ${BENCH_SITE} --uplink\`: broker, router, link)`, siteLink.toFixed(0), siteLocal.toFixed(0), (siteLink - siteLocal).toFixed(0), `**${linkPerMessage.toFixed(0)} µs**`],
        ['central (broker, router) against the lone start (broker, router)', centralLink.toFixed(0), alone ? `${loneStart.toFixed(0)} (lone start)` : '', alone ? (centralLink - loneStart).toFixed(0) : '', ''],
      ],
      notes: [
        'per process: its CPU during the load windows (/proc/<pid>/stat) / the requests answered in them',
        'either way the site\'s broker routes one command and one answer of each request and its router records both; across the link the command arrives through the link (its WAN MQTT.js connection, then the in-process connection to the broker) and the answer leaves the same way; between two clients of the site both come and go on TCP sockets of the broker. The difference is the link\'s work (parse, the remembered token, publish on the other connection, both ways) net of one TCP client less on the broker; halved: per message carried (each request is a command down and its final up: an echo answered in the same turn has no separate acknowledgement)',
        'central row: what the central process spends per request when the handler is across the link (it routes the command to the link\'s connection and the answer back, and records both) against the lone start with both clients on it',
      ],
    });
  }

  tables.push({
    title: `Sites: sync of a site's history of ${run.config.syncRows.toLocaleString('en-US')} rows into its central (catch-up after the link comes up)`,
    columns: ['link', 'catch-up (link up → position at the last row, lag 0)', 'rows/s', "the central's sync as it recorded it (rows, ms)", 'CPU central / site during the catch-up (s; µs per row)', "rows in the central's history with site = bench-site (distinct)", 'checked'],
    rows: run.syncs.map((s) => {
      const seconds = s.catchUpMs !== undefined ? `**${(s.catchUpMs / 1000).toFixed(2)} s**` : 'n/a';
      const perRow = (cpu: number) => `${(cpu / 1000).toFixed(1)} s; ${((cpu * 1000) / s.rows).toFixed(0)}`;
      const ok = !s.error && s.stored?.siteRows === s.rows && s.stored.distinct === s.rows;
      return [
        s.wan ? `pull across a WAN proxy, ${s.wan.ms} ± ${s.wan.jitterMs} ms each way (RTT ~${s.wan.ms * 2} ms)` : 'pull, loopback',
        seconds,
        s.catchUpMs !== undefined ? `**${rate((s.rows / s.catchUpMs) * 1000)}**` : '',
        s.lastSync ? `${s.lastSync.outcome}, ${s.lastSync.rows.toLocaleString('en-US')} rows in ${rate(s.lastSync.ms)} ms` : '',
        s.cpuMs ? `${perRow(s.cpuMs.central)} / ${perRow(s.cpuMs.site)}` : '',
        s.stored ? `${s.stored.siteRows.toLocaleString('en-US')} (${s.stored.distinct.toLocaleString('en-US')}) of ${s.stored.total.toLocaleString('en-US')} in all` : '',
        ok ? `exactly ${s.rows.toLocaleString('en-US')}` : `**FAILED**: ${s.error ?? `${s.stored?.siteRows ?? '?'} rows for ${s.rows}`}`,
      ];
    }),
    notes: [
      `the site's history: ${run.config.syncRows.toLocaleString('en-US')} rows (commands and their finals of five actions, ~95-byte payloads) written before it starts with the router's SqliteHistoryStore, rows made by the recorder's rowOf; the central starts with --site-sync-interval 1000, then the site with --uplink; both \`relais start --no-web\`, each its own process`,
      `catch-up: from the moment the benchmark reads the site's \`link up\` line until the first answer of the central's router to relais/sites/get (asked every ${POLL_MS} ms by a client of the central) whose sync position is the site's last row (id ${run.syncs[0]?.lastId.toLocaleString('en-US') ?? '?'}) with lag 0; rows/s = rows / that time. The central's own figure (its site.sync record) starts when its sync takes the lock, after it saw the link up`,
      'the sync: relais/history/get pages of 1,000 rows with digests targeted at site:bench-site, through the link, each page stored with the position in one transaction (protocol §13.5); checked: the central\'s history.db, opened read-only after it stopped, holds exactly that many rows with site = bench-site, each (token, digest) once',
      ...run.syncs.filter((s) => s.wanBytes).map((s) => `WAN bytes: ${(s.wanBytes!.toTarget / 1e6).toFixed(1)} MB site → central, ${(s.wanBytes!.fromTarget / 1e6).toFixed(1)} MB central → site`),
    ],
  });
  return tables;
}
