/**
 * The HTTP API's errors (docs/http-api.md "Errors"): one class carrying the status and a short
 * code, and the mapping from the bus's typed errors (protocol §5.1) to HTTP statuses.
 */
import {
  CancelledError,
  HandlerGoneError,
  InvalidMessageError,
  NoHandlerError,
  NotAuthorizedError,
  NotSentError,
  PayloadTooLargeError,
  RelaisError,
  RequestEndedError,
  TimeoutError,
  UnknownTokenError,
} from '../protocol/errors.js';
import { BucketNotFoundError, ConfigInvalidError, KeyNotFoundError, kvErrorOf, RevisionConflictError, ValueTooLargeError } from '../protocol/kv.js';

/** `{"error": {"code", "message"}}` with `status`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Headers of the error reply (`retry-after` of a 429). */
    readonly headers?: Record<string, string>,
    /** What a program needs to act on it (a conflict's `currentRevision`), as `error.details`. */
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export const unauthorised = (message: string) => new ApiError(401, 'unauthorized', message);
export const forbidden = (message: string) => new ApiError(403, 'forbidden', message);

/** The body of an error reply. */
export function errorBody(error: ApiError): { error: { code: string; message: string; details?: unknown } } {
  return { error: { code: error.code, message: error.message, ...(error.details !== undefined && { details: error.details }) } };
}

/**
 * What a failed request to the router (or another handler) answers over HTTP: the router
 * missing is 503, its silence 504, a query it refused 400, a refusal 403, a kill of an unknown
 * token 404 and of a request that has ended 409; anything else 502.
 */
export function fromBusError(error: unknown, what: string): ApiError {
  if (error instanceof ApiError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const kv = kvError(error);
  if (kv) return kv;
  if (error instanceof NoHandlerError || error instanceof HandlerGoneError || error instanceof NotSentError) {
    return new ApiError(503, 'unavailable', `${what}: nobody answers (${message}); is the router running (relais start without --no-router)?`);
  }
  if (error instanceof TimeoutError) return new ApiError(504, 'timeout', `${what}: no answer in time (${message})`);
  // A kill's refusals (protocol §11.5), told apart by their type before the code 2 they share.
  if (error instanceof UnknownTokenError) return new ApiError(404, 'unknown_token', message);
  if (error instanceof RequestEndedError) return new ApiError(409, 'not_running', message);
  if (error instanceof InvalidMessageError) return new ApiError(400, 'bad_request', message);
  if (error instanceof NotAuthorizedError) return new ApiError(403, 'forbidden', message);
  if (error instanceof PayloadTooLargeError) return new ApiError(413, 'payload_too_large', message);
  if (error instanceof CancelledError) return new ApiError(503, 'cancelled', message);
  if (error instanceof RelaisError && (error as { remoteName?: string }).remoteName === 'UnknownClientError') return new ApiError(404, 'unknown_client', message);
  return new ApiError(502, 'bus_error', `${what}: ${message}`);
}

/**
 * The key-value store's typed errors (protocol §14.5): a key without a value or a bucket that
 * does not exist 404, a lost compare-and-set 409 with the current revision in `details`, a value
 * over its bucket's limit 413, a configuration the client's schema refuses 400 naming the field.
 */
function kvError(error: unknown): ApiError | undefined {
  const typed = kvErrorOf(error);
  if (typed instanceof KeyNotFoundError) return new ApiError(404, 'key_not_found', typed.message, undefined, typed.details);
  if (typed instanceof BucketNotFoundError) return new ApiError(404, 'bucket_not_found', typed.message, undefined, typed.details);
  if (typed instanceof RevisionConflictError) return new ApiError(409, 'revision_conflict', typed.message, undefined, typed.details);
  if (typed instanceof ValueTooLargeError) return new ApiError(413, 'value_too_large', typed.message, undefined, typed.details);
  if (typed instanceof ConfigInvalidError) return new ApiError(400, 'config_invalid', typed.message, undefined, typed.details);
  return undefined;
}
