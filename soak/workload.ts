/**
 * The workload, drawn from the seed: what each request asks (action, time-out, work, progress
 * steps, target, priority), the web client's commands, and the files transferred. Request n of
 * an actor depends on the seed, the actor and n only, so the same seed sends the same requests
 * whatever the timing of a run.
 */
import { deriveSeed, Random } from './random.js';

/** What the handlers serve, and so all their identities may serve (`serves` in the policy). */
export const HANDLER_ACTIONS = ['soak/work', 'soak/fail'] as const;

export interface RequestPlan {
  action: (typeof HANDLER_ACTIONS)[number];
  /** The requester's time-out, ms. */
  timeout: number;
  /** How long the handler works; above `timeout` for the requests meant to time out. */
  workMs: number;
  steps: number;
  target?: string;
  priority?: 'realtime';
  padBytes: number;
  /** The requester's pause after this request ends. */
  pauseMs: number;
}

/** Bounds of the plans, in one place (the report quotes them). */
export const WORKLOAD = {
  timeoutMs: [2000, 12_000],
  /** Share of `soak/fail` (a handler's error, code 101). */
  failShare: 0.08,
  /** Share of requests whose work outlasts their time-out. */
  overtimeShare: 0.05,
  targetedShare: 0.2,
  realtimeShare: 0.1,
  workMs: [20, 3000],
  pauseMs: [0, 400],
  /** Sizes of the files sent to the agent and fetched back. */
  fileBytes: [64 * 1024, 4 * 1024 * 1024],
} as const;

export function requestPlan(seed: number, n: number, handlers: readonly string[]): RequestPlan {
  const random = new Random(deriveSeed(seed, `request:${n}`));
  const action = random.chance(WORKLOAD.failShare) ? 'soak/fail' : 'soak/work';
  const timeout = random.int(...WORKLOAD.timeoutMs);
  const overtime = random.chance(WORKLOAD.overtimeShare);
  const workMs = overtime ? timeout + random.int(500, 3000) : random.int(WORKLOAD.workMs[0], Math.min(WORKLOAD.workMs[1], Math.floor(timeout / 2)));
  const steps = random.int(1, 5);
  const target = random.chance(WORKLOAD.targetedShare) ? random.pick(handlers) : undefined;
  const priority = random.chance(WORKLOAD.realtimeShare) ? ('realtime' as const) : undefined;
  return { action, timeout, workMs, steps, padBytes: random.int(0, 300), pauseMs: random.int(...WORKLOAD.pauseMs), ...(target && { target }), ...(priority && { priority }) };
}

/** The web client's command n: its time-out and work. */
export function webCommandPlan(seed: number, n: number): { timeout: number; workMs: number; steps: number; pauseMs: number } {
  const random = new Random(deriveSeed(seed, `web:${n}`));
  const timeout = random.int(...WORKLOAD.timeoutMs);
  return { timeout, workMs: random.int(20, Math.floor(timeout / 2)), steps: random.int(1, 4), pauseMs: random.int(500, 2500) };
}

/** Transfer n: the file's size and contents. */
export function transferFile(seed: number, n: number): Buffer {
  const random = new Random(deriveSeed(seed, `file:${n}`));
  return random.bytes(random.int(...WORKLOAD.fileBytes));
}
