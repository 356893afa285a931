/**
 * The router's request history on the wire (protocol §11.1, §11.2): the actions, what a row
 * holds and what a query may filter on. Pure: no I/O.
 */
import { z } from 'zod';
import { sealMemberSchema, type SealMember } from './sealing.js';

export const HISTORY_ACTIONS = {
  get: 'relais/history/get',
  put: 'relais/history/put',
  follow: 'relais/history/follow',
} as const;

/** What a row records: one step of a request's lifecycle (protocol §11.1). */
export const HISTORY_KINDS = ['command', 'accepted', 'progress', 'final', 'error', 'cancel', 'put', 'kill'] as const;
export type HistoryKind = (typeof HISTORY_KINDS)[number];

/** Cancels a running request by its token, through the router (protocol §11.5). */
export const KILL_ACTION = 'relais/requests/kill';

/**
 * What a kill saw (protocol §11.5): `cancelled`, the handler answered code 5; `handler-gone`,
 * its presence left `alive` before it answered; `finished`, it answered with another code (the
 * cancel came too late, or was ignored); `unconfirmed`, nothing within the wait.
 */
export const KILL_OUTCOMES = ['cancelled', 'handler-gone', 'finished', 'unconfirmed'] as const;
export type KillOutcome = (typeof KILL_OUTCOMES)[number];

/** How long a kill waits for the handler to confirm, by default and at most (ms; protocol §11.5). */
export const KILL_WAIT_MS = { default: 5000, max: 60_000 } as const;

/** The answer of a kill (protocol §11.5). */
export interface KillResult {
  /** True only when the outcome is `cancelled` or `handler-gone`. */
  killed: boolean;
  outcome: KillOutcome;
  token: string;
  action: string;
  requester: string;
  /** The handler the cancel was sent to (`*` when the history does not say which one took it), or the one that answered. */
  handler: string;
  by: string;
  /** How long the router waited for the outcome (ms). */
  waitedMs: number;
  /** The code of the request's last answer, when one came. */
  code?: number;
}

export interface HistoryRowInput {
  token: string;
  kind: HistoryKind;
  action: string;
  /**
   * Who sent it: the requester for a command or cancel (the identity the HTTP API sent it for,
   * when it did), the handler for a response, the author of a put.
   */
  source: string;
  /** The trusted intermediary (the HTTP API) that sent it for `source` (protocol §3.1 `onBehalfOf`); absent otherwise. */
  via?: string | undefined;
  /** To whom: the command's target (absent: any handler, `*`: all), the requester for a response. */
  target?: string | undefined;
  /** The response code (0 ok, 1 error, higher codes per module; protocol §5.1); absent for commands and cancels. */
  code?: number | undefined;
  progress?: number | undefined;
  priority?: string | undefined;
  /** When it happened (epoch ms): the envelope's `ts`, or the put's `etime`. */
  etime: number;
  /** The payload as JSON text, already capped: see `truncated` (and `raw`). */
  data: string;
  /** The payload's size in bytes before capping. */
  size: number;
  truncated: boolean;
  /**
   * `data` is the whole message as it came (UTF-8 text, capped like any data), because its
   * payload could not be encoded again as JSON (nested too deeply). Absent otherwise.
   */
  raw?: boolean | undefined;
  /**
   * A binary payload (protocol §3.5, §11.1): `data` is the Base64 of its bytes (the first ones,
   * when `truncated`), `size` their count, `sha256` the hex SHA-256 of all of them. Absent for JSON.
   */
  sha256?: string | undefined;
  /**
   * A sealed payload (protocol §3.6, §11.1): the message's header `seal` member as it came. The
   * row is then a binary row of the ciphertext (`data`, `size`, `sha256` are of the sealed body),
   * whatever its kind; the router holds no key and never opens it. Absent for other payloads.
   */
  seal?: SealMember | undefined;
  /**
   * Never stored: set by the library on a sealed row it opened for its caller (`bus.history`,
   * `bus.follow`). `seal` stays; `data`, `size`, `sha256` and `truncated` are then the plaintext's,
   * as the row of the same payload unsealed would hold them.
   */
  opened?: true | undefined;
  /** Tells a repeated message (a retried command, a QoS 1 redelivery) from a new one: same token and digest = same message. */
  digest: string;
  /** The site whose history the row was pulled from (protocol §13.5); absent for the router's own rows. */
  site?: string | undefined;
}

export interface HistoryRow extends Omit<HistoryRowInput, 'digest'> {
  /** Increases with every row: `afterId` pages and follows with it. */
  id: number;
  /** When the router stored it (epoch ms). */
  ctime: number;
  /** The row's identity digest, only in an answer to `digests: true` (protocol §11.2, §13.5). */
  digest?: string;
}

