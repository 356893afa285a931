/**
 * Scenario "peers": request/response (a ~100-byte JSON payload echoed) with the requester,
 * the handler and the broker each in its own process, for Relais and for the stacks people
 * would use instead (raw MQTT.js at QoS 0 and 1, Moleculer, NATS, bare TCP), each at its own
 * default delivery guarantee, in one run. Contenders: bench/peers/contenders.ts; processes:
 * bench/peers/lineup.ts; tables: bench/peers/report.ts.
 *
 * Per round, every contender in turn (forward order in even rounds, backward in odd ones, so
 * drift does not favour one): a warm-up, sequential requests (one at a time), then a load
 * window with `inFlight` requests in flight, during which the CPU of its three processes is
 * read (the requester's own process.cpuUsage(); /proc/<pid>/stat for handler and broker).
 * The machine may be shared: before each turn the run waits (bounded) for it to be quiet, and
 * a load window during which the rest of the machine used more than a quarter of a core is
 * run again (a bounded number of times in all) and the quieter of the two kept.
 * Every answer is checked against its request; at the end each handler's count of served
 * requests must equal what its requester sent.
 */
import { log, machineCpuSeconds, processCpuSeconds, waitForQuiet } from '../lib/util.js';
import type { PeerBroker } from '../peers/brokers.js';
import { allContenders, missing, type Contender } from '../peers/contenders.js';
import { HistoryReader } from '../peers/history.js';
import { Lineup, type Running } from '../peers/lineup.js';
import type { PhaseReply, Reply, Totals } from '../peers/protocol.js';
import { STALL_MS } from '../peers/drive.js';
import { killAll } from '../peers/reaper.js';

export interface PeersConfig {
  rounds: number;
  warmup: number;
  warmupCapMs: number;
  /** Untimed load at the end of the warm-up: in the first round, and a quarter of it in later ones. */
  warmupLoadMs: number;
  sequential: number;
  sequentialCapMs: number;
  inFlight: number;
  loadMs: number;
  /** How many load windows, in all, may be run again because the rest of the machine was busy. */
  repeats: number;
  /** Run only the contenders whose id contains one of these (e.g. `relais,nats`). */
  filter?: string[];
  /** Run these instead of every contender (the router scenario: bench/scenarios/router.ts). */
  contenders?: Contender[];
}

export interface ContenderResult {
  contender: Contender;
  /** Not run: a binary or a package is missing. */
  skipped?: string;
  /** Started but failed (the reason); its figures, if any, are partial. */
  failed?: string;
  rounds: number;
  sequential: number[];
  /** The load window kept for each round. */
  loads: LoadRun[];
  /** Load windows run again because the rest of the machine was busy. */
  repeated: number;
  totals?: Totals;
  served?: number;
}

export interface LoadRun {
  samples: number[];
  /** Requests answered inside the window, and its length. */
  completed: number;
  windowMs: number;
  /** Wall time of the phase, tail included, and the CPU ms used meanwhile. */
  elapsedMs: number;
  /** `others`: the rest of the machine (other programs, this benchmark's other processes) in the same time. */
  cpuMs: { requester: number; handler: number; broker?: number; router?: number; site?: number; others: number };
  /** CPU ms the hypervisor stole from the machine meanwhile. */
  stealMs: number;
  /**
   * On a broker with a router: history rows stored before and after the phase (HistoryReader.rows)
   * and the time between the two reads; then how long the router took to store the rest (its
   * row count still for DRAIN_STILL_MS), waited for so that the next window does not compete with it.
   */
  history?: { before: number; after: number; elapsedMs: number; drained: number; drainMs: number };
  /** The requester's totals at the end of the phase. */
  totals: Totals;
}

/** A window whose rest of the machine was busier than this (in cores) is run again, budget allowing. */
export const BUSY_SHARE = 0.25;

export interface PeersResult {
  config: PeersConfig;
  results: ContenderResult[];
  processes: number;
  leftovers: number[];
  /** Load windows run again in all (at most config.repeats). */
  repeated: number;
  /** The brokers of the run (closed by now): where a router's history is, to check it afterwards. */
  brokers: PeerBroker[];
  /** Per history file: how long its router took, after the last load, to store everything it had been sent (rows stopped growing). */
  settled: Map<string, { rows: number; waitedMs: number }>;
}

let current: Lineup | undefined;
/** One read-only handle per history file, for the rows stored during each load window. */
const readers = new Map<string, HistoryReader>();

/** Ends every process of a run in progress (interrupt, watchdog). */
export async function abortPeers(): Promise<void> {
  killAll();
  await current?.abort();
}

