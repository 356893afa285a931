/**
 * A consumer's place in the router's event stream (protocol §11.8), as a state machine: the
 * live batches pushed on `relais/events/notification` and the pages of `relais/events/get` in,
 * what to yield and what to ask the router out. Each event is yielded once, in cursor order;
 * whatever the pushes miss (a gap in the cursors, a lost connection, a consumer too slow) is
 * replayed from the router first; events that retention removed before they could be read are
 * told as a gap with their count. No I/O, no timer: the shell (the Node client's `bus.events()`,
 * the page) asks, waits and yields.
 */
import type { BusEvent, EventsPage } from './events.js';

/** Yielded when retention removed events before this consumer could read them. */
export interface EventGap {
  type: 'gap';
  /** How many events were lost to retention. */
  missed: number;
  /** The cursor after which they were. */
  after: number;
}

/** The payload of a `relais/events/get` to send (protocol §11.8). */
export type EventsAsk = { limit: 1 } | { since: number; limit: number };

/** Live events held while catching up; beyond, they are dropped and replayed from the router. */
export const MAX_HELD_EVENTS = 10_000;
/** Events asked per page while catching up. */
export const EVENTS_PAGE = 1000;

export class EventCursor {
  private held: BusEvent[] = [];
  /** Something may have been missed since the last replay: replay from the router. */
  private replayWanted = true;
  /** A replay is under way: its pages are being asked. */
  private replaying = false;
  private at: number | undefined;

  /** @param since yield the events after this cursor (first those stored, then live ones); undefined: from now on. */
  constructor(since?: number) {
    this.at = since;
  }

  /** The cursor of the last event yielded (or skipped as missed); undefined before the first answer when started from now. */
  get cursor(): number | undefined {
    return this.at;
  }

  /** What to ask the router now, or undefined when the live events can be read. */
  ask(): EventsAsk | undefined {
    if (!this.replaying) {
      if (!this.replayWanted) return undefined;
      this.replayWanted = false;
      this.replaying = true;
    }
    return this.at === undefined ? { limit: 1 } : { since: this.at, limit: EVENTS_PAGE };
  }

  /** The router answered the last `ask()`: what to yield, in order (a gap first when retention removed some). */
  answered(page: EventsPage): Array<BusEvent | EventGap> {
    if (this.at === undefined) {
      // From now on: the newest cursor stored is where the live events take over.
      this.at = page.latest;
      this.replaying = false;
      return [];
    }
    const items: Array<BusEvent | EventGap> = [];
    if (page.missed) items.push({ type: 'gap', missed: page.missed, after: this.at });
    for (const event of page.events) {
      if (event.cursor <= this.at) continue;
      items.push(event);
      this.at = event.cursor;
    }
    if (page.missed && page.events.length === 0) this.at = Math.max(this.at, page.latest);
    if (!page.more) this.replaying = false;
    return items;
  }

  /** The router did not answer the last `ask()`: it is asked again (after a pause the shell decides). */
  failed(): void {
    this.replaying = false;
    this.replayWanted = true;
  }

  /** A live batch arrived. Beyond `MAX_HELD_EVENTS` held, they are dropped and replayed from the router instead. */
  pushed(events: readonly BusEvent[]): void {
    if (this.held.length + events.length > MAX_HELD_EVENTS) {
      this.held = [];
      this.replayWanted = true;
    } else {
      for (const event of events) this.held.push(event);
    }
  }

  /** The connection came back: what was pushed while away is in the router, not here. */
  reconnected(): void {
    this.replayWanted = true;
  }

  /**
   * The live events to yield now, in cursor order, none yielded before. At a gap in the
   * cursors the rest is left to a replay from the router, which has them too.
   */
  live(): BusEvent[] {
    if (this.replaying || this.replayWanted || this.at === undefined || this.held.length === 0) return [];
    const batch = this.held;
    this.held = [];
    const out: BusEvent[] = [];
    for (const event of batch) {
      if (event.cursor <= this.at) continue; // yielded by a replay already
      if (event.cursor > this.at + 1) {
        this.replayWanted = true;
        break;
      }
      out.push(event);
      this.at = event.cursor;
    }
    return out;
  }

  /** Nothing to do until an event is pushed, the connection comes back, or the consumer stops. */
  get idle(): boolean {
    return !this.replaying && !this.replayWanted && this.held.length === 0;
  }
}
