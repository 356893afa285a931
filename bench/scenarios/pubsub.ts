/**
 * Scenario 2, pub/sub throughput: N small notifications from one client to another.
 * Relais `notify` (QoS 1) + `subscribe` with a callback, against raw MQTT.js publish /
 * subscribe of the same envelope at QoS 1, and at QoS 0 for scale. Every message is
 * counted by its sequence number: lost and duplicated messages are reported.
 */
import fs from 'node:fs';
import type { MqttClient } from 'mqtt';
import type { Bus } from '../../src/index.js';
import type { BenchBroker } from '../lib/brokers.js';
import { closeAll, notificationBody, rawConnect, rawSubscribe, relaisConnect } from '../lib/clients.js';
import { CpuMeter, cpuNote, log, machineCpuSeconds, processCpuSeconds, rate, ratio, waitForQuiet, waitUntil, yieldToLoop, type Table } from '../lib/util.js';
import { BROKER_LABELS as PEER_BROKER_LABELS, startPeerBroker, type PeerBroker, type PeerBrokerKind } from '../peers/brokers.js';
import { PeerProcess } from '../peers/process.js';
import type { PubSubReply, Reply } from '../peers/protocol.js';

export interface PubSubConfig {
  messages: number;
  /** Runs per variant, in alternating order; the table shows the sums. */
  rounds: number;
  /** Messages published per turn of the event loop (the same for every side). */
  chunk: number;
}

export interface PubSubRow {
  variant: string;
  sent: number;
  received: number;
  lost: number;
  duplicates: number;
  rate: number;
  publishMs: number;
  cpu: string;
  /** msg/s of each round. */
  rates?: number[];
}

export interface PubSubResult {
  broker: string;
  rows: PubSubRow[];
}

type Side = 'raw-qos0' | 'raw-qos1' | 'relais';

const VARIANTS: Record<Side, string> = {
  'raw-qos0': 'raw MQTT.js, QoS 0',
  'raw-qos1': 'raw MQTT.js, QoS 1',
  relais: 'Relais notify/subscribe, QoS 1',
};

export async function runPubSub(broker: BenchBroker, config: PubSubConfig): Promise<PubSubResult> {
  const runs = new Map<Side, PubSubRow[]>();
  const order = ['raw-qos1', 'relais', 'raw-qos0'] as const;
  for (let round = 0; round < config.rounds; round++) {
    for (const side of round % 2 === 0 ? order : [...order].reverse()) {
      log(`${broker.label}: pub/sub ${config.messages} messages, ${VARIANTS[side]}, round ${round + 1}/${config.rounds}`);
      const list = runs.get(side) ?? [];
      list.push(await runOne(broker, side, config));
      runs.set(side, list);
    }
  }
  const rows = order.map((side): PubSubRow => {
    const list = runs.get(side)!;
    const sum = (pick: (row: PubSubRow) => number) => list.reduce((total, row) => total + pick(row), 0);
    return {
      variant: VARIANTS[side],
      sent: sum((row) => row.sent),
      received: sum((row) => row.received),
      lost: sum((row) => row.lost),
      duplicates: sum((row) => row.duplicates),
      // Messages over the summed receive time: the rate of all rounds together.
      rate: sum((row) => row.sent - row.lost) / sum((row) => (row.sent - row.lost) / row.rate),
      publishMs: sum((row) => row.publishMs) / list.length,
      cpu: list.map((row) => row.cpu).join('; '),
      rates: list.map((row) => row.rate),
    };
  });
  return { broker: broker.label, rows };
}

