/**
 * What a handler remembers of the commands it has finished (protocol §4.8), so that a command
 * sent again with the same token (a requester recovering a lost answer, a broker resending a
 * QoS 1 message) is answered with the result already sent instead of running twice.
 * Bounded in entries and bytes, oldest forgotten first; an entry is useless after its
 * command's deadline, when no requester waits for it any more.
 */
import type { WireBody } from '../../protocol/framing.js';

export const REMEMBERED_TOKENS = 100_000;
export const REMEMBERED_BYTES = 32 * 1024 * 1024;
/** How long a command without a deadline is remembered, and the longest anything is. */
export const REMEMBER_WITHOUT_DEADLINE_MS = 60_000;
export const REMEMBER_AT_MOST_MS = 10 * 60_000;

interface Finished {
  key: string;
  /** The final response as sent; undefined once dropped to stay within REMEMBERED_BYTES. */
  body: WireBody | undefined;
  expiresAt: number;
}

export class RecentTokens {
  private readonly entries = new Map<string, Finished>();
  /**
   * The same entries, oldest first, for forgetting them in order. A Map iterated from its
   * start after many deletions walks over the holes they leave (30-50 us a call measured
   * with 100 000 entries), so the order is kept apart, in an array read from `head`.
   */
  private order: Finished[] = [];
  private head = 0;
  /** Entries before this one have no text any more. */
  private textsFrom = 0;
  private bytes = 0;

  constructor(
    private readonly maxEntries = REMEMBERED_TOKENS,
    private readonly maxBytes = REMEMBERED_BYTES,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The finished command `key` (`<requester> <token>`), if remembered and not expired. */
  get(key: string, now = Date.now()): Finished | undefined {
    const entry = this.entries.get(key);
    if (!entry || entry.expiresAt > now) return entry;
    this.forget(entry);
    return undefined;
  }

  /** Remembers a finished command and the final response it got. */
  remember(key: string, body: WireBody, deadline: number | undefined, now = Date.now()): void {
    const previous = this.entries.get(key);
    if (previous) this.forget(previous);
    const expiresAt = Math.min(now + REMEMBER_AT_MOST_MS, deadline ?? now + REMEMBER_WITHOUT_DEADLINE_MS);
    const entry: Finished = { key, body: body.length <= this.maxBytes ? body : undefined, expiresAt };
    this.entries.set(key, entry);
    this.order.push(entry);
    this.bytes += entry.body?.length ?? 0;
    this.trim(now);
  }

  private trim(now: number): void {
    // Forgotten oldest first: past their deadline, or past the count.
    while (this.head < this.order.length) {
      const oldest = this.order[this.head]!;
      const current = this.entries.get(oldest.key) === oldest;
      if (current && this.entries.size <= this.maxEntries && oldest.expiresAt > now) break;
      if (current) this.forget(oldest);
      this.head += 1;
    }
    // Past the byte budget: texts dropped oldest first, tokens kept (they never run twice).
    for (let i = Math.max(this.head, this.textsFrom); this.bytes > this.maxBytes && i < this.order.length; i++) {
      const entry = this.order[i]!;
      if (this.entries.get(entry.key) === entry && entry.body !== undefined) {
        this.bytes -= entry.body.length;
        entry.body = undefined;
      }
      this.textsFrom = i + 1;
    }
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.textsFrom = Math.max(0, this.textsFrom - this.head);
      this.head = 0;
    }
  }

  private forget(entry: Finished): void {
    if (this.entries.get(entry.key) !== entry) return;
    this.entries.delete(entry.key);
    this.bytes -= entry.body?.length ?? 0;
  }
}
