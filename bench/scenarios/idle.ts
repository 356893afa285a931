/**
 * Scenario "idle": N connected idle Relais clients on `relais start` with its router (the
 * embedded broker and the router in one process, bench/peers/brokers.ts `relais-start`), the
 * clients spread over a few fleet processes (bench/peers/idle-fleet.ts), each holding many,
 * each client at the library's defaults (two connections: main and real-time lane).
 *
 * Per round, with a fresh `relais start`:
 * - its RSS before any client, then after N connected and settled (MB, and KB per client);
 * - from the first connect to the registry counting all N `alive` (its detail notifications,
 *   protocol §11.3, read by a watcher client in this process), then whether
 *   `relais/clients/list/get` answers with all N (it is one message, under the 1 MiB limit of
 *   protocol §3.4, or not);
 * - a fresh client connected afterwards (in this process): from its `connect()` call to its
 *   directory holding all N alive (protocol §7.2);
 * - CPU of every process during an idle window afterwards (anything polling shows here;
 *   keep-alives are one PINGREQ per connection per 30 s).
 *
 * File descriptors: the broker holds 2N sockets and each fleet process 2N/processes. The
 * limit is raised for this process (inherited by every child) with `prlimit` (root can raise
 * the hard limit; others get at most theirs, and the run says so).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Bus } from '../../src/index.js';
import { REGISTRY_ACTIONS, REGISTRY_CATEGORIES, type ClientDetailPayload, type ClientListPayload } from '../../src/protocol/registry.js';
import { relaisConnect } from '../lib/clients.js';
import { log, machineCpuSeconds, processCpuSeconds, sleep, waitForQuiet, withDeadline, type Table } from '../lib/util.js';
import { startPeerBroker, type PeerBroker } from '../peers/brokers.js';
import { PeerProcess } from '../peers/process.js';
import type { FleetReply, Reply } from '../peers/protocol.js';

export interface IdleConfig {
  clients: number;
  /** Fleet processes the clients are spread over. */
  processes: number;
  /** Connects in progress at once, per fleet process. */
  concurrency: number;
  rounds: number;
  /** The idle window over which CPU is read. */
  idleMs: number;
  /** Longest wait for all clients to connect and the registry to count them. */
  capMs: number;
  /** Clients without the real-time lane (one connection each). */
  noRealtime?: boolean;
  /** Library clients whose directory follows the presences only on demand (protocol §7.2, idle-fleet.ts --on-demand). */
  onDemand?: boolean;
  /** Foreign peers of protocol §7.4 instead of library clients (idle-fleet.ts --lite): one connection, a presence, no directory. */
  lite?: boolean;
}

export interface IdleRound {
  clients: number;
  connected: number;
  failed: number;
  errors: string[];
  brokerRssBefore: number;
  brokerRssAfter: number;
  /** First connect begun → last connect resolved, over every fleet. */
  connectMs: number;
  /** First connect begun → the registry's detail notifications count all N alive (undefined: not within the cap). */
  registryMs?: number;
  registryCounted: number;
  /** Of those, how many were found by asking relais/clients/detail/get after the notifications stalled. */
  registryPolled: number;
  /** `relais/clients/list/get` after that: how many clients it listed, or why it failed. */
  listGet: { clients: number; ms: number } | { error: string };
  /** A fresh client's connect() call → its directory holds all N alive (undefined: not within the cap). */
  freshMs?: number;
  freshSeen: number;
  fleetRss: number[];
  /** % of a core during the idle window. */
  idleCpu: { broker: number; fleets: number[]; bench: number; others: number; windowMs: number };
  /** The fleets' CPU per connected client while connecting (ms). */
  fleetConnectCpuMs: number;
}

export interface IdleResult {
  config: IdleConfig;
  rounds: IdleRound[];
  fileLimit: string;
  failed: boolean;
}

let live: { broker?: PeerBroker; fleets: PeerProcess[]; buses: Bus[] } | undefined;

/** Ends what a round left running (interrupt, watchdog). */
export async function abortIdle(): Promise<void> {
  if (!live) return;
  await Promise.all(live.fleets.map((fleet) => fleet.close(1000)));
  await Promise.all(live.buses.map((bus) => bus.kill()));
  await live.broker?.close();
}

export async function runIdle(config: IdleConfig): Promise<IdleResult> {
  const lanes = config.noRealtime || config.lite ? 1 : 2;
  const fileLimit = raiseFileLimit(config.clients * lanes + 4096);
  const rounds: IdleRound[] = [];
  let failed = false;
  for (let round = 0; round < config.rounds; round++) {
    log(`idle: round ${round + 1} of ${config.rounds}: ${config.clients} clients over ${config.processes} processes`);
    try {
      const result = await runRound(config, round);
      rounds.push(result);
      if (result.connected < config.clients || result.registryMs === undefined || result.freshMs === undefined) failed = true;
    } catch (error) {
      failed = true;
      log(`idle: round ${round + 1} FAILED: ${(error as Error).stack ?? error}`);
      await abortIdle();
    } finally {
      live = undefined;
    }
  }
  return { config, rounds, fileLimit, failed };
}