async function runOne(broker: BenchBroker, side: Side, config: PubSubConfig): Promise<PubSubRow> {
  const { messages } = config;
  const seen = new Uint8Array(messages);
  let received = 0;
  let distinct = 0;
  let lastAt = 0;
  const onMessage = (n: number) => {
    received++;
    lastAt = performance.now();
    if (n >= 0 && n < messages && seen[n] === 0) {
      seen[n] = 1;
      distinct++;
    }
  };
  let pub: Bus | MqttClient | undefined;
  let sub: Bus | MqttClient | undefined;
  try {
    let send: (n: number) => void;
    if (side === 'relais') {
      const subscriber = (sub = await relaisConnect(broker.url, 'bench-ps-rl-s'));
      const publisher = (pub = await relaisConnect(broker.url, 'bench-ps-rl-p'));
      await subscriber.subscribe('bench/tp/notification', (message) => onMessage((message.envelope.payload as { n: number }).n));
      send = (n) => publisher.notify('bench/tp', { n });
    } else {
      const qos = side === 'raw-qos0' ? 0 : 1;
      const subscriber = (sub = await rawConnect(broker.url, 'bench-ps-rw-s'));
      const publisher = (pub = await rawConnect(broker.url, 'bench-ps-rw-p'));
      // Raw topic of the same length as Relais' `bench/tp/notification`.
      subscriber.on('message', (_topic, payload) => onMessage((JSON.parse(payload.toString('utf8')) as { payload: { n: number } }).payload.n));
      await rawSubscribe(subscriber, 'rawmq/tp/notification', qos);
      send = (n) => publisher.publish('rawmq/tp/notification', notificationBody('bench-ps-rw-p', { n }), { qos });
    }

    const meter = new CpuMeter(broker.pid);
    const start = performance.now();
    for (let n = 0; n < messages; n++) {
      send(n);
      if ((n + 1) % config.chunk === 0) await yieldToLoop();
    }
    const publishMs = performance.now() - start;
    await waitUntil(() => distinct >= messages, { progress: () => received, idleMs: 5000, capMs: 180_000 });
    const cpu = meter.read();
    const elapsed = (lastAt || performance.now()) - start;
    return {
      variant: VARIANTS[side],
      sent: messages,
      received,
      lost: messages - distinct,
      duplicates: received - distinct,
      rate: (distinct / elapsed) * 1000,
      publishMs,
      cpu: cpuNote(cpu),
    };
  } finally {
    await closeAll([pub, sub]);
  }
}

export function pubSubTables(results: PubSubResult[], config: PubSubConfig): Table[] {
  const rows: string[][] = [];
  for (const result of results) {
    const rawQos1 = result.rows.find((row) => row.variant === VARIANTS['raw-qos1']);
    for (const row of result.rows) {
      rows.push([
        result.broker,
        row.variant,
        rate(row.sent),
        rate(row.received),
        `${row.lost}${row.duplicates ? ` (+${row.duplicates} dup)` : ''}`,
        `${rate(row.rate)}${row.rates && row.rates.length > 1 ? ` (${row.rates.map(rate).join(' / ')})` : ''}`,
        row.variant === VARIANTS['raw-qos1'] ? '1.00x' : rawQos1 ? ratio(row.rate / rawQos1.rate) : 'n/a',
        `${(row.publishMs / 1000).toFixed(2)} s`,
        row.cpu,
      ]);
    }
  }
  return [
    {
      title: `2. Pub/sub throughput (${rate(config.messages)} small notifications × ${config.rounds} round(s), one publisher, one subscriber)`,
      columns: ['broker', 'variant', 'sent', 'received', 'lost', 'msg/s received (per round)', 'vs raw QoS 1', 'publish loop', 'CPU per round'],
      rows,
      notes: [
        'msg/s = distinct messages received / (time of the last one − time of the first publish), over all rounds; target: Relais ≥ 0.8x raw QoS 1',
        `rounds run the variants in alternating order; "publish loop" is the mean per round`,
        `publishers send ${config.chunk} messages per turn of the event loop, all sides alike; the envelope is the same JSON on all sides (~120 bytes)`,
        '"publish loop" is how long the publisher took to hand all messages to its library (Relais queues behind a 64 KiB socket high-water mark; MQTT.js buffers in the socket)',
      ],
    },
  ];
}

