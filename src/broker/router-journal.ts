/**
 * The embedded broker's journal for the router (protocol §1.3, §11.1 "The journal"). Every
 * command, response and cancel is kept here, in order, until the router says it has stored it,
 * and the router's connection gets them from here rather than through its subscription:
 *
 * - what the router had not stored when it stopped, was killed or lost its connection is fed to
 *   it again when it is back (the history has no hole across its restarts);
 * - a QoS 1 PUBLISH of one of them is acknowledged (PUBACK) once the router has stored it, while
 *   the router is connected and answering (a PUBACK means recorded);
 * - the feed is flow-controlled: at most a window of messages travels unconfirmed, the rest
 *   waits here, so a slow router is never cut off as a slow consumer;
 * - memory is bounded (messages and bytes); what does not fit is counted, by kind, and the
 *   router is told (a `history.gap` event), never dropped in silence.
 *
 * The router marks what it has stored by answering the journal's syncs: a sync carries the
 * sequence number of the last message fed before it on the same connection, and the router
 * answers it only after storing everything it received before it (MQTT keeps a connection's
 * order), so an answer `through N` confirms every message up to N.
 */
import { encode } from '../protocol/envelope.js';
import { feedMessage, HISTORY_FEED_TOPIC, ROUTER_ID, type FeedPayload, type HistoryGap, type RecordedKind } from '../protocol/history-feed.js';

export interface RouterJournalOptions {
  /** The client id of the router the journal keeps messages for. */
  routerId: string;
  /** Messages kept at most (commands, responses and cancels not yet stored by the router). */
  maxMessages: number;
  /** Bytes kept at most (topics and payloads). */
  maxBytes: number;
  /**
   * Keep messages from the broker's start (`relais start` with its router: the router is on its
   * way). Otherwise from the first time a router connects, so a broker that never sees one keeps
   * nothing.
   */
  fromStart: boolean;
}

/**
 * 200,000 messages or 64 MiB: a router restart of 30 s under ~6,000 messages/s (~2,000
 * requests/s with an acknowledgement and a final each), more with smaller payloads.
 */
export const ROUTER_JOURNAL_DEFAULTS: Readonly<RouterJournalOptions> = Object.freeze({
  routerId: ROUTER_ID,
  maxMessages: 200_000,
  maxBytes: 64 * 1024 * 1024,
  fromStart: false,
});

/** Messages fed and not yet confirmed, at most: the router's connection never holds more. */
const WINDOW_MESSAGES = 2048;
const WINDOW_BYTES = 4 * 1024 * 1024;
/** A sync follows this many messages fed, or SYNC_EVERY_MS after the first of them: the router stores in batches. */
const SYNC_EVERY_MESSAGES = 512;
const SYNC_EVERY_MS = 10;
/** A router that leaves a sync unanswered this long is stalled: PUBACKs no longer wait for it until it answers again. */
export const STALL_MS = 1000;
/** Bytes counted per message besides its topic and payload (the entry, the packet). */
const ENTRY_OVERHEAD = 128;
/** The packets the journal feeds are marked with this broker id, so the router's forward hook lets them through. */
export const JOURNAL_ID = 'relais-router-journal';

export interface JournalClient {
  id: string;
  closed: boolean;
  publish(message: { topic: string; payload: Buffer; qos: 0; retain: false; brokerId: string }, done: () => void): void;
}

export interface Packet {
  topic: string;
  payload: Buffer | string;
  qos: number;
  retain?: boolean;
  brokerId?: string;
}

export type Release = () => void;

interface Entry {
  seq: number;
  kind: RecordedKind | 'gap';
  topic: string;
  payload: Buffer;
  bytes: number;
  /** The publisher's PUBACK, held until the router has stored this message. */
  release?: Release | undefined;
  gap?: HistoryGap;
}

/** What `relais stats` and tests read. */
export interface RouterJournalCounts {
  /** Messages kept now, not yet confirmed stored by the router. */
  kept: number;
  bytes: number;
  /** Messages not kept since the start (the journal was full), all reported to the router or waiting to be. */
  missed: number;
  /** PUBACKs sent before the router had stored the message: it was away or stalled (the message waits in the journal), or the journal was full (missed). */
  acknowledgedUnstored: number;
  routerConnected: boolean;
}

