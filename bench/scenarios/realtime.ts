/**
 * Scenario 3, the real-time lane: client A sends ~64 KiB bulk notifications to client B
 * (>= 50 MB in all) and, every millisecond meanwhile, a small real-time notification
 * carrying its send time (epoch ms from `performance.timeOrigin + performance.now()`, the
 * same machine clock for every process). B records each real-time message's one-way latency.
 * B runs in a child process of its own (`child`) or in this process with A (`same`).
 *
 * Four ways, the same two clients each time:
 * - Relais, real-time lane on (the default): `priority: 'realtime'` and `{ lane: 'realtime' }`;
 * - Relais, `realtimeLane: false`: the same calls, on the one connection (the priority
 *   queue in the client still puts real-time first);
 * - raw MQTT.js with a second connection per client for real-time (what the lane does);
 * - raw MQTT.js with one connection per client (real-time behind the bulk).
 *
 * Three bulk producers (see `BulkMode`): `steady` (a sustained stream below what the
 * machine can carry), `paced` (as fast as B takes it) and `burst` (a file dump).
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchBroker } from '../lib/brokers.js';
import { LABELS, now, VARIANTS, wireReceiver, wireSender, type Variant } from '../lib/realtime-wiring.js';
import { CpuMeter, log, processCpuSeconds, ms, ratio, sleep, summarize, withDeadline, yieldToLoop, type Summary, type Table } from '../lib/util.js';

/**
 * How A produces the bulk: `steady` at `steadyMBps` (a sustained stream that leaves the CPU
 * some room), `paced` as fast as B takes it with at most `window` messages in the pipe, or
 * `burst`: a whole transfer handed to the library at once (a file dump).
 */
export type BulkMode = 'steady' | 'paced' | 'burst';
/** Where client B runs: with A in this process, or in a child process of its own. */
export type ReceiverPlace = 'child' | 'same';

export interface RealtimeConfig {
  /** Bulk messages per transfer (800 × 64 KiB = 52 MB). */
  bulkMessages: number;
  /** Transfers per measurement, back to back: more real-time samples. */
  transfers: number;
  /** Measurements per variant (their samples are merged), in alternating order. */
  rounds: number;
  /** Real-time messages measured with no bulk flowing, first (after 50 of warm-up). */
  idleSamples: number;
  bulkBytes: number;
  window: number;
  /** Rate of the `steady` producer, MB/s. */
  steadyMBps: number;
  modes: BulkMode[];
  receivers: ReceiverPlace[];
}

export interface RealtimeRow {
  mode: BulkMode;
  place: ReceiverPlace;
  variant: Variant;
  idle: Summary;
  rt: Summary;
  rtSent: number;
  rtLost: number;
  bulkMB: number;
  bulkMBps: number;
  cpu: string;
}

export interface RealtimeResult {
  broker: string;
  rows: RealtimeRow[];
}

const RT_INTERVAL_MS = 1;
const here = path.dirname(fileURLToPath(import.meta.url));

