/**
 * One command sent from the console, followed through the library's `bus.call()` (protocol
 * §4): its steps as they come, for the run panel, and its end, a result or a typed error.
 * The token is the page's own (`newToken`), so the panel links to its history at once.
 */
import { newToken, RemoteError, type Bus, type Priority, type RelaisError } from 'relais/browser';

export type RunStep =
  | { kind: 'sent'; at: number }
  | { kind: 'accepted'; at: number; by: string }
  | { kind: 'progress'; at: number; by: string; progress?: number; payload: unknown };

/** An error as the panel shows it: the handler's own name for a remote error, and its response code (protocol §5.1). */
export interface RunFailure {
  name: string;
  code: number;
  message: string;
  details?: unknown;
}

export type RunEnd = { ok: true; at: number; by: string; payload: unknown } | { ok: false; at: number; error: RunFailure };

export interface Run {
  token: string;
  action: string;
  /** The client it was sent to, `*` for every provider; undefined: the library picks one (least busy, in rotation). */
  target?: string;
  /** Settles with the end; never rejects. */
  done: Promise<RunEnd>;
  /** Aborts the call: the library sends the handler a cancel (protocol §4.4). */
  cancel(): void;
  /** Calls `listener` with every step so far, then with each new one. */
  watch(listener: (step: RunStep) => void): () => void;
}

export function startRun(bus: Bus, action: string, payload: unknown, options: { target?: string; priority: Priority; timeout: number }): Run {
  const token = newToken();
  const controller = new AbortController();
  const steps: RunStep[] = [];
  const watchers = new Set<(step: RunStep) => void>();
  const step = (next: RunStep) => {
    steps.push(next);
    for (const watcher of watchers) watcher(next);
  };
  step({ kind: 'sent', at: Date.now() });
  const done = (async (): Promise<RunEnd> => {
    try {
      const call = bus.call(action, payload, { token, priority: options.priority, timeout: options.timeout, signal: controller.signal, ...(options.target !== undefined && { target: options.target }) });
      for await (const answer of call) {
        const at = Date.now();
        if (answer.kind === 'final') return { ok: true, at, by: answer.source, payload: answer.payload };
        if (answer.kind === 'accepted') step({ kind: 'accepted', at, by: answer.source });
        else step({ kind: 'progress', at, by: answer.source, payload: answer.payload, ...(answer.progress !== undefined && { progress: answer.progress }) });
      }
      return { ok: false, at: Date.now(), error: { name: 'Error', code: 1, message: 'the call ended without a final answer' } };
    } catch (error) {
      return { ok: false, at: Date.now(), error: failure(error) };
    }
  })();
  return {
    token,
    action,
    ...(options.target !== undefined && { target: options.target }),
    done,
    cancel: () => controller.abort(),
    watch: (listener) => {
      for (const seen of steps) listener(seen);
      watchers.add(listener);
      return () => watchers.delete(listener);
    },
  };
}

function failure(error: unknown): RunFailure {
  const relais = error as Partial<RelaisError>;
  return {
    name: error instanceof RemoteError ? error.remoteName : error instanceof Error ? error.name : 'Error',
    code: typeof relais.responseCode === 'number' ? relais.responseCode : 1,
    message: error instanceof Error ? error.message : String(error),
    ...(relais.details !== undefined && { details: relais.details }),
  };
}
