/**
 * When requests waiting for their handler's first answer (protocol §4.7) are written again,
 * then given up waiting for (the handler is suspected, failure-detector.ts): one sweep for all
 * of them instead of a timer per request, which the common case (an answer within a
 * millisecond) would make and clear for nothing. The sweep runs only while some request waits,
 * every quarter of the shortest wait among them.
 *
 * A wait ends only after what has arrived is read. A process frozen or starved wakes with its
 * timers due before it reads its sockets (Node runs timers before I/O in a turn of its event
 * loop): an answer that came in time may be waiting there, unread. So a wait found over is
 * given up one turn later (setImmediate, after the I/O of the turn), unless an answer stopped
 * it meanwhile; taking it for silence would move a command already taken elsewhere, and run it
 * twice.
 */

import { afterPendingIo } from '../runtime.js';

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
  /** Waits found over, given up at the end of this turn unless answered (or started again) meanwhile. */
  private readonly expiring = new Set<AwaitingAck>();
  private sweep: ReturnType<typeof setInterval> | undefined;
  private period = Infinity;

  /** `request` waits from now for up to `wait` ms (its handler's deadline, failure-detector.ts). */
  start(request: AwaitingAck, wait: number, now = Date.now()): void {
    this.expiring.delete(request);
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
    this.expiring.delete(request);
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
        this.waiting.delete(request);
        if (this.expiring.size === 0) afterPendingIo(() => this.giveUp());
        this.expiring.add(request);
      } else if (now >= request.ackRetryAt) {
        request.ackRetryAt = Infinity; // once
        request.retry();
      }
    }
  }

  /** After the I/O of the turn: the waits over that no answer stopped. */
  private giveUp(): void {
    const over = [...this.expiring];
    this.expiring.clear();
    for (const request of over) request.expire();
  }
}