export async function runRealtime(broker: BenchBroker, config: RealtimeConfig): Promise<RealtimeResult> {
  const rows: RealtimeRow[] = [];
  for (const place of config.receivers) {
    for (const mode of config.modes) {
      const runs = new Map<Variant, Run[]>();
      // Rounds alternate the order of the variants, so drift does not favour one.
      for (let round = 0; round < config.rounds; round++) {
        for (const variant of round % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
          log(`${broker.label}: real-time under ${mode} bulk, B ${place === 'child' ? 'in a child process' : 'in this process'}, ${LABELS[variant]}, round ${round + 1}/${config.rounds}`);
          const list = runs.get(variant) ?? [];
          list.push(await runOne(broker, variant, mode, place, config));
          runs.set(variant, list);
        }
      }
      for (const variant of VARIANTS) {
        const list = runs.get(variant) ?? [];
        const sum = (pick: (run: Run) => number) => list.reduce((total, run) => total + pick(run), 0);
        const rt = list.flatMap((run) => run.rt);
        const mean = (pick: (run: Run) => number | undefined) => (list.every((run) => pick(run) !== undefined) ? sum((run) => pick(run)!) / list.length : undefined);
        const receiverCpu = mean((run) => run.receiverCpu);
        const brokerCpu = mean((run) => run.brokerCpu);
        rows.push({
          mode,
          place,
          variant,
          idle: summarize(list.flatMap((run) => run.idle)),
          rt: summarize(rt),
          rtSent: sum((run) => run.rtSent),
          rtLost: sum((run) => run.rtSent) - rt.length,
          bulkMB: sum((run) => run.bulkMB),
          bulkMBps: sum((run) => run.bulkMB) / sum((run) => run.seconds),
          cpu: [
            `${place === 'same' ? 'A+B' : 'A'} ${(sum((run) => run.clientsCpu) / list.length).toFixed(0)}%`,
            ...(receiverCpu !== undefined ? [`B ${receiverCpu.toFixed(0)}%`] : []),
            ...(brokerCpu !== undefined ? [`broker ${brokerCpu.toFixed(0)}%`] : []),
          ].join(', '),
        });
      }
    }
  }
  return { broker: broker.label, rows };
}

/** One measurement: the raw samples, merged over the rounds. */
interface Run {
  idle: number[];
  rt: number[];
  rtSent: number;
  bulkMB: number;
  seconds: number;
  clientsCpu: number;
  /** B's process, when it has its own. */
  receiverCpu?: number;
  brokerCpu?: number;
}

/** Client B seen from A's side, wherever it runs. */
interface Receiver {
  /** B's pid when it runs in a process of its own. */
  readonly pid?: number;
  /** Bulk messages B has received so far. */
  readonly bulk: number;
  /** Called on each bulk message B reports. */
  onBulk?: () => void;
  reset(): Promise<void>;
  report(): Promise<{ bulk: number; latencies: number[] }>;
  close(): Promise<void>;
}

