/**
 * What differs between the runtimes a client runs in (Node, a browser). The entry point passes
 * a `Runtime` to the Bus (src/client/connect.ts for Node, src/browser.ts for browsers); the rest
 * of the client names no Node API, so a browser bundle of it holds no Node module.
 */
import type { Logger } from 'pino';
import type { LogService } from './serving/index.js';
import type { ResolvedLogsOptions, ResolvedOptions } from './options.js';
import type { Signer, Verifier } from './connection/index.js';
import type { Sealing } from './sealing.js';
import type { SealingOptions, SigningOptions, VerifyOptions } from './types.js';

export interface Runtime {
  /** What `ConnectOptions.broker` defaults to. */
  defaultBroker(): string;
  /** What `ConnectOptions.logger` defaults to. */
  defaultLogger(): Logger;
  /** Facts every presence of this client carries about where it runs (host, pid; protocol §7.1). */
  hostFacts(): Record<string, unknown>;
  /** Logs on demand (protocol §11.4). Absent: a client keeps and serves no log lines. */
  logService?(options: ResolvedOptions, logs: ResolvedLogsOptions): LogService;
  /** Signed envelopes (protocol §12). Absent: the `signing` and `verify` options are refused. */
  signatures?: {
    signer(options: SigningOptions): Signer;
    verifier(options: VerifyOptions, own: Signer | undefined, identity: string): Verifier;
  };
  /** Sealed payloads (protocol §3.6). Absent: the `sealing` option is refused, and sealed messages stay unopened. */
  sealing?(options: SealingOptions | undefined): Sealing;
}

type ProcessLike = { env?: Record<string, string | undefined>; nextTick?(callback: () => void): void };
const nodeProcess = (globalThis as { process?: ProcessLike }).process;

/** A variable of the process environment; undefined where there is none (a browser). */
export function environmentVariable(name: string): string | undefined {
  return nodeProcess?.env?.[name];
}

/**
 * Runs `callback` once the microtasks queued now have run: in Node, a next-tick queued from a
 * microtask; elsewhere, the next task.
 */
export function afterMicrotasks(callback: () => void): void {
  if (nodeProcess?.nextTick) queueMicrotask(() => nodeProcess.nextTick!(callback));
  else setTimeout(callback, 0);
}

/**
 * Runs `callback` once the I/O that is ready now has been read: in Node, setImmediate (its check
 * phase comes after the poll phase of the turn, whose timers ran before); elsewhere, a task
 * queued behind the events already waiting. What a timer decides from silence waits for it.
 */
export function afterPendingIo(callback: () => void): void {
  if (typeof globalThis.setImmediate === 'function') globalThis.setImmediate(callback);
  else setTimeout(callback, 0);
}