/**
 * Pub/sub with every client apart (`npm run bench -- --only pubsub-apart`): one publisher
 * process and 1 or 10 subscriber processes (bench/peers/pubsub-child.ts), the broker in its own
 * (relais start with its router, and Mosquitto with the project's config), ~100-byte payloads.
 * Relais `notify` (QoS 1, protocol §1.3) / `subscribe` (QoS 1 by default) against raw MQTT.js
 * QoS 0 publish / subscribe of the same envelope bytes. Per round, every broker, fan-out and
 * side in turn (the order reversed in odd rounds); the CPU of each process over the run, from
 * /proc, tells which one saturates.
 */
export interface PubSubApartConfig {
  rounds: number;
  /** Messages per run, by fan-out (10 subscribers get 10× the deliveries). */
  messages: { 1: number; 10: number };
  chunk: number;
  brokers: PeerBrokerKind[];
  sides: ApartSide[];
}

export type ApartSide = 'relais' | 'relais-q0' | 'raw';

const APART_SIDES: Record<ApartSide, string> = {
  relais: 'Relais notify (QoS 1) / subscribe (QoS 1, the default)',
  'relais-q0': 'Relais notify (QoS 1) / subscribe({ qos: 0 })',
  raw: 'raw MQTT.js, QoS 0 publish / subscribe',
};

export interface ApartRun {
  broker: PeerBrokerKind;
  side: ApartSide;
  fanout: 1 | 10;
  sent: number;
  /** Messages every subscriber got, per second: sent / (last message at the slowest subscriber − first publish). */
  rate: number;
  lost: number;
  duplicates: number;
  /** How long the publisher took to hand every message to its library. */
  publishMs: number;
  /** % of a core over the run. */
  cpu: { publisher: number; subscribers: number[]; broker: number; brokerTopThread: number; others: number };
}

export interface PubSubApartResult {
  config: PubSubApartConfig;
  runs: ApartRun[];
  failed: boolean;
}

let apartLive: { brokers: PeerBroker[]; processes: PeerProcess[] } | undefined;

export async function abortPubSubApart(): Promise<void> {
  if (!apartLive) return;
  await Promise.all(apartLive.processes.map((child) => child.close(1000)));
  await Promise.all(apartLive.brokers.map((broker) => broker.close()));
}

export async function runPubSubApart(config: PubSubApartConfig): Promise<PubSubApartResult> {
  const state = (apartLive = { brokers: [] as PeerBroker[], processes: [] as PeerProcess[] });
  const runs: ApartRun[] = [];
  let failed = false;
  try {
    const lineups: Array<{ broker: PeerBroker; side: ApartSide; publisher: PeerProcess; subscribers: PeerProcess[] }> = [];
    for (const kind of config.brokers) {
      const broker = await startPeerBroker(kind);
      state.brokers.push(broker);
      log(`pubsub-apart: ${broker.label} on ${broker.url} (pid ${broker.pid})`);
      for (const side of config.sides) {
        const start = async (role: 'publisher' | 'subscriber', index: number) => {
          const id = `ps-${side}-${role === 'publisher' ? 'p' : `s${index}`}`;
          const args = [role, '--side', side, '--url', broker.url, '--id', id, ...(role === 'subscriber' && index > 0 ? ['--fanout-member'] : [])];
          // RELAIS_BENCH_PROFILE=<dir>: the publisher and the first subscriber write a CPU profile there when they exit.
          const profile = process.env.RELAIS_BENCH_PROFILE && index === 0 ? { RELAIS_BENCH_PROFILE_FILE: `${process.env.RELAIS_BENCH_PROFILE}/${kind}-${id}.cpuprofile` } : undefined;
          const { peer } = await PeerProcess.start(`${kind} ${id}`, 'pubsub-child.ts', args, 30_000, profile);
          state.processes.push(peer);
          return peer;
        };
        const subscribers: PeerProcess[] = [];
        for (let index = 0; index < 10; index += 2) subscribers.push(...(await Promise.all([start('subscriber', index), start('subscriber', index + 1)])));
        lineups.push({ broker, side, publisher: await start('publisher', 0), subscribers });
      }
    }
    for (let round = 0; round < config.rounds; round++) {
      const quiet = await waitForQuiet(round === 0 ? 20_000 : 5000);
      log(`pubsub-apart: round ${round + 1} of ${config.rounds} (machine ${(quiet.busy * 100).toFixed(0)}% of a core busy)`);
      const order = round % 2 === 0 ? lineups : [...lineups].reverse();
      for (const fanout of [1, 10] as const) {
        for (const lineup of order) {
          try {
            await waitForQuiet(2000, 0.15, 250);
            const result = await runApart(lineup, fanout, config, `r${round}f${fanout}`);
            runs.push(result);
            if (result.lost) failed = true;
            log(`pubsub-apart: ${lineup.broker.kind} ${lineup.side} ×${fanout}: ${rate(result.rate)} msg/s per subscriber, ${result.lost} lost; CPU publisher ${result.cpu.publisher.toFixed(0)}%, subscribers ${Math.max(...result.cpu.subscribers).toFixed(0)}% at most, broker ${result.cpu.broker.toFixed(0)}%`);
          } catch (error) {
            failed = true;
            log(`pubsub-apart: ${lineup.broker.kind} ${lineup.side} ×${fanout} FAILED: ${(error as Error).message}`);
          }
        }
      }
    }
  } finally {
    await Promise.all(state.processes.map((child) => child.close(5000)));
    await Promise.all(state.brokers.map((broker) => broker.close()));
    for (const broker of state.brokers) broker.history?.remove();
    apartLive = undefined;
  }
  return { config, runs, failed };
}

