/**
 * Fan-out with expectations (protocol §11.7): one targeted request to each client serving an
 * action, and to each expected one, every answer collected by name, and who did not answer
 * named, apart by why. Targeted requests keep every guarantee of a single one (acknowledgement,
 * time-out, HandlerGoneError), at one message per client instead of one broadcast.
 */
import { HandlerGoneError, NoHandlerError, TimeoutError } from '../../protocol/errors.js';
import type { RequestOptions } from '../types.js';

export interface FanOutOptions extends Omit<RequestOptions, 'target' | 'token'> {
  /** Clients that must answer, besides every client serving the action when the call starts. */
  expect?: readonly string[];
}

export type FanOutAnswer = { id: string; ok: true; payload: unknown } | { id: string; ok: false; error: Error };

export interface FanOutResult {
  /** One per client asked: the expected ones first, in the order of `expect`, then the other providers. */
  answers: FanOutAnswer[];
  /** Every client asked that did not answer: `absent` and `silent` together. */
  missing: string[];
  /** Expected clients that do not serve the action (not connected, stopped, serving other actions): told at once, nothing sent. */
  absent: string[];
  /** Clients that took no part in time: past the time-out, or gone before answering. */
  silent: string[];
}

type Request = (action: string, payload: unknown, options: RequestOptions) => Promise<unknown>;

export async function requestAll(request: Request, providers: readonly string[], action: string, payload: unknown, options: FanOutOptions = {}): Promise<FanOutResult> {
  const { expect = [], ...requestOptions } = options;
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
  const absent = idsWhere((error) => error instanceof NoHandlerError);
  const silent = idsWhere((error) => error instanceof TimeoutError || error instanceof HandlerGoneError);
  return { answers, missing: [...absent, ...silent], absent, silent };
}
