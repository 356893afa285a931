/**
 * The one way the library bounds a wait: a time-out timer and an abort listener armed
 * together, each firing at most once, disarmed together (protocol §4.5: every wait ends).
 */
import { MAX_TIMER_MS } from './options.js';

export interface Guard {
  /** Milliseconds until `onTimeout`; none when absent or beyond what a Node timer holds. */
  timeout?: number;
  onTimeout?: () => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** Arms the guard; the returned function disarms it (idempotent). */
export function arm(guard: Guard): () => void {
  let armed = true;
  const disarm = () => {
    if (!armed) return;
    armed = false;
    clearTimeout(timer);
    guard.signal?.removeEventListener('abort', aborted);
  };
  const aborted = () => {
    if (!armed) return;
    disarm();
    guard.onAbort?.();
  };
  const timer =
    guard.timeout !== undefined && guard.onTimeout && guard.timeout <= MAX_TIMER_MS
      ? setTimeout(() => {
          if (!armed) return;
          disarm();
          guard.onTimeout!();
        }, guard.timeout)
      : undefined;
  guard.signal?.addEventListener('abort', aborted, { once: true });
  return disarm;
}

/**
 * A promise settled by `start`'s `settle`, by the time-out (rejecting with `timeoutError()`)
 * or by the signal (rejecting with `abortError()`), whichever comes first. The cleanup that
 * `start` returns runs exactly once, however it settles.
 */
export function waitFor<T>(
  options: { timeout?: number; timeoutError?: () => Error; signal?: AbortSignal; abortError?: () => Error },
  start: (settle: (error: Error | undefined, value?: T) => void) => (() => void) | void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup: (() => void) | void;
    let done = false;
    const settle = (error: Error | undefined, value?: T) => {
      if (done) return;
      done = true;
      disarm();
      cleanup?.();
      if (error) reject(error);
      else resolve(value as T);
    };
    const disarm = arm({
      ...(options.timeout !== undefined && { timeout: options.timeout }),
      onTimeout: () => settle(options.timeoutError?.() ?? new Error(`no answer within ${options.timeout} ms`)),
      ...(options.signal && { signal: options.signal }),
      onAbort: () => settle(options.abortError?.() ?? new Error('aborted')),
    });
    if (options.signal?.aborted) return settle(options.abortError?.() ?? new Error('aborted'));
    cleanup = start(settle);
    if (done) cleanup?.();
  });
}

/** Resolves after `ms`, or at once when `signal` aborts: a pause between two attempts. */
export function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    arm({ timeout: ms, onTimeout: resolve, ...(signal && { signal }), onAbort: resolve });
  });
}
