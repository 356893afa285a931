/**
 * Fan-out with expectations (issue 6 §5): one targeted request to each client serving an
 * action, every answer collected by name, and the expected clients that did not answer named.
 * Targeted requests keep every guarantee of a single one (acknowledgement, time-out,
 * HandlerGoneError), at one message per client instead of one broadcast.
 */
import { HandlerGoneError, NoHandlerError, TimeoutError } from '../protocol/errors.js';
import type { RequestOptions } from './types.js';

export interface FanOutOptions extends Omit<RequestOptions, 'target' | 'token'> {
  /** The clients that should answer; default: every client serving the action when the call starts. */
  expect?: readonly string[];
}

export type FanOutAnswer = { id: string; ok: true; payload: unknown } | { id: string; ok: false; error: Error };

export interface FanOutResult {
  /** One per client asked, in the order of `expect` (or of the directory). */
  answers: FanOutAnswer[];
  /** Expected clients with no answer: not serving the action, gone, or too slow. */
  missing: string[];
}

type Request = (action: string, payload: unknown, options: RequestOptions) => Promise<unknown>;

export async function requestAll(request: Request, providers: readonly string[], action: string, payload: unknown, options: FanOutOptions = {}): Promise<FanOutResult> {
  const { expect, ...requestOptions } = options;
  const targets = [...new Set(expect ?? providers)];
  const answers = await Promise.all(
    targets.map(async (id): Promise<FanOutAnswer> => {
      try {
        return { id, ok: true, payload: await request(action, payload, { ...requestOptions, target: id }) };
      } catch (error) {
        return { id, ok: false, error: error as Error };
      }
    }),
  );
  // An error answer is an answer; no answer is a time-out, a handler gone, or nobody serving.
  const unanswered = (answer: FanOutAnswer) => !answer.ok && (answer.error instanceof TimeoutError || answer.error instanceof HandlerGoneError || answer.error instanceof NoHandlerError);
  return { answers, missing: answers.filter(unanswered).map((answer) => answer.id) };
}
