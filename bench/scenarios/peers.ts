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
 * Every answer is checked against its request; at the end each handler's count of served
 * requests must equal what its requester sent.
 */
import { log, machineCpuSeconds, processCpuSeconds, waitForQuiet } from '../lib/util.js';
import { allContenders, missing, type Contender } from '../peers/contenders.js';
import { Lineup, type Running } from '../peers/lineup.js';
import type { PhaseReply, Reply, Totals } from '../peers/protocol.js';
import { STALL_MS } from '../peers/drive.js';

export interface PeersConfig {
  rounds: number;
  warmup: number;
  warmupCapMs: number;
  sequential: number;
  sequentialCapMs: number;
  inFlight: number;
  loadMs: number;
  /** Run only the contenders whose id contains one of these (e.g. `relais,nats`). */
  filter?: string[];
}

export interface ContenderResult {
  contender: Contender;
  /** Not run: a binary or a package is missing. */
  skipped?: string;
  /** Started but failed (the reason); its figures, if any, are partial. */
  failed?: string;
  rounds: number;
  sequential: number[];
  loaded: number[];
  /** Requests answered inside the load windows, and the windows' total length. */
  loadCompleted: number;
  loadWindowMs: number;
  /** Wall time of the load phases (tails included) and the CPU ms used meanwhile per process. */
  loadElapsedMs: number;
  /** `others`: the rest of the machine (any other program, this benchmark's other processes) in the same time. */
  cpuMs: { requester: number; handler: number; broker?: number; others: number };
  /** CPU ms the hypervisor stole from the machine during the load phases. */
  stealMs: number;
  totals?: Totals;
  served?: number;
}

export interface PeersResult {
  config: PeersConfig;
  results: ContenderResult[];
  processes: number;
  leftovers: number[];
}

let current: Lineup | undefined;

/** Ends every process of a run in progress (interrupt, watchdog). */
export async function abortPeers(): Promise<void> {
  await current?.abort();
}

export async function runPeers(config: PeersConfig): Promise<PeersResult> {
  const chosen = allContenders().filter((contender) => !config.filter?.length || config.filter.some((part) => contender.id.includes(part)));
  const results = new Map<string, ContenderResult>();
  const runnable: Contender[] = [];
  for (const contender of chosen) {
    const result: ContenderResult = { contender, rounds: 0, sequential: [], loaded: [], loadCompleted: 0, loadWindowMs: 0, loadElapsedMs: 0, cpuMs: { requester: 0, handler: 0, others: 0 }, stealMs: 0 };
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
          await runRound(running, result, config);
          result.rounds++;
        } catch (error) {
          result.failed = (error as Error).message;
          log(`peers: ${running.contender.id} FAILED: ${result.failed}`);
        }
      }
    }

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
    await lineup.stop();
    current = undefined;
  }
  const leftovers = lineup.leftovers();
  if (leftovers.length) loud(`peers: ${leftovers.length} process(es) still alive after the run: pids ${leftovers.join(', ')}`);
  return { config, results: [...results.values()], processes: lineup.started, leftovers };
}

/** One round of one contender: warm-up, sequential, load (with the CPU of its three processes). */
async function runRound(running: Running, result: ContenderResult, config: PeersConfig): Promise<void> {
  const { requester } = running;
  // Bounded: on a machine shared with other work the rows say how much of it there was ("rest of the machine").
  await waitForQuiet(3000, 0.15, 250);
  const slack = STALL_MS + 10_000;
  expectPhase(await requester.command({ cmd: 'warmup', count: config.warmup, capMs: config.warmupCapMs }, config.warmupCapMs + slack), result);
  const sequential = expectPhase(await requester.command({ cmd: 'sequential', count: config.sequential, capMs: config.sequentialCapMs }, config.sequentialCapMs + slack), result);
  result.sequential.push(...sequential.samples);

  const before = cpuSnapshot(running);
  const load = expectPhase(await requester.command({ cmd: 'load', inFlight: config.inFlight, durationMs: config.loadMs }, config.loadMs + slack), result);
  const after = cpuSnapshot(running);
  result.loaded.push(...load.samples);
  result.loadCompleted += load.completed;
  result.loadWindowMs += load.windowMs;
  result.loadElapsedMs += load.elapsedMs;
  // The requester's own figure covers the load exactly; /proc brackets it with the command's round trip.
  result.cpuMs.requester += load.cpuMs;
  result.cpuMs.handler += (after.handler - before.handler) * 1000;
  if (running.broker) result.cpuMs.broker = (result.cpuMs.broker ?? 0) + (after.broker - before.broker) * 1000;
  const ours = after.requester - before.requester + (after.handler - before.handler) + (after.broker - before.broker) + (after.self - before.self);
  result.cpuMs.others += Math.max(0, after.machine - before.machine - ours) * 1000;
  result.stealMs += (after.steal - before.steal) * 1000;
}

/** CPU seconds so far of the contender's three processes, of this one (the parent) and of the whole machine. */
function cpuSnapshot(running: Running): { requester: number; handler: number; broker: number; self: number; machine: number; steal: number } {
  const self = process.cpuUsage();
  const machine = machineCpuSeconds();
  return {
    requester: processCpuSeconds(running.requester.pid) ?? 0,
    handler: processCpuSeconds(running.handler.pid) ?? 0,
    broker: processCpuSeconds(running.broker?.pid) ?? 0,
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
