/**
 * Small helpers shared by the benchmark scenarios: statistics, time limits, CPU sampling
 * and markdown tables. No I/O besides reading /proc for a child's CPU time.
 */
import fs from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

export { yieldToLoop };

export interface Summary {
  n: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    n: sorted.length,
    mean: sorted.length ? sum / sorted.length : NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
}

/** Rejects with a clear message when `promise` takes longer than `ms`: every wait of the benchmark is bounded. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves when `done()` is true; polls every `every` ms. Resolves false (instead of
 * hanging) when nothing changed in `progress()` for `idleMs`, or after `capMs` in all.
 */
export async function waitUntil(
  done: () => boolean,
  options: { progress?: () => number; idleMs: number; capMs: number; every?: number },
): Promise<boolean> {
  const start = Date.now();
  let lastValue = options.progress?.() ?? 0;
  let lastChange = start;
  while (!done()) {
    const now = Date.now();
    if (now - start > options.capMs) return false;
    const value = options.progress?.() ?? 0;
    if (value !== lastValue) {
      lastValue = value;
      lastChange = now;
    } else if (now - lastChange > options.idleMs) {
      return false;
    }
    await sleep(options.every ?? 5);
  }
  return true;
}

/** CPU seconds (user + system) of another process, from /proc; undefined when unreadable. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds the whole machine spent busy (all cores: user, nice, system, irq, softirq) and
 * stolen by the hypervisor, from the first line of /proc/stat; undefined when unreadable.
 */
export function machineCpuSeconds(): { busy: number; steal: number } | undefined {
  try {
    const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return { busy: (user + nice + system + irq + softirq) / 100, steal: steal / 100 };
  } catch {
    return undefined;
  }
}

/**
 * Waits until the machine is nearly idle — at most `share` of one core busy over a window of
 * `windowMs` — or `capMs` passed. Resolves with the busy share of the last window (in cores).
 */
export async function waitForQuiet(capMs: number, share = 0.1, windowMs = 500): Promise<{ waitedMs: number; busy: number }> {
  const start = performance.now();
  for (;;) {
    const before = machineCpuSeconds();
    const t0 = performance.now();
    await sleep(windowMs);
    const after = machineCpuSeconds();
    const busy = before && after ? (after.busy - before.busy) / ((performance.now() - t0) / 1000) : 0;
    const waitedMs = performance.now() - start;
    if (busy <= share || waitedMs >= capMs) return { waitedMs, busy };
  }
}

/** Measures the wall time and the CPU use of this process (the clients) and of the broker process. */
export class CpuMeter {
  private readonly wall0 = performance.now();
  private readonly self0 = process.cpuUsage();
  private readonly broker0: number | undefined;

  constructor(private readonly brokerPid?: number) {
    this.broker0 = processCpuSeconds(brokerPid);
  }

  /** Percent of one core used by the clients and by the broker since construction. */
  read(): { wallMs: number; clientsCpu: number; brokerCpu?: number } {
    const wallMs = performance.now() - this.wall0;
    const self = process.cpuUsage(this.self0);
    const clientsCpu = ((self.user + self.system) / 1000 / wallMs) * 100;
    const broker1 = processCpuSeconds(this.brokerPid);
    const brokerCpu = this.broker0 !== undefined && broker1 !== undefined ? ((broker1 - this.broker0) * 1000 / wallMs) * 100 : undefined;
    return { wallMs, clientsCpu, ...(brokerCpu !== undefined && { brokerCpu }) };
  }
}

export function cpuNote(cpu: { clientsCpu: number; brokerCpu?: number }): string {
  return `clients ${cpu.clientsCpu.toFixed(0)}%${cpu.brokerCpu !== undefined ? `, broker ${cpu.brokerCpu.toFixed(0)}%` : ''}`;
}

export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value < 10 ? value.toFixed(3) : value < 100 ? value.toFixed(2) : value.toFixed(1);
}

export function rate(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return Math.round(value).toLocaleString('en-US');
}

export function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : 'n/a';
}

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  notes?: string[];
}

export function renderTable(table: Table): string {
  const lines = [`### ${table.title}`, '', `| ${table.columns.join(' | ')} |`, `|${table.columns.map(() => '---').join('|')}|`];
  for (const row of table.rows) lines.push(`| ${row.join(' | ')} |`);
  if (table.notes?.length) {
    lines.push('');
    for (const note of table.notes) lines.push(`- ${note}`);
  }
  lines.push('');
  return lines.join('\n');
}

/** Progress lines go to stderr so stdout holds only the tables. */
export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** µs per call of `step`, median of five loops of `count` calls. */
export function perCall(count: number, step: (i: number) => void): number {
  const runs: number[] = [];
  for (let run = 0; run < 5; run++) {
    const start = performance.now();
    for (let i = 0; i < count; i++) step(i);
    runs.push(((performance.now() - start) * 1000) / count);
  }
  return runs.sort((a, b) => a - b)[2]!;
}
