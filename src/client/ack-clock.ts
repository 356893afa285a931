/**
 * When requests waiting for their handler's first answer (protocol §4.7) are written again,
 * then given up waiting for (the handler is suspected, failure-detector.ts): one sweep for all
 * of them instead of a timer per request, which the common case (an answer within a
 * millisecond) would make and clear for nothing. The sweep runs only while some request waits,
 * every quarter of the shortest wait among them.
 */

/** A request that waits; the clock keeps its times on it (no object made per request). */
export interface AwaitingAck {
  ackRetryAt: number;
  ackExpireAt: number;
  /** Half-way: write the command once more. */
  retry(): void;
  /** The end of the wait: the handler is suspected. */
  expire(): void;
}

/** The sweep is never faster than this, whatever the ack time-out. */
const FASTEST_SWEEP_MS = 10;

export class AckClock {
  private readonly waiting = new Set<AwaitingAck>();
  private sweep: NodeJS.Timeout | undefined;
  private period = Infinity;

  /** `request` waits from now for up to `wait` ms (its handler's deadline, failure-detector.ts). */
  start(request: AwaitingAck, wait: number, now = Date.now()): void {
    request.ackRetryAt = now + wait / 2;
    request.ackExpireAt = now + wait;
    this.waiting.add(request);
    const period = Math.max(FASTEST_SWEEP_MS, wait / 4);
    if (this.sweep && period >= this.period) return;
    clearInterval(this.sweep);
    this.period = period;
    this.sweep = setInterval(() => this.tick(), period);
    this.sweep.unref?.();
  }

  stop(request: AwaitingAck): void {
    this.waiting.delete(request);
  }

  /** Retries and expiries due by `now`; the sweep stops at the first tick with nobody waiting. */
  tick(now = Date.now()): void {
    if (this.waiting.size === 0) {
      clearInterval(this.sweep);
      this.sweep = undefined;
      this.period = Infinity;
      return;
    }
    for (const request of [...this.waiting]) {
      if (now >= request.ackExpireAt) {
        this.stop(request);
        request.expire();
      } else if (now >= request.ackRetryAt) {
        request.ackRetryAt = Infinity; // once
        request.retry();
      }
    }
  }
}
