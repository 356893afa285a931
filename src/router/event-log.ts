/**
 * The event stream's store (protocol §11.8), as an interface any store implements: SQLite
 * (`sqlite-event-log.ts`, the default), memory (`memory-event-log.ts`). Each passes
 * `eventLogContract()` (test/router/event-log-contract.ts). Events are the wire's
 * (src/protocol/events.ts).
 */
import type { BusEvent, EventsPage } from '../protocol/events.js';

/** An event before it is stored: the store gives it its `cursor` and `time`. */
export type NewEvent = Pick<BusEvent, 'type' | 'data'>;

export interface EventLog {
  /**
   * Stores events in one transaction and returns them as stored: each with the next cursor, one
   * more than the last one ever given (never reused, even once pruned), and the store's time.
   */
  append(events: readonly NewEvent[]): BusEvent[];
  /**
   * Events after cursor `since`, oldest first, at most `limit`, `more` when others follow; absent
   * `since`: the newest `limit`. `latest` is the last cursor ever given (0 before any), and
   * `missed` how many events after `since` retention removed before they could be read.
   */
  page(since: number | undefined, limit: number): EventsPage;
  /** Keeps the newest `maxEvents`; removes at most `batch` per call and returns how many (call again while it returns `batch`). */
  prune(maxEvents: number, batch: number): number;
  close(): void;
}
