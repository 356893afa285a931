/**
 * Speaking for others across a link (docs/security.md "Sites", protocol §13.2): the other end
 * of a link (a principal with role `site`) publishes presences, commands, responses and
 * notifications whose `source` is one of ITS clients, not itself. It may use as `source` (and
 * publish the presence of) its own identity, `site:<identity>`, and any id that is not local to
 * this broker; the first use claims the id for it, so that two sites cannot both be `agent-7`.
 * Pure: the broker keeps the facts (broker/site-claims.ts) and asks here.
 */
import { PROCESS_OWN_IDS, siteAddress, siteOfAddress } from '../protocol/sites.js';
import { quoted } from './log-text.js';
import type { Decision } from './policy.js';

/** The built-in rule a refused id is denied by (counted under it, named in the denial reply). */
export const SITE_CLAIM_RULE = 'builtin:site-claim';

/** The role of the other end of a link in the default policy, whose holders are checked here. */
export const SITE_ROLE = 'site';

/** What the broker knows of an id when a site principal speaks for it. */
export interface SpokenIdFacts {
  /** A connection with this client id (or its `~rt`) is open, other than the speaker's own. */
  connected: boolean;
  /** Its retained presence was published by a connection that is not a site principal (a client of this broker, or this process). */
  presenceByLocal: boolean;
  /** The site principal that holds the claim on it, if any (an expired claim is not one). */
  claimant: string | undefined;
  /**
   * It is an identity of this broker's own (not another link's end), and this broker keeps its
   * identities to itself (a central, `SecuritySettings.identitiesStayLocal`): a site may not
   * send as the central's operators while they are offline.
   */
  identityHere?: boolean;
}

/** The verdict: allowed (claiming the id when `claims`), or denied by SITE_CLAIM_RULE with why. */
export type SpeakingVerdict = { allow: true; claims: boolean } | (Decision & { allow: false });

/** Whether the site principal `speaker` may speak for `id` on this broker, given what the broker knows of `id`. */
export function decideSpeakingFor(speaker: string, id: string, facts: SpokenIdFacts): SpeakingVerdict {
  if (id === speaker || id === siteAddress(speaker)) return { allow: true, claims: false };
  const deny = (why: string): SpeakingVerdict => ({ allow: false, rule: `${SITE_CLAIM_RULE} (${why})` });
  const otherSite = siteOfAddress(id);
  if (otherSite !== undefined) return deny(`${quoted(id)} is the router of site ${otherSite}, not of ${speaker}`);
  if (PROCESS_OWN_IDS.includes(id)) return deny(`${quoted(id)} is a client of this process, never carried by a link`);
  if (facts.connected) return deny(`${quoted(id)} is a client of this broker`);
  if (facts.identityHere) return deny(`${quoted(id)} is an identity of this broker`);
  if (facts.presenceByLocal) return deny(`${quoted(id)} is a client of this broker: it published its presence here`);
  if (facts.claimant !== undefined && facts.claimant !== speaker) return deny(`${quoted(id)} is a client of site ${facts.claimant}`);
  return { allow: true, claims: facts.claimant === undefined };
}