async function runApart(
  lineup: { broker: PeerBroker; side: ApartSide; publisher: PeerProcess; subscribers: PeerProcess[] },
  fanout: 1 | 10,
  config: PubSubApartConfig,
  run: string,
): Promise<ApartRun> {
  const count = config.messages[fanout];
  const subscribers = lineup.subscribers.slice(0, fanout);
  for (const subscriber of subscribers) expectPubSub(await subscriber.command({ cmd: 'ps-arm', run, count }, 10_000));
  const pids = { publisher: lineup.publisher.pid, subscribers: subscribers.map((subscriber) => subscriber.pid), broker: lineup.broker.pid };
  const read = () => ({
    publisher: processCpuSeconds(pids.publisher) ?? 0,
    subscribers: pids.subscribers.map((pid) => processCpuSeconds(pid) ?? 0),
    broker: processCpuSeconds(pids.broker) ?? 0,
    brokerThreads: threadCpuSeconds(pids.broker),
    self: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    machine: machineCpuSeconds()?.busy ?? 0,
  });
  const before = read();
  const t0 = performance.now();
  const published = expectPubSub(await lineup.publisher.command({ cmd: 'ps-publish', run, fanout, count, chunk: config.chunk }, 180_000));
  const collected = await Promise.all(subscribers.map(async (subscriber) => expectPubSub(await subscriber.command({ cmd: 'ps-collect', idleMs: 5000, capMs: 180_000 }, 200_000))));
  const after = read();
  const seconds = (performance.now() - t0) / 1000;
  const share = (delta: number) => (delta / seconds) * 100;
  const subscriberDeltas = after.subscribers.map((cpu, index) => cpu - before.subscribers[index]!);
  const ours = after.publisher - before.publisher + subscriberDeltas.reduce((sum, delta) => sum + delta, 0) + (after.broker - before.broker) + (after.self - before.self);
  const lastAt = Math.max(...collected.map((reply) => reply.endAt ?? 0));
  const lost = collected.reduce((sum, reply) => sum + (count - (reply.distinct ?? 0)), 0);
  return {
    broker: lineup.broker.kind,
    side: lineup.side,
    fanout,
    sent: count,
    rate: (count / (lastAt - published.startAt!)) * 1000,
    lost,
    duplicates: collected.reduce((sum, reply) => sum + (reply.received ?? 0) - (reply.distinct ?? 0), 0),
    publishMs: published.endAt! - published.startAt!,
    cpu: {
      publisher: share(after.publisher - before.publisher),
      subscribers: subscriberDeltas.map(share),
      broker: share(after.broker - before.broker),
      brokerTopThread: share(Math.max(0, ...[...after.brokerThreads].map(([tid, cpu]) => cpu - (before.brokerThreads.get(tid) ?? 0)))),
      others: share(Math.max(0, after.machine - before.machine - ours)) },
  };
}

