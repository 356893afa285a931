/**
 * The event log in the process's memory (protocol §11.8): the same store as the SQLite one (it
 * passes `eventLogContract()`), for a router with no disk to write to. Nothing survives the
 * process; `maxEvents` bounds it. Pure TypeScript: no Node module.
 */
import type { BusEvent, EventsPage } from '../protocol/events.js';
import { eventsPage, type EventLog, type NewEvent } from './event-log.js';

export interface MemoryEventLogOptions {
  /** The clock of each event's `time` (tests inject one). */
  now?: () => number;
}

/** An event as kept: its data as JSON text, so that what is read back is a copy, as from a database. */
interface KeptEvent extends Omit<BusEvent, 'data'> {
  data: string;
  key?: string;
}

export class MemoryEventLog implements EventLog {
  /** By increasing cursor. */
  private kept: KeptEvent[] = [];
  private latest = 0;
  /** The keys of the kept events: an event whose key is here is a repeat (retention lets a key go with its event, as in SQLite). */
  private readonly keys = new Set<string>();
  private closed = false;
  private readonly now: () => number;

  constructor(options: MemoryEventLogOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  async append(events: readonly NewEvent[], skipped = 0): Promise<BusEvent[]> {
    this.checkOpen();
    const time = this.now();
    // Encoded first: an event that is not JSON fails the whole append, as a transaction would.
    const encoded = events.map((event) => JSON.stringify(event.data));
    this.latest += skipped;
    const stored: BusEvent[] = [];
    for (const [i, { key, ...event }] of events.entries()) {
      if (key !== undefined) {
        if (this.keys.has(key)) continue; // stored already, by this router or another
        this.keys.add(key);
      }
      const cursor = (this.latest += 1);
      this.kept.push({ cursor, time, type: event.type, data: encoded[i]!, ...(key !== undefined && { key }) });
      stored.push({ cursor, time, ...event });
    }
    return stored;
  }

  async page(since: number | undefined, limit: number): Promise<EventsPage> {
    this.checkOpen();
    const latest = this.latest;
    const from = since === undefined ? Math.max(0, this.kept.length - limit) : firstAfter(this.kept, since);
    // One more than asked, after a cursor, tells whether more follow.
    const chosen = this.kept.slice(from, from + limit + (since === undefined ? 0 : 1)).map(toEvent);
    return eventsPage(chosen, since, limit, latest);
  }

  async prune(maxEvents: number, batch: number): Promise<number> {
    this.checkOpen();
    // The newest is always kept, as in SQLite: `latest` never goes back.
    const surplus = this.kept.length - Math.max(1, maxEvents);
    if (surplus <= 0) return 0;
    const removed = this.kept.splice(0, Math.min(surplus, batch));
    for (const { key } of removed) if (key !== undefined) this.keys.delete(key);
    return removed.length;
  }

  /** Lets the events go; any later call throws, as a closed database does. */
  async close(): Promise<void> {
    this.closed = true;
    this.kept = [];
    this.keys.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the memory event log is closed');
  }
}

function toEvent(kept: KeptEvent): BusEvent {
  return { cursor: kept.cursor, time: kept.time, type: kept.type, data: JSON.parse(kept.data) as Record<string, unknown> };
}

/** The index of the first event whose cursor is above `cursor`. */
function firstAfter(kept: readonly KeptEvent[], cursor: number): number {
  let low = 0;
  let high = kept.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (kept[middle]!.cursor <= cursor) low = middle + 1;
    else high = middle;
  }
  return low;
}
