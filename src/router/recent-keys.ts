/**
 * The keys seen lately, at most `max` (the oldest forgotten first): tells a repeat from a new
 * item in bounded memory, when a repeat comes soon after the first (a QoS 1 redelivery).
 */
export class RecentKeys {
  private readonly keys = new Set<string>();

  constructor(private readonly max: number) {}

  /** Remembers `key`; returns whether it is new (not among the recent ones). */
  add(key: string): boolean {
    if (this.keys.has(key)) return false;
    if (this.keys.size >= this.max) this.keys.delete(this.keys.values().next().value!);
    this.keys.add(key);
    return true;
  }
}
