/**
 * What a pending request (pending-request.ts) is made of and needs from the requester that
 * holds it: the shape of its start, where its steps go, the services it calls.
 */
import type { Priority } from '../protocol/envelope.js';
import type { AckClock } from './ack-clock.js';
import type { Directory } from './directory.js';
import type { ResolvedOptions } from './options.js';
import type { PendingRequest } from './pending-request.js';
import type { Transport } from './transport.js';
import type { Lane, Step } from './types.js';

/** What a pending request needs from the requester that holds it. */
export interface RequestServices {
  readonly options: ResolvedOptions;
  readonly transport: Transport;
  readonly directory: Directory;
  /** The least busy provider of `action` outside `exclude`, a suspected one only when `unsuspectedOnly` is not set and nobody else is left (protocol §4.6). */
  pick(action: string, exclude: ReadonlySet<string> | undefined, unsuspectedOnly?: boolean): string | undefined;
  /** How long to wait for `handler`'s first answer to a command written now, after `misses` waits in vain, in ms (failure-detector.ts). */
  ackDeadline(handler: string, ackTimeout: number, misses?: number): number;
  /** `handler` gave no first answer within `waited` ms: it is suspected (protocol §4.7). */
  suspect(handler: string, ackTimeout: number, waited: number): void;
  /** `handler` gave its first answer to a command `rtt` ms after it was written. */
  answered(handler: string, rtt: number): void;
  /** The request has ended: forget it. */
  ended(request: PendingRequest): void;
  /** Two consecutive steps of one answer, for the Nagle watch. */
  steps(previous: { ts: number; at: number }, next: { ts: number; at: number }): void;
  readonly ackClock: AckClock;
}

/** Where a request's steps go: `call()` wants each one, `request()` only the final payload (no Step made for it). */
export interface StepSink {
  onStep(step: Step): void;
  /** When present, the final answer goes here instead of an `onStep` with a final Step. */
  onResult?(payload: unknown): void;
  fail(error: unknown): void;
}

export interface RequestInit {
  action: string;
  payload: unknown;
  token: string;
  priority: Priority;
  lane: Lane;
  timeout: number;
  ackTimeout: number;
  /** An id, `*` for every provider, or undefined to let the library pick one. */
  target: string | undefined;
  signal: AbortSignal | undefined;
  /** Sent while the directory was still loading, with no provider known: judged once it settles. */
  awaitingDirectory: boolean;
  onBehalfOf?: string | undefined;
}
