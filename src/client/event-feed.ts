/**
 * `bus.events({ since })`: the router's event stream as one async iterator that survives lost
 * connections (protocol §11.8). Live events come pushed; whatever was missed (a gap in the
 * cursors, a reconnection) is replayed from the router first, so each event is yielded once,
 * in cursor order.
 */
import { EVENTS_ACTION, EVENTS_CATEGORY, type BusEvent, type EventsPage } from '../protocol/events.js';
import { notificationTopic } from '../protocol/topics.js';
import type { Bus } from './bus.js';

export interface EventsOptions {
  /** Yield the events after this cursor (first those stored, then live ones); absent: from now on. */
  since?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /**
   * Told each time the feed has read from the router what it had not seen: at the start (with
   * `since`), after a reconnection, after a jump in the live cursors. For a view that says
   * "resumed from cursor C: N new events, no gap".
   */
  onCatchUp?: (catchUp: EventCatchUp) => void;
}

export interface EventCatchUp {
  reason: 'start' | 'reconnection' | 'gap';
  /** The cursor it read from. */
  after: number;
  /** Events yielded by this catch-up. */
  events: number;
  /** Events retention removed before they could be read (also yielded as an `EventGap`). */
  missed: number;
}

/** Yielded when retention removed events before this consumer could read them. */
export interface EventGap {
  type: 'gap';
  /** How many events were lost to retention. */
  missed: number;
  /** The cursor after which they were. */
  after: number;
}

/** Live events held while catching up; beyond, they are dropped and replayed from the router. */
const MAX_INBOX = 10_000;
const PAGE = 1000;
/** Pause between attempts while the router does not answer. */
const RETRY_MS = 1000;

export async function* eventFeed(bus: Bus, options: EventsOptions = {}): AsyncGenerator<BusEvent | EventGap> {
  const { signal } = options;
  let inbox: BusEvent[] = [];
  let wake: (() => void) | undefined;
  let resync = true;
  let reason: EventCatchUp['reason'] = 'start';
  /** Events were missed live: the next catch-up is for a gap, unless a reconnection already asked for one. */
  const missedLive = () => {
    resync = true;
    if (reason !== 'reconnection') reason = 'gap';
  };
  const poke = () => wake?.();
  const subscription = await bus.subscribe(notificationTopic(EVENTS_CATEGORY), (message) => {
    const events = (message.envelope.payload as { events?: BusEvent[] } | null)?.events;
    if (!Array.isArray(events)) return;
    if (inbox.length + events.length > MAX_INBOX) {
      inbox = []; // replayed from the router instead
      missedLive();
    } else inbox.push(...events);
    poke();
  });
  const onOnline = () => {
    resync = true; // what was pushed while we were away is in the router, not in our inbox
    reason = 'reconnection';
    poke();
  };
  bus.on('online', onOnline);
  signal?.addEventListener('abort', poke);
  let cursor = options.since;
  try {
    while (!signal?.aborted) {
      if (resync) {
        resync = false;
        // Why this catch-up; a reconnection while it runs makes the next one.
        const why: EventCatchUp['reason'] = reason;
        reason = 'gap';
        try {
          if (cursor === undefined) cursor = ((await bus.request(EVENTS_ACTION, { limit: 1 }, { ...(signal && { signal }) })) as EventsPage).latest;
          else {
            const caughtUp: EventCatchUp = { reason: why, after: cursor, events: 0, missed: 0 };
            for (let more = true; more; ) {
              const page = (await bus.request(EVENTS_ACTION, { since: cursor, limit: PAGE }, { ...(signal && { signal }) })) as EventsPage;
              if (page.missed) {
                caughtUp.missed += page.missed;
                yield { type: 'gap', missed: page.missed, after: cursor };
              }
              for (const event of page.events) {
                caughtUp.events += 1;
                yield event;
                cursor = event.cursor;
              }
              if (page.missed && page.events.length === 0) cursor = page.latest;
              more = page.more;
            }
            options.onCatchUp?.(caughtUp);
          }
        } catch (error) {
          if (signal?.aborted) return;
          bus.logger.debug({ err: (error as Error).message }, 'events: the router did not answer; trying again');
          resync = true;
          if (reason === 'gap') reason = why;
          await pause(RETRY_MS, signal);
          continue;
        }
      }
      const batch = inbox;
      inbox = [];
      for (let i = 0; i < batch.length; i += 1) {
        const event = batch[i]!;
        if (event.cursor <= cursor!) continue; // already yielded by a replay
        if (event.cursor > cursor! + 1) {
          // A gap: replay from the router, which has these too.
          missedLive();
          break;
        }
        yield event;
        cursor = event.cursor;
      }
      if (!resync && inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    bus.off('online', onOnline);
    signal?.removeEventListener('abort', poke);
    await subscription.unsubscribe();
  }
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
