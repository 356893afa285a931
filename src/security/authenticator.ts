/**
 * Token checks as a door that says no cheaply (docs/security.md "Failed authentications"):
 * one scrypt costs ~50 ms of a libuv thread, so without this a flood of wrong tokens delays
 * every honest CONNECT behind it (400 in parallel: 7.6-9.9 s), and guessing runs unlimited.
 *
 * - A token once proved for a name is remembered (by an HMAC of the pair under a key made at
 *   start, never the token) for `rememberMs`: checked again, it costs no scrypt. The identity's
 *   record is still looked up at each use, so revocation applies at once.
 * - Failed checks are counted per source address and per identity name. Past a free number,
 *   each further attempt must wait a back-off that doubles at each failure (up to a maximum):
 *   an attempt during it is refused at once, without a scrypt. A success resets the counts.
 * - At most `concurrentChecks` scrypts run at once. The others wait in one queue per address,
 *   served in turn, so a flood from one address delays another's CONNECT by a check or two,
 *   not by the whole flood; an address with `waitingPerAddress` checks waiting is refused more.
 *
 * The broker (CONNECT) and the HTTP API share one Authenticator per identity store.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { IdentityStore, Verification } from './identities.js';
import { quoted } from './log-text.js';

export interface AuthenticationLimits {
  /** Failed token checks from one address before it must wait. Default 20 (a host may run many clients). */
  addressFailures: number;
  /** Failed token checks for one identity name before it must wait. Default 5. */
  identityFailures: number;
  /** The first wait past the free failures, in ms, doubled at each further failure. Default 1000. */
  backoffMs: number;
  /** The longest wait, in ms. Default 60,000. */
  maxBackoffMs: number;
  /** Failures are forgotten after this long without one, in ms. Default 600,000. */
  forgetMs: number;
  /** Scrypt checks running at once (each holds a libuv thread, of 4 by default). Default 2. */
  concurrentChecks: number;
  /** Checks waiting for one address at most; more are refused at once. Default 8. */
  waitingPerAddress: number;
  /** Checks waiting in all at most. Default 1024. */
  waitingInAll: number;
  /** How long a proved token is remembered, in ms (refreshed at each use). Default 300,000. */
  rememberMs: number;
  /** Proved tokens, addresses and names remembered at most (the oldest forgotten first). Default 10,000 each. */
  remembered: number;
}

export const AUTHENTICATION_LIMITS: Readonly<AuthenticationLimits> = Object.freeze({
  addressFailures: 20,
  identityFailures: 5,
  backoffMs: 1000,
  maxBackoffMs: 60_000,
  forgetMs: 600_000,
  concurrentChecks: 2,
  waitingPerAddress: 8,
  waitingInAll: 1024,
  rememberMs: 300_000,
  remembered: 10_000,
});

/** A refusal without a check: too many failures (back-off) or too many checks waiting. */
export interface Throttled {
  ok: false;
  reason: 'too many failures' | 'too many attempts at once';
  /** What is waited for: `address 10.0.0.7` or `identity "alice"`. */
  detail: string;
  /** When trying again may be checked, in ms from now. */
  retryAfterMs: number;
}

export type Authentication = Verification | Throttled;

interface Failures {
  count: number;
  last: number;
  blockedUntil: number;
}

interface Check {
  name: string;
  token: string;
  address: string;
  resolve: (result: Authentication) => void;
}

/** A Map kept to `max` entries, the least recently set forgotten first. */
function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

export class Authenticator {
  readonly limits: AuthenticationLimits;
  private readonly key = randomBytes(32);
  /** HMAC(name, token) → the token hash it matched, and when it was last used. */
  private readonly proved = new Map<string, { tokenHash: string; at: number }>();
  private readonly failures = { address: new Map<string, Failures>(), identity: new Map<string, Failures>() };
  private readonly waiting = new Map<string, Check[]>();
  private waitingCount = 0;
  private running = 0;
  /** Checks running per address, and when each address was last served (a turn number). */
  private readonly runningFor = new Map<string, number>();
  private readonly served = new Map<string, number>();
  private turns = 0;

  constructor(
    readonly store: IdentityStore,
    limits: Partial<AuthenticationLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { ...AUTHENTICATION_LIMITS, ...limits };
  }

  /** Checks an identity's token for a caller at `address` (an IP address, or a label such as `unix socket`). Never throws. */
  async verifyToken(name: string | undefined, token: string | Buffer | undefined, address: string): Promise<Authentication> {
    // Nothing to check costs nothing, and is not a guess.
    if (!name || token === undefined || token.length === 0) return this.store.verify(name, token);
    const secret = typeof token === 'string' ? token : token.toString('utf8');
    const known = this.recall(name, secret);
    if (known) return known;
    const throttled = this.throttled(name, address);
    if (throttled) return throttled;
    const queue = this.waiting.get(address);
    if ((queue?.length ?? 0) >= this.limits.waitingPerAddress || this.waitingCount >= this.limits.waitingInAll) {
      return { ok: false, reason: 'too many attempts at once', detail: `address ${address}`, retryAfterMs: this.limits.backoffMs };
    }
    return new Promise<Authentication>((resolve) => {
      if (queue) queue.push({ name, token: secret, address, resolve });
      else this.waiting.set(address, [{ name, token: secret, address, resolve }]);
      this.waitingCount++;
      this.pump();
    });
  }