async function runRound(config: IdleConfig, round: number): Promise<IdleRound> {
  const state: NonNullable<typeof live> = { fleets: [], buses: [] };
  live = state;
  const prefix = `idle${round}-`;
  const broker = (state.broker = await startPeerBroker('relais-start'));
  try {
    await waitForQuiet(5000, 0.2, 500);
    const brokerRssBefore = rssBytes(broker.pid);

    // The watcher counts the registry's alive fleet clients from its detail notifications (subscribed before anything connects).
    const watcher = await relaisConnect(broker.url, `idle-watch-${round}`);
    state.buses.push(watcher);
    const statuses = new Map<string, string>();
    let alive = 0;
    let allAliveAt: number | undefined;
    await watcher.subscribe(`${REGISTRY_CATEGORIES.detail}/notification`, (message) => {
      const { clients } = message.envelope.payload as ClientDetailPayload;
      for (const [id, detail] of Object.entries(clients)) {
        if (!id.startsWith(prefix)) continue;
        const before = statuses.get(id);
        const after = detail?.status;
        if (before === 'alive') alive--;
        if (after === 'alive') alive++;
        if (after) statuses.set(id, after);
        else statuses.delete(id);
      }
      if (alive >= config.clients) allAliveAt ??= Date.now();
    });

    const per = Math.ceil(config.clients / config.processes);
    const fleetIds = Array.from({ length: config.processes }, (_, index) => Array.from({ length: Math.max(0, Math.min(per, config.clients - index * per)) }, (__, n) => `${prefix}${index}-${n}`));
    const fleets = await Promise.all(
      Array.from({ length: config.processes }, async (_, index) => {
        const count = Math.min(per, config.clients - index * per);
        const args = ['--url', broker.url, '--prefix', `${prefix}${index}-`, '--count', String(count), '--concurrency', String(config.concurrency), ...(config.noRealtime ? ['--no-realtime'] : []), ...(config.onDemand ? ['--on-demand'] : []), ...(config.lite ? ['--lite'] : [])];
        const { peer } = await PeerProcess.start(`idle fleet ${index}`, 'idle-fleet.ts', args);
        state.fleets.push(peer);
        return peer;
      }),
    );
    const fleetCpu0 = fleets.map((fleet) => processCpuSeconds(fleet.pid) ?? 0);

    log(`idle: connecting ${config.clients} clients`);
    const replies = await Promise.all(fleets.map(async (fleet) => expectFleet(await fleet.command({ cmd: 'fleet-connect' }, config.capMs))));
    const connected = replies.reduce((sum, reply) => sum + reply.connected, 0);
    const firstAt = Math.min(...replies.map((reply) => reply.firstAt ?? Infinity));
    const lastAt = Math.max(...replies.map((reply) => reply.lastAt ?? 0));
    const fleetConnectCpuMs = (fleets.reduce((sum, fleet, index) => sum + (processCpuSeconds(fleet.pid) ?? 0) - fleetCpu0[index]!, 0) * 1000) / Math.max(1, connected);
    log(`idle: ${connected} connected in ${((lastAt - firstAt) / 1000).toFixed(1)} s; waiting for the registry to count them (${alive} so far)`);

    // Past ~7,000 clients the registry's list notification is over the 1 MiB limit and, sent first,
    // takes the detail notification down with it (the router logs "registry notification not
    // sent"): once the notifications stall, ask the registry for each client still missing.
    const ids = fleetIds.flat();
    let polled = 0;
    const poll = async () => {
      const missing = ids.filter((id) => statuses.get(id) !== 'alive');
      let next = 0;
      const worker = async () => {
        for (let index = next++; index < missing.length; index = next++) {
          const id = missing[index]!;
          const answer = await watcher.request<ClientDetailPayload>(REGISTRY_ACTIONS.detailGet, { id }, { timeout: 30_000 }).catch(() => undefined);
          if (answer?.clients[id]?.status === 'alive' && statuses.get(id) !== 'alive') {
            statuses.set(id, 'alive');
            alive++;
            polled++;
          }
        }
      };
      await Promise.all(Array.from({ length: 50 }, worker));
      if (alive >= config.clients) allAliveAt ??= Date.now();
    };
    const capAt = firstAt + config.capMs;
    let lastAlive = -1;
    while (allAliveAt === undefined && Date.now() < capAt) {
      if (alive === lastAlive) {
        log(`idle: the registry's notifications stalled at ${alive}; asking it for each missing client (relais/clients/detail/get)`);
        await poll();
      }
      lastAlive = alive;
      await waitFor(() => allAliveAt !== undefined, Math.min(capAt, Date.now() + 2000), () => alive);
    }
    const registryMs = allAliveAt !== undefined ? allAliveAt - firstAt : undefined;
    log(`idle: registry ${registryMs !== undefined ? `counted all ${config.clients} after ${(registryMs / 1000).toFixed(1)} s` : `counted ${alive} of ${config.clients} within the cap`}`);

    const listGet = await timeListGet(watcher, prefix);

    // A fresh client: how long until its directory holds every fleet client alive.
    const freshStart = Date.now();
    const fresh = await relaisConnect(broker.url, `idle-fresh-${round}`, { connectTimeout: 120_000 });
    state.buses.push(fresh);
    const seen = () => fresh.clients().filter((client) => client.id.startsWith(prefix) && client.status === 'alive').length;
    await waitFor(() => seen() >= config.clients, Math.max(capAt, Date.now() + 120_000), seen);
    const freshSeen = seen();
    const freshMs = freshSeen >= config.clients ? Date.now() - freshStart : undefined;
    log(`idle: a fresh client's directory ${freshMs !== undefined ? `held all after ${(freshMs / 1000).toFixed(1)} s` : `held ${freshSeen} of ${config.clients}`}`);

    // Idle: nothing is sent by anyone; what the processes use now is what idling costs.
    await sleep(2000);
    const brokerRssAfter = rssBytes(broker.pid);
    const idleCpu = await idleWindow(broker.pid, fleets, config.idleMs);
    const fleetRss = (await Promise.all(fleets.map(async (fleet) => expectFleet(await fleet.command({ cmd: 'fleet-stats' }, 30_000))))).map((reply) => reply.rssBytes);

    const errors = replies.flatMap((reply) => reply.errors);
    return {
      clients: config.clients,
      connected,
      failed: replies.reduce((sum, reply) => sum + reply.failed, 0),
      errors,
      brokerRssBefore,
      brokerRssAfter,
      connectMs: lastAt - firstAt,
      ...(registryMs !== undefined && { registryMs }),
      registryCounted: alive,
      registryPolled: polled,
      listGet,
      ...(freshMs !== undefined && { freshMs }),
      freshSeen,
      fleetRss,
      idleCpu,
      fleetConnectCpuMs,
    };
  } finally {
    await Promise.all(state.fleets.map((fleet) => fleet.close(5000)));
    await Promise.all(state.buses.map((bus) => withDeadline(bus.close(), 10_000, 'close').catch(() => bus.kill())));
    await broker.close();
    broker.history?.remove();
  }
}

