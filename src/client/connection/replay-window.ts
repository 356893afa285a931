/**
 * Replay protection for signed messages (protocol §12.3): per sequence stream (a key id and the
 * signer's boot), the highest `seq` seen and a sliding window of the `WINDOW` seqs below it,
 * as IPsec does (RFC 4303 §3.4.3). A seq seen before, or below the window, is a replay. The
 * window lets honest messages arrive out of order: the two lanes of a sender (protocol §6.2)
 * are two MQTT connections, and nothing orders one against the other.
 *
 * Memory is bounded: at most `maxStreams` streams, least recently used forgotten first. A
 * stream is forgotten safely once `maxSkewMs` has passed since the newest `ts` it carried:
 * any replay of its messages is then stale. Pure: the clock is passed in.
 */

/** Seqs tracked below the highest one: a message may be overtaken by up to WINDOW − 1 later ones of its sender. */
export const WINDOW = 1024;
const WORDS = WINDOW / 32;

interface Stream {
  highest: number;
  /** Bit `seq % WINDOW` set: that seq was seen (meaningful for seqs within the window only). */
  seen: Uint32Array;
  /** The newest `ts` the stream carried (the sender's clock). */
  newestTs: number;
}

export type ReplayVerdict = 'fresh' | 'replayed';

export class ReplayWindows {
  private readonly streams = new Map<string, Stream>();
  /** Streams forgotten while a replay of theirs could still have passed the freshness check. */
  unsafeEvictions = 0;

  constructor(
    private readonly maxStreams: number,
    private readonly maxSkewMs: number,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  /** Records `seq` of `stream` and says whether it is new. `now` is the receiver's clock. */
  check(streamKey: string, seq: number, ts: number, now: number): ReplayVerdict {
    let stream = this.streams.get(streamKey);
    if (stream) {
      // Most recently used last: Map keeps insertion order.
      this.streams.delete(streamKey);
      this.streams.set(streamKey, stream);
    } else {
      stream = { highest: 0, seen: new Uint32Array(WORDS), newestTs: ts };
      this.streams.set(streamKey, stream);
      this.evict(now);
    }
    if (seq > stream.highest) {
      this.advance(stream, seq);
    } else {
      if (seq <= stream.highest - WINDOW) return 'replayed';
      const bit = seq % WINDOW;
      const word = bit >>> 5;
      const mask = 1 << (bit & 31);
      if (stream.seen[word]! & mask) return 'replayed';
      stream.seen[word]! |= mask;
    }
    if (ts > stream.newestTs) stream.newestTs = ts;
    return 'fresh';
  }

  /** Moves the window up to `seq`: the slots of the seqs it passes over are cleared, then `seq`'s is set. */
  private advance(stream: Stream, seq: number): void {
    const gap = seq - stream.highest;
    if (gap >= WINDOW) stream.seen.fill(0);
    else for (let passed = stream.highest + 1; passed <= seq; passed++) stream.seen[(passed % WINDOW) >>> 5]! &= ~(1 << (passed % WINDOW & 31));
    stream.highest = seq;
    const bit = seq % WINDOW;
    stream.seen[bit >>> 5]! |= 1 << (bit & 31);
  }

  private evict(now: number): void {
    while (this.streams.size > this.maxStreams) {
      const [key, oldest] = this.streams.entries().next().value as [string, Stream];
      if (now - oldest.newestTs <= this.maxSkewMs) this.unsafeEvictions += 1;
      this.streams.delete(key);
    }
  }
}
