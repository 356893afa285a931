/**
 * The history as bus actions (protocol §11.2): get (seed 002's GETLOG), put (PUTLOG) and
 * follow (one request's lifecycle replayed from the history, then live until its end).
 */
import { z } from 'zod';
import type { Bus } from '../client/bus.js';
import type { HandlerContext, Registration } from '../client/types.js';
import { InvalidMessageError, NotAuthorizedError } from '../protocol/errors.js';
import { checkPath } from '../protocol/topics.js';
import { parseHistoryQuery, type HistoryPage, type HistoryRow, type HistoryStore } from './history-store.js';
import { capData, type Recorder } from './recorder.js';

export const HISTORY_ACTIONS = {
  get: 'relais/history/get',
  put: 'relais/history/put',
  follow: 'relais/history/follow',
} as const;

const putSchema = z
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

const followSchema = z.object({ token: z.string().min(1).max(1024), afterId: z.number().int().nonnegative().optional() }).strict();

/** A row that ends a lifecycle: `follow` stops after it. */
export function endsLifecycle(row: HistoryRow): boolean {
  return row.kind === 'final' || row.kind === 'error' || row.kind === 'put';
}

export interface HistoryServiceOptions {
  maxDataBytes: number;
}

export async function serveHistory(bus: Bus, store: HistoryStore, recorder: Recorder, options: HistoryServiceOptions): Promise<Registration[]> {
  return Promise.all([
    bus.handle(HISTORY_ACTIONS.get, (payload: unknown): HistoryPage => store.query(parsed(() => parseHistoryQuery(payload)))),
    bus.handle(HISTORY_ACTIONS.put, (payload: unknown, ctx) => put(store, recorder, parsed(() => putSchema.parse(payload)), ctx, options)),
    bus.handle(HISTORY_ACTIONS.follow, (payload: unknown, ctx) => follow(store, recorder, parsed(() => followSchema.parse(payload)), ctx)),
  ]);
}

/** Bad input is the sender's mistake: code 2 naming the field, not a crash (protocol §5.2). */
function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof z.ZodError) {
      const issues = error.issues.map((issue) => `${issue.path.join('.') || '(payload)'}: ${issue.message}`).join('; ');
      throw new InvalidMessageError(`bad query: ${issues}`);
    }
    throw error;
  }
}

/** PUTLOG: stores a result for a token, durably, before answering. Only a party to the token may. */
function put(store: HistoryStore, recorder: Recorder, input: z.output<typeof putSchema>, ctx: HandlerContext, options: HistoryServiceOptions): HistoryRow {
  const known = store.query(parseHistoryQuery({ token: input.token, limit: 1 })).rows[0];
  if (known) {
    const parties = store.query(parseHistoryQuery({ token: input.token, limit: 10_000 })).rows.flatMap((row) => [row.source, row.target]);
    if (!parties.includes(ctx.source)) {
      throw new NotAuthorizedError(`token ${input.token} belongs to ${known.source}: only the requester or a handler of it may put a result`);
    }
  }
  const action = input.action ?? known?.action;
  if (action === undefined) throw new InvalidMessageError('action: required for a token the history does not know');
  const problem = checkPath(action, 'action');
  if (problem) throw new InvalidMessageError(problem);
  const { data, size, truncated } = capData(input.data ?? null, options.maxDataBytes);
  const stored = recorder.storeNow({
    token: input.token,
    kind: 'put',
    action,
    source: ctx.source,
    target: known?.source,
    code: input.code,
    etime: input.etime ?? Date.now(),
    data,
    size,
    truncated,
    digest: `put:${ctx.token}`,
  });
  // A repeat of the same put (same put token) answers with what is stored.
  return stored ?? store.query(parseHistoryQuery({ token: input.token, kind: 'put', order: 'newest', limit: 1 })).rows[0]!;
}

/**
 * The lifecycle of a token: every stored row as a progress step, then the live ones, then the
 * last (final, error or put) as the answer. Rows are matched by id, so none is lost or doubled.
 */
async function follow(store: HistoryStore, recorder: Recorder, input: z.output<typeof followSchema>, ctx: HandlerContext): Promise<HistoryRow> {
  const queue: HistoryRow[] = [];
  let wake: (() => void) | undefined;
  // Watch first, then read the stored rows: both happen in this turn, and rows are only
  // committed in later turns, so each row is either read here or watched, never both.
  const stop = recorder.watch((rows) => {
    for (const row of rows) if (row.token === input.token) queue.push(row);
    if (queue.length > 0) wake?.();
  });
  const onAbort = () => wake?.();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    let lastId = input.afterId ?? 0;
    const stored: HistoryRow[] = [];
    for (let page = store.query(parseHistoryQuery({ token: input.token, afterId: lastId, limit: 1000 })); ; ) {
      stored.push(...page.rows);
      if (!page.more) break;
      page = store.query(parseHistoryQuery({ token: input.token, afterId: page.rows.at(-1)!.id, limit: 1000 }));
    }
    queue.unshift(...stored);
    for (;;) {
      for (const row of queue.splice(0)) {
        if (row.id <= lastId) continue;
        lastId = row.id;
        if (endsLifecycle(row)) return row;
        ctx.progress(undefined, row);
      }
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stop();
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
