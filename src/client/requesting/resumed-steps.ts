/**
 * A router's stream (a kv watch, a history follow: protocol §11.2, §14.9) asked again whenever
 * its steps may have been lost: at once after this client's own reconnection, and a moment
 * later after an error the caller takes as passing (the router's `StreamInterruptedError`, or
 * the router away). Each attempt asks from where the caller stands (`payloadOf`), so nothing is
 * missed; the caller skips what it already handled, so nothing is doubled.
 */
import type { RequestOptions, Step } from '../types.js';
import { pause } from '../wait.js';

/** What a resumed stream needs of a connected client: the Bus has it. */
export interface ResumableClient {
  call(action: string, payload: unknown, options: RequestOptions): AsyncIterableIterator<Step>;
  on(event: 'online', listener: () => void): unknown;
  off(event: 'online', listener: () => void): unknown;
}

export interface ResumeOptions {
  /** Ends the stream: the error it ends with is thrown. */
  signal?: AbortSignal;
  /** Each attempt's time-out (undefined: the client's default). */
  timeoutOf(): number | undefined;
  /** Whether an attempt that failed with `error` is asked again. */
  mayRetry(error: unknown): boolean;
  /** Told of each error asked again after. */
  onRetry?(error: unknown): void;
}

/** Pause before asking again after an error taken as passing. */
const RETRY_MS = 1000;

/** The steps of `action`, attempt after attempt, until one ends (then returns) or fails with an error `mayRetry` refuses (thrown). */
export async function* resumedSteps(client: ResumableClient, action: string, payloadOf: () => unknown, options: ResumeOptions): AsyncGenerator<Step> {
  const { signal } = options;
  for (;;) {
    const attempt = new AbortController();
    const stopAttempt = () => attempt.abort(signal?.reason);
    const onOnline = () => attempt.abort();
    client.on('online', onOnline);
    signal?.addEventListener('abort', stopAttempt, { once: true });
    try {
      const timeout = options.timeoutOf();
      yield* client.call(action, payloadOf(), { ...(timeout !== undefined && { timeout }), signal: attempt.signal });
      return;
    } catch (error) {
      if (signal?.aborted) throw error;
      // Our connection came back: what the router sent meanwhile may be lost, ask again at once.
      if (attempt.signal.aborted) continue;
      if (!options.mayRetry(error)) throw error;
      options.onRetry?.(error);
      await pause(RETRY_MS, signal);
    } finally {
      client.off('online', onOnline);
      signal?.removeEventListener('abort', stopAttempt);
      attempt.abort();
    }
  }
}