export async function runPeers(config: PeersConfig): Promise<PeersResult> {
  const chosen = (config.contenders ?? allContenders()).filter((contender) => !config.filter?.length || config.filter.some((part) => contender.id.includes(part)));
  const results = new Map<string, ContenderResult>();
  const runnable: Contender[] = [];
  for (const contender of chosen) {
    const result: ContenderResult = { contender, rounds: 0, sequential: [], loads: [], repeated: 0 };
    results.set(contender.id, result);
    const why = missing(contender);
    if (why) {
      result.skipped = why;
      loud(`SKIPPING peers contender ${contender.id}: ${why}`);
    } else {
      runnable.push(contender);
    }
  }

  const lineup = new Lineup();
  current = lineup;
  const brokers: PeerBroker[] = [];
  const settled = new Map<string, { rows: number; waitedMs: number }>();
  /** Waits (bounded) until every router has stored what it was sent: its row count still for a second. */
  const settleHistories = async () => {
    for (const [database, reader] of readers) settled.set(database, await drainHistory(reader));
  };
  const budget = { repeats: config.repeats };
  try {
    log(`peers: starting ${runnable.length} contenders (a requester and a handler process each) and their brokers`);
    await lineup.start(runnable);
    for (const [id, why] of lineup.failedToStart) results.get(id)!.failed = `did not start: ${why}`;

    for (let round = 0; round < config.rounds; round++) {
      const order = round % 2 === 0 ? lineup.running : [...lineup.running].reverse();
      // Fresh processes keep a core busy for a few seconds (JIT, GC after start); anything else running on the machine, too.
      const quiet = await waitForQuiet(round === 0 ? 30_000 : 10_000);
      log(`peers: round ${round + 1} of ${config.rounds} (machine ${(quiet.busy * 100).toFixed(0)}% of a core busy after ${(quiet.waitedMs / 1000).toFixed(1)} s of waiting for quiet)`);
      for (const running of order) {
        const result = results.get(running.contender.id)!;
        if (result.failed) continue;
        try {
          await runRound(running, result, config, budget, round);
          result.rounds++;
        } catch (error) {
          result.failed = (error as Error).message;
          log(`peers: ${running.contender.id} FAILED: ${result.failed}`);
        }
      }
    }

    await settleHistories();

    for (const running of lineup.running) {
      const result = results.get(running.contender.id)!;
      try {
        const count = await running.handler.command({ cmd: 'count' }, 5000);
        if (count.peer === 'done' && count.cmd === 'count') result.served = count.served;
      } catch (error) {
        result.failed ??= `handler count: ${(error as Error).message}`;
      }
      const last = await lineup.stopContender(running);
      result.totals = last.requester?.totals ?? result.totals;
      check(result);
    }
  } finally {
    brokers.push(...lineup.brokers.values());
    for (const reader of readers.values()) reader.close();
    readers.clear();
    await lineup.stop();
    current = undefined;
  }
  const leftovers = lineup.leftovers();
  if (leftovers.length) loud(`peers: ${leftovers.length} process(es) still alive after the run: pids ${leftovers.join(', ')}`);
  return { config, results: [...results.values()], processes: lineup.started, leftovers, repeated: config.repeats - budget.repeats, brokers, settled };
}

/** One round of one contender: warm-up, sequential, load (with the CPU of its three processes). */
async function runRound(running: Running, result: ContenderResult, config: PeersConfig, budget: { repeats: number }, round: number): Promise<void> {
  const { requester } = running;
  // Bounded: on a machine shared with other work the rows say how much of it there was ("rest of the machine").
  await waitForQuiet(3000, 0.15, 250);
  const slack = STALL_MS + 10_000;
  const warmupLoadMs = round === 0 ? config.warmupLoadMs : Math.round(config.warmupLoadMs / 4);
  const warmup = { cmd: 'warmup', count: config.warmup, capMs: config.warmupCapMs, inFlight: config.inFlight, loadMs: warmupLoadMs } as const;
  expectPhase(await requester.command(warmup, config.warmupCapMs + warmupLoadMs + slack), result);
  const sequential = expectPhase(await requester.command({ cmd: 'sequential', count: config.sequential, capMs: config.sequentialCapMs }, config.sequentialCapMs + slack), result);
  result.sequential.push(...sequential.samples);

  let load = await measureLoad(running, result, config);
  if (load.cpuMs.others / load.elapsedMs > BUSY_SHARE && budget.repeats > 0) {
    budget.repeats--;
    result.repeated++;
    log(`peers: ${running.contender.id}: the rest of the machine used ${((load.cpuMs.others / load.elapsedMs) * 100).toFixed(0)}% of a core during the load window; running it again`);
    await waitForQuiet(5000, 0.15, 250);
    const again = await measureLoad(running, result, config);
    if (again.cpuMs.others / again.elapsedMs < load.cpuMs.others / load.elapsedMs) load = again;
  }
  result.loads.push(load);
}

/** A router's row count is taken as final once it stayed still this long. */
const DRAIN_STILL_MS = 500;

