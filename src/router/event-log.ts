/**
 * The event stream's store (protocol §11.8), as an interface any store implements: SQLite
 * (`sqlite-event-log.ts`, the default), memory (`memory-event-log.ts`). Each passes
 * `eventLogContract()` (test/router/event-log-contract.ts). Events are the wire's
 * (src/protocol/events.ts). Events the router had to give up (its store refused them too long)
 * leave their cursors unused: a page ends before such a hole, and the next one says how many
 * were `missed`, as for the events retention removed.
 *
 * Asynchronous like the history store (history-store.ts): several routers may share one log, with
 * one cursor sequence; a store that cannot write rejects, and the router tries again.
 */
import type { BusEvent, EventsPage } from '../protocol/events.js';

/** An event before it is stored: the store gives it its `cursor` and `time`. */
export interface NewEvent extends Pick<BusEvent, 'type' | 'data'> {
  /**
   * What makes this event the same as one another router already stored (several routers
   * share one store, protocol §11.8): an event whose key is stored is skipped, takes no
   * cursor and is not returned. Absent: never a duplicate. Not on the wire.
   */
  key?: string;
}

export interface EventLog {
  /**
   * Stores events in one transaction and returns those it stored: each with the next cursor, one
   * more than the last one ever given by any router sharing the log (never reused, even once
   * pruned), and the store's time; without their `key`. An event whose key is stored (or comes
   * earlier in `events`) is skipped: no cursor, not returned. `skipped` events given up before
   * them leave as many cursors unused before the first (all or nothing, with the events). Two
   * appends at once never leave a hole other than `skipped`, nor give a cursor twice.
   */
  append(events: readonly NewEvent[], skipped?: number): Promise<BusEvent[]>;
  /**
   * Events after cursor `since`, oldest first, at most `limit`, `more` when others follow; absent
   * `since`: the newest `limit`. `latest` is the last cursor ever given (0 before any), and
   * `missed` how many events after `since` retention removed, or the router gave up, before they
   * could be read. A page after `since` ends before a hole in the cursors (`more`).
   */
  page(since: number | undefined, limit: number): Promise<EventsPage>;
  /** Keeps the newest `maxEvents`; removes at most `batch` per call and returns how many (call again while it returns `batch`). */
  prune(maxEvents: number, batch: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * The page of `limit` events out of `rows` (read with one more after `since`, to tell whether
 * more follow), `latest` the last cursor ever given. After `since`, it ends before a hole in the
 * cursors (events given up), so that the next page, starting after the hole, reports it; and it
 * says how many events after `since` are gone (`missed`: retention removed them or the router gave
 * them up). Both stores answer with it, so that they agree.
 */
export function eventsPage(rows: readonly BusEvent[], since: number | undefined, limit: number, latest: number): EventsPage {
  let more = since !== undefined && rows.length > limit;
  let events = rows.slice(0, limit);
  const hole = events.findIndex((event, index) => index > 0 && event.cursor !== events[index - 1]!.cursor + 1);
  if (since !== undefined && hole > 0) {
    events = events.slice(0, hole);
    more = true;
  }
  const page: EventsPage = { events, more, latest };
  if (since !== undefined && since < latest) {
    // The first event after `since` should be since + 1: whatever is below the first one here is gone.
    const first = events[0]?.cursor ?? latest + 1;
    if (first > since + 1) page.missed = first - since - 1;
  }
  return page;
}
