/**
 * Notices a broker that holds back-to-back messages (protocol §1.2): with Nagle's algorithm
 * on the broker's socket, the second of two small messages written together waits for the
 * first one's TCP acknowledgement, which the receiver delays ~40 ms. The sender's `ts` says
 * two steps of one answer were made within a few ms; if they arrive 30 ms or more further
 * apart than that, three times in a minute, a warning says what to change. It costs nothing
 * to a request answered in one message.
 */

/** Steps made this close together (sender's clock)... */
const MADE_TOGETHER_MS = 5;
/** ...that arrive this much further apart look held back. */
const HELD_BACK_MS = 30;
const SIGHTINGS = 3;
const WINDOW_MS = 60_000;

export class NagleWatch {
  private sightings: number[] = [];
  private warned = false;

  constructor(private readonly warn: (message: string) => void) {}

  /** Two consecutive steps of one answer: when each was made (`ts`) and when each arrived. */
  steps(previous: { ts: number; at: number }, next: { ts: number; at: number }): void {
    if (this.warned) return;
    const made = next.ts - previous.ts;
    if (made < 0 || made > MADE_TOGETHER_MS || next.at - previous.at - made < HELD_BACK_MS) return;
    this.sightings = [...this.sightings.filter((at) => next.at - at < WINDOW_MS), next.at];
    if (this.sightings.length < SIGHTINGS) return;
    this.warned = true;
    this.warn(
      `the broker holds back messages sent together by ~${next.at - previous.at - made} ms (Nagle's algorithm on its sockets): ` +
        'set "set_tcp_nodelay true" in Mosquitto, or setNoDelay(true) on every socket an embedded Aedes accepts (relais start does)',
    );
  }
}
