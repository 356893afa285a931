/**
 * Scenario "security", part 2 (docs/security.md "Bounded resources"): a healthy Relais requester/handler pair during a
 * burst, with one `#` subscriber frozen (SIGSTOP) and without. Processes: `relais start
 * --no-router` (the broker), the requester and the handler (bench/peers/relais.ts, the peers
 * harness's line protocol), a raw MQTT.js publisher of the burst and, per set-up, a raw MQTT.js
 * `#` subscriber (bench/peers/burst.ts).
 *
 * Set-ups, in turn each round (order reversed every other round): `none` (no `#` subscriber:
 * the no-fault run), `reading` (a `#` subscriber that reads the burst), `frozen` (SIGSTOP'd once
 * subscribed: the broker must cut it off, and say so on stderr, without holding the others).
 * Each: a load window of `windowMs` with `inFlight` requests in flight; `burstAtMs` into it the
 * publisher sends `count` × `bytes` at QoS 0 on `bench/burst/notification`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { log, processCpuSeconds, sleep, summarize, waitForQuiet, withDeadline } from '../lib/util.js';
import type { PeerBroker } from '../peers/brokers.js';
import { securityContenders } from '../peers/contenders.js';
import { Lineup } from '../peers/lineup.js';
import type { PhaseReply } from '../peers/protocol.js';
import { track } from '../peers/reaper.js';
import { STALL_MS } from '../peers/drive.js';

export interface SlowConsumerConfig {
  rounds: number;
  inFlight: number;
  windowMs: number;
  burstAtMs: number;
  count: number;
  bytes: number;
}

export type SetUp = 'none' | 'reading' | 'frozen';
export const SET_UPS: SetUp[] = ['none', 'reading', 'frozen'];

export interface SlowConsumerWindow {
  setUp: SetUp;
  samples: number[];
  completed: number;
  windowMs: number;
  /** ms from the burst's start to the broker's "cut off slow consumer" line (frozen only), or undefined when none came within 10 s. */
  cutAfterMs?: number;
  cutLine?: string;
  /** CPU ms of each process during the window. */
  cpuMs: { requester: number; handler: number; broker: number; publisher: number; subscriber: number };
}

export interface SlowConsumerResult {
  config: SlowConsumerConfig;
  windows: SlowConsumerWindow[];
  failed?: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** A bench/peers/burst.ts process; resolves once it printed its ready line. */
async function burstProcess(role: 'subscriber' | 'publisher', url: string, id: string) {
  const child = track(spawn(process.execPath, ['--import', 'tsx', path.join(here, '../peers/burst.ts'), role, '--url', url, '--id', id], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const lines: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      process.stderr.write(`[burst ${role}] ${line}\n`);
    }
    for (const wake of waiters) wake();
  });
  const next = (peer: string, ms: number) =>
    withDeadline(
      new Promise<Record<string, unknown>>((resolve) => {
        const look = () => {
          const at = lines.findIndex((line) => line.peer === peer);
          if (at < 0) return;
          waiters.delete(look);
          resolve(lines.splice(at, 1)[0]!);
        };
        waiters.add(look);
        look();
      }),
      ms,
      `burst ${role} ${peer}`,
    );
  await next('ready', 30_000);
  const exited = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
  return {
    child,
    next,
    send: (message: object) => child.stdin!.write(`${JSON.stringify(message)}\n`),
    close: async () => {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await withDeadline(exited, 5000, `burst ${role} exit`).catch(() => {});
    },
  };
}

