/**
 * Kill (Gorgone's KILL), relayed by the router (protocol §11.5): an allowed client cancels a
 * running request by its token alone, even one whose requester has gone away. The router finds
 * the request in the history, sends the cancel to its handler on the requester's behalf, and
 * answers what happened: killed only once the handler's code-5 answer (or its disappearance)
 * is seen, else that the cancel was sent and not confirmed. The outcome is a history row.
 */
import type { Bus } from '../client/bus.js';
import type { HandlerContext, Registration } from '../client/types.js';
import { InvalidMessageError, NotAuthorizedError, RequestEndedError, ResponseCode, UnknownTokenError } from '../protocol/errors.js';
import { endsLifecycle, KILL_ACTION, KILL_WAIT_MS, killRequestSchema, parseHistoryQuery, type HistoryRowInput, type KillOutcome, type KillRequest, type KillResult } from '../protocol/history.js';
import { cancelMessage } from '../protocol/messages.js';
import { cancelTopic, identityOfClientId } from '../protocol/topics.js';
import type { HistoryStore } from './history-store.js';
import { parsed } from './history-service.js';
import type { HistoryAccess } from './history-access.js';
import type { Recorder } from './recorder.js';

/**
 * Who else may kill a request (protocol §11.5): `identity`, its requester's identity (the
 * envelope's `source`, which a secured broker binds to the connection's identity, whichever of
 * its connections or processes sends it); `anyone` (a bus without security, where any id can be
 * claimed anyway).
 */
export const KILL_BY = ['identity', 'anyone'] as const;
export type KillBy = (typeof KILL_BY)[number];

export interface KillOptions {
  /** Client ids allowed to kill anyone's request, besides identities granted `requests:kill-any`. */
  admins: readonly string[];
  killBy: KillBy;
  /** Told of each kill refused as the requester's mistake (an unknown token, a request already ended): the metrics count them (protocol §11.6). */
  onRefused?: (action: string) => void;
}

/** The grant that lets an identity kill anyone's request (docs/security.md). */
export const KILL_ANY_GRANT = 'requests:kill-any';

export function serveKill(bus: Bus, store: HistoryStore, recorder: Recorder, access: HistoryAccess, options: KillOptions): Promise<Registration> {
  return bus.handle(KILL_ACTION, async (payload: unknown, ctx) => {
    try {
      return await kill(bus, store, recorder, access, parsed(() => killRequestSchema.parse(payload)), ctx, options);
    } catch (error) {
      // Logged at debug by the handling client (code 2), so counted here to stay visible.
      if (error instanceof InvalidMessageError) options.onRefused?.(KILL_ACTION);
      throw error;
    }
  });
}

