/**
 * The history as bus actions (protocol §11.2): get (Gorgone's GETLOG), put (PUTLOG) and
 * follow (one request's lifecycle replayed from the history, then live until its end).
 */
import { z } from 'zod';
import type { Bus } from '../client/bus.js';
import type { HandlerContext, Registration } from '../client/types.js';
import { InvalidMessageError, NotAuthorizedError } from '../protocol/errors.js';
import { checkPath, identityOfClientId } from '../protocol/topics.js';
import { READ_ALL_GRANT, type HistoryAccess } from './history-access.js';
import { endsLifecycle, HISTORY_ACTIONS, historyFollowSchema, historyPutSchema, parseHistoryQuery, type HistoryFollow, type HistoryPage, type HistoryPut, type HistoryRow } from '../protocol/history.js';
import type { HistoryScope, HistoryStore } from './history-store.js';
import { capData, type Recorder } from './recorder.js';
import { watchLostConnection } from './lost-connection.js';

/** Stored rows one follow replays at most before live ones: a follow of everything is refused, not held in memory. */
const MAX_REPLAY = 100_000;

/** Rows per progress step of follow: a step stays well under the message size limit (8 KiB of data per row at most). */
const FOLLOW_STEP_ROWS = 100;

export interface HistoryServiceOptions {
  maxDataBytes: number;
}

/** Each action answers for the identity that asks (`access.asker`), within what it may read (protocol §11.2). */
export async function serveHistory(bus: Bus, store: HistoryStore, recorder: Recorder, access: HistoryAccess, options: HistoryServiceOptions): Promise<Registration[]> {
  return Promise.all([
    bus.handle(HISTORY_ACTIONS.get, (payload: unknown, ctx): Promise<HistoryPage> => {
      const query = parsed(() => parseHistoryQuery(payload));
      const asker = access.asker(ctx);
      // A row's digest is what a central needs to store a site's rows once (protocol §13.5): for those who read every row only.
      if (query.digests && !access.holds(asker, READ_ALL_GRANT)) throw new NotAuthorizedError(`digests: true needs ${READ_ALL_GRANT}, which ${asker} does not hold (it is for a central syncing this history)`);
      return store.query(query, access.scopeOf(asker));
    }),
    bus.handle(HISTORY_ACTIONS.put, (payload: unknown, ctx) => put(store, recorder, parsed(() => historyPutSchema.parse(payload)), access.asker(ctx), ctx, options)),
    bus.handle(HISTORY_ACTIONS.follow, (payload: unknown, ctx) => follow(store, recorder, parsed(() => historyFollowSchema.parse(payload)), access.scopeOf(access.asker(ctx)), ctx, bus)),
  ]);
}