/** CPU seconds of each thread of a process (/proc/<pid>/task), by thread id: relais start's broker thread apart from its router's. */
function threadCpuSeconds(pid: number): Map<number, number> {
  const threads = new Map<number, number>();
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      threads.set(Number(tid), (Number(fields[11]) + Number(fields[12])) / 100);
    }
  } catch {
    // a thread that ended meanwhile
  }
  return threads;
}

function expectPubSub(reply: Reply): PubSubReply {
  if (reply.peer !== 'pubsub') throw new Error(`a pub/sub process answered ${JSON.stringify(reply).slice(0, 300)}`);
  return reply;
}

export function pubSubApartTables(result: PubSubApartResult): Table[] {
  const { config, runs } = result;
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  };
  const spread = (values: number[], format: (value: number) => string) => `${format(median(values))} (${format(Math.min(...values))}–${format(Math.max(...values))})`;
  const rows: string[][] = [];
  for (const broker of config.brokers) {
    for (const fanout of [1, 10] as const) {
      const rawRuns = runs.filter((run) => run.broker === broker && run.fanout === fanout && run.side === 'raw');
      for (const side of config.sides) {
        const list = runs.filter((run) => run.broker === broker && run.fanout === fanout && run.side === side);
        if (!list.length) continue;
        const pct = (value: number) => `${value.toFixed(0)}%`;
        rows.push([
          PEER_BROKER_LABELS[broker],
          String(fanout),
          APART_SIDES[side],
          spread(list.map((run) => run.rate), rate),
          rawRuns.length ? ratio(median(list.map((run) => run.rate)) / median(rawRuns.map((run) => run.rate))) : 'n/a',
          `${list.reduce((sum, run) => sum + run.lost, 0)}${list.some((run) => run.duplicates) ? ` (+${list.reduce((sum, run) => sum + run.duplicates, 0)} dup)` : ''}`,
          spread(list.map((run) => run.publishMs / 1000), (value) => `${value.toFixed(2)} s`),
          spread(list.map((run) => run.cpu.publisher), pct),
          spread(list.map((run) => Math.max(...run.cpu.subscribers)), pct),
          `${spread(list.map((run) => run.cpu.broker), pct)}; busiest thread ${spread(list.map((run) => run.cpu.brokerTopThread), pct)}`,
          spread(list.map((run) => run.cpu.publisher + run.cpu.subscribers.reduce((sum, cpu) => sum + cpu, 0) + run.cpu.broker), pct),
          spread(list.map((run) => run.cpu.others), pct),
        ]);
      }
    }
  }
  return [
    {
      title: `Pub/sub, every client apart (${rate(config.messages[1])} messages to 1 subscriber, ${rate(config.messages[10])} to 10; ${config.rounds} interleaved round(s); median (lowest–highest))`,
      columns: ['broker', 'subscribers', 'side', 'msg/s each subscriber got', 'vs raw QoS 0 (medians)', 'lost', 'publish loop', 'publisher CPU', 'busiest subscriber CPU', 'broker process CPU', 'all its processes (of 200%)', 'rest of the machine'],
      rows,
      notes: [
        'msg/s = messages / (the last one at the slowest subscriber − the first publish); with 10 subscribers the broker delivers 10× that',
        'CPU in % of one core over the run (publish + delivery), from /proc; 100% is a saturated single-threaded process (relais start: the broker thread, plus its router thread)',
        `the publisher yields to its event loop every ${config.chunk} messages; payload ~100 bytes, envelope ~200 bytes, the same bytes on every side`,
      ],
    },
  ];
}
