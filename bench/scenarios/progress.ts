/**
 * Scenario 4, a progress stream: a call answered by 3 progress responses and the final
 * one, sequentially. The broker writes 4 packets back to back to a quiet client: the
 * pattern that stalls ~40 ms per call on a delayed ACK when the broker's sockets keep
 * Nagle on (protocol §1.2). Relais `call` + `ctx.progress` against raw MQTT.js doing
 * the same 4 responses by hand.
 */
import type { Bus } from '../../src/index.js';
import type { BenchBroker } from '../lib/brokers.js';
import { closeAll, RawRequester, RawResponder, relaisConnect } from '../lib/clients.js';
import { log, ms, ratio, summarize, withDeadline, type Summary, type Table } from '../lib/util.js';

export interface ProgressConfig {
  warmup: number;
  calls: number;
  batch: number;
}

export interface ProgressResult {
  broker: string;
  raw: Summary;
  relais: Summary;
  stalled: { raw: number; relais: number };
}

const STEPS = [0.2, 0.5, 0.8] as const;
const PAYLOAD = { job: 'bench', size: 3 };
/** A call slower than this is counted as stalled (a delayed-ACK wait is ~40 ms). */
const STALL_MS = 20;

export async function runProgress(broker: BenchBroker, config: ProgressConfig): Promise<ProgressResult> {
  let server: Bus | undefined;
  let client: Bus | undefined;
  let rawServer: RawResponder | undefined;
  let rawClient: RawRequester | undefined;
  try {
    server = await relaisConnect(broker.url, 'bench-pg-rl-s');
    client = await relaisConnect(broker.url, 'bench-pg-rl-c');
    await server.handle('bench/steps', (payload, ctx) => {
      for (const step of STEPS) ctx.progress(step);
      return payload;
    });
    await client.waitForHandler('bench/steps', { timeout: 10_000 });
    rawServer = await RawResponder.create(broker.url, 'bench-pg-rw-s', 'rawmq/steps', STEPS);
    rawClient = await RawRequester.create(broker.url, 'bench-pg-rw-c', 'rawmq/steps', 'bench-pg-rw-s');
    const relais = client;
    const raw = rawClient;

    const sides = {
      relais: async () => {
        let steps = 0;
        for await (const step of relais.call('bench/steps', PAYLOAD)) {
          // The handler answers within its turn: its first progress step stands for the
          // acknowledgement (protocol §4.7), and call() yields only steps that travelled.
          steps++;
          if (step.kind === 'final') break;
        }
        if (steps !== STEPS.length + 1) throw new Error(`Relais call yielded ${steps} steps, expected ${STEPS.length + 1} (progress, final)`);
      },
      raw: async () => {
        let progress = 0;
        await raw.request(PAYLOAD, () => progress++);
        if (progress !== STEPS.length) throw new Error(`raw call saw ${progress} progress responses, expected ${STEPS.length}`);
      },
    };

    log(`${broker.label}: progress stream, ${config.calls} sequential calls per side`);
    const samples = { raw: [] as number[], relais: [] as number[] };
    await withDeadline(
      (async () => {
        for (let i = 0; i < config.warmup; i++) {
          await sides.raw();
          await sides.relais();
        }
        for (let done = 0, batch = 0; done < config.calls; done += config.batch, batch++) {
          const order = batch % 2 === 0 ? (['raw', 'relais'] as const) : (['relais', 'raw'] as const);
          for (const side of order) {
            const count = Math.min(config.batch, config.calls - done);
            for (let i = 0; i < count; i++) {
              const start = performance.now();
              await sides[side]();
              samples[side].push(performance.now() - start);
            }
          }
        }
      })(),
      120_000,
      'progress calls',
    );
    return {
      broker: broker.label,
      raw: summarize(samples.raw),
      relais: summarize(samples.relais),
      stalled: { raw: samples.raw.filter((x) => x > STALL_MS).length, relais: samples.relais.filter((x) => x > STALL_MS).length },
    };
  } finally {
    await closeAll([client, server, rawClient?.client, rawServer?.client]);
  }
}

export function progressTables(results: ProgressResult[]): Table[] {
  return [
    {
      title: '4. Progress stream (call → 3 progress responses + final, sequential)',
      columns: ['broker', 'calls/side', 'raw p50 (ms)', 'raw p99 (ms)', 'Relais p50 (ms)', 'Relais p99 (ms)', 'Relais/raw p50', 'Relais/raw p99', `calls > ${STALL_MS} ms (raw / Relais)`],
      rows: results.map((r) => [
        r.broker,
        String(r.relais.n),
        ms(r.raw.p50),
        ms(r.raw.p99),
        ms(r.relais.p50),
        ms(r.relais.p99),
        ratio(r.relais.p50 / r.raw.p50),
        ratio(r.relais.p99 / r.raw.p99),
        `${r.stalled.raw} / ${r.stalled.relais}`,
      ]),
      notes: [
        'a Nagle/delayed-ACK stall shows as ~40 ms per call; the "without set_tcp_nodelay" row, when present, is a control that shows it',
        'all clients set no-delay on their own sockets (Relais does; the raw clients are given the same), so only the broker side differs in the control',
      ],
    },
  ];
}
