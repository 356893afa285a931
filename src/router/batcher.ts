/**
 * Items gathered for one store call: under a flood, one SQLite transaction per ~10 ms holds
 * hundreds of rows (SQLite's cost is mostly per transaction: ~46k rows/s in batches of 30,
 * ~100k in batches of 300 here; bench/RESULTS.md). Used for history rows and for events.
 */
export const FLUSH_EVERY_MS = 10;

export class Batcher<T> {
  private pending: T[] = [];
  private timer: NodeJS.Timeout | undefined;

  /** `store` is called with each batch, in order; it reports its own failures. */
  constructor(
    private readonly store: (batch: T[]) => void,
    private readonly maxBatch = 5000,
  ) {}

  /** Items waiting for the next store call. */
  get size(): number {
    return this.pending.length;
  }

  /** Adds an item; `now` stores what is pending at once (a QoS 1 message before its PUBACK). */
  add(item: T, now = false): void {
    this.pending.push(item);
    if (now || this.pending.length >= this.maxBatch) this.flush();
    else this.timer ??= setTimeout(this.flush, FLUSH_EVERY_MS);
  }

  readonly flush = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.store(batch);
  };
}
