/**
 * The router's side of the embedded broker's journal (protocol §11.1 "The journal"): it answers
 * each sync once everything the journal fed before it is stored (at once, or when the rows the
 * store refused are stored), and records the gaps the journal reports and the rows the store
 * refused for too long. On a broker without a journal (Mosquitto, NATS, another router id) its hello
 * comes back to it: after an absence it then reports, as a `history.gap` event, that what was
 * published meanwhile may be missing (the broker cannot say how much).
 */
import type { Logger } from 'pino';
import type { Bus } from '../client/bus.js';
import type { ReceivedMessage } from '../client/types.js';
import { feedPayloadSchema, HISTORY_FEED_TOPIC, HISTORY_STORED_TOPIC, storedMessage, type FeedPayload, type HistoryGap } from '../protocol/history-feed.js';
import type { EventStream } from './event-stream.js';
import type { HistoryStore } from './history-store.js';
import type { Recorder } from './recorder.js';

export interface BrokerFeedOptions {
  /** The router's client id. */
  id: string;
  recorder: Recorder;
  events: EventStream;
  historyStore: HistoryStore;
  logger: Logger;
}

export class BrokerFeed {
  private bus: Bus | undefined;
  /** When the router stopped hearing the bus (its previous run's last row, a lost connection); cleared once reported or fed. */
  private awaySince: number | undefined;
  private unstoredWarned = false;
  /** An answer due before the connection was handed over (the journal feeds from the CONNACK on). */
  private unsent: number | undefined;
  /** The last sync not answered because rows waited for the store: answered once they are stored. */
  private unanswered: number | undefined;
  /** The journal fed the router: it kept what the router did not hear, whatever the history's newest row says. */
  private fed = false;

  constructor(private readonly options: BrokerFeedOptions) {
    // Rows the store refused are stored later, whether or not the journal sends anything more.
    options.recorder.onCaughtUp(() => {
      if (this.unanswered === undefined || !options.recorder.allStored) return;
      const through = this.unanswered;
      this.unanswered = undefined;
      this.unstoredWarned = false;
      this.send(through, 0);
    });
    options.recorder.onLoss((loss) => this.reportLoss(loss));
  }

  /** Once connected: says hello now and after each reconnection. */
  async start(bus: Bus): Promise<void> {
    try {
      const [newest] = (await this.options.historyStore.query({ order: 'newest', limit: 1 })).rows;
      if (!this.fed) this.awaySince = newest?.ctime;
    } catch (error) {
      // Then an absence before this start goes unreported; the router still records.
      this.options.logger.warn({ err: (error as Error).message }, 'history: the store could not say when the router last recorded');
    }
    this.bus = bus;
    bus.on('offline', () => (this.awaySince ??= Date.now()));
    bus.on('online', () => this.hello());
    this.hello();
    if (this.unsent !== undefined) this.send(this.unsent, 0);
    this.unsent = undefined;
  }

  /**
   * Every message of the router's subscription to everything, in order: a sync or a gap from the
   * journal, or our own hello come back. Returns whether it was one of those.
   */
  readonly onMessage = (message: ReceivedMessage): boolean => {
    if (message.topic === HISTORY_FEED_TOPIC) {
      this.onFeed(message);
      return true;
    }
    if (message.topic === HISTORY_STORED_TOPIC) {
      // Our hello, back: this broker keeps no journal for us.
      if (message.envelope.source === this.options.id) this.reportAbsence();
      return true;
    }
    return false;
  };

  private onFeed(message: ReceivedMessage): void {
    this.awaySince = undefined; // the journal kept what we did not hear
    this.fed = true;
    const feed = readFeed(message.envelope.payload);
    if (!feed.ok) {
      this.options.logger.warn({ topic: message.topic, err: feed.error }, 'history: an unreadable message from the broker journal');
      return;
    }
    // What came before is stored first (the history's order is the journal's), and the gap's event: the journal is answered once they are.
    const stored = this.options.recorder.flush();
    const gapStored = 'gap' in feed.payload ? this.reportGap(feed.payload.gap) : undefined;
    const through = 'sync' in feed.payload ? feed.payload.sync : feed.payload.seq;
    void Promise.all([stored, gapStored]).then(() => this.answer(through));
  }

  /** After the rows fed before `through` went to the store: tells the journal they are stored, or, while they wait for the store, later. */
  private answer(through: number): void {
    if (!this.options.recorder.allStored) {
      // Not answered yet: the journal keeps the messages (and stops holding PUBACKs after a while).
      if (!this.unstoredWarned) this.options.logger.warn('history: rows wait for the store; the broker journal is not told they are stored');
      this.unstoredWarned = true;
      this.unanswered = Math.max(this.unanswered ?? 0, through);
      return;
    }
    this.unstoredWarned = false;
    this.unanswered = undefined;
    this.send(through, 0);
  }

  /** Rows the store refused past the recorder's bound: given up, reported exactly (protocol §11.8 `history.gap`, `by: store`). */
  private reportLoss(loss: HistoryGap): void {
    this.options.logger.warn({ ...loss }, `history: the store refused rows for too long: ${loss.missed} commands and responses were not recorded`);
    void this.options.events.onGap({ by: 'store', ...loss });
  }

  private reportGap(gap: HistoryGap): Promise<void> {
    this.options.logger.warn({ ...gap }, `history: the broker's journal was full: ${gap.missed} commands and responses were not recorded`);
    return this.options.events.onGap({ by: 'broker', ...gap });
  }

  private reportAbsence(): void {
    const from = this.awaySince;
    this.awaySince = undefined;
    if (from === undefined) return;
    const to = Date.now();
    this.options.logger.warn({ from, to }, 'history: the router was away and this broker keeps no journal for it: what was published meanwhile may be missing from the history');
    void this.options.events.onGap({ by: 'router', missed: null, from, to });
  }

  /** The hello (nothing stored yet: 0) goes at QoS 1, so that on a broker without a journal it surely comes back. */
  private hello(): void {
    this.send(0, 1);
  }

  private send(through: number, qos: 0 | 1): void {
    if (!this.bus) {
      this.unsent = Math.max(this.unsent ?? 0, through);
      return;
    }
    try {
      this.bus.publish(HISTORY_STORED_TOPIC, storedMessage(this.options.id, through), { qos });
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'history: could not answer the broker journal');
    }
  }
}

/** A sync comes every few milliseconds under load: its one field is read without the schema, which judges anything else. */
function readFeed(payload: unknown): { ok: true; payload: FeedPayload } | { ok: false; error: string } {
  const sync = (payload as { sync?: unknown } | null)?.sync;
  if (Number.isSafeInteger(sync) && (sync as number) >= 0 && Object.keys(payload as object).length === 1) return { ok: true, payload: { sync: sync as number } };
  const parsed = feedPayloadSchema.safeParse(payload);
  return parsed.success ? { ok: true, payload: parsed.data } : { ok: false, error: parsed.error.message };
}