/** One `relais/clients/list/get`: how many of the fleet it lists, and how long it took, or its error. */
async function timeListGet(watcher: Bus, prefix: string): Promise<IdleRound['listGet']> {
  const start = performance.now();
  try {
    const list = await watcher.request<ClientListPayload>(REGISTRY_ACTIONS.listGet, {}, { timeout: 60_000 });
    const clients = Object.entries(list.clients).filter(([id, summary]) => id.startsWith(prefix) && summary.status === 'alive').length;
    return { clients, ms: performance.now() - start };
  } catch (error) {
    const problem = error as Error & { code?: number };
    return { error: `${problem.name}${problem.code !== undefined ? ` (code ${problem.code})` : ''}: ${problem.message.slice(0, 200)}` };
  }
}

/** CPU of the broker, of each fleet process, of this one and of the rest of the machine over `ms` with nothing sent, in % of a core. */
async function idleWindow(brokerPid: number, fleets: PeerProcess[], ms: number): Promise<IdleRound['idleCpu']> {
  const read = () => ({
    broker: processCpuSeconds(brokerPid) ?? 0,
    fleets: fleets.map((fleet) => processCpuSeconds(fleet.pid) ?? 0),
    bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    machine: machineCpuSeconds()?.busy ?? 0,
  });
  const before = read();
  const t0 = performance.now();
  await sleep(ms);
  const after = read();
  const seconds = (performance.now() - t0) / 1000;
  const share = (delta: number) => (delta / seconds) * 100;
  const fleetDeltas = after.fleets.map((cpu, index) => cpu - before.fleets[index]!);
  const ours = after.broker - before.broker + fleetDeltas.reduce((sum, delta) => sum + delta, 0) + (after.bench - before.bench);
  return {
    broker: share(after.broker - before.broker),
    fleets: fleetDeltas.map(share),
    bench: share(after.bench - before.bench),
    others: share(Math.max(0, after.machine - before.machine - ours)),
    windowMs: seconds * 1000,
  };
}

async function waitFor(done: () => boolean, until: number, progress: () => number): Promise<void> {
  let lastLog = Date.now();
  while (!done() && Date.now() < until) {
    await sleep(50);
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log(`idle: … ${progress()} so far`);
    }
  }
}

