/**
 * Scenario 2, pub/sub throughput: N small notifications from one client to another.
 * Relais `notify` (QoS 1) + `subscribe` with a callback, against raw MQTT.js publish /
 * subscribe of the same envelope at QoS 1, and at QoS 0 for scale. Every message is
 * counted by its sequence number: lost and duplicated messages are reported.
 */
import type { MqttClient } from 'mqtt';
import type { Bus } from '../../src/index.js';
import type { BenchBroker } from '../lib/brokers.js';
import { closeAll, notificationBody, rawConnect, rawSubscribe, relaisConnect } from '../lib/clients.js';
import { CpuMeter, cpuNote, log, rate, ratio, waitUntil, yieldToLoop, type Table } from '../lib/util.js';

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
