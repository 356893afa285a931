/**
 * Scenario 1, request/response: sequential echo latency (one request at a time) and
 * throughput with 100 requests in flight. Relais: `handle('bench/echo', p => p)` and
 * `request('bench/echo', payload)` from another client (acknowledged end to end, at QoS 0,
 * protocol §1.3). Raw MQTT.js: the same exchange by hand on `rawmq/echo/request` and
 * `rawmq/echo/response/<id>` (same topic lengths, same envelope fields) at QoS 1, the
 * guarantee a hand-written client needs to know its command reached the broker.
 */
import type { Bus } from '../../src/index.js';
import type { BenchBroker } from '../lib/brokers.js';
import { closeAll, RawRequester, RawResponder, relaisConnect, wireSizes } from '../lib/clients.js';
import { CpuMeter, cpuNote, log, ms, rate, ratio, summarize, withDeadline, type Summary, type Table } from '../lib/util.js';

export interface RequestConfig {
  warmup: number;
  sequential: number;
  batch: number;
  inFlight: number;
  concurrentTotal: number;
  rounds: number;
}

export interface RequestResult {
  broker: string;
  raw: { seq: Summary; tput: number; loaded: Summary; cpu: string };
  relais: { seq: Summary; tput: number; loaded: Summary; cpu: string };
  sizes: string;
}

const PAYLOAD = { n: 0, text: 'relais benchmark echo payload' };

export async function runRequest(broker: BenchBroker, config: RequestConfig): Promise<RequestResult> {
  let server: Bus | undefined;
  let client: Bus | undefined;
  let rawServer: RawResponder | undefined;
  let rawClient: RawRequester | undefined;
  try {
    // Ids and actions of equal lengths on both sides: identical byte counts on the wire.
    server = await relaisConnect(broker.url, 'bench-rr-rl-s');
    client = await relaisConnect(broker.url, 'bench-rr-rl-c');
    await server.handle('bench/echo', (payload) => payload);
    await client.waitForHandler('bench/echo', { timeout: 10_000 });
    rawServer = await RawResponder.create(broker.url, 'bench-rr-rw-s', 'rawmq/echo');
    rawClient = await RawRequester.create(broker.url, 'bench-rr-rw-c', 'rawmq/echo', 'bench-rr-rw-s');
    const relais = client;
    const raw = rawClient;

    const sizes = await wireSizes(broker.url, ['bench/echo/#', 'rawmq/echo/#'], async () => {
      await relais.request('bench/echo', PAYLOAD);
      await raw.request(PAYLOAD);
    });
    const sizeNote = [...sizes.entries()].map(([topic, list]) => `${topic} ${list.join('/')} B`).join(', ');

    const sides = {
      raw: () => raw.request(PAYLOAD),
      relais: () => relais.request('bench/echo', PAYLOAD),
    };

    // Warm-up (JIT, socket buffers), then interleaved batches so drift hits both sides alike.
    log(`${broker.label}: request/response warm-up`);
    await withDeadline(
      (async () => {
        for (let i = 0; i < config.warmup; i++) {
          await sides.raw();
          await sides.relais();
        }
      })(),
      60_000,
      'request warm-up',
    );
    log(`${broker.label}: ${config.sequential} sequential requests per side`);
    const samples = { raw: [] as number[], relais: [] as number[] };
    await withDeadline(
      (async () => {
        for (let done = 0, batch = 0; done < config.sequential; done += config.batch, batch++) {
          const order = batch % 2 === 0 ? (['raw', 'relais'] as const) : (['relais', 'raw'] as const);
          for (const side of order) {
            const count = Math.min(config.batch, config.sequential - done);
            for (let i = 0; i < count; i++) {
              const start = performance.now();
              await sides[side]();
              samples[side].push(performance.now() - start);
            }
          }
        }
      })(),
      120_000,
      'sequential requests',
    );

    log(`${broker.label}: ${config.concurrentTotal} requests with ${config.inFlight} in flight, ${config.rounds} round(s) per side`);
    const totals = { raw: { count: 0, ms: 0, loaded: [] as number[], cpu: '' }, relais: { count: 0, ms: 0, loaded: [] as number[], cpu: '' } };
    for (let round = 0; round < config.rounds; round++) {
      const order = round % 2 === 0 ? (['raw', 'relais'] as const) : (['relais', 'raw'] as const);
      for (const side of order) {
        const meter = new CpuMeter(broker.pid);
        const result = await withDeadline(concurrent(sides[side], config.inFlight, config.concurrentTotal), 120_000, `${side} concurrent requests`);
        totals[side].count += config.concurrentTotal;
        totals[side].ms += result.elapsed;
        totals[side].loaded.push(...result.latencies);
        totals[side].cpu = cpuNote(meter.read());
      }
    }

    return {
      broker: broker.label,
      raw: { seq: summarize(samples.raw), tput: (totals.raw.count / totals.raw.ms) * 1000, loaded: summarize(totals.raw.loaded), cpu: totals.raw.cpu },
      relais: { seq: summarize(samples.relais), tput: (totals.relais.count / totals.relais.ms) * 1000, loaded: summarize(totals.relais.loaded), cpu: totals.relais.cpu },
      sizes: sizeNote,
    };
  } finally {
    await closeAll([client, server, rawClient?.client, rawServer?.client]);
  }
}