async function kill(bus: Bus, store: HistoryStore, recorder: Recorder, access: HistoryAccess, input: KillRequest, ctx: HandlerContext, options: KillOptions): Promise<KillResult> {
  // Who asks: the sender, or the caller the HTTP API names (protocol §3.1 onBehalfOf).
  const asker = access.asker(ctx);
  // Watched before reading: an end committed meanwhile is seen either way.
  const ending = waitForEnd(recorder, input.token);
  try {
    // The rows received before this kill (on the same connection, so its end if the requester saw
    // it before killing) may wait in the recorder's batch: stored first, a kill of a request that
    // has ended is refused as ended, not sent as a cancel the handler no longer needs.
    await recorder.flush();
    const rows = (await store.query(parseHistoryQuery({ token: input.token, limit: 10_000 }))).rows;
    const command = rows.find((row) => row.kind === 'command');
    if (!command) throw new UnknownTokenError(`token ${input.token} is not in the history: nothing to kill`, { details: { token: input.token } });
    const ended = rows.find(endsLifecycle);
    if (ended) {
      throw new RequestEndedError(`request ${input.token} has already ended (${ended.kind}${ended.code === undefined ? '' : `, code ${ended.code}`})`, {
        details: { token: input.token, kind: ended.kind, ...(ended.code !== undefined && { code: ended.code }) },
      });
    }
    const requester = command.source;
    // An envelope's source is its sender's client id, which security binds to its identity (protocol §2.1, docs/security.md):
    // any session of the requester's identity may kill it (one principal).
    const own = options.killBy === 'anyone' || identityOfClientId(asker) === identityOfClientId(requester);
    if (!own && !options.admins.includes(asker) && !options.admins.includes(identityOfClientId(asker)) && !(access.private && access.holds(asker, KILL_ANY_GRANT))) {
      throw new NotAuthorizedError(`request ${input.token} was sent by ${requester}: only its identity or an administrator may kill it`);
    }
    // The handler that answered it; else the one it was sent to; else whoever serves it.
    const answered = [...rows].reverse().find((row) => row.kind === 'accepted' || row.kind === 'progress');
    const handler = answered?.source ?? (command.target && command.target !== '*' ? command.target : '*');
    const reason = input.reason ?? `killed by ${asker}`;
    // The handler knows the request by the client that sent it: the intermediary, when one sent it for the requester (protocol §11.1 `via`).
    const envelope = cancelMessage({ source: bus.id, destination: handler, token: input.token, reason, priority: 'high', onBehalfOf: { requester: command.via ?? requester, by: asker } });
    const wait = input.wait ?? KILL_WAIT_MS.default;
    const started = Date.now();
    const gone = handler === '*' ? undefined : waitForGone(bus, handler);
    try {
      await bus.publish(cancelTopic(command.action), envelope, { qos: 1 });
      ctx.progress(undefined, { cancelSent: true, handler });
      const seen = await Promise.race([ending.promise, ...(gone ? [gone.promise] : []), delay(wait, ctx.signal)]);
      const outcome = outcomeOf(seen);
      const result: KillResult = {
        killed: outcome === 'cancelled' || outcome === 'handler-gone',
        outcome,
        token: input.token,
        action: command.action,
        requester,
        handler: seen && seen !== 'gone' ? seen.source : handler,
        by: asker,
        waitedMs: Date.now() - started,
        ...(seen && seen !== 'gone' && seen.code !== undefined && { code: seen.code }),
      };
      await record(recorder, result, ctx.token);
      return result;
    } finally {
      gone?.stop();
    }
  } finally {
    ending.stop();
  }
}

/** What the first thing seen says: the request's end, its handler's disappearance, or nothing in time. */
function outcomeOf(seen: HistoryRowInput | 'gone' | undefined): KillOutcome {
  if (seen === undefined) return 'unconfirmed';
  if (seen === 'gone') return 'handler-gone';
  return seen.code === ResponseCode.CANCELLED ? 'cancelled' : 'finished';
}

/** The outcome on the killed token's timeline (protocol §11.1, kind `kill`): who killed it, and what happened. */
async function record(recorder: Recorder, result: KillResult, killToken: string): Promise<void> {
  const data = JSON.stringify({ outcome: result.outcome, by: result.by, waitedMs: result.waitedMs });
  await recorder.storeNow({
    token: result.token,
    kind: 'kill',
    action: result.action,
    source: result.by,
    target: result.handler,
    ...(result.killed && { code: ResponseCode.CANCELLED }),
    etime: Date.now(),
    data,
    size: Buffer.byteLength(data),
    truncated: false,
    digest: `kill:${killToken}`,
  });
}

/** The end of `token` once in the store, whichever router sharing it stored the row. */
function waitForEnd(recorder: Recorder, token: string): { promise: Promise<HistoryRowInput>; stop(): void } {
  let stop!: () => void;
  const promise = new Promise<HistoryRowInput>((resolve) => {
    stop = recorder.watchSeen((rows) => {
      const end = rows.find((row) => row.token === token && endsLifecycle(row));
      if (end) resolve(end);
    });
  });
  return { promise, stop };
}

/** Resolves when `handler`'s presence leaves `alive` (its will, a clean stop): it cannot answer any more. */
function waitForGone(bus: Bus, handler: string): { promise: Promise<'gone'>; stop(): void } {
  let stop!: () => void;
  const promise = new Promise<'gone'>((resolve) => {
    const onGone = (clientId: string) => clientId === handler && resolve('gone');
    bus.directory.on('gone', onGone);
    stop = () => bus.directory.off('gone', onGone);
    const info = bus.directory.get(handler);
    if (info && info.status !== 'alive') resolve('gone');
  });
  return { promise, stop };
}

function delay(ms: number, signal: AbortSignal): Promise<undefined> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
