/**
 * What the embedded broker remembers for the rule of speaking for others across a link
 * (security/site-claim.ts, docs/security.md "Sites"): which ids each site principal claimed,
 * and who published each retained presence. The decision itself is site-claim.ts's; here are
 * only its facts, bounded.
 *
 * - A claim is made by the first allowed PUBLISH of a site principal speaking for an id, and
 *   ends when that principal clears the id's retained presence (an empty retained PUBLISH), or
 *   once unused for `idleMs` while the id has no retained presence.
 * - A retained presence is remembered with its publisher: a site principal, or "local" (any
 *   other connection, this process's own, a Last Will).
 */
import { siteAddress } from '../protocol/sites.js';
import { decideSpeakingFor, SITE_CLAIM_RULE, type SpeakingVerdict } from '../security/site-claim.js';

export interface SiteClaimLimits {
  /** Ids claimed by sites at once, all sites together; a claim past it is refused. */
  maxClaims: number;
  /** A claim unused this long, whose id has no retained presence, ends. */
  idleMs: number;
  /** Retained presences remembered with their publisher; past it the oldest is forgotten (and logged). */
  maxPresences: number;
}

export const SITE_CLAIM_LIMITS: SiteClaimLimits = { maxClaims: 100_000, idleMs: 24 * 60 * 60 * 1000, maxPresences: 200_000 };

/** The publisher of a retained presence that is not a site principal. */
const LOCAL = Symbol('local');

export class SiteClaims {
  private readonly claims = new Map<string, { site: string; usedAt: number }>();
  private readonly presences = new Map<string, string | typeof LOCAL>();
  private forgottenPresences = 0;
  private sweptAt = -Infinity;

  constructor(
    /** Whether a connection with this client id, or of its identity (any session, protocol §2.1), is open on the broker. */
    private readonly isConnected: (clientId: string) => boolean,
    private readonly log: (line: string) => void,
    private readonly limits: SiteClaimLimits = SITE_CLAIM_LIMITS,
    private readonly now: () => number = Date.now,
    /** Whether `id` is an identity of this broker's own that no site may speak for (a central's; none at a site). */
    private readonly isOwnIdentity: (id: string) => boolean = () => false,
  ) {}

  /** Whether the site principal `speaker` may speak for `id` now (nothing is claimed: `claim()` does, once its PUBLISH is allowed). */
  check(speaker: string, id: string): SpeakingVerdict {
    const verdict = decideSpeakingFor(speaker, id, {
      connected: this.isConnected(id) || this.isConnected(`${id}~rt`),
      presenceByLocal: this.presences.get(id) === LOCAL,
      claimant: this.claimant(id),
      identityHere: this.isOwnIdentity(id),
    });
    if (verdict.allow && verdict.claims && this.claims.size >= this.limits.maxClaims && !this.sweep()) {
      return { allow: false, rule: `${SITE_CLAIM_RULE} (this broker holds ${this.limits.maxClaims} claims of sites already)` };
    }
    return verdict;
  }

  /** Records that `speaker` spoke for `ids` in an allowed PUBLISH: claimed by it, or its claim used again (kept from ending idle). */
  claim(speaker: string, ids: readonly string[]): void {
    const at = this.now();
    for (const id of ids) if (id !== speaker && id !== siteAddress(speaker)) this.claims.set(id, { site: speaker, usedAt: at });
  }

  /**
   * A retained PUBLISH on the presence of `id` went through: by the site principal `site`, or
   * by anyone else (undefined). Empty: the presence is cleared, and a site clearing the presence
   * of an id it claimed gives the claim up.
   */
  retainedPresence(id: string, site: string | undefined, empty: boolean): void {
    this.presences.delete(id);
    if (empty) {
      if (site !== undefined && this.claims.get(id)?.site === site) this.claims.delete(id);
      return;
    }
    this.presences.set(id, site ?? LOCAL);
    if (this.presences.size > this.limits.maxPresences) {
      const oldest = this.presences.keys().next().value as string;
      this.presences.delete(oldest);
      if (this.forgottenPresences++ % 1000 === 0) this.log(`site claims: more than ${this.limits.maxPresences} retained presences; the publisher of the oldest (${JSON.stringify(oldest)}) is forgotten (${this.forgottenPresences} so far)`);
    }
  }

  /** How many ids sites hold claims on. */
  get size(): number {
    return this.claims.size;
  }

  /** The site holding a live claim on `id`; an idle one whose id has no retained presence ends here. */
  private claimant(id: string): string | undefined {
    const held = this.claims.get(id);
    if (!held) return undefined;
    if (this.expired(id, held.usedAt)) {
      this.claims.delete(id);
      return undefined;
    }
    return held.site;
  }

  private expired(id: string, usedAt: number): boolean {
    return this.now() - usedAt >= this.limits.idleMs && !this.presences.has(id);
  }

  /** Ends the expired claims (at most once a minute: a full table is walked whole); whether there is room for one more. */
  private sweep(): boolean {
    if (this.now() - this.sweptAt < 60_000) return false;
    this.sweptAt = this.now();
    for (const [id, held] of this.claims) if (this.expired(id, held.usedAt)) this.claims.delete(id);
    return this.claims.size < this.limits.maxClaims;
  }
}
