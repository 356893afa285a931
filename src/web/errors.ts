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

/** `{"error": {"code", "message"}}` with `status`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Headers of the error reply (`retry-after` of a 429). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const unauthorised = (message: string) => new ApiError(401, 'unauthorized', message);
export const forbidden = (message: string) => new ApiError(403, 'forbidden', message);

/** The body of an error reply. */
export function errorBody(error: ApiError): { error: { code: string; message: string } } {
  return { error: { code: error.code, message: error.message } };
}

/**
 * What a failed request to the router (or another handler) answers over HTTP: the router
 * missing is 503, its silence 504, a query it refused 400, a refusal 403, a kill of an unknown
 * token 404 and of a request that has ended 409; anything else 502.
 */
export function fromBusError(error: unknown, what: string): ApiError {
  if (error instanceof ApiError) return error;
  const message = error instanceof Error ? error.message : String(error);
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
