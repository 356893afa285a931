/**
 * `bus.events({ since })`: the router's event stream as one async iterator that survives lost
 * connections (protocol §11.8). The shell of an `EventCursor` (protocol/event-cursor.ts, where
 * the rules of resuming, replaying and gaps live): it subscribes to the live batches, asks the
 * router what the cursor wants, waits, and yields.
 */
import { EventCursor, type EventCatchUp, type EventGap } from '../../protocol/event-cursor.js';
import { EVENTS_ACTION, EVENTS_CATEGORY, type BusEvent, type EventsPage } from '../../protocol/events.js';
import { notificationTopic } from '../../protocol/topics.js';
import type { ReceivedMessage, RequestOptions } from '../types.js';
import { pause } from '../wait.js';

export type { EventCatchUp, EventGap };

export interface EventsOptions {
  /** Yield the events after this cursor (first those stored, then live ones); absent: from now on. */
  since?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /**
   * Told each time the feed has read from the router what it had not seen: at the start (with
   * `since`), after a reconnection, after a jump in the live cursors.
   */
  onCatchUp?: (catchUp: EventCatchUp) => void;
}

/** What the feed needs of a connected client: the Bus has it. */
export interface EventFeedClient {
  subscribe(filter: string, callback: (message: ReceivedMessage) => void): Promise<{ unsubscribe(): Promise<void> }>;
  request(action: string, payload: unknown, options?: RequestOptions): Promise<unknown>;
  on(event: 'online', listener: () => void): unknown;
  off(event: 'online', listener: () => void): unknown;
  readonly logger: { debug(fields: object, message: string): void };
}

/** Pause between attempts while the router does not answer. */
const RETRY_MS = 1000;

export async function* eventFeed(client: EventFeedClient, options: EventsOptions = {}): AsyncGenerator<BusEvent | EventGap> {
  const { signal } = options;
  const cursor = new EventCursor(options.since);
  let wake: (() => void) | undefined;
  const poke = () => wake?.();
  const subscription = await client.subscribe(notificationTopic(EVENTS_CATEGORY), (message) => {
    const events = (message.envelope.payload as { events?: BusEvent[] } | null)?.events;
    if (!Array.isArray(events)) return;
    cursor.pushed(events);
    poke();
  });
  const onOnline = () => {
    cursor.reconnected();
    poke();
  };
  client.on('online', onOnline);
  signal?.addEventListener('abort', poke);
  try {
    while (!signal?.aborted) {
      const ask = cursor.ask();
      if (ask) {
        let page: EventsPage;
        try {
          page = (await client.request(EVENTS_ACTION, ask, { ...(signal && { signal }) })) as EventsPage;
        } catch (error) {
          if (signal?.aborted) return;
          client.logger.debug({ err: (error as Error).message }, 'events: the router did not answer; trying again');
          cursor.failed();
          await pause(RETRY_MS, signal);
          continue;
        }
        const { items, caughtUp } = cursor.answered(page);
        yield* items;
        if (caughtUp) options.onCatchUp?.(caughtUp);
        continue;
      }
      yield* cursor.live();
      if (cursor.idle) await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    client.off('online', onOnline);
    signal?.removeEventListener('abort', poke);
    await subscription.unsubscribe();
  }
}

