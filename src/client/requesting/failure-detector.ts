/**
 * How long a requester waits for a handler's first answer before it suspects it (protocol
 * §4.7), learnt per handler from what this requester observes, as TCP's retransmission timer
 * does (RFC 6298): a smoothed round trip and its variation, deadline = SRTT + 4·RTTVAR, kept
 * between a floor and a ceiling derived from `ackTimeout`, and doubled for each time a request
 * already waited that long for it in vain (the back-off of a retransmission timer, per request:
 * requests that miss together do not compound).
 *
 * It only ever *suspects*: a suspected handler is passed over while other providers are fine
 * (handler-choice.ts) and is trusted again as soon as it answers anything, when its presence
 * changes, or after a while. Whether a handler is gone is for its presence alone to say
 * (protocol §7.3): nothing here can fail a request.
 *
 * Pure: no timer, no I/O; times are passed in. One small record per handler heard of, made
 * once, updated in place (the request path makes nothing).
 */

/** Gains of RFC 6298 §2.3. */
const ALPHA = 1 / 8;
const BETA = 1 / 4;

/** The deadline never grows past this many `ackTimeout`s, however slow or missed the handler. */
export const CEILING_IN_ACK_TIMEOUTS = 8;
/** A suspicion lapses after this many `ackTimeout`s, so that a handler passed over is tried again. */
export const SUSPICION_IN_ACK_TIMEOUTS = 15;

interface HandlerRecord {
  /** Smoothed round trip, ms; NaN until the first sample. */
  srtt: number;
  rttvar: number;
  /** Suspected until then (epoch ms); 0 when not suspected. */
  suspectedUntil: number;
  /** The presence it was learnt under (protocol §7.1): another `since` is another instance. */
  since: number | undefined;
  seq: number | undefined;
}

/** What a handler's record is learnt under: its presence's start time and counter (protocol §7.1). */
export interface KnownPresence {
  since?: number | undefined;
  seq?: number | undefined;
}

export class FailureDetector {
  private readonly handlers = new Map<string, HandlerRecord>();

  /** @param presenceOf the handler's current presence, read when its record is made. */
  constructor(private readonly presenceOf: (handler: string) => KnownPresence | undefined) {}

  /**
   * How long to wait, in ms, for `handler`'s first answer to a command written now, when this
   * request already waited for it in vain `misses` times: `ackTimeout` for a handler not heard
   * from yet, else SRTT + 4·RTTVAR, at least `ackTimeout`; doubled for each miss; at most
   * `CEILING_IN_ACK_TIMEOUTS` × `ackTimeout`.
   */
  deadline(handler: string, ackTimeout: number, misses = 0): number {
    const record = this.handlers.get(handler);
    const estimate = record !== undefined && !Number.isNaN(record.srtt) ? Math.max(ackTimeout, record.srtt + 4 * record.rttvar) : ackTimeout;
    return Math.min(CEILING_IN_ACK_TIMEOUTS * ackTimeout, misses === 0 ? estimate : estimate * 2 ** misses);
  }

  /** `handler` gave its first answer (acknowledgement, progress, final or refusal) `rtt` ms after the command was written. */
  answered(handler: string, rtt: number): void {
    const record = this.recordOf(handler);
    const sample = rtt > 0 ? rtt : 0;
    if (Number.isNaN(record.srtt)) {
      record.srtt = sample;
      record.rttvar = sample / 2;
    } else {
      record.rttvar = (1 - BETA) * record.rttvar + BETA * Math.abs(record.srtt - sample);
      record.srtt = (1 - ALPHA) * record.srtt + ALPHA * sample;
    }
    record.suspectedUntil = 0;
  }

  /**
   * No first answer from `handler` within its deadline: suspected, until it answers, its presence
   * changes, or `SUSPICION_IN_ACK_TIMEOUTS` × `ackTimeout` have passed (then it is tried again).
   * Returns whether it was not suspected before.
   */
  missed(handler: string, ackTimeout: number, now: number): boolean {
    const wasSuspected = this.isSuspected(handler, now);
    this.recordOf(handler).suspectedUntil = now + SUSPICION_IN_ACK_TIMEOUTS * ackTimeout;
    return !wasSuspected;
  }

  isSuspected(handler: string, now: number): boolean {
    const record = this.handlers.get(handler);
    if (record === undefined || record.suspectedUntil === 0) return false;
    if (now < record.suspectedUntil) return true;
    record.suspectedUntil = 0;
    return false;
  }

  /**
   * `handler`'s presence changed (protocol §7.1): a new instance (another `since`) or a
   * cleared presence starts from nothing; a newer presence of the same instance (it came back,
   * or serves something else) lifts the suspicion but keeps what was measured.
   */
  presenceChanged(handler: string, presence: KnownPresence | undefined): void {
    const record = this.handlers.get(handler);
    if (record === undefined) return;
    if (presence === undefined || presence.since !== record.since) {
      this.handlers.delete(handler);
      return;
    }
    if (presence.seq !== record.seq) {
      record.seq = presence.seq;
      record.suspectedUntil = 0;
    }
  }

  private recordOf(handler: string): HandlerRecord {
    let record = this.handlers.get(handler);
    if (!record) {
      const presence = this.presenceOf(handler);
      record = { srtt: NaN, rttvar: 0, suspectedUntil: 0, since: presence?.since, seq: presence?.seq };
      this.handlers.set(handler, record);
    }
    return record;
  }
}
