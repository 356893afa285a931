/** The events the page keeps for its views (newest last), fed by the resuming feed. */
import type { BusEvent } from '../../../src/protocol/events.js';
import type { Bus } from '../bus/bus.js';
import { EventFeed, type FeedNotice } from '../bus/event-feed.js';
import { Store } from '../ui/store.js';

/** Enough for a screen's worth of history without growing for ever. */
const KEPT = 2000;

export interface EventsState {
  events: BusEvent[];
  notices: FeedNotice[];
  /** Set while the user has paused the list: new events wait here. */
  paused: boolean;
  waiting: BusEvent[];
}

export interface EventsModel {
  store: Store<EventsState>;
  setPaused(paused: boolean): void;
}

export async function watchEvents(bus: Bus): Promise<EventsModel> {
  const store = new Store<EventsState>({ events: [], notices: [], paused: false, waiting: [] });
  const add = (events: BusEvent[]) =>
    store.update((state) => {
      if (state.paused) return { ...state, waiting: [...state.waiting, ...events].slice(-KEPT) };
      return { ...state, events: merge(state.events, events) };
    });
  const feed = new EventFeed(bus, {
    onEvents: add,
    onNotice: (notice) => store.update((state) => ({ ...state, notices: [...state.notices, notice].slice(-5) })),
  });
  // Not awaited: the page shows itself at once, and the events when they come.
  feed.start().catch((error: Error) => store.update((state) => ({ ...state, notices: [...state.notices, { kind: 'error', text: `could not follow the event stream: ${error.message}` }] })));
  return {
    store,
    setPaused: (paused) =>
      store.update((state) => (paused ? { ...state, paused } : { ...state, paused, events: merge(state.events, state.waiting), waiting: [] })),
  };
}

/** Adds events in cursor order, once each. */
function merge(kept: BusEvent[], added: BusEvent[]): BusEvent[] {
  const byCursor = new Map(kept.map((event) => [event.cursor, event]));
  for (const event of added) byCursor.set(event.cursor, event);
  return [...byCursor.values()].sort((a, b) => a.cursor - b.cursor).slice(-KEPT);
}
