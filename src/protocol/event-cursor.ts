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

/**
 * One replay from the router, done: why it was needed (the start from a cursor, a reconnection,
 * events missed live), where it read from and what it found. For a view that says "resumed
 * from cursor C: N new events, no gap".
 */
export interface EventCatchUp {
  reason: 'start' | 'reconnection' | 'gap';
  /** The cursor it read from. */
  after: number;
  /** Events yielded by this catch-up. */
  events: number;
  /** Events retention removed before they could be read (also yielded as an `EventGap`). */
  missed: number;
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
  /** Why the next replay is needed: a reconnection outranks events missed live. */
  private nextReason: EventCatchUp['reason'] = 'start';
  /** The replay under way, counted (none for the first answer of a feed started from now). */
  private catchUp: EventCatchUp | undefined;

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
      this.catchUp = this.at === undefined ? undefined : { reason: this.nextReason, after: this.at, events: 0, missed: 0 };
      this.nextReason = 'gap';
    }
    return this.at === undefined ? { limit: 1 } : { since: this.at, limit: EVENTS_PAGE };
  }

  /**
   * The router answered the last `ask()`: what to yield, in order (a gap first when retention
   * removed some), and, when this page ends a replay, what that replay found.
   */
  answered(page: EventsPage): { items: Array<BusEvent | EventGap>; caughtUp?: EventCatchUp } {
    if (this.at === undefined) {
      // From now on: the newest cursor stored is where the live events take over.
      this.at = page.latest;
      this.replaying = false;
      return { items: [] };
    }
    const items: Array<BusEvent | EventGap> = [];
    if (page.missed) items.push({ type: 'gap', missed: page.missed, after: this.at });
    for (const event of page.events) {
      if (event.cursor <= this.at) continue;
      items.push(event);
      this.at = event.cursor;
    }
    if (page.missed && page.events.length === 0) this.at = Math.max(this.at, page.latest);
    const catchUp = this.catchUp;
    if (catchUp) {
      catchUp.missed += page.missed ?? 0;
      catchUp.events += items.length - (page.missed ? 1 : 0);
    }
    if (page.more) return { items };
    this.replaying = false;
    this.catchUp = undefined;
    return catchUp ? { items, caughtUp: catchUp } : { items };
  }

  /** The router did not answer the last `ask()`: it is asked again (after a pause the shell decides), for the same reason unless a reconnection came meanwhile. */
  failed(): void {
    this.replaying = false;
    this.replayWanted = true;
    if (this.catchUp && this.nextReason === 'gap') this.nextReason = this.catchUp.reason;
    this.catchUp = undefined;
  }

  /** A live batch arrived. Beyond `MAX_HELD_EVENTS` held, they are dropped and replayed from the router instead. */
  pushed(events: readonly BusEvent[]): void {
    if (this.held.length + events.length > MAX_HELD_EVENTS) {
      this.held = [];
      this.missedLive();
    } else {
      for (const event of events) this.held.push(event);
    }
  }

  /** The connection came back: what was pushed while away is in the router, not here. */
  reconnected(): void {
    this.replayWanted = true;
    this.nextReason = 'reconnection';
  }

  /** Events were missed live: a replay, for a gap unless a reconnection asked for one already. */
  private missedLive(): void {
    this.replayWanted = true;
    if (this.nextReason !== 'reconnection') this.nextReason = 'gap';
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
        this.missedLive();
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