export async function runSlowConsumer(config: SlowConsumerConfig): Promise<SlowConsumerResult> {
  const contender = securityContenders().find((c) => c.broker === 'relais-start-no-router')!;
  const lineup = new Lineup();
  const windows: SlowConsumerWindow[] = [];
  let publisher: Awaited<ReturnType<typeof burstProcess>> | undefined;
  try {
    await lineup.start([contender]);
    const running = lineup.running[0];
    if (!running?.broker) throw new Error(`the healthy pair did not start: ${[...lineup.failedToStart.values()].join('; ')}`);
    const broker = running.broker;
    publisher = await burstProcess('publisher', broker.url, 'bench-burst-publisher');
    const warm = await running.requester.command({ cmd: 'warmup', count: 300, capMs: 1000, inFlight: config.inFlight, loadMs: 1000 }, 1000 + 1000 + STALL_MS + 10_000);
    if (warm.peer !== 'done') throw new Error(`warm-up: ${JSON.stringify(warm).slice(0, 200)}`);
    for (let round = 0; round < config.rounds; round++) {
      await waitForQuiet(round === 0 ? 15_000 : 5000);
      const order = round % 2 === 0 ? SET_UPS : [...SET_UPS].reverse();
      for (const setUp of order) {
        const window = await runWindow(setUp, round, broker, running, publisher, config);
        windows.push(window);
        const s = summarize(window.samples);
        log(`security: slow consumer, round ${round + 1}, ${setUp}: ${s.n} requests, p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms${setUp === 'frozen' ? `, ${window.cutLine ? `cut off ${window.cutAfterMs?.toFixed(0)} ms after the burst` : 'NOT CUT OFF'}` : ''}`);
      }
    }
    return { config, windows };
  } catch (error) {
    log(`security: slow consumer FAILED: ${(error as Error).stack ?? error}`);
    return { config, windows, failed: (error as Error).message };
  } finally {
    await publisher?.close();
    await lineup.stop();
  }
}

async function runWindow(
  setUp: SetUp,
  round: number,
  broker: PeerBroker,
  running: Lineup['running'][number],
  publisher: Awaited<ReturnType<typeof burstProcess>>,
  config: SlowConsumerConfig,
): Promise<SlowConsumerWindow> {
  const subscriber = setUp === 'none' ? undefined : await burstProcess('subscriber', broker.url, `bench-hash-${setUp}-${round}`);
  try {
    if (setUp === 'frozen') subscriber!.child.kill('SIGSTOP');
    const linesBefore = broker.stderr?.length ?? 0;
    const pids = { requester: running.requester.pid, handler: running.handler.pid, broker: broker.pid, publisher: publisher.child.pid, subscriber: subscriber?.child.pid };
    const cpu0 = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid) ?? 0]));
    const load = running.requester.command({ cmd: 'load', inFlight: config.inFlight, durationMs: config.windowMs }, config.windowMs + STALL_MS + 10_000);
    await sleep(config.burstAtMs);
    const burstAt = performance.now();
    publisher.send({ count: config.count, bytes: config.bytes });
    await publisher.next('burst', 30_000);
    const reply = await load;
    if (reply.peer !== 'done' || reply.cmd !== 'load') throw new Error(`${setUp}: ${JSON.stringify(reply).slice(0, 300)}`);
    const phase = reply as PhaseReply;
    if (phase.totals.received !== phase.totals.sent || phase.totals.bad !== 0) throw new Error(`${setUp}: ${phase.totals.sent} sent, ${phase.totals.received} answered, ${phase.totals.bad} bad`);
    const cpu1 = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid) ?? 0]));
    const cpuMs = Object.fromEntries(Object.keys(pids).map((name) => [name, (cpu1[name]! - cpu0[name]!) * 1000])) as SlowConsumerWindow['cpuMs'];
    let cut: { line: string; at: number } | undefined;
    if (setUp === 'frozen') cut = await cutOffLine(broker, linesBefore, `bench-hash-frozen-${round}`);
    return {
      setUp,
      samples: phase.samples,
      completed: phase.completed,
      windowMs: phase.windowMs,
      cpuMs,
      ...(cut && { cutLine: cut.line, cutAfterMs: cut.at - burstAt }),
    };
  } finally {
    await subscriber?.close();
  }
}

/** The broker's "cut off slow consumer client <id>" line, waited for (10 s at most) from stderr line `from` on. */
async function cutOffLine(broker: PeerBroker, from: number, id: string): Promise<{ line: string; at: number } | undefined> {
  const end = performance.now() + 10_000;
  for (;;) {
    const found = broker.stderr?.slice(from).find((entry) => entry.line.includes(`cut off slow consumer client ${id} `));
    if (found) return { line: found.line.replace(/^relais broker: /, ''), at: found.at };
    if (performance.now() > end) return undefined;
    await sleep(50);
  }
}