const text = z.string().min(1).max(1024);
const time = z.number().int().nonnegative();

/** A history query (protocol §11.2; Gorgone's GETLOG): every field given is ANDed. */
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
    /** Rows pulled from this site's history (protocol §13.5). */
    site: text.optional(),
    order: z.enum(['oldest', 'newest']).default('oldest'),
    limit: z.number().int().min(1).max(10_000).default(100),
    /** Each row also carries its identity `digest` (a central syncing a site's history, protocol §13.5); needs `history:read-all`. */
    digests: z.boolean().optional(),
  })
  .strict();
export type HistoryQuery = z.input<typeof historyQuerySchema>;
export type ResolvedHistoryQuery = z.output<typeof historyQuerySchema>;

/** `relais/history/follow` takes the filters of `get`; with a token it ends with that request's lifecycle (protocol §11.2). */
export const historyFollowSchema = historyQuerySchema.omit({ order: true, limit: true, beforeId: true, digests: true });
export type HistoryFollow = z.output<typeof historyFollowSchema>;

/** `relais/history/put`: a request that ran off the bus, written into the history (protocol §11.2). */
export const historyPutSchema = z
  .object({
    token: z.string().min(1).max(1024),
    /** The action the token ran, when the history does not know the token yet. */
    action: z.string().min(1).max(65_535).optional(),
    code: z.number().int().default(0),
    /** When the work ended (epoch ms); default now. */
    etime: z.number().int().nonnegative().optional(),
    data: z.unknown().optional(),
  })
  .strict();
export type HistoryPut = z.output<typeof historyPutSchema>;

/** `relais/requests/kill` (protocol §11.5). */
export const killRequestSchema = z
  .object({
    token: z.string().min(1).max(1024),
    reason: z.string().max(1024).optional(),
    /** How long to wait for the handler's answer to the cancel (ms). */
    wait: z.number().int().min(0).max(KILL_WAIT_MS.max).optional(),
  })
  .strict();
export type KillRequest = z.output<typeof killRequestSchema>;

export interface HistoryPage {
  rows: HistoryRow[];
  /** More rows match past the last one returned (ask again with afterId / beforeId). */
  more: boolean;
}

const optionalText = z.string().max(1024).optional();

/** A row as another router sends it (a site's, to its central, protocol §13.5): checked before it is stored. */
export const historyRowSchema = z
  .object({
    id: z.number().int().positive(),
    token: text,
    kind: z.enum(HISTORY_KINDS),
    action: z.string().min(1).max(65_535),
    source: text,
    via: optionalText,
    target: optionalText,
    code: z.number().int().optional(),
    progress: z.number().optional(),
    priority: z.string().max(64).optional(),
    etime: time,
    ctime: time,
    data: z.string().max(1 << 20),
    size: z.number().int().nonnegative(),
    truncated: z.boolean(),
    raw: z.boolean().optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    seal: sealMemberSchema.optional(),
    site: optionalText,
    digest: z.string().min(1).max(1024).optional(),
  })
  .strip();

/** What `relais/history/get` answers, as a router that asks another one reads it. */
export const historyPageSchema = z.object({ rows: z.array(historyRowSchema).max(10_000), more: z.boolean() }).strip();

/** Whether a row passes a query's filters (what the store's WHERE does, for rows followed live). */
export function matchesQuery(row: HistoryRow, query: Omit<ResolvedHistoryQuery, 'order' | 'limit' | 'digests'>): boolean {
  return (
    (query.site === undefined || row.site === query.site) &&
    (query.token === undefined || row.token === query.token) &&
    (query.action === undefined || row.action === query.action) &&
    (query.source === undefined || row.source === query.source) &&
    (query.target === undefined || row.target === query.target) &&
    (query.kind === undefined || row.kind === query.kind) &&
    (query.code === undefined || row.code === query.code) &&
    (query.ctimeFrom === undefined || row.ctime >= query.ctimeFrom) &&
    (query.ctimeTo === undefined || row.ctime < query.ctimeTo) &&
    (query.etimeFrom === undefined || row.etime >= query.etimeFrom) &&
    (query.etimeTo === undefined || row.etime < query.etimeTo) &&
    (query.afterId === undefined || row.id > query.afterId) &&
    (query.beforeId === undefined || row.id < query.beforeId)
  );
}

/** Reads a query sent over the bus; throws a `ZodError` naming the bad field. */
export function parseHistoryQuery(input: unknown): ResolvedHistoryQuery {
  return historyQuerySchema.parse(input ?? {});
}

/** A row that ends a request's lifecycle: following a token stops after it. */
export function endsLifecycle(row: Pick<HistoryRow, 'kind'>): boolean {
  return row.kind === 'final' || row.kind === 'error' || row.kind === 'put';
}