/** Bad input is the sender's mistake: code 2 naming the field, not a crash (protocol §5.2). */
export function parsed<T>(parse: () => T): T {
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

/**
 * PUTLOG: stores a result for a token, durably, before answering, written by `author` (protocol
 * §11.2). On a token the history knows, only a party to it may (read-all does not let one
 * write); on a new one, the put opens it and its author is its only party.
 */
async function put(store: HistoryStore, recorder: Recorder, input: HistoryPut, author: string, ctx: HandlerContext, options: HistoryServiceOptions): Promise<HistoryRow> {
  await recorder.flush(); // a command received before this put is known before it is judged
  const tokenQuery = parseHistoryQuery({ token: input.token, limit: 1 });
  const known = (await store.query(tokenQuery)).rows[0];
  // A party is an identity: any of its sessions may put for a token another session of it sent (protocol §2.1).
  if (known && (await store.query(tokenQuery, { party: identityOfClientId(author) })).rows.length === 0) {
    // Whose it is stays unsaid: a stranger learns nothing of the token.
    throw new NotAuthorizedError(`${author} may not put a result for token ${input.token}: only its requester or one of its handlers may`);
  }
  const action = input.action ?? known?.action;
  if (action === undefined) throw new InvalidMessageError('action: required for a token the history does not know');
  const problem = checkPath(action, 'action');
  if (problem) throw new InvalidMessageError(problem);
  const { data, size, truncated } = capDataOrRefuse(input.data ?? null, options.maxDataBytes);
  const stored = await recorder.storeNow({
    token: input.token,
    kind: 'put',
    action,
    source: author,
    via: author === ctx.source ? undefined : ctx.source,
    target: known?.source,
    code: input.code,
    etime: input.etime ?? Date.now(),
    data,
    size,
    truncated,
    digest: `put:${ctx.token}`,
  });
  // A repeat of the same put (same put token) answers with what is stored.
  return stored ?? (await store.query(parseHistoryQuery({ token: input.token, kind: 'put', order: 'newest', limit: 1 }))).rows[0]!;
}

/** A put's data as stored; data JSON cannot write again (nested too deeply) is the sender's mistake. */
function capDataOrRefuse(data: unknown, maxBytes: number): ReturnType<typeof capData> {
  try {
    return capData(data, maxBytes);
  } catch (error) {
    throw new InvalidMessageError(`data: cannot be stored as JSON (${(error as Error).message}); nest it less deeply`);
  }
}

/**
 * Rows matching the filters within `scope`: the stored ones, then the live ones, as progress
 * steps that each carry an array of rows. With a
 * token, the row that ends its lifecycle (final, error or put) is the answer; without, it goes
 * on until the caller cancels or its deadline. Rows are read from the store by id, after the
 * last one sent: none lost or doubled, whichever router sharing the store stored them.
 */
async function follow(store: HistoryStore, recorder: Recorder, filters: HistoryFollow, scope: HistoryScope | undefined, ctx: HandlerContext, bus: Bus): Promise<HistoryRow | null> {
  let wake: (() => void) | undefined;
  /** Rows went into the store since the last read (this router saw them stored, by it or another). */
  let fresh = false;
  // Watched before reading: a row stored meanwhile makes one more read, and its id (never above
  // lastId twice) keeps it from being sent twice.
  const stop = recorder.watchSeen((rows) => {
    if (filters.token !== undefined && !rows.some((row) => row.token === filters.token)) return;
    fresh = true;
    wake?.();
  });
  const onAbort = () => wake?.();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const lostConnection = watchLostConnection(bus, () => wake?.());
  let lastId = filters.afterId ?? 0;
  /** Sends the rows after lastId as progress steps of up to 100; returns the row that ends the request, if one came. */
  const send = (rows: readonly HistoryRow[]): HistoryRow | undefined => {
    const batch: HistoryRow[] = [];
    let end: HistoryRow | undefined;
    for (const row of rows) {
      if (row.id <= lastId) continue;
      lastId = row.id;
      if (filters.token !== undefined && endsLifecycle(row)) {
        end = row;
        break;
      }
      batch.push(row);
    }
    for (let from = 0; from < batch.length; from += FOLLOW_STEP_ROWS) ctx.progress(undefined, batch.slice(from, from + FOLLOW_STEP_ROWS));
    return end;
  };
  /** Sends what the store holds after lastId, a page per turn (recording goes on between pages); `max` bounds the replay. */
  const readStored = async (max: number): Promise<HistoryRow | undefined> => {
    let read = 0;
    for (let more = true; more; ) {
      const page = await store.query({ ...filters, afterId: lastId, order: 'oldest', limit: 1000 }, scope);
      const end = send(page.rows);
      if (end) return end;
      read += page.rows.length;
      more = page.more;
      if (more && read >= max) throw new InvalidMessageError(`more than ${MAX_REPLAY} stored rows match: narrow the filters, or give afterId or ctimeFrom`);
      if (more) await new Promise((resolve) => setImmediate(resolve));
      if (ctx.signal.aborted) throw ctx.signal.reason;
      lostConnection.check();
    }
    return undefined;
  };
  try {
    // The stored rows, at most MAX_REPLAY.
    const replayed = await readStored(MAX_REPLAY);
    if (replayed) return replayed;
    for (;;) {
      while (!fresh) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        lostConnection.check();
        await new Promise<void>((resolve) => (wake = resolve));
      }
      fresh = false;
      const end = await readStored(Number.POSITIVE_INFINITY);
      if (end) return end;
    }
  } finally {
    stop();
    ctx.signal.removeEventListener('abort', onAbort);
    lostConnection.stop();
  }
}
