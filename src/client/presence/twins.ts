/**
 * Who else uses our client id (protocol §7.5). The broker keeps one connection per id and
 * drops the other each time one connects, so two clients with one id would knock each other
 * off for ever. This judges each presence of another instance seen on our own presence topic;
 * the Bus acts on the verdict. Like the broker, the last one started wins.
 */
import { randomText } from '../tokens.js';
import type { PresenceInfo } from '../types.js';

/** How long after a later instance's will a lost connection means that instance is alive. */
export const TWIN_WINDOW_MS = 10_000;

export type TwinVerdict =
  /** An earlier instance's will, a client that has left, or an older twin already reported. */
  | 'ignore'
  /** An older client is alive with our id: it will give way; say so once. */
  | 'older-twin'
  /** One will of a later instance: a duplicate that crashed, or a live twin our reconnection knocked off. */
  | 'suspected-twin'
  /** A later instance is alive, or its will came twice: it holds the id, we stop. */
  | 'give-way';

export class TwinWatch {
  /** Tells this instance's presence from another client's that uses the same id. */
  readonly instance = randomText(6);
  private readonly olderSeen = new Set<string>();
  private readonly laterWills = new Map<string, number[]>();
  private suspected: { other: PresenceInfo; until: number } | undefined;

  constructor(readonly since: number) {}

  /** Whether `instance` (from a presence payload) is another instance than this one. */
  isOther(instance: unknown): boolean {
    return instance !== undefined && instance !== this.instance;
  }

  judge(other: PresenceInfo, now = Date.now()): TwinVerdict {
    if (other.status === 'stopped') return 'ignore';
    const instance = String(other.instance);
    const otherIsLater = other.since > this.since || (other.since === this.since && instance > this.instance);
    if (!otherIsLater) {
      // A dead earlier instance is our own predecessor's will; only a live one is a twin.
      if (other.status !== 'alive' || this.olderSeen.has(instance)) return 'ignore';
      this.olderSeen.add(instance);
      return 'older-twin';
    }
    if (other.status === 'alive') return 'give-way';
    // A live twin's will fires each time our reconnection knocks it off; a crashed one's once.
    const wills = [...(this.laterWills.get(instance) ?? []).filter((at) => now - at < TWIN_WINDOW_MS), now];
    this.laterWills.set(instance, wills);
    if (wills.length >= 2) return 'give-way';
    this.suspected = { other, until: now + TWIN_WINDOW_MS };
    return 'suspected-twin';
  }

  /** Our main connection dropped: the suspected twin, if it came within the window (it is alive and took the id back). */
  knockedOffBy(now = Date.now()): PresenceInfo | undefined {
    return this.suspected && now < this.suspected.until ? this.suspected.other : undefined;
  }
}