function expectFleet(reply: Reply): FleetReply {
  if (reply.peer !== 'fleet') throw new Error(`a fleet process answered ${JSON.stringify(reply).slice(0, 300)}`);
  return reply;
}

function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1] ?? NaN) * 1024;
}

/**
 * Raises this process's open-file limit (soft and hard) to at least `need`, with util-linux's
 * `prlimit`; children inherit it. Returns the limit now in force, and how it was set.
 */
function raiseFileLimit(need: number): string {
  const current = () => fs.readFileSync(`/proc/${process.pid}/limits`, 'utf8').match(/Max open files\s+(\d+)\s+(\d+)/);
  const before = current();
  if (before && Number(before[1]) >= need) return `${before[1]} (soft) / ${before[2]} (hard), enough for ${need}`;
  const raised = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${need}:${Math.max(need, Number(before?.[2] ?? 0))}`], { encoding: 'utf8', timeout: 5000 });
  const after = current();
  const note = `${after?.[1] ?? '?'} (soft) / ${after?.[2] ?? '?'} (hard), ${need} needed`;
  if (raised.status !== 0 || Number(after?.[1] ?? 0) < need) {
    process.stderr.write(`\n!!! idle: could not raise the open-file limit to ${need} (${(raised.stderr || raised.error?.message || '').trim()}): ${note}; expect EMFILE !!!\n\n`);
    return `${note}, NOT raised`;
  }
  return `${note}, raised with prlimit`;
}

export function idleTables(result: IdleResult): Table[] {
  const { config, rounds } = result;
  const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  const s = (ms: number | undefined) => (ms === undefined ? 'not within the cap' : `${(ms / 1000).toFixed(1)} s`);
  const rows = rounds.map((round, index) => [
    String(index + 1),
    `${round.connected} of ${round.clients}${round.failed ? ` (${round.failed} failed: ${round.errors[0] ?? ''})` : ''}`,
    `${mb(round.brokerRssBefore)} → ${mb(round.brokerRssAfter)} MB`,
    `${(((round.brokerRssAfter - round.brokerRssBefore) / 1024) / Math.max(1, round.connected)).toFixed(1)} KB`,
    s(round.connectMs),
    `${s(round.registryMs)}${round.registryMs === undefined ? ` (${round.registryCounted} counted)` : ''}${round.registryPolled ? ` (the last ${round.registryPolled} by detail/get: the notifications stopped)` : ''}`,
    'error' in round.listGet ? round.listGet.error : `${round.listGet.clients} listed in ${round.listGet.ms.toFixed(0)} ms`,
    `${s(round.freshMs)}${round.freshMs === undefined ? ` (${round.freshSeen} seen)` : ''}`,
    round.fleetRss.map((bytes) => mb(bytes)).join(' / ') + ' MB',
    `${round.fleetConnectCpuMs.toFixed(1)} ms`,
    `broker ${round.idleCpu.broker.toFixed(1)} %; fleets ${round.idleCpu.fleets.map((cpu) => cpu.toFixed(1)).join(' / ')} %; bench ${round.idleCpu.bench.toFixed(1)} %; rest of machine ${round.idleCpu.others.toFixed(0)} %`,
  ]);
  return [
    {
      title: `Idle clients: ${config.clients} ${config.lite ? 'presence-only peers (protocol §7.4: one connection, no directory)' : config.onDemand ? "Relais clients with directory: 'on-demand'" : 'Relais clients'} on relais start (router on), ${config.processes} fleet processes`,
      columns: ['round', 'connected', 'relais start RSS before → after', 'per client', 'first connect → last connected', 'first connect → registry counts all alive', 'relais/clients/list/get', 'fresh client: connect() → directory holds all', 'fleet processes RSS', 'fleet CPU per client connected', `CPU while idle (${(config.idleMs / 1000).toFixed(0)} s window, % of a core)`],
      rows,
      notes: [
        config.lite
          ? `each client a raw MQTT.js connection with a dead Last Will and a retained alive presence (protocol §7.4), subscribed to nothing; ${config.concurrency} connects at once per fleet process`
          : `each client at the library's defaults${config.onDemand ? " but directory: 'on-demand' (it hears only its own presence while idle)" : ''}${config.noRealtime ? ' but realtimeLane: false (one connection each)' : ' (two connections: main and real-time lane)'}; ${config.concurrency} connects at once per fleet process`,
        'relais start holds the embedded broker and the router (its worker thread) in one process: its RSS covers both',
        'the registry is counted from its detail notifications (protocol §11.3) by a watcher client in the bench process; the fresh client is in the bench process too',
        `open files: ${result.fileLimit}`,
      ],
    },
  ];
}
