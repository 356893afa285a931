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
 *
 * The same holds of a broker frozen (a paused VM, SIGSTOP): the handler's answer waits inside it.
 * So a wait over counts as the handler's silence only if the broker was heard on the request's
 * lane in its last quarter; else the broker is asked first (an UNSUBSCRIBE round trip, protocol
 * §4.7), and once it answers the handler has a quarter of the wait more, for what it held.
 */

import { afterPendingIo } from '../runtime.js';
import type { Lane } from '../types.js';

/** A request that waits; the clock keeps its times on it (no object made per request). */
export interface AwaitingAck {
  /** Where its answers come: the broker must be heard there for the handler's silence to count. */
  readonly lane: Lane;
  ackRetryAt: number;
  ackExpireAt: number;
  /** How long its wait is (the clock's). */
  ackWaitMs: number;
  /** Its wait was drawn out once the broker answered the clock's question: its end now counts. */
  ackAsked: boolean;
  /** Half-way: write the command once more. */
  retry(): void;
  /** The end of the wait: the handler is suspected. */
  expire(): void;
}

/** The sweep is never faster than this, whatever the ack time-out. */
const FASTEST_SWEEP_MS = 10;

/** What the clock asks of the connections (protocol §4.7): when the broker last sent anything on a lane, and a round trip to it. */
export interface BrokerHearing {
  heardAt(lane: Lane): number;
  probe(lane: Lane): Promise<void>;
}

export class AckClock {
  private readonly waiting = new Set<AwaitingAck>();
  /** Waits over while the broker was not heard, by lane: they wait for its answer to the probe. */
  private readonly asking = new Map<Lane, Set<AwaitingAck>>();

  /** Without `broker`, a wait over is always given up (the sweep's own unit tests). */
  constructor(private readonly broker?: BrokerHearing) {}
  /** Waits found over, given up at the end of this turn unless answered (or started again) meanwhile. */
  private readonly expiring = new Set<AwaitingAck>();
  private sweep: ReturnType<typeof setInterval> | undefined;
  private period = Infinity;

  /** `request` waits from now for up to `wait` ms (its handler's deadline, failure-detector.ts). */
  start(request: AwaitingAck, wait: number, now = Date.now()): void {
    this.expiring.delete(request);
    this.asking.get(request.lane)?.delete(request);
    request.ackWaitMs = wait;
    request.ackAsked = false;
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
    this.asking.get(request.lane)?.delete(request);
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

  /** After the I/O of the turn: the waits over that no answer stopped, if the broker was heard lately; else it is asked first. */
  private giveUp(): void {
    const over = [...this.expiring];
    this.expiring.clear();
    for (const request of over) {
      if (!this.broker || request.ackAsked || this.broker.heardAt(request.lane) >= request.ackExpireAt - request.ackWaitMs / 4) {
        request.expire();
        continue;
      }
      let asking = this.asking.get(request.lane);
      if (!asking) {
        this.asking.set(request.lane, (asking = new Set()));
        this.ask(request.lane, asking);
      }
      asking.add(request);
    }
  }

  /** One question per lane at a time; its answer gives each request a quarter of its wait more, then its end counts. */
  private ask(lane: Lane, asking: Set<AwaitingAck>): void {
    const done = () => {
      if (this.asking.get(lane) === asking) this.asking.delete(lane);
    };
    this.broker!.probe(lane).then(
      () => {
        done();
        const now = Date.now();
        for (const request of asking) {
          this.start(request, request.ackWaitMs / 4, now);
          request.ackRetryAt = Infinity; // written twice already
          request.ackAsked = true;
        }
      },
      // The connection ended first: its requests are written again when it is back, and wait from then.
      done,
    );
  }
}
