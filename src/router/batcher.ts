/**
 * Items gathered for one store call: under a flood, one SQLite transaction per ~10 ms holds
 * hundreds of rows (SQLite's cost is mostly per transaction: ~46k rows/s in batches of 30,
 * ~100k in batches of 300 here; bench/RESULTS.md). Used for history rows and for events.
 *
 * Store calls run one at a time, in order: a store shared by several routers (PostgreSQL)
 * answers later, and what arrives meanwhile waits for the next batch, so the history's order
 * is the order the router saw. When no call runs, a flush calls the store at once: a store that
 * writes in the body of its method (SQLite) has written when `flush` returns.
 */
export const FLUSH_EVERY_MS = 10;

export class Batcher<T> {
  private pending: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** A store call runs: what is asked now waits for it. */
  private running = false;
  /** Calls waiting for the running one, in order. */
  private readonly waiting: Array<() => Promise<void>> = [];
  /** The batch call queued and not started yet: a flush meanwhile joins it. */
  private queued: Promise<void> | undefined;

  /** `store` is called with each batch, in order, one at a time; it reports its own failures (a rejection is ignored). */
  constructor(
    private readonly store: (batch: T[]) => Promise<void>,
    private readonly maxBatch = 5000,
  ) {}

  /** Items waiting for the next store call. */
  get size(): number {
    return this.pending.length;
  }

  /** Adds an item; `now` stores what is pending at once (a QoS 1 message before its PUBACK). */
  add(item: T, now = false): void {
    this.pending.push(item);
    if (now || this.pending.length >= this.maxBatch) void this.flush();
    else this.timer ??= setTimeout(this.flush, FLUSH_EVERY_MS);
  }

  /**
   * Calls the store with what is pending (even nothing: the caller may have a backlog to try),
   * at once when no call runs, else after the running one. Resolves once that call ended.
   */
  readonly flush = (): Promise<void> => {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queued) return this.queued;
    let started = false;
    const call = this.exclusive(async () => {
      started = true;
      this.queued = undefined;
      const batch = this.pending;
      this.pending = [];
      try {
        await this.store(batch);
      } catch {
        // The store callback reports its own failures.
      }
    });
    if (!started) this.queued = call;
    return call;
  };

  /** Runs `call` after the store calls asked before it, before any asked after (a put between batches). */
  exclusive<R>(call: () => Promise<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const run = async () => {
        try {
          resolve(await call());
        } catch (error) {
          reject(error);
        }
      };
      if (this.running) this.waiting.push(run);
      else this.start(run);
    });
  }

  private start(run: () => Promise<void>): void {
    this.running = true;
    void run().then(() => {
      const next = this.waiting.shift();
      if (next) this.start(next);
      else this.running = false;
    });
  }
}
