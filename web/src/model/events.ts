/**
 * The events the page keeps for its views (newest last), from the library's resuming feed
 * (`bus.events()`, protocol §11.8). The page keeps the cursor of the last event it handled in
 * the tab's sessionStorage, so a reload resumes too; what the feed reports of each catch-up
 * becomes a notice ("Resumed after the reload from cursor C: N new events, no gap").
 */
import { EVENTS_ACTION, NotAuthorizedError, type Bus, type BusEvent, type EventCatchUp, type EventsPage } from 'relais/browser';
import { QUERY_TIMEOUT_MS } from './query.js';
import { Store } from '../ui/store.js';

/** Enough for a screen's worth of history without growing for ever. */
const KEPT = 2000;
const CURSOR_KEY = 'relais.events.cursor';
/** Events shown as context before the stored cursor after a reload (already seen, not "new"). */
const CONTEXT_BEFORE = 100;
/** Events shown when the page first opens in a tab. */
const FIRST_SHOWN = 200;

export interface FeedNotice {
  /** `resumed`: after a reload or a reconnection; `missed`: retention removed events first. */
  kind: 'started' | 'resumed' | 'missed' | 'error';
  text: string;
}

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

export async function watchEvents(bus: Bus, signal: AbortSignal, storage: Storage = sessionStorage): Promise<EventsModel> {
  const store = new Store<EventsState>({ events: [], notices: [], paused: false, waiting: [] });
  const add = (events: BusEvent[]) =>
    store.update((state) => {
      if (state.paused) return { ...state, waiting: [...state.waiting, ...events].slice(-KEPT) };
      return { ...state, events: merge(state.events, events) };
    });
  const notice = (kind: FeedNotice['kind'], text: string) => store.update((state) => ({ ...state, notices: [...state.notices, { kind, text }].slice(-5) }));
  // Not awaited: the page shows itself at once, and the events when they come.
  void follow(bus, signal, storage, add, notice);
  return {
    store,
    setPaused: (paused) =>
      store.update((state) => (paused ? { ...state, paused } : { ...state, paused, events: merge(state.events, state.waiting), waiting: [] })),
  };
}

async function follow(bus: Bus, signal: AbortSignal, storage: Storage, add: (events: BusEvent[]) => void, notice: (kind: FeedNotice['kind'], text: string) => void): Promise<void> {
  const stored = Number(storage.getItem(CURSOR_KEY));
  let since: number;
  try {
    if (Number.isSafeInteger(stored) && stored > 0) {
      since = stored;
      const context = await bus.request<EventsPage>(EVENTS_ACTION, { since: Math.max(0, since - CONTEXT_BEFORE), limit: Math.min(CONTEXT_BEFORE, since) }, { timeout: QUERY_TIMEOUT_MS, signal });
      add(context.events.filter((event) => event.cursor <= stored));
    } else {
      const first = await bus.request<EventsPage>(EVENTS_ACTION, { limit: FIRST_SHOWN }, { timeout: QUERY_TIMEOUT_MS, signal });
      add(first.events);
      since = first.latest;
      storage.setItem(CURSOR_KEY, String(since));
      notice('started', `Live from cursor ${since}.`);
    }
  } catch (error) {
    if (!signal.aborted) notice('error', `could not read the event stream: ${(error as Error).message}`);
    return;
  }
  const onCatchUp = ({ reason, after, events, missed }: EventCatchUp) => {
    if (missed > 0) notice('missed', `${missed} events after cursor ${after} were removed by the router's retention before this page could read them.`);
    if (reason === 'gap') return;
    const what = reason === 'start' ? 'after the reload' : 'after the connection came back';
    notice('resumed', `Resumed ${what} from cursor ${after}: ${events} new event${events === 1 ? '' : 's'}, ${missed > 0 ? `${missed} missed` : 'no gap'}.`);
  };
  try {
    for await (const item of bus.events({ since, signal, onCatchUp: (catchUp) => (catchUp.reason !== 'start' || stored > 0) && onCatchUp(catchUp) })) {
      if (item.type === 'gap') continue; // counted in the catch-up's notice
      storage.setItem(CURSOR_KEY, String(item.cursor));
      add([item]);
    }
  } catch (error) {
    if (signal.aborted) return;
    if (error instanceof NotAuthorizedError) notice('error', 'the policy does not let this identity read the event stream (relais/events/notification)');
    else notice('error', `could not follow the event stream: ${(error as Error).message}`);
  }
}

/** Adds events in cursor order, once each. */
function merge(kept: BusEvent[], added: BusEvent[]): BusEvent[] {
  const byCursor = new Map(kept.map((event) => [event.cursor, event]));
  for (const event of added) byCursor.set(event.cursor, event);
  return [...byCursor.values()].sort((a, b) => a.cursor - b.cursor).slice(-KEPT);
}
