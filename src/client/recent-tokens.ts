/**
 * What a handler remembers of the commands it has finished (protocol §4.8), so that a command
 * sent again with the same token (a requester recovering a lost answer, a broker resending a
 * QoS 1 message) is answered with the result already sent instead of running twice.
 * Bounded in entries and bytes, oldest forgotten first; an entry is useless after its
 * command's deadline, when no requester waits for it any more.
 */

export const REMEMBERED_TOKENS = 100_000;
export const REMEMBERED_BYTES = 32 * 1024 * 1024;
/** How long a command without a deadline is remembered, and the longest anything is. */
export const REMEMBER_WITHOUT_DEADLINE_MS = 60_000;
export const REMEMBER_AT_MOST_MS = 10 * 60_000;

interface Finished {
  /** The final response as sent; undefined once dropped to stay within REMEMBERED_BYTES. */
  body: string | undefined;
  expiresAt: number;
}

export class RecentTokens {
  private readonly entries = new Map<string, Finished>();
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
    this.forget(key, entry);
    return undefined;
  }

  /** Remembers a finished command and the final response it got. */
  remember(key: string, body: string, deadline: number | undefined, now = Date.now()): void {
    const previous = this.entries.get(key);
    if (previous) this.forget(key, previous);
    const expiresAt = Math.min(now + REMEMBER_AT_MOST_MS, deadline ?? now + REMEMBER_WITHOUT_DEADLINE_MS);
    const kept = body.length <= this.maxBytes ? body : undefined;
    this.entries.set(key, { body: kept, expiresAt });
    this.bytes += kept?.length ?? 0;
    this.trim(now);
  }

  private trim(now: number): void {
    for (const [key, entry] of this.entries) {
      const over = this.entries.size > this.maxEntries;
      if (!over && this.bytes <= this.maxBytes && entry.expiresAt > now) return;
      if (over || entry.expiresAt <= now) this.forget(key, entry);
      else {
        // Over the byte budget: keep the token (never run twice), drop the text.
        this.bytes -= entry.body?.length ?? 0;
        entry.body = undefined;
      }
    }
  }

  private forget(key: string, entry: Finished): void {
    this.entries.delete(key);
    this.bytes -= entry.body?.length ?? 0;
  }
}
