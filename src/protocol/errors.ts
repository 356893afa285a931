/**
 * One error class per failure (protocol §5). Each has a stable string `code`; the
 * errors that travel in a response also have a numeric wire `responseCode`, and
 * `toWire()` / `fromWire()` let a handler's error arrive typed at the caller.
 */

/** Numeric response codes (protocol §5.1). 0 ok, 1 generic error, 2-99 Relais, >= 100 free for modules. */
export const ResponseCode = {
  OK: 0,
  ERROR: 1,
  INVALID_REQUEST: 2,
  NO_HANDLER: 3,
  NOT_AUTHORIZED: 4,
  CANCELLED: 5,
  DEADLINE_EXCEEDED: 6,
  PAYLOAD_TOO_LARGE: 7,
  BUSY: 8,
} as const;

/** What an error looks like inside a response envelope (`error` field). */
export interface WireError {
  name: string;
  message: string;
  /** Module-defined details; plain JSON. */
  details?: unknown;
}

export class RelaisError extends Error {
  /** Stable machine-readable code, e.g. `TIMEOUT`. */
  readonly code: string;
  /** Code used when this error is sent in a response. */
  readonly responseCode: number;
  readonly details?: unknown;

  constructor(code: string, message: string, options: { cause?: unknown; responseCode?: number; details?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    // Relais' own classes write their names out, which a minifier cannot rename; an application's
    // subclass gets its class name.
    this.name = new.target === RelaisError ? 'RelaisError' : new.target.name;
    this.code = code;
    this.responseCode = options.responseCode ?? ResponseCode.ERROR;
    if (options.details !== undefined) this.details = options.details;
  }
}

/**
 * Re-captures `error`'s stack as seen from where the application awaits `boundary`, an async
 * public method that has just caught it. Relais makes its errors in timers and socket
 * callbacks, whose stacks show only MQTT.js; captured again after the `await`, V8's async
 * stack traces list the application's awaiting functions instead. Requests that succeed pay
 * nothing: capturing a stack when each request starts cost 11 % of a busy client's CPU.
 */
export function stackFromCaller(error: unknown, boundary: Function): void {
  // V8's (Node, Chromium): in an engine without it the stack stays as it was made.
  if (error instanceof Error) (Error as { captureStackTrace?: (target: object, boundary: Function) => void }).captureStackTrace?.(error, boundary);
}

/** `steps` whose errors get their stack from the application's awaiting function, as above. */
export function iterateFromCaller<T>(steps: AsyncIterableIterator<T>): AsyncIterableIterator<T> {
  const next = async (): Promise<IteratorResult<T>> => {
    try {
      return await steps.next();
    } catch (error) {
      stackFromCaller(error, next);
      throw error;
    }
  };
  return {
    next,
    return: () => steps.return!(),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** The request got no final response before its time-out. */
export class TimeoutError extends RelaisError {
  // Written out: a minifier renames classes, and the name travels on the wire (toWire).
  override readonly name = 'TimeoutError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('TIMEOUT', message, { ...options, responseCode: ResponseCode.DEADLINE_EXCEEDED });
  }
}

/** No connected client serves the action (or the target is offline). */
export class NoHandlerError extends RelaisError {
  override readonly name: string = 'NoHandlerError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('NO_HANDLER', message, { ...options, responseCode: ResponseCode.NO_HANDLER });
  }
}

/**
 * The request's handler is a client of a site whose link is down (protocol §13.4): code 3 like
 * NoHandlerError, so code that handles "nobody serves it" handles it too; `details` are
 * `{site, since}` (since when the link has been down, epoch ms, when known).
 */
export class SiteUnreachableError extends NoHandlerError {
  override readonly name: string = 'SiteUnreachableError';
  override readonly code = 'SITE_UNREACHABLE';
  override readonly details: { site: string; since?: number };
  constructor(message: string, details: { site: string; since?: number }, options: { cause?: unknown } = {}) {
    super(message, options);
    this.details = details;
  }
}

/** The handler that was serving the request disconnected before answering. */
export class HandlerGoneError extends RelaisError {
  override readonly name = 'HandlerGoneError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('HANDLER_GONE', message, options);
  }
}

/**
 * A router's stream (a history follow, a kv watch) ended because steps it had sent may be lost:
 * its connection was lost, or it is closing (protocol §11.2, §14.9). Code 1, `error.name`
 * `StreamInterruptedError`: the requester asks again after the last item it handled.
 */
export class StreamInterruptedError extends RelaisError {
  override readonly name = 'StreamInterruptedError';
  constructor(message: string) {
    super('STREAM_INTERRUPTED', message);
  }
}

/** Whether `error`, as a requester receives it, is a router's `StreamInterruptedError`: ask again. */
export function isStreamInterrupted(error: unknown): boolean {
  return error instanceof RemoteError && error.remoteName === 'StreamInterruptedError';
}

/** The caller aborted the request, or the handler was cancelled. */
export class CancelledError extends RelaisError {
  override readonly name = 'CancelledError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CANCELLED', message, { ...options, responseCode: ResponseCode.CANCELLED });
  }
}

/** A message does not follow the protocol; `message` names the field. */
export class InvalidMessageError extends RelaisError {
  override readonly name: string = 'InvalidMessageError';
  constructor(message: string, options: { cause?: unknown; details?: unknown } = {}, code = 'INVALID_MESSAGE') {
    super(code, message, { ...options, responseCode: ResponseCode.INVALID_REQUEST });
  }
}

/**
 * A kill named a token the history does not hold (protocol §11.5): code 2, `error.name`
 * `UnknownTokenError`, `details` `{token}`. The name is set here, not taken from the class,
 * because callers tell it apart by it on the wire (`fromWire`).
 */
