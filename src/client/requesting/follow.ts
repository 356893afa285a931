/**
 * `bus.follow(token)`: one request's lifecycle from the router's history, replayed then live
 * until its end (protocol §11.2), by anyone, even a requester that restarted after sending it.
 */
import { HISTORY_ACTIONS, type HistoryRow } from '../../protocol/history.js';
import type { RequestOptions, Step } from '../types.js';

export interface FollowOptions extends Pick<RequestOptions, 'timeout' | 'signal'> {
  /** Rows up to this id were already seen: start after it. */
  afterId?: number;
}

type Call = (action: string, payload: unknown, options: RequestOptions) => AsyncIterableIterator<Step>;

/** Yields each history row of `token` in order, the last one being its final, error or put row. */
export async function* followToken(call: Call, token: string, options: FollowOptions = {}): AsyncGenerator<HistoryRow> {
  const payload = { token, ...(options.afterId !== undefined && { afterId: options.afterId }) };
  const requestOptions: RequestOptions = { ...(options.timeout !== undefined && { timeout: options.timeout }), ...(options.signal && { signal: options.signal }) };
  for await (const step of call(HISTORY_ACTIONS.follow, payload, requestOptions)) {
    if (step.kind === 'progress') yield* step.payload as HistoryRow[];
    else if (step.kind === 'final') yield step.payload as HistoryRow;
  }
}
