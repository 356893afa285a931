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
import type { RequestOptions } from '../types.js';
import { resumedSteps, type ResumableClient } from './resumed-steps.js';

export interface FollowOptions extends Pick<RequestOptions, 'timeout' | 'signal'> {
  /** Rows up to this id were already seen: start after it. */
  afterId?: number;
}

/** Yields each history row of `token` in order, the last one being its final, error or put row. */
export function followToken(client: ResumableClient, token: string, options: FollowOptions = {}): AsyncGenerator<HistoryRow> {
  return followRows(client, { token }, options);
}

/**
 * Yields each row `query` matches, in id order, after `afterId`: with a token, until the row
 * that ends its lifecycle (yielded last); without, until `signal` or the time-out.
 */
export async function* followRows(client: ResumableClient, query: Omit<HistoryFollow, 'afterId'>, options: FollowOptions = {}): AsyncGenerator<HistoryRow> {
  const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout;
  let last = options.afterId;
  const steps = resumedSteps(client, HISTORY_ACTIONS.follow, () => ({ ...query, ...(last !== undefined && { afterId: last }) }), {
    ...(options.signal && { signal: options.signal }),
    // One deadline for the whole follow, however many times it is asked again.
    timeoutOf: () => (deadline === undefined ? undefined : Math.max(1, deadline - Date.now())),
    mayRetry: isStreamInterrupted,
  });
  for await (const step of steps) {
    const rows = step.kind === 'progress' ? (step.payload as HistoryRow[]) : step.kind === 'final' && step.payload ? [step.payload as HistoryRow] : [];
    for (const row of rows) {
      if (last !== undefined && row.id <= last) continue;
      last = row.id;
      yield row;
    }
    if (step.kind === 'final') return;
  }
}