export class UnknownTokenError extends InvalidMessageError {
  override readonly name = 'UnknownTokenError';
  constructor(message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, options, 'UNKNOWN_TOKEN');
  }
}

/** A kill named a request that has already ended (protocol §11.5): code 2, `error.name` `RequestEndedError`, `details` `{token, kind, code?}` of its last row. */
export class RequestEndedError extends InvalidMessageError {
  override readonly name = 'RequestEndedError';
  constructor(message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, options, 'REQUEST_ENDED');
  }
}

/** The refinements of code 2 a caller tells apart, by their wire `error.name` (protocol §5.1). */
const INVALID_REQUEST_ERRORS = new Map<string, typeof InvalidMessageError>([
  ['UnknownTokenError', UnknownTokenError],
  ['RequestEndedError', RequestEndedError],
]);

export class PayloadTooLargeError extends RelaisError {
  override readonly name = 'PayloadTooLargeError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('PAYLOAD_TOO_LARGE', message, { ...options, responseCode: ResponseCode.PAYLOAD_TOO_LARGE });
  }
}

export class NotAuthorizedError extends RelaisError {
  override readonly name = 'NotAuthorizedError';
  constructor(message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super('NOT_AUTHORIZED', message, { ...options, responseCode: ResponseCode.NOT_AUTHORIZED });
  }
}

/**
 * The handler serves one such request at a time and another holds it (protocol §11.4: the logs
 * lock); `details` say who holds it and until when at most. Try again once it ends.
 */
export class BusyError extends RelaisError {
  override readonly name = 'BusyError';
  constructor(message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super('BUSY', message, { ...options, responseCode: ResponseCode.BUSY });
  }
}

/** The message could not be sent: the client is closed, or its offline queue is full, or its deadline passed offline. */
export class NotSentError extends RelaisError {
  override readonly name = 'NotSentError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('NOT_SENT', message, options);
  }
}

/**
 * A payload could not be sealed or opened (protocol §3.6): no sealing key known for a recipient
 * identity (the request is not sent), or a sealed answer that did not open.
 */
export class SealingError extends RelaisError {
  override readonly name = 'SealingError';
  constructor(message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super('SEALING', message, options);
  }
}

/** A handler answered with a non-zero code. `responseCode` is that code; `payload` what came with it. */
export class RemoteError extends RelaisError {
  override readonly name = 'RemoteError';
  /** Name of the error class on the handler's side. */
  readonly remoteName: string;
  readonly payload: unknown;
  /** Id of the client that answered. */
  readonly handler: string;

  constructor(wire: WireError, responseCode: number, handler: string, payload?: unknown) {
    super('REMOTE', wire.message, { responseCode, details: wire.details });
    this.remoteName = wire.name;
    this.payload = payload;
    this.handler = handler;
  }
}

/** The part of an error that goes on the wire. Stack traces stay local (no internals leak). */
export function toWire(error: unknown): { responseCode: number; error: WireError } {
  if (error instanceof RemoteError) {
    return { responseCode: error.responseCode, error: { name: error.remoteName, message: error.message, details: error.details } };
  }
  if (error instanceof Error) {
    const candidate = (error as { responseCode?: unknown; code?: unknown }).responseCode;
    const legacy = (error as { code?: unknown }).code;
    const responseCode = isResponseCode(candidate) ? candidate : isResponseCode(legacy) ? legacy : ResponseCode.ERROR;
    const wire: WireError = { name: error.name || 'Error', message: error.message };
    const details = (error as { details?: unknown }).details;
    if (details !== undefined) wire.details = details;
    return { responseCode: responseCode === ResponseCode.OK ? ResponseCode.ERROR : responseCode, error: wire };
  }
  return { responseCode: ResponseCode.ERROR, error: { name: 'Error', message: String(error) } };
}

function isResponseCode(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1;
}

function siteDetails(details: unknown): { site: string; since?: number } | undefined {
  if (typeof details !== 'object' || details === null || typeof (details as { site?: unknown }).site !== 'string') return undefined;
  const { site, since } = details as { site: string; since?: unknown };
  return typeof since === 'number' ? { site, since } : { site };
}

/** The typed error for an error response. Relais' own codes come back as their own classes. */
export function fromWire(wire: WireError | undefined, responseCode: number, handler: string, payload?: unknown): RelaisError {
  const shape: WireError = wire ?? { name: 'Error', message: `handler ${handler} answered with code ${responseCode}` };
  const cause = new RemoteError(shape, responseCode, handler, payload);
  switch (responseCode) {
    case ResponseCode.NO_HANDLER: {
      const site = shape.name === 'SiteUnreachableError' ? siteDetails(shape.details) : undefined;
      return site ? new SiteUnreachableError(shape.message, site, { cause }) : new NoHandlerError(shape.message, { cause });
    }
    case ResponseCode.NOT_AUTHORIZED:
      return new NotAuthorizedError(shape.message, { cause });
    case ResponseCode.CANCELLED:
      return new CancelledError(shape.message, { cause });
    case ResponseCode.DEADLINE_EXCEEDED:
      return new TimeoutError(shape.message, { cause });
    case ResponseCode.PAYLOAD_TOO_LARGE:
      return new PayloadTooLargeError(shape.message, { cause });
    case ResponseCode.BUSY:
      return new BusyError(shape.message, { cause, details: shape.details });
    case ResponseCode.INVALID_REQUEST: {
      const Refined = INVALID_REQUEST_ERRORS.get(shape.name) ?? InvalidMessageError;
      return new Refined(shape.message, { cause, details: shape.details });
    }
    default:
      return cause;
  }
}
