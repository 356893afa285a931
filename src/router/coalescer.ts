/**
 * Runs `flush` at most once every `intervalMs` however often `changed()` is called (protocol
 * §11.3): the first change after a quiet spell is flushed at once (next turn of the event
 * loop), later ones wait for the end of the interval and go out together.
 */
export class Coalescer {
  private timer: NodeJS.Timeout | undefined;
  private lastFlush = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(
    private readonly intervalMs: number,
    private readonly flush: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Something changed: a flush is due, now or at the end of the current interval. */
  changed(): void {
    if (this.closed || this.timer) return;
    const wait = Math.max(0, this.lastFlush + this.intervalMs - this.now());
    this.timer = setTimeout(() => this.flushNow(), wait);
  }

  /** Flushes at once what is pending (on close, nothing waits for the timer). */
  flushNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lastFlush = this.now();
    this.flush();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
