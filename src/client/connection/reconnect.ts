/**
 * When to try a lost connection again (protocol §1.1): "full jitter" exponential backoff, so
 * clients that lost the broker together do not all come back in the same millisecond. The
 * backoff starts over only once a connection has stayed up: a broker that accepts and then
 * drops each connection (a refused packet, another client with our id) sees the client slow
 * down instead of coming back every 100 ms for ever.
 */

/** A connection up this long resets the backoff. */
export const STABLE_CONNECTION_MS = 5000;

/** Delay before attempt `attempt` (0 first): a random value up to `first` × 2^attempt, capped at `max`. */
export function backoff(attempt: number, first: number, max: number, random = Math.random()): number {
  const ceiling = Math.min(max, first * 2 ** Math.min(attempt, 16));
  return Math.max(1, Math.round(random * ceiling));
}

export class ReconnectSchedule {
  private attempt = 0;
  private upSince: number | undefined;
  private readonly young = new YoungDrops();

  constructor(
    private readonly first: number,
    private readonly max: number,
  ) {}

  /** Attempts since the last stable connection. */
  get attempts(): number {
    return this.attempt;
  }

  connected(now = Date.now()): void {
    this.upSince = now;
    this.young.connected(now);
  }

  /**
   * An established connection dropped. Returns true when this makes another client with our
   * id likely (protocol §7.5): the caller says so, once.
   */
  dropped(now = Date.now()): boolean {
    if (this.upSince !== undefined && now - this.upSince >= STABLE_CONNECTION_MS) this.attempt = 0;
    this.upSince = undefined;
    return this.young.dropped(now);
  }

  /** The delay before the next attempt; each call counts as one attempt. */
  nextDelay(random = Math.random()): number {
    const delay = Math.max(backoff(this.attempt, this.first, this.max, random), this.young.pause(random));
    this.attempt += 1;
    return delay;
  }
}

/** A connection dropped sooner than this after its CONNACK counts as "young". */
export const YOUNG_CONNECTION_MS = 1000;
/** So many young drops in a row suggest another client with our id (protocol §7.5). */
export const YOUNG_DROPS_SUSPECT = 3;
/** Least reconnection pause, to twice this at random, once a twin is suspected: the two must hear each other's presence. */
export const TAKEOVER_PAUSE_MS = 500;

/**
 * Connections the broker drops right after accepting them: two clients with one id knock
 * each other off at once, each reconnection firing the other's will (protocol §7.5).
 */
export class YoungDrops {
  private count = 0;
  private upSince = 0;

  connected(now = Date.now()): void {
    this.upSince = now;
  }

  /** The connection dropped; true exactly when this drop makes a twin likely (say so once). */
  dropped(now = Date.now()): boolean {
    this.count = now - this.upSince < YOUNG_CONNECTION_MS ? this.count + 1 : 0;
    return this.count === YOUNG_DROPS_SUSPECT;
  }

  /** Least delay before the next attempt: a pause once a twin is suspected, else none. */
  pause(random = Math.random()): number {
    return this.count >= YOUNG_DROPS_SUSPECT ? TAKEOVER_PAUSE_MS * (1 + random) : 0;
  }
}
