/**
 * Following the router's history (protocol §11.2 `follow`): the rows of one request's lifecycle
 * (`bus.follow(token)`), replayed then live until its end, by anyone, even a requester that
 * restarted after sending it; or every row a query matches, live (`relais history --follow`).
 * Steps lost with a connection are asked for again: after this client's own reconnection, and
 * when the router ends the stream because its connection was lost (`StreamInterruptedError`),
 * the follow goes on after the last row it yielded, none missed or doubled.
 */
import { isStreamInterrupted } from '../../protocol/errors.js';
import { HISTORY_ACTIONS, type HistoryFollow, type HistoryRow } from '../../protocol/history.js';
import type { RequestOptions, Step } from '../types.js';
import { pause } from '../wait.js';

export interface FollowOptions extends Pick<RequestOptions, 'timeout' | 'signal'> {
  /** Rows up to this id were already seen: start after it. */
  afterId?: number;
}

/** What a follow needs of a connected client: the Bus has it. */
export interface FollowClient {
  call(action: string, payload: unknown, options: RequestOptions): AsyncIterableIterator<Step>;
  on(event: 'online', listener: () => void): unknown;
  off(event: 'online', listener: () => void): unknown;
}

/** Pause before asking again a router that ended the stream. */
const RETRY_MS = 1000;

/** Yields each history row of `token` in order, the last one being its final, error or put row. */
export function followToken(client: FollowClient, token: string, options: FollowOptions = {}): AsyncGenerator<HistoryRow> {
  return followRows(client, { token }, options);
}

/**
 * Yields each row `query` matches, in id order, after `afterId`: with a token, until the row
 * that ends its lifecycle (yielded last); without, until `signal` or the time-out.
 */
export async function* followRows(client: FollowClient, query: Omit<HistoryFollow, 'afterId'>, options: FollowOptions = {}): AsyncGenerator<HistoryRow> {
  const { signal } = options;
  const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout;
  let last = options.afterId;
  for (;;) {
    const attempt = new AbortController();
    const stopAttempt = () => attempt.abort(signal?.reason);
    const onOnline = () => attempt.abort();
    client.on('online', onOnline);
    signal?.addEventListener('abort', stopAttempt, { once: true });
    try {
      const payload = { ...query, ...(last !== undefined && { afterId: last }) };
      const timeout = deadline === undefined ? undefined : Math.max(1, deadline - Date.now());
      for await (const step of client.call(HISTORY_ACTIONS.follow, payload, { ...(timeout !== undefined && { timeout }), signal: attempt.signal })) {
        const rows = step.kind === 'progress' ? (step.payload as HistoryRow[]) : step.kind === 'final' && step.payload ? [step.payload as HistoryRow] : [];
        for (const row of rows) {
          if (last !== undefined && row.id <= last) continue;
          last = row.id;
          yield row;
        }
        if (step.kind === 'final') return;
      }
      return;
    } catch (error) {
      if (signal?.aborted) throw error;
      // Our connection came back: what the router sent meanwhile may be lost, ask again at once.
      if (attempt.signal.aborted) continue;
      if (!isStreamInterrupted(error)) throw error;
      await pause(RETRY_MS, signal);
    } finally {
      client.off('online', onOnline);
      signal?.removeEventListener('abort', stopAttempt);
      attempt.abort();
    }
  }
}