async function openReceiver(place: ReceiverPlace, url: string, variant: Variant): Promise<Receiver> {
  if (place === 'same') {
    let latencies: number[] = [];
    const receiver: Receiver & { bulk: number } = {
      bulk: 0,
      reset: async () => void (latencies = []),
      report: async () => ({ bulk: receiver.bulk, latencies }),
      close: async () => end.close(),
    };
    const end = await wireReceiver(
      url,
      variant,
      () => {
        receiver.bulk++;
        receiver.onBulk?.();
      },
      (payload) => latencies.push(now() - payload.t),
    );
    return receiver;
  }
  const child: ChildProcess = fork(path.join(here, '..', 'realtime-receiver.ts'), [JSON.stringify({ url, variant })], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const waiters = new Map<string, (message: any) => void>();
  const receiver: Receiver & { bulk: number } = {
    ...(child.pid !== undefined && { pid: child.pid }),
    bulk: 0,
    reset: () => ask('reset', 'reset-done').then(() => {}),
    report: () => ask('report', 'report'),
    close: async () => {
      if (child.exitCode !== null) return;
      if (child.connected) child.send({ type: 'close' });
      try {
        await withDeadline(exited, 8000, 'the receiver process exit');
      } catch {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  function ask(type: string, answer: string): Promise<any> {
    return withDeadline(
      new Promise((resolve) => {
        waiters.set(answer, resolve);
        child.send({ type });
      }),
      10_000,
      `receiver answer to ${type}`,
    );
  }
  child.on('message', (message: { type: string; bulk?: number }) => {
    if (message.type === 'bulk') {
      receiver.bulk = message.bulk!;
      receiver.onBulk?.();
      return;
    }
    const waiter = waiters.get(message.type);
    waiters.delete(message.type);
    waiter?.(message);
  });
  try {
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        waiters.set('ready', () => resolve());
        child.once('exit', (code) => reject(new Error(`the receiver process exited with ${code}`)));
      }),
      20_000,
      'the receiver process start',
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return receiver;
}

async function runOne(broker: BenchBroker, variant: Variant, mode: BulkMode, place: ReceiverPlace, config: RealtimeConfig): Promise<Run> {
  const receiver = await openReceiver(place, broker.url, variant);
  let sender: Awaited<ReturnType<typeof wireSender>> | undefined;
  try {
    sender = await wireSender(broker.url, variant, config.bulkBytes);
    const a = sender;
    const sendRt = (seq: number) => a.sendRt({ t: now(), seq });
    // Polls B's report until `count` real-time messages are in, or none came for 2 s (bounded).
    const waitForRt = async (count: number) => {
      let seen = 0;
      const deadline = Date.now() + 15_000;
      let last = -1;
      let lastChange = Date.now();
      for (;;) {
        const { latencies } = await receiver.report();
        seen = latencies.length;
        if (seen >= count || Date.now() > deadline) return latencies;
        if (seen !== last) {
          last = seen;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > 2000) return latencies;
        await sleep(20);
      }
    };

    // The real-time path alone first: a warm-up, then an idle baseline.
    for (let i = 0; i < 50; i++) {
      sendRt(-1);
      await sleep(RT_INTERVAL_MS);
    }
    await waitForRt(50);
    await receiver.reset();
    for (let i = 0; i < config.idleSamples; i++) {
      sendRt(-1);
      await sleep(RT_INTERVAL_MS);
    }
    const idle = [...(await waitForRt(config.idleSamples))];
    await receiver.reset();

    let wake: (() => void) | undefined;
    receiver.onBulk = () => wake?.();
    const meter = new CpuMeter(broker.pid);
    const receiverCpu0 = processCpuSeconds(receiver.pid);
    let rtSent = 0;
    let bulkSent = 0;
    const rtTimer = setInterval(() => sendRt(rtSent++), RT_INTERVAL_MS);
    const start = performance.now();
    let end = start;
    try {
      await withDeadline(
        (async () => {
          const untilReceived = async () => {
            const deadline = Date.now() + 60_000;
            let last = receiver.bulk;
            let lastChange = Date.now();
            while (receiver.bulk < bulkSent) {
              await withDeadline(new Promise<void>((resolve) => (wake = resolve)), 10_000, 'bulk delivery').catch(() => {});
              wake = undefined;
              if (receiver.bulk !== last) {
                last = receiver.bulk;
                lastChange = Date.now();
              }
              if (Date.now() > deadline || Date.now() - lastChange > 10_000) return;
            }
          };
          for (let burst = 0; burst < config.transfers; burst++) {
            for (let i = 0; i < config.bulkMessages; i++) {
              while (mode === 'steady' && bulkSent >= ((performance.now() - start) / 1000) * ((config.steadyMBps * 1e6) / config.bulkBytes)) {
                await sleep(1);
              }
              while (mode !== 'burst' && bulkSent - receiver.bulk >= config.window) {
                await withDeadline(new Promise<void>((resolve) => (wake = resolve)), 10_000, 'bulk window');
                wake = undefined;
              }
              a.sendBulk(bulkSent++);
              if (bulkSent % 4 === 0) await yieldToLoop();
            }
            // A burst is one file dump: the next starts once B has it all (bounds the memory held).
            if (mode === 'burst') await untilReceived();
          }
          await untilReceived();
          end = performance.now();
        })(),
        150_000,
        'bulk transfer',
      );
    } finally {
      clearInterval(rtTimer);
    }
    const cpu = meter.read();
    const receiverCpu1 = processCpuSeconds(receiver.pid);
    const receiverCpu = receiverCpu0 !== undefined && receiverCpu1 !== undefined ? (((receiverCpu1 - receiverCpu0) * 1000) / cpu.wallMs) * 100 : undefined;
    const latencies = await waitForRt(rtSent);
    return {
      idle,
      rt: [...latencies],
      rtSent,
      bulkMB: (receiver.bulk * config.bulkBytes) / 1e6,
      seconds: (end - start) / 1000,
      clientsCpu: cpu.clientsCpu,
      ...(receiverCpu !== undefined && { receiverCpu }),
      ...(cpu.brokerCpu !== undefined && { brokerCpu: cpu.brokerCpu }),
    };
  } finally {
    await sender?.close();
    await receiver.close();
  }
}

export function realtimeTables(results: RealtimeResult[], config: RealtimeConfig): Table[] {
  const rows: string[][] = [];
  const partner: Record<Variant, Variant> = { 'relais-lane': 'raw-2conn', 'relais-nolane': 'raw-1conn', 'raw-2conn': 'raw-2conn', 'raw-1conn': 'raw-1conn' };
  for (const result of results) {
    for (const row of result.rows) {
      const base = result.rows.find((other) => other.mode === row.mode && other.place === row.place && other.variant === partner[row.variant]);
      const isRelais = row.variant.startsWith('relais');
      rows.push([
        result.broker,
        row.place === 'child' ? 'own process' : 'with A',
        row.mode === 'paced' ? `paced (≤ ${config.window})` : row.mode === 'steady' ? `steady ${config.steadyMBps} MB/s` : 'burst',
        LABELS[row.variant],
        `${ms(row.idle.p50)} / ${ms(row.idle.p99)}`,
        `${row.rt.n}${row.rtLost ? ` (${row.rtLost} lost)` : ''}`,
        ms(row.rt.p50),
        ms(row.rt.p99),
        ms(row.rt.max),
        isRelais && base ? `${ratio(row.rt.p99 / base.rt.p99)} vs ${base.variant === 'raw-2conn' ? '2 conn' : '1 conn'}` : '',
        isRelais ? (row.rt.p99 < 10 ? 'yes' : 'NO') : '',
        row.bulkMB.toFixed(0),
        row.bulkMBps.toFixed(0),
        row.cpu,
      ]);
    }
  }
  return [
    {
      title: `3. Real-time latency under bulk (${config.transfers} × ${config.bulkMessages} × ${Math.round(config.bulkBytes / 1024)} KiB from A to B, a real-time message every ${RT_INTERVAL_MS} ms)`,
      columns: ['broker', 'B runs', 'bulk producer', 'variant', 'idle rt p50 / p99 (ms)', 'rt msgs', 'rt p50 (ms)', 'rt p99 (ms)', 'rt max (ms)', 'Relais/raw p99', 'p99 < 10 ms', 'bulk MB', 'bulk MB/s', 'CPU'],
      rows,
      notes: [
        "one-way latency: B's receive time − the send time A wrote in the payload (one machine clock); QoS 1 for bulk and real-time alike",
        'Relais with the lane is compared with raw MQTT.js on two connections (the same design by hand); Relais without it with raw on one connection',
        `${config.rounds} round(s) per variant, samples merged; idle: ${config.idleSamples} real-time messages with no bulk flowing, measured first on the same clients; "rt msgs" are those sent while the bulk flowed`,
        `steady: A sends at ${config.steadyMBps} MB/s (and never more than the paced window ahead); paced: A keeps at most ${config.window} bulk messages (${((config.window * config.bulkBytes) / 1048576).toFixed(0)} MiB) sent but not yet received by B; burst: A hands a whole transfer (${config.bulkMessages} messages) to its library at once, 4 per turn of the event loop, and starts the next when B has it all`,
        `"B runs": in its own process (the sender's CPU work is not in B's event loop) or in the same process as A; CPU: percent of one core used by A's process (with B in it when "with A"), by B's own process, and by the broker`,
      ],
    },
  ];
}
