/**
 * The event stream as Server-Sent Events (docs/http-api.md "Events"): each event of
 * `bus.events()` (protocol §11.8) is one SSE message whose `id` is its cursor, so a browser's
 * EventSource, or any client sending `Last-Event-ID`, resumes after the last one it handled
 * without a gap or a duplicate. Events removed by retention come as one `event: gap` message.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { EVENTS_ACTION, EVENTS_CATEGORY, type EventsPage } from '../protocol/events.js';
import { notificationTopic, requestTopic } from '../protocol/topics.js';
import type { BusAccess } from '../security/authorizer.js';
import type { Caller } from './auth.js';
import { ask, type WebContext } from './context.js';
import { ApiError } from './errors.js';
import { publishes, subscribes } from './route-access.js';

/** Streams open at once, at most: each holds a subscription of the API's bus client. */
const MAX_STREAMS = 256;
/** A comment line this often keeps proxies and idle-connection timers from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;

let open = 0;

export function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('text/event-stream');
}

/** The cursor to resume after: `Last-Event-ID` (a reconnecting EventSource sends it), else `since`. */
export function resumeCursor(request: FastifyRequest, since: number | undefined): number | undefined {
  const header = request.headers['last-event-id'];
  if (header === undefined || Array.isArray(header)) return since;
  const cursor = Number(header);
  if (!Number.isSafeInteger(cursor) || cursor < 0) throw new ApiError(400, 'bad_request', `Last-Event-ID must be an event cursor (a whole number), got ${JSON.stringify(header)}`);
  return cursor;
}

/**
 * What a stream's caller needs: live events are what a subscriber to the stream reads; resuming
 * also asks the router (protocol §11.8). A bad `Last-Event-ID` is a 400 here.
 */
export function eventStreamAccess(request: FastifyRequest, since: number | undefined): BusAccess[] {
  const live = subscribes(notificationTopic(EVENTS_CATEGORY));
  return resumeCursor(request, since) === undefined ? [live] : [live, publishes(requestTopic(EVENTS_ACTION))];
}

/** The stream, once its caller is allowed what eventStreamAccess() lists (route.ts decided it). */
export async function serveEventStream(context: WebContext, caller: Caller | undefined, request: FastifyRequest, reply: FastifyReply, since: number | undefined): Promise<FastifyReply> {
  let cursor = resumeCursor(request, since);
  // "From now" is pinned to the router's latest cursor before the stream is answered: whatever
  // happens after the answer's headers is in it, and a client that never saw an id can resume.
  if (cursor === undefined) cursor = ((await ask(context, EVENTS_ACTION, { limit: 1 }, 'the event stream', caller)) as EventsPage).latest;
  const after = cursor;
  return streamSse(context, caller, reply, {
    what: 'event stream',
    opening: `relais event stream after cursor ${after}`,
    holds: subscribes(notificationTopic(EVENTS_CATEGORY)),
    messages: async function* (signal) {
      for await (const item of context.bus.events({ since: after, signal })) {
        yield item.type === 'gap' ? { event: 'gap', data: item } : { id: String(item.cursor), data: item };
      }
    },
  });
}

/** One Server-Sent Events message: `id` is what a client resumes after (`Last-Event-ID`). */
export interface SseMessage {
  id?: string;
  event?: string;
  data: unknown;
}

export interface SseStream {
  /** For the log: `event stream`, `watch of bucket config`. */
  what: string;
  /** The comment line the stream opens with. */
  opening: string;
  /** What the caller must still be allowed, else the stream ends (live revocation). */
  holds: BusAccess;
  /** The messages, until `signal` aborts. */
  messages: (signal: AbortSignal) => AsyncIterable<SseMessage>;
}

/**
 * Answers with a Server-Sent Events stream of `stream.messages`: at most MAX_STREAMS at once,
 * a heartbeat on a quiet stream, a slow reader waited for rather than buffered, and ended
 * (with a last `closed` message saying why) when its caller loses its identity or the right to
 * do `holds` (docs/security.md "Live revocation").
 */
export function streamSse(context: WebContext, caller: Caller | undefined, reply: FastifyReply, stream: SseStream): Promise<FastifyReply> {
  if (open >= MAX_STREAMS) throw new ApiError(503, 'too_many_streams', `${MAX_STREAMS} event streams are open already; try again later`);
  open += 1;
  const stopped = new AbortController();
  const response = reply.raw;
  reply.hijack();
  response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  response.write(`retry: 2000\n: ${stream.opening}\n\n`);
  // Only to an idle socket: a reader that stopped must not collect heartbeats either.
  const heartbeat = setInterval(() => response.writableLength === 0 && response.write(': keep-alive\n\n'), HEARTBEAT_MS);
  // The response closes when the client goes (its socket closes); the socket may be a reused keep-alive one.
  response.once('close', () => stopped.abort());
  let lost: string | undefined;
  const unfollow = context.guard.follow(caller, () => context.guard.allows(caller, stream.holds.operation, stream.holds.topic), (reason) => {
    lost = reason;
    context.log(`ended the ${stream.what} of identity ${caller?.identity}: ${reason}`);
    stopped.abort();
  });
  // A reader slower than the stream: wait for the socket to drain rather than buffer without bound.
  const send = async (text: string) => {
    if (response.write(text) || stopped.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        response.off('drain', done);
        stopped.signal.removeEventListener('abort', done);
        resolve();
      };
      response.once('drain', done);
      stopped.signal.addEventListener('abort', done, { once: true });
    });
  };
  return (async () => {
    try {
      for await (const message of stream.messages(stopped.signal)) {
        await send(`${message.event === undefined ? '' : `event: ${message.event}\n`}${message.id === undefined ? '' : `id: ${message.id}\n`}data: ${JSON.stringify(message.data)}\n\n`);
      }
    } catch (error) {
      if (!stopped.signal.aborted) context.log(`${stream.what} ended: ${(error as Error).message}`);
    } finally {
      open -= 1;
      unfollow();
      clearInterval(heartbeat);
      if (lost !== undefined && !response.destroyed) response.write(`event: closed\ndata: ${JSON.stringify({ reason: lost })}\n\n`);
      response.end();
    }
    return reply;
  })();
}
