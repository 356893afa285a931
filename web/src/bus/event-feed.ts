/**
 * The router's event stream as a consumer resumes it (protocol §11.8): remember the last
 * cursor handled; a live event that follows it by one is handled; on a jump, after the
 * connection comes back, and at start, ask `relais/events/get` from that cursor and skip what
 * was already handled. The cursor is kept in sessionStorage, so a reload resumes too.
 */
import { EVENTS_ACTION, EVENTS_CATEGORY, type BusEvent, type EventBatch, type EventsPage } from '../../../src/protocol/events.js';
import { notificationTopic } from '../../../src/protocol/topics.js';
import type { Bus, Subscription } from './bus.js';

const CURSOR_KEY = 'relais.events.cursor';
/** Events shown as context before the stored cursor after a reload (already seen, not "new"). */
const CONTEXT_BEFORE = 100;
const PAGE = 1000;

export interface FeedNotice {
  /** `resumed`: after a reload or a reconnection; `missed`: retention removed events first. */
  kind: 'started' | 'resumed' | 'missed' | 'error';
  text: string;
}

export interface FeedCallbacks {
  onEvents(events: BusEvent[]): void;
  onNotice(notice: FeedNotice): void;
}

export class EventFeed {
  private last: number | undefined;
  private subscription?: Subscription;
  private catchingUp = false;
  private again = false;
  private stopState?: () => void;

  constructor(
    private readonly bus: Bus,
    private readonly callbacks: FeedCallbacks,
    private readonly storage: Storage = sessionStorage,
  ) {
    const stored = Number(storage.getItem(CURSOR_KEY));
    if (Number.isSafeInteger(stored) && stored > 0) this.last = stored;
  }

  get cursor(): number | undefined {
    return this.last;
  }

  async start(): Promise<void> {
    // Subscribe first, then read: nothing pushed in between is lost (protocol §11.8).
    this.subscription = await this.bus.subscribe(notificationTopic(EVENTS_CATEGORY), ({ envelope }) => {
      const batch = envelope?.type === 'notification' ? (envelope.payload as EventBatch | null) : null;
      if (batch && Array.isArray(batch.events)) this.onLive(batch.events);
    });
    if (!this.subscription.granted) {
      this.callbacks.onNotice({ kind: 'error', text: 'the policy does not let this identity read the event stream (relais/events/notification)' });
      return;
    }
    let reconnected = false;
    this.stopState = this.bus.onState((state) => {
      if (state === 'reconnecting') reconnected = true;
      if (state === 'connected' && reconnected) {
        reconnected = false;
        void this.catchUp('reconnection');
      }
    });
    if (this.last === undefined) await this.firstLoad();
    else await this.catchUp('reload', this.last);
  }

  stop(): void {
    this.subscription?.close();
    this.stopState?.();
  }

  private async firstLoad(): Promise<void> {
    try {
      const page = await this.bus.ask<EventsPage>(EVENTS_ACTION, { limit: 200 });
      this.handle(page.events);
      this.last ??= page.latest;
      this.remember();
      this.callbacks.onNotice({ kind: 'started', text: `Live from cursor ${this.last}.` });
    } catch (error) {
      this.callbacks.onNotice({ kind: 'error', text: `could not read the event stream: ${(error as Error).message}` });
    }
    if (this.again) await this.catchUp();
  }

  private onLive(events: BusEvent[]): void {
    if (this.catchingUp || this.last === undefined) {
      this.again = true;
      return;
    }
    for (const event of events) {
      if (event.cursor <= this.last) continue;
      if (event.cursor !== this.last + 1) {
        // A jump: something between was not pushed to us (a drop); read it from the store.
        void this.catchUp();
        return;
      }
      this.handle([event]);
    }
  }

  /**
   * Reads from the last cursor until nothing more; `why` says what to tell the user. After a
   * reload, `context` is the cursor the page stopped at: a few events before it are shown again.
   */
  private async catchUp(why?: 'reload' | 'reconnection', context?: number): Promise<void> {
    if (this.catchingUp) {
      this.again = true;
      return;
    }
    this.catchingUp = true;
    const from = this.last ?? 0;
    let caught = 0;
    let missed = 0;
    try {
      if (context !== undefined && context > 0) {
        const before = await this.bus.ask<EventsPage>(EVENTS_ACTION, { since: Math.max(0, context - CONTEXT_BEFORE), limit: Math.min(CONTEXT_BEFORE, context) });
        this.callbacks.onEvents(before.events.filter((event) => event.cursor <= context));
      }
      do {
        this.again = false;
        for (;;) {
          const page = await this.bus.ask<EventsPage>(EVENTS_ACTION, { since: this.last ?? 0, limit: PAGE });
          missed += page.missed ?? 0;
          caught += this.handle(page.events);
          if (!page.more) break;
        }
      } while (this.again);
      if (missed > 0) this.callbacks.onNotice({ kind: 'missed', text: `${missed} events after cursor ${from} were removed by the router's retention before this page could read them.` });
      if (why) {
        const what = why === 'reload' ? 'after the reload' : 'after the connection came back';
        this.callbacks.onNotice({ kind: 'resumed', text: `Resumed ${what} from cursor ${from}: ${caught} new event${caught === 1 ? '' : 's'}, ${missed > 0 ? `${missed} missed` : 'no gap'}.` });
      }
    } catch (error) {
      this.callbacks.onNotice({ kind: 'error', text: `could not resume the event stream from cursor ${from}: ${(error as Error).message}` });
    } finally {
      this.catchingUp = false;
    }
  }

  /** Handles events not handled yet, in order; returns how many. */
  private handle(events: BusEvent[]): number {
    const fresh = events.filter((event) => this.last === undefined || event.cursor > this.last);
    if (fresh.length === 0) return 0;
    this.last = fresh[fresh.length - 1]!.cursor;
    this.remember();
    this.callbacks.onEvents(fresh);
    return fresh.length;
  }

  private remember(): void {
    if (this.last !== undefined) this.storage.setItem(CURSOR_KEY, String(this.last));
  }
}
