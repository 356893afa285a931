/**
 * `system/misc/benchmark` (PSEC's `START_BENCHMARK`, docs/agent.md "Benchmark"): measures this host for real and
 * reports `{status: "started"}`, then one progress step per module with its figures, then
 * `{status: "finished", results}`. Modules: `cpu` (SHA-256 of 64 MiB), `disk` (write with
 * fsync, then read back, of `fileBytes` on the configured disk; the read may come from the
 * page cache, which the result says), `bus` (sequential request round trips through the
 * broker to this agent's own `system/misc/benchmark/ping`). `module: ""` runs them all.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { HandlerContext } from '../client/index.js';
import { BusyError } from '../protocol/errors.js';
import { openForReading, openForWriting, removeFile } from './confine.js';
import type { BenchmarkConfig, DisksConfig } from './config.js';
import { resolveDisks } from './disks.js';
import { reportingFailures, type AgentService, type ServiceContext } from './service.js';

export const BENCHMARK_ACTION = 'system/misc/benchmark';
export const PING_ACTION = 'system/misc/benchmark/ping';
const MODULES = ['cpu', 'disk', 'bus'] as const;
type Module = (typeof MODULES)[number];
// A missing payload is `{}`: every module (PSEC sends `module: ""`).
const schema = z.object({ module: z.union([z.literal(''), z.enum(MODULES)]).default('') }).default({ module: '' });

const CPU_BYTES = 64 * 1024 * 1024;
const CHUNK = 1024 * 1024;

const rate = (bytes: number, ms: number) => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export function benchmarkService(config: BenchmarkConfig, disks: DisksConfig, context: ServiceContext): AgentService {
  const disk = resolveDisks(disks).get(config.disk)!;
  let running = false;

  async function cpu(signal: AbortSignal) {
    const chunk = randomBytes(CHUNK);
    const hash = createHash('sha256');
    const started = performance.now();
    for (let done = 0; done < CPU_BYTES; done += CHUNK) {
      signal.throwIfAborted();
      hash.update(chunk);
      if (done % (8 * CHUNK) === 0) await nextTurn(); // let the agent answer others meanwhile
    }
    hash.digest();
    const ms = performance.now() - started;
    return { sha256MBps: rate(CPU_BYTES, ms), bytes: CPU_BYTES, ms: Math.round(ms) };
  }

  async function diskSpeed(signal: AbortSignal) {
    const name = `relais-benchmark-${randomBytes(4).toString('hex')}.bin`;
    const file = await openForWriting(disk, name);
    const chunk = randomBytes(CHUNK);
    let writeMs: number;
    try {
      const started = performance.now();
      for (let written = 0; written < config.fileBytes; written += CHUNK) {
        signal.throwIfAborted();
        await file.handle.write(chunk, 0, Math.min(CHUNK, config.fileBytes - written));
      }
      await file.commit(); // fsync, close, rename: the data is on the disk
      writeMs = performance.now() - started;
    } catch (error) {
      await file.discard();
      throw error;
    }
    try {
      const started = performance.now();
      const { handle } = await openForReading(disk, name);
      try {
        const buffer = Buffer.allocUnsafe(CHUNK);
        while ((await handle.read(buffer, 0, CHUNK)).bytesRead > 0) signal.throwIfAborted();
      } finally {
        await handle.close();
      }
      const readMs = performance.now() - started;
      return { disk: disk.id, bytes: config.fileBytes, writeMBps: rate(config.fileBytes, writeMs), readMBps: rate(config.fileBytes, readMs), readMayBeCached: true };
    } finally {
      await removeFile(disk, name).catch(() => {});
    }
  }

  async function busRoundTrip(signal: AbortSignal) {
    const times: number[] = [];
    for (let index = 0; index < config.roundTrips; index += 1) {
      const started = performance.now();
      await context.bus.request(PING_ACTION, {}, { target: context.bus.id, timeout: 5000, signal });
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    const at = (q: number) => Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]! * 1000) / 1000;
    return { roundTrips: times.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
  }

  const measure: Record<Module, (signal: AbortSignal) => Promise<unknown>> = { cpu, disk: diskSpeed, bus: busRoundTrip };

  const benchmark = async ({ module }: z.output<typeof schema>, ctx: HandlerContext) => {
    if (running) throw new BusyError('a benchmark is already running on this agent; try again once it has finished');
    running = true;
    try {
      const modules = module === '' ? [...MODULES] : [module];
      ctx.progress(0, { status: 'started', modules });
      const results: Partial<Record<Module, unknown>> = {};
      for (const [index, name] of modules.entries()) {
        results[name] = await measure[name](ctx.signal);
        ctx.progress((index + 1) / modules.length, { status: 'started', module: name, result: results[name] });
      }
      return { status: 'finished', results };
    } finally {
      running = false;
    }
  };

  return {
    name: 'benchmark',
    actions: {
      [BENCHMARK_ACTION]: {
        description: 'measures this host (cpu, disk, bus): started, a progress step per module, finished',
        input: schema,
        handler: reportingFailures('benchmark', BENCHMARK_ACTION, benchmark, context),
      },
      [PING_ACTION]: () => ({}),
    },
  };
}