export class RouterJournal {
  private entries: Array<Entry | undefined> = [];
  /** Index of the oldest entry kept. */
  private head = 0;
  /** entries[head, fedTo) have been fed to the router's current connection. */
  private fedTo = 0;
  private fedBytes = 0;
  private messages = 0;
  private bytes = 0;
  private nextSeq = 1;
  /** The highest sequence number a sync or a gap report has carried: no answer can confirm beyond it. */
  private announced = 0;
  /** Syncs sent on the current connection and not answered yet, oldest first. */
  private syncs: Array<{ seq: number; at: number }> = [];
  private fedSinceSync = 0;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncSoon: NodeJS.Immediate | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private router: JournalClient | undefined;
  private stalled = false;
  /** Entries whose PUBACK waits. */
  private held = 0;
  private missed = 0;
  private acknowledgedUnstored = 0;
  active: boolean;

  constructor(
    readonly options: RouterJournalOptions,
    private readonly log: (line: string) => void,
  ) {
    this.active = options.fromStart;
  }

  /** Whether a QoS 1 PUBLISH is acknowledged only once the router has stored it. */
  get holding(): boolean {
    return this.router !== undefined && !this.stalled;
  }

  counts(): RouterJournalCounts {
    return { kept: this.messages, bytes: this.bytes, missed: this.missed, acknowledgedUnstored: this.acknowledgedUnstored, routerConnected: this.router !== undefined };
  }

  /** Keeps a message the broker published; `release` sends its PUBACK (now, or once the router has stored it). */
  keep(packet: Packet, kind: RecordedKind, release?: Release): void {
    if (!this.active) {
      // No router yet: nothing is kept, but the first one to connect is told what it missed.
      this.miss(kind);
      return release?.();
    }
    // A copy: the packet's payload may be a view of a whole socket read, which keeping would keep.
    const payload = Buffer.from(packet.payload);
    const bytes = payload.length + packet.topic.length + ENTRY_OVERHEAD;
    if (this.messages >= this.options.maxMessages || this.bytes + bytes > this.options.maxBytes) {
      this.miss(kind);
      this.acknowledged(release);
      return;
    }
    const held = release && this.holding ? release : undefined;
    if (held) this.held += 1;
    else this.acknowledged(release);
    this.entries.push({ seq: this.nextSeq++, kind, topic: packet.topic, payload, bytes, release: held });
    this.messages += 1;
    this.bytes += bytes;
    this.feed();
  }

  /** The router's answer: everything fed up to `through` is stored. */
  confirm(through: number): void {
    const upTo = Math.min(through, this.announced);
    while (this.head < this.entries.length && this.entries[this.head]!.seq <= upTo) {
      const entry = this.entries[this.head]!;
      this.entries[this.head] = undefined;
      if (this.head < this.fedTo) this.fedBytes -= entry.bytes;
      this.head += 1;
      this.bytes -= entry.bytes;
      if (entry.kind !== 'gap') this.messages -= 1;
      if (entry.release) {
        this.held -= 1;
        entry.release();
      }
    }
    if (this.fedTo < this.head) this.fedTo = this.head;
    this.compact();
    while (this.syncs.length > 0 && this.syncs[0]!.seq <= upTo) this.syncs.shift();
    if (this.stalled) {
      this.stalled = false;
      this.log('the router answers the journal again: QoS 1 commands and responses are acknowledged once it has stored them');
    }
    this.feed();
  }

  /** The router connected (its CONNACK left): it gets, from the oldest, everything not confirmed. */
  attach(client: JournalClient): void {
    this.active = true;
    this.router = client;
    this.fedTo = this.head;
    this.fedBytes = 0;
    this.syncs = [];
    this.fedSinceSync = 0;
    this.stalled = false;
    this.feed();
  }

  /** The router's connection ended: PUBACKs held for it leave now; what it had not confirmed is kept for its return. */
  detach(client: JournalClient): void {
    if (client !== this.router) return;
    this.router = undefined;
    this.fedTo = this.head;
    this.fedBytes = 0;
    this.syncs = [];
    this.clearTimers();
    this.releaseHeld();
  }

  close(): void {
    this.router = undefined;
    this.clearTimers();
    this.releaseHeld();
  }

  /** Not kept: counted in the gap at the end of the journal (a new one if the last was already fed). */
  private miss(kind: RecordedKind): void {
    const now = Date.now();
    this.missed += 1;
    const last = this.entries.length > this.head ? this.entries[this.entries.length - 1]! : undefined;
    let gap = last?.kind === 'gap' && this.entries.length - 1 >= this.fedTo ? last.gap! : undefined;
    if (!gap) {
      gap = { missed: 0, commands: 0, responses: 0, cancels: 0, from: now, to: now };
      this.entries.push({ seq: this.nextSeq++, kind: 'gap', topic: HISTORY_FEED_TOPIC, payload: Buffer.alloc(0), bytes: ENTRY_OVERHEAD, gap });
      this.bytes += ENTRY_OVERHEAD;
      if (this.active) this.log(`the router's journal is full (${this.messages} messages, ${this.bytes} bytes; maxMessages ${this.options.maxMessages}, maxBytes ${this.options.maxBytes}): commands and responses are no longer kept for the router until it stores what it has; it will be told how many it missed (history.gap)`);
    }
    gap.missed += 1;
    gap[kind === 'command' ? 'commands' : kind === 'response' ? 'responses' : 'cancels'] += 1;
    gap.to = now;
  }