/** Waits (bounded: 60 s) until a router has stored what it was sent: its row count still for DRAIN_STILL_MS. */
async function drainHistory(reader: HistoryReader): Promise<{ rows: number; waitedMs: number }> {
  const start = performance.now();
  let rows = reader.rows();
  let stillSince = start;
  while (performance.now() - stillSince < DRAIN_STILL_MS && performance.now() - start < 60_000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = reader.rows();
    if (now !== rows) {
      rows = now;
      stillSince = performance.now();
    }
  }
  return { rows, waitedMs: stillSince - start };
}

/** One load window, with the CPU of the contender's three processes and of the rest of the machine. */
async function measureLoad(running: Running, result: ContenderResult, config: PeersConfig): Promise<LoadRun> {
  const database = running.broker?.history?.database;
  const reader = database === undefined ? undefined : (readers.get(database) ?? readers.set(database, new HistoryReader(database)).get(database)!);
  const rows0 = reader?.rows();
  const t0 = performance.now();
  const before = cpuSnapshot(running);
  const load = expectPhase(await running.requester.command({ cmd: 'load', inFlight: config.inFlight, durationMs: config.loadMs }, config.loadMs + STALL_MS + 10_000), result);
  const after = cpuSnapshot(running);
  const rows1 = reader?.rows();
  const elapsedMs = performance.now() - t0;
  const drain = reader ? await drainHistory(reader) : undefined;
  const ours = after.requester - before.requester + (after.handler - before.handler) + (after.broker - before.broker) + (after.router - before.router) + (after.site - before.site) + (after.self - before.self);
  return {
    samples: load.samples,
    completed: load.completed,
    windowMs: load.windowMs,
    elapsedMs: load.elapsedMs,
    cpuMs: {
      // The requester's own figure covers the load exactly; /proc brackets it with the command's round trip.
      requester: load.cpuMs,
      handler: (after.handler - before.handler) * 1000,
      ...(running.broker && { broker: (after.broker - before.broker) * 1000 }),
      ...(running.broker?.history?.routerPid !== undefined && { router: (after.router - before.router) * 1000 }),
      ...(running.broker?.site !== undefined && { site: (after.site - before.site) * 1000 }),
      others: Math.max(0, after.machine - before.machine - ours) * 1000,
    },
    stealMs: (after.steal - before.steal) * 1000,
    ...(rows0 !== undefined && rows1 !== undefined && drain && { history: { before: rows0, after: rows1, elapsedMs, drained: drain.rows, drainMs: drain.waitedMs } }),
    totals: load.totals,
  };
}

/** CPU seconds so far of the contender's three processes (four with a router process of its own, or a site's `relais start`), of this one (the parent) and of the whole machine. */
function cpuSnapshot(running: Running): { requester: number; handler: number; broker: number; router: number; site: number; self: number; machine: number; steal: number } {
  const self = process.cpuUsage();
  const machine = machineCpuSeconds();
  return {
    requester: processCpuSeconds(running.requester.pid) ?? 0,
    handler: processCpuSeconds(running.handler.pid) ?? 0,
    broker: processCpuSeconds(running.broker?.pid) ?? 0,
    router: processCpuSeconds(running.broker?.history?.routerPid) ?? 0,
    site: processCpuSeconds(running.broker?.site?.pid) ?? 0,
    self: (self.user + self.system) / 1e6,
    machine: machine?.busy ?? 0,
    steal: machine?.steal ?? 0,
  };
}

function expectPhase(reply: Reply, result: ContenderResult): PhaseReply {
  if (reply.peer === 'error') {
    if (reply.totals) result.totals = reply.totals;
    throw new Error(`${reply.cmd ?? 'command'}: ${reply.message}`);
  }
  if (reply.peer !== 'done' || reply.cmd === 'count') throw new Error(`unexpected reply ${JSON.stringify(reply).slice(0, 200)}`);
  result.totals = reply.totals;
  const { sent, received, bad } = reply.totals;
  if (received !== sent || bad !== 0) throw new Error(`${reply.cmd}: ${sent} sent, ${received} answered, ${bad} not the payload echoed`);
  return reply;
}

/** The honesty check: every request answered once, with its own payload, and served once. */
function check(result: ContenderResult): void {
  if (result.failed) return;
  const totals = result.totals;
  if (!totals) {
    result.failed = 'the requester gave no totals';
  } else if (totals.received !== totals.sent || totals.bad !== 0) {
    result.failed = `${totals.sent} sent, ${totals.received} answered, ${totals.bad} not the payload echoed`;
  } else if (result.served !== totals.sent) {
    result.failed = `the handler served ${result.served ?? '?'} requests for ${totals.sent} sent`;
  }
  if (result.failed) log(`peers: ${result.contender.id} FAILED the check: ${result.failed}`);
}

function loud(line: string): void {
  const bar = '!'.repeat(line.length + 8);
  process.stderr.write(`\n${bar}\n!!! ${line} !!!\n${bar}\n\n`);
}
