/**
 * One broadcast heard twice (docs/bridges.md, "Standalone and hub mode"): while the bridge holds the
 * xPL port itself and a hub sharing that port forwards to its own port as well, every broadcast
 * reaches it by both ways. A datagram heard on one way is the copy of an earlier one when the
 * other way brought the same bytes within a short window; it is then dropped. Repeats on one way
 * are never paired (a sensor saying the same thing twice is two messages). Pure: no I/O; memory
 * bounded by the window and a count (the oldest forgotten first).
 */
export type XplWay = 'xpl-port' | 'hub';

interface Heard {
  way: XplWay;
  at: number;
}

export class BroadcastCopies {
  /** By datagram text, the still unpaired times each way brought it, oldest first. */
  private readonly heard = new Map<string, Heard[]>();
  private count = 0;

  constructor(
    readonly windowMs = 2000,
    readonly maxRemembered = 1000,
  ) {}

  /** True when `text`, arriving by `way`, is the other way's copy of a datagram already taken. */
  isCopy(text: string, way: XplWay, now = Date.now()): boolean {
    this.forgetBefore(now - this.windowMs);
    const entries = this.heard.get(text);
    const other = entries?.findIndex((entry) => entry.way !== way) ?? -1;
    if (entries && other >= 0) {
      entries.splice(other, 1);
      this.count--;
      if (entries.length === 0) this.heard.delete(text);
      return true;
    }
    if (this.count >= this.maxRemembered) this.forgetOldest();
    if (entries) entries.push({ way, at: now });
    else this.heard.set(text, [{ way, at: now }]);
    this.count++;
    return false;
  }

  private forgetBefore(limit: number): void {
    // Map order is insertion order of the texts, not of their last arrival: look at each, the map is bounded.
    for (const [text, entries] of this.heard) {
      while (entries.length > 0 && entries[0]!.at < limit) {
        entries.shift();
        this.count--;
      }
      if (entries.length === 0) this.heard.delete(text);
    }
  }

  private forgetOldest(): void {
    const [text, entries] = this.heard.entries().next().value!;
    entries.shift();
    this.count--;
    if (entries.length === 0) this.heard.delete(text);
  }
}
