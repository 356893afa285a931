/**
 * The token history (seed 002's GETLOG / PUTLOG), as an interface any store implements; the
 * SQLite one is `sqlite-history-store.ts`. Rows and queries are plain data (protocol §11.1).
 */
import { z } from 'zod';

/** What a row records: one step of a request's lifecycle (protocol §11.1). */
export const HISTORY_KINDS = ['command', 'accepted', 'progress', 'final', 'error', 'cancel', 'put'] as const;
export type HistoryKind = (typeof HISTORY_KINDS)[number];

export interface HistoryRowInput {
  token: string;
  kind: HistoryKind;
  action: string;
  /** Who sent it: the requester for a command or cancel, the handler for a response, the writer of a put. */
  source: string;
  /** To whom: the command's target (absent: any handler, `*`: all), the requester for a response. */
  target?: string | undefined;
  /** The response code (0 ok, 1 error, higher codes per module; protocol §5.1); absent for commands and cancels. */
  code?: number | undefined;
  progress?: number | undefined;
  priority?: string | undefined;
  /** When it happened (epoch ms): the envelope's `ts`, or the put's `etime`. */
  etime: number;
  /** The payload as JSON text, already capped: see `truncated`. */
  data: string;
  /** The payload's size in bytes before capping. */
  size: number;
  truncated: boolean;
  /** Tells a repeated message (a retried command, a QoS 1 redelivery) from a new one: same token and digest = same message. */
  digest: string;
}

export interface HistoryRow extends Omit<HistoryRowInput, 'digest'> {
  /** Increases with every row: `afterId` pages and follows with it. */
  id: number;
  /** When the router stored it (epoch ms). */
  ctime: number;
}

const text = z.string().min(1).max(1024);
const time = z.number().int().nonnegative();

/** A history query (GETLOG): every field given is ANDed, as in seed 002. */
export const historyQuerySchema = z
  .object({
    token: text.optional(),
    action: text.optional(),
    source: text.optional(),
    target: text.optional(),
    kind: z.enum(HISTORY_KINDS).optional(),
    code: z.number().int().optional(),
    /** Rows stored at or after / before (epoch ms). */
    ctimeFrom: time.optional(),
    ctimeTo: time.optional(),
    etimeFrom: time.optional(),
    etimeTo: time.optional(),
    /** Rows with an id above this one (paging forward, following). */
    afterId: time.optional(),
    /** Rows with an id below this one (paging backward from newest). */
    beforeId: time.optional(),
    order: z.enum(['oldest', 'newest']).default('oldest'),
    limit: z.number().int().min(1).max(10_000).default(100),
  })
  .strict();
export type HistoryQuery = z.input<typeof historyQuerySchema>;
export type ResolvedHistoryQuery = z.output<typeof historyQuerySchema>;

export interface HistoryPage {
  rows: HistoryRow[];
  /** More rows match past the last one returned (ask again with afterId / beforeId). */
  more: boolean;
}

/** Retention: rows older than `maxAgeMs` or beyond the newest `maxRows` are pruned. */
export interface HistoryRetention {
  maxAgeMs: number;
  maxRows: number;
}

export interface HistoryStore {
  /** Stores rows in one transaction; a row whose (token, digest) is already stored is skipped. Returns the new rows as stored. */
  append(rows: readonly HistoryRowInput[]): HistoryRow[];
  /** Rows matching the query, in its order, at most `limit`. */
  query(query: ResolvedHistoryQuery): HistoryPage;
  /** Removes at most `batch` rows past the retention; returns how many (call again while it returns `batch`). */
  prune(retention: HistoryRetention, now: number, batch: number): number;
  /** Row count (for metrics and retention). */
  count(): number;
  close(): void;
}

/** Reads a query sent over the bus; throws a `ZodError` naming the bad field. */
export function parseHistoryQuery(input: unknown): ResolvedHistoryQuery {
  return historyQuerySchema.parse(input ?? {});
}