  /** A token proved before for `name`: the identity's record now decides (revoked, reissued). */
  private recall(name: string, secret: string): Verification | undefined {
    const key = this.hmac(name, secret);
    const proved = this.proved.get(key);
    if (!proved) return undefined;
    if (this.now() - proved.at > this.limits.rememberMs) {
      this.proved.delete(key);
      return undefined;
    }
    const record = this.store.record(name);
    // Issued new credentials (or gone): this token proves nothing any more.
    if (!record || record.tokenHash !== proved.tokenHash) {
      this.proved.delete(key);
      return undefined;
    }
    setBounded(this.proved, key, { tokenHash: proved.tokenHash, at: this.now() }, this.limits.remembered);
    if (record.revoked) return { ok: false, reason: 'revoked' };
    return { ok: true, name: record.name, roles: record.roles, credential: proved.tokenHash };
  }

  private hmac(name: string, secret: string): string {
    return createHmac('sha256', this.key).update(name).update('\0').update(secret).digest('base64');
  }

  /**
   * Serves waiting checks, at most `concurrentChecks` at once, one address after another: an
   * address with no check running goes before one with a check running, and the one served
   * least recently first.
   */
  private pump(): void {
    while (this.running < this.limits.concurrentChecks && this.waiting.size > 0) {
      let next: string | undefined;
      let rank = Infinity;
      for (const address of this.waiting.keys()) {
        const busy = this.runningFor.has(address) ? 1 : 0;
        const candidate = busy * 2 ** 52 + (this.served.get(address) ?? -1);
        if (candidate < rank) [next, rank] = [address, candidate];
      }
      const queue = this.waiting.get(next!)!;
      const check = queue.shift()!;
      this.waitingCount--;
      if (queue.length === 0) this.waiting.delete(next!);
      setBounded(this.served, next!, ++this.turns, this.limits.remembered);
      void this.run(check);
    }
  }

  private async run(check: Check): Promise<void> {
    // Failures while it waited may have started a back-off: no scrypt then.
    const throttled = this.throttled(check.name, check.address);
    if (throttled) {
      check.resolve(throttled);
      return this.pump();
    }
    this.running++;
    this.runningFor.set(check.address, (this.runningFor.get(check.address) ?? 0) + 1);
    let result: Verification;
    try {
      result = await this.store.verify(check.name, check.token);
    } finally {
      this.running--;
      const left = this.runningFor.get(check.address)! - 1;
      if (left > 0) this.runningFor.set(check.address, left);
      else this.runningFor.delete(check.address);
    }
    this.account(check, result);
    check.resolve(result);
    this.pump();
  }

  private account(check: Check, result: Verification): void {
    if (result.ok || result.reason === 'revoked') {
      // The token is right (a revoked identity's too: its retries are then free, and not guesses).
      const record = this.store.record(check.name);
      if (record?.tokenHash) setBounded(this.proved, this.hmac(check.name, check.token), { tokenHash: record.tokenHash, at: this.now() }, this.limits.remembered);
      this.failures.address.delete(check.address);
      this.failures.identity.delete(check.name);
      return;
    }
    if (result.reason !== 'wrong token' && result.reason !== 'unknown identity') return;
    this.fail(this.failures.address, check.address, this.limits.addressFailures);
    this.fail(this.failures.identity, check.name, this.limits.identityFailures);
  }

  private fail(map: Map<string, Failures>, key: string, free: number): void {
    const now = this.now();
    const before = map.get(key);
    const count = before && now - before.last < this.limits.forgetMs ? before.count + 1 : 1;
    const over = count - free;
    const blockedUntil = over > 0 ? now + Math.min(this.limits.backoffMs * 2 ** Math.min(over - 1, 30), this.limits.maxBackoffMs) : 0;
    setBounded(map, key, { count, last: now, blockedUntil }, this.limits.remembered);
  }

  private throttled(name: string, address: string): Throttled | undefined {
    const now = this.now();
    const byAddress = this.failures.address.get(address);
    if (byAddress && byAddress.blockedUntil > now) return { ok: false, reason: 'too many failures', detail: `address ${address}`, retryAfterMs: byAddress.blockedUntil - now };
    const byIdentity = this.failures.identity.get(name);
    if (byIdentity && byIdentity.blockedUntil > now) return { ok: false, reason: 'too many failures', detail: `identity ${quoted(name)}`, retryAfterMs: byIdentity.blockedUntil - now };
    return undefined;
  }
}

const authenticators = new WeakMap<IdentityStore, Authenticator>();

/** The Authenticator of `store`, shared by everyone who checks its tokens (the broker, the HTTP API). */
export function authenticatorFor(store: IdentityStore, limits?: Partial<AuthenticationLimits>): Authenticator {
  let authenticator = authenticators.get(store);
  if (!authenticator) authenticators.set(store, (authenticator = new Authenticator(store, limits)));
  return authenticator;
}
