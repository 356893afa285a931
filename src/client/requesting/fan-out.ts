/**
 * Fan-out with expectations (protocol §11.7): one targeted request to each client serving an
 * action, and to each expected one, every answer collected by name, and who did not answer
 * named, apart by why. Targeted requests keep every guarantee of a single one (acknowledgement,
 * time-out, HandlerGoneError), at one message per client instead of one broadcast.
 */
import { HandlerGoneError, NoHandlerError, SiteUnreachableError, TimeoutError } from '../../protocol/errors.js';
import type { RequestOptions } from '../types.js';

/** A client of a site whose link is down is not waited for (`waitForSite` does not apply): it is told apart as `unreachable`. */
export interface FanOutOptions extends Omit<RequestOptions, 'target' | 'token' | 'waitForSite'> {
  /** Clients that must answer, besides every client serving the action when the call starts. */
  expect?: readonly string[];
}

export type FanOutAnswer = { id: string; ok: true; payload: unknown } | { id: string; ok: false; error: Error };

export interface FanOutResult {
  /** One per client asked: the expected ones first, in the order of `expect`, then the other providers. */
  answers: FanOutAnswer[];
  /** Every client asked that did not answer: `absent`, `unreachable` and `silent` together. */
  missing: string[];
  /** Expected clients that do not serve the action (not connected, stopped, serving other actions): told at once, nothing sent. */
  absent: string[];
  /** Clients that took no part in time: past the time-out, or gone before answering. */
  silent: string[];
  /** Clients of a site whose link is down (protocol §13.4): told at once, nothing sent. */
  unreachable: string[];
}

type Request = (action: string, payload: unknown, options: RequestOptions) => Promise<unknown>;

export async function requestAll(request: Request, providers: readonly string[], action: string, payload: unknown, options: FanOutOptions = {}): Promise<FanOutResult> {
  const { expect = [], waitForSite: _notForFanOut, ...requestOptions } = options as FanOutOptions & { waitForSite?: number };
  const targets = [...new Set([...expect, ...providers])];
  const answers = await Promise.all(
    targets.map(async (id): Promise<FanOutAnswer> => {
      try {
        return { id, ok: true, payload: await request(action, payload, { ...requestOptions, target: id }) };
      } catch (error) {
        return { id, ok: false, error: error as Error };
      }
    }),
  );
  // An error answer is an answer; no answer is nobody serving (absent), or a time-out or a handler gone (silent).
  const idsWhere = (test: (error: Error) => boolean) => answers.flatMap((answer) => (!answer.ok && test(answer.error) ? [answer.id] : []));
  const unreachable = idsWhere((error) => error instanceof SiteUnreachableError);
  const absent = idsWhere((error) => error instanceof NoHandlerError && !(error instanceof SiteUnreachableError));
  const silent = idsWhere((error) => error instanceof TimeoutError || error instanceof HandlerGoneError);
  return { answers, missing: [...absent, ...unreachable, ...silent], absent, silent, unreachable };
}