/** `total` requests, `inFlight` at a time; elapsed ms and each request's latency. */
async function concurrent(send: () => Promise<unknown>, inFlight: number, total: number): Promise<{ elapsed: number; latencies: number[] }> {
  let started = 0;
  const latencies: number[] = [];
  const begin = performance.now();
  const worker = async () => {
    while (started < total) {
      started++;
      const start = performance.now();
      await send();
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { elapsed: performance.now() - begin, latencies };
}

export function requestTables(results: RequestResult[]): Table[] {
  const rows: string[][] = [];
  for (const r of results) {
    rows.push([r.broker, 'sequential p50 (ms)', ms(r.raw.seq.p50), ms(r.relais.seq.p50), ratio(r.relais.seq.p50 / r.raw.seq.p50), '≤ 1.15x']);
    rows.push([r.broker, 'sequential p99 (ms)', ms(r.raw.seq.p99), ms(r.relais.seq.p99), ratio(r.relais.seq.p99 / r.raw.seq.p99), '']);
    rows.push([r.broker, 'sequential mean (ms)', ms(r.raw.seq.mean), ms(r.relais.seq.mean), ratio(r.relais.seq.mean / r.raw.seq.mean), '']);
    rows.push([r.broker, 'throughput, 100 in flight (req/s)', rate(r.raw.tput), rate(r.relais.tput), ratio(r.relais.tput / r.raw.tput), '≥ 1.0x']);
    rows.push([r.broker, 'latency p50 / p99 under that load (ms)', `${ms(r.raw.loaded.p50)} / ${ms(r.raw.loaded.p99)}`, `${ms(r.relais.loaded.p50)} / ${ms(r.relais.loaded.p99)}`, ratio(r.relais.loaded.p50 / r.raw.loaded.p50), '']);
    rows.push([r.broker, 'CPU during the throughput run', r.raw.cpu, r.relais.cpu, '', '']);
  }
  return [
    {
      title: '1. Request/response (echo; raw MQTT.js at QoS 1, Relais acknowledged end to end at QoS 0: the same guarantee)',
      columns: ['broker', 'metric', 'raw MQTT.js', 'Relais', 'Relais/raw', 'target'],
      rows,
      notes: [
        `sequential: ${results[0]?.raw.seq.n ?? 0} requests per side after warm-up, interleaved in batches; ratios of latencies: lower is better, of throughput: higher is better`,
        ...results.map((r) => `${r.broker}: bytes on the wire per message (request/response): ${r.sizes}`),
        'CPU: percent of one core used by the benchmark process (all clients) and by the broker process; 2 cores in all',
        'both clients share this process here; the peers comparison (--peers) runs requester, handler and broker apart, and against raw QoS 0, Moleculer and NATS',
      ],
    },
  ];
}
