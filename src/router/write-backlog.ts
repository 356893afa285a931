/**
 * What a store refused (a full disk), kept in order to be written again (protocol §11.1, §11.8):
 * the history's rows and the event stream's events each have one. While the store refuses, new
 * items wait behind those already waiting instead of each batch trying (and failing) again, and
 * one attempt is made every RETRY_FIRST_MS, then less often up to RETRY_MAX_MS, whether or not
 * anything new comes: what waited is stored once the disk has room. At most `max` wait; past
 * that, the newest or the oldest are given up (the caller counts and reports them).
 */

/** The first attempts after a refusal, then each wait doubles up to RETRY_MAX_MS. */
export const RETRY_FIRST_MS = 250;
export const RETRY_MAX_MS = 1000;
/** While the store keeps refusing, the caller logs once per this many ms. */
const LOG_EVERY_MS = 10_000;

export interface WriteBacklogOptions {
  /** Most items that wait. */
  max: number;
  /** Which are given up past `max`: the newest (the history, as the journal does) or the oldest (events: their cursors stay in order). */
  giveUp: 'newest' | 'oldest';
  /** Makes one attempt (the caller's flush, resolved once it ended); called by the timer. */
  retry: () => Promise<void> | void;
}

export class WriteBacklog<T> {
  private items: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private delay = RETRY_FIRST_MS;
  /** When the store began refusing; undefined while it works. */
  private since: number | undefined;
  private loggedAt = 0;
  /** An attempt is due (the timer's, or one asked for): the next batch tries the store even though the store refuses. */
  private retrying = false;

  constructor(private readonly options: WriteBacklogOptions) {}

  /** Items waiting now. */
  get size(): number {
    return this.items.length;
  }

  /** Whether this batch should be tried now: the store works, or an attempt is due. */
  get mayTry(): boolean {
    return this.since === undefined || this.retrying;
  }

  /**
   * The items to try, in order: those waiting, then `batch` (the attempt due is made). They no
   * longer wait: give back those refused with `refused`, tell `stored` of the others.
   */
  take(batch: T[]): T[] {
    this.retrying = false;
    const items = this.items.length > 0 ? [...this.items, ...batch] : batch;
    this.items = [];
    return items;
  }

  /** While the store refuses, `batch` waits behind the others; returns what is given up past the bound. */
  hold(batch: T[]): T[] {
    return this.keep(this.items.length > 0 ? [...this.items, ...batch] : batch);
  }

  /** The store refused `items` (in order): they wait, and the next attempt is armed. Returns what is given up past the bound. */
  refused(items: T[]): T[] {
    if (this.since === undefined) {
      this.since = Date.now();
      this.delay = RETRY_FIRST_MS;
      this.loggedAt = 0;
    } else this.delay = Math.min(this.delay * 2, RETRY_MAX_MS);
    const givenUp = this.keep(items);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.retryNow();
      }, this.delay);
      this.timer.unref();
    }
    return givenUp;
  }

  /** One attempt now, as the timer makes it (a write that must come after what waits asks for one); resolves once it ended. */
  retryNow(): Promise<void> {
    this.retrying = true;
    return Promise.resolve(this.options.retry());
  }

  /** The store took an attempt: returns for how long it had refused (undefined when it had not). */
  stored(): number | undefined {
    if (this.since === undefined) return undefined;
    const refusedMs = Date.now() - this.since;
    this.since = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    return refusedMs;
  }

  /** Whether a refusal is worth a log line now: the first of an episode, then one per LOG_EVERY_MS. */
  dueForLog(): boolean {
    const now = Date.now();
    if (now - this.loggedAt < LOG_EVERY_MS) return false;
    this.loggedAt = now;
    return true;
  }

  /** No more attempts (the store closes; what still waits is lost with it). */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private keep(items: T[]): T[] {
    const over = items.length - this.options.max;
    if (over <= 0) {
      this.items = items;
      return [];
    }
    if (this.options.giveUp === 'newest') {
      this.items = items.slice(0, this.options.max);
      return items.slice(this.options.max);
    }
    this.items = items.slice(over);
    return items.slice(0, over);
  }
}
