/**
 * The fault schedule: which fault, on what, when and for how long, drawn from the seed alone,
 * so the same seed replays the same schedule. Two lanes run side by side, each one fault at a
 * time: the infrastructure (the `relais start` process, its disk, its policy) and the clients
 * (handlers, the agent, the network links). Each lane deals its kinds from a shuffled deck, so
 * every kind comes once before any comes twice: a short run still meets every fault.
 */
import { createHash } from 'node:crypto';
import { BROKEN_POLICIES, type BrokenPolicy } from './policy-fault.js';
import type { Random } from './random.js';

export const INFRA_KINDS = ['broker-kill', 'broker-stop', 'disk-full', 'policy-broken'] as const;
export const CLIENT_KINDS = ['handler-kill', 'handler-stop', 'agent-kill', 'net-cut', 'net-partition', 'net-stall', 'net-latency', 'net-slow-read'] as const;

export type FaultKind = (typeof INFRA_KINDS)[number] | (typeof CLIENT_KINDS)[number];
export type Lane = 'infra' | 'clients';

export interface Fault {
  /** 1, 2, … in the order of `at`. */
  id: number;
  lane: Lane;
  kind: FaultKind;
  /** What it hits: a process name (`relais-start`, `handler-2`, `agent-1`), a network link, or the history disk. */
  target: string;
  /** Planned start, ms after the fault phase begins. */
  at: number;
  /** How long the fault lasts: a process stays down or frozen, a link stays bad, the disk stays full. 0: instant (a cut). */
  durationMs: number;
  /** net-latency: one-way delay and its jitter (ms); net-slow-read: bytes per second towards the client; policy-broken: how it is broken. */
  params?: { latencyMs?: number; jitterMs?: number; bytesPerSecond?: number; variant?: BrokenPolicy };
}

/** Durations in ms, [min, max]. */
const DURATION: Record<FaultKind, [number, number]> = {
  'broker-kill': [1000, 6000],
  'broker-stop': [2000, 10_000],
  'disk-full': [4000, 20_000],
  'policy-broken': [3000, 10_000],
  'handler-kill': [1000, 8000],
  'handler-stop': [1000, 12_000],
  'agent-kill': [1000, 6000],
  'net-cut': [0, 0],
  'net-partition': [1000, 10_000],
  'net-stall': [1000, 10_000],
  'net-latency': [5000, 20_000],
  'net-slow-read': [5000, 15_000],
};

/** Pause between two faults of a lane, ms. */
const GAP: [number, number] = [2000, 8000];

export interface Cast {
  handlers: readonly string[];
  agent: string;
  /** The network links the suite's proxies carry: one per client process, and the web client's HTTP. */
  links: readonly string[];
}

export function planFaults(random: Random, phaseMs: number, cast: Cast): Fault[] {
  const faults: Omit<Fault, 'id'>[] = [];
  for (const [lane, kinds] of [['infra', INFRA_KINDS], ['clients', CLIENT_KINDS]] as const) {
    const draw = random.fork(`lane:${lane}`);
    let deck: FaultKind[] = [];
    for (let at = draw.int(...GAP); at < phaseMs; ) {
      if (deck.length === 0) deck = draw.shuffle(kinds);
      const kind = deck.shift()!;
      const durationMs = draw.int(...DURATION[kind]);
      faults.push({ lane, kind, at, durationMs, target: targetOf(kind, draw, cast), ...paramsOf(kind, draw) });
      at += durationMs + draw.int(...GAP);
    }
  }
  return faults.sort((a, b) => a.at - b.at).map((fault, index) => ({ id: index + 1, ...fault }));
}

function targetOf(kind: FaultKind, random: Random, cast: Cast): string {
  switch (kind) {
    case 'broker-kill':
    case 'broker-stop':
    case 'policy-broken':
      return 'relais-start';
    case 'disk-full':
      return 'history-disk';
    case 'handler-kill':
    case 'handler-stop':
      return random.pick(cast.handlers);
    case 'agent-kill':
      return cast.agent;
    default:
      return random.pick(cast.links);
  }
}

function paramsOf(kind: FaultKind, random: Random): Pick<Fault, 'params'> {
  if (kind === 'net-latency') return { params: { latencyMs: random.int(20, 300), jitterMs: random.int(0, 200) } };
  if (kind === 'net-slow-read') return { params: { bytesPerSecond: random.int(2000, 50_000) } };
  if (kind === 'policy-broken') return { params: { variant: random.pick(BROKEN_POLICIES) } };
  return {};
}

/** One line per fault, as printed before the run and kept in the report. */
export function describeFault(fault: Fault): string {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const params = fault.params ? ` ${Object.entries(fault.params).map(([key, value]) => `${key}=${value}`).join(' ')}` : '';
  return `#${fault.id} +${seconds(fault.at)} ${fault.kind} ${fault.target}${fault.durationMs > 0 ? ` for ${seconds(fault.durationMs)}` : ''}${params}`;
}

/** A short digest of the schedule: two runs with the same digest replayed the same faults. */
export function scheduleDigest(faults: readonly Fault[]): string {
  return createHash('sha256').update(JSON.stringify(faults)).digest('hex').slice(0, 12);
}
