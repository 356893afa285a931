/**
 * The wire contract of logs on demand (protocol §11.4), pure: the built-in action's name, its
 * request payload (checked, with an error naming the field) and the shape of its answers.
 * Every library client serves it; src/client/serving/log-service.ts is the serving side.
 */
import { z } from 'zod';
import { InvalidMessageError } from './errors.js';

/** The built-in action, served by every library client on `relais/logs/get/request/<its id>` only. */
export const LOGS_ACTION = 'relais/logs/get';

/** pino's levels, lowest first, with the numbers pino writes in a line's `level` field. */
export const LOG_LINE_LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
export type LogLineLevel = keyof typeof LOG_LINE_LEVELS;
export const LOG_LINE_LEVEL_NAMES = Object.keys(LOG_LINE_LEVELS) as LogLineLevel[];

/** Lines sent when the request names no `lines`. */
export const DEFAULT_LOG_LINES = 100;
/** The most lines one request may ask for: a larger `lines` is refused, not silently cut. */
export const MAX_LOG_LINES = 10_000;

/** Follows one client serves at once (protocol §11.4): one more is refused with code 8 (`BusyError`). One-off retrievals are never refused. */
export const MAX_LOG_FOLLOWS = 8;

/** A request's payload, checked and with its defaults (protocol §11.4). */
export interface LogsRequest {
  /** The newest `lines` matching lines (for a follow: the backlog sent first). */
  lines: number;
  /** Lines at this level and above; absent: every line kept. */
  level?: LogLineLevel;
  /** Lines written at or after this epoch ms. */
  since?: number;
  /** Lines after this line number (the `next` of an earlier answer): resuming without a gap or a repeat. */
  after?: number;
  /** Keep the request open and send each new matching line in a progress step. */
  follow: boolean;
  /** Only lines containing this text (a plain substring, not a regular expression: a request cannot make the server spin). */
  pattern?: string;
  /** Another log the client serves (an agent's configured files, `journal`); absent: the client's own lines. */
  source?: string;
}

/** The most characters of a `pattern`. */
export const MAX_LOG_PATTERN = 1000;

/** What the client keeps, told in every final answer so a caller knows what it may ask for. */
export interface LogsKept {
  /** The lowest level the client keeps: asking for a lower one gets nothing more. */
  level: string;
  lines: number;
  bytes: number;
  maxLines: number;
  maxBytes: number;
}

/** A progress step of a follow: new lines, in the order written. */
export interface LogsProgress {
  /** Each line as pino wrote it, parsed: `level` (number), `time`, `msg` and the logger's fields. */
  lines: Array<Record<string, unknown>>;
  /** The number of the last line sent: pass it as `after` to resume. */
  next: number;
}

/** The final answer. */
export interface LogsAnswer extends LogsProgress {
  kept: LogsKept;
  /** Older matching lines were left out to keep the answer under the message size limit. */
  truncated?: true;
  /** Why a follow ended by itself: it ran for the client's `logs.lockTimeout` (ask again with `after: next`). */
  ended?: 'lock-timeout';
  /** The source asked for exists but cannot be served on this host (e.g. no `journalctl`): not an error. */
  unavailable?: string;
}

const requestSchema = z.strictObject({
  lines: z.number().int().min(1).max(MAX_LOG_LINES).optional(),
  level: z.enum(LOG_LINE_LEVEL_NAMES as [LogLineLevel, ...LogLineLevel[]]).optional(),
  since: z.number().int().min(0).optional(),
  after: z.number().int().min(0).optional(),
  follow: z.boolean().optional(),
  pattern: z.string().min(1).max(MAX_LOG_PATTERN).optional(),
  source: z.string().regex(/^[A-Za-z0-9_.:@-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ . : @ -').optional(),
});

/** The checked request; throws `InvalidMessageError` naming each bad field. No payload (null) means every default. */
export function parseLogsRequest(payload: unknown): LogsRequest {
  const result = requestSchema.safeParse(payload ?? {});
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `field '${issue.path.length ? issue.path.join('.') : '(payload)'}': ${issue.message}`);
    throw new InvalidMessageError(`invalid ${LOGS_ACTION} request: ${problems.join('; ')}`, { details: { issues: problems } });
  }
  const { lines = DEFAULT_LOG_LINES, follow = false, level, since, after, pattern, source } = result.data;
  return {
    lines, follow,
    ...(level !== undefined && { level }), ...(since !== undefined && { since }), ...(after !== undefined && { after }),
    ...(pattern !== undefined && { pattern }), ...(source !== undefined && { source }),
  };
}