  private acknowledged(release: Release | undefined): void {
    if (!release) return;
    if (this.router || this.active) this.acknowledgedUnstored += 1;
    release();
  }

  /** Feeds the router what the window allows, in order, then schedules the sync that closes it. */
  private feed(): void {
    const router = this.router;
    if (!router) return;
    if (router.closed) return this.detach(router);
    let urgent = false;
    while (this.fedTo < this.entries.length) {
      const entry = this.entries[this.fedTo]!;
      const inFlight = this.fedTo - this.head;
      if (inFlight >= WINDOW_MESSAGES || (inFlight > 0 && this.fedBytes + entry.bytes > WINDOW_BYTES)) break;
      if (entry.kind === 'gap') {
        this.send(router, HISTORY_FEED_TOPIC, feedPayload(router.id, { gap: { ...entry.gap! }, seq: entry.seq }));
        this.announced = Math.max(this.announced, entry.seq);
        urgent = true;
      } else {
        this.send(router, entry.topic, entry.payload);
        if (entry.release) urgent = true;
      }
      this.fedTo += 1;
      this.fedBytes += entry.bytes;
      this.fedSinceSync += 1;
    }
    if (this.fedSinceSync === 0) return;
    if (urgent || this.fedSinceSync >= SYNC_EVERY_MESSAGES || this.fedTo - this.head >= WINDOW_MESSAGES) {
      this.syncSoon ??= setImmediate(this.sync);
    } else {
      this.syncTimer ??= setTimeout(this.sync, SYNC_EVERY_MS);
    }
  }

  /** A sync after what was fed: the router answers it once all of that is stored. */
  private readonly sync = (): void => {
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (this.syncSoon) clearImmediate(this.syncSoon);
    this.syncSoon = undefined;
    const router = this.router;
    if (!router || this.fedSinceSync === 0 || this.fedTo === this.head) return;
    const seq = this.entries[this.fedTo - 1]!.seq;
    this.fedSinceSync = 0;
    this.send(router, HISTORY_FEED_TOPIC, feedPayload(router.id, { sync: seq }));
    this.announced = Math.max(this.announced, seq);
    this.syncs.push({ seq, at: Date.now() });
    this.stallTimer ??= setTimeout(this.checkStall, STALL_MS);
  };

  /** A router that does not answer (busy, frozen, its disk failing) must not hold the publishers' PUBACKs. */
  private readonly checkStall = (): void => {
    this.stallTimer = undefined;
    const oldest = this.syncs[0];
    if (!oldest || !this.router) return;
    const waited = Date.now() - oldest.at;
    if (waited < STALL_MS) {
      this.stallTimer = setTimeout(this.checkStall, STALL_MS - waited);
      return;
    }
    if (!this.stalled) {
      this.stalled = true;
      this.log(`the router has not answered the journal for ${waited} ms: QoS 1 commands and responses are acknowledged without waiting for it (they stay in the journal until it has stored them)`);
    }
    this.releaseHeld();
    this.stallTimer = setTimeout(this.checkStall, STALL_MS);
  };

  private send(router: JournalClient, topic: string, payload: Buffer): void {
    router.publish({ topic, payload, qos: 0, retain: false, brokerId: JOURNAL_ID }, noop);
  }

  private releaseHeld(): void {
    for (let i = this.head; this.held > 0 && i < this.entries.length; i += 1) {
      const entry = this.entries[i]!;
      if (!entry.release) continue;
      const release = entry.release;
      entry.release = undefined;
      this.held -= 1;
      this.acknowledgedUnstored += 1;
      release();
    }
  }

  private clearTimers(): void {
    clearTimeout(this.syncTimer);
    clearTimeout(this.stallTimer);
    if (this.syncSoon) clearImmediate(this.syncSoon);
    this.syncTimer = this.stallTimer = this.syncSoon = undefined;
    this.fedSinceSync = 0;
  }

  /** Drops the slots of confirmed entries once they are most of the array. */
  private compact(): void {
    if (this.head < 1024 || this.head * 2 < this.entries.length) return;
    this.entries = this.entries.slice(this.head);
    this.fedTo -= this.head;
    this.head = 0;
  }
}

function feedPayload(routerId: string, payload: FeedPayload): Buffer {
  return Buffer.from(encode(feedMessage(routerId, payload)));
}

function noop(): void {}
