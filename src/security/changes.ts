/**
 * Following the security in force (docs/security.md "Live revocation"): the identities file
 * (IdentityStore.onChange) and the policy, given as a function whose result is looked at every
 * POLICY_POLL_MS (a reload gives a new object). Whoever holds live connections (the broker,
 * the HTTP API's event streams) re-checks them when told, so that a revocation or a tightened
 * policy acts on them within a second.
 */
import type { IdentityStore } from './identities.js';
import type { Policy } from './policy.js';

/** How often the policy function is looked at. */
export const POLICY_POLL_MS = 200;

export interface SecurityChange {
  /** The identities in force changed (one revoked, removed, reissued, or its roles changed). */
  identities: boolean;
  /** The policy function returns another policy. */
  policy: boolean;
}

export interface SecurityFollower {
  /**
   * Says that a decision was made under `policy`. A policy the poll has not seen (replaced and
   * put back between two looks) makes the next look report a change anyway, so that what was
   * decided under it is decided again.
   */
  decidedUnder(policy: Policy): void;
  stop(): void;
}

/** Calls `listener` at each change of the identities in force or of the policy, until `stop()`. */
export function onSecurityChange(store: IdentityStore, policy: Policy | (() => Policy), listener: (change: SecurityChange) => void): SecurityFollower {
  const stopIdentities = store.onChange(() => listener({ identities: true, policy: false }));
  if (typeof policy !== 'function') return { decidedUnder: () => {}, stop: stopIdentities };
  let current = policy();
  let unseen = false;
  const poll = setInterval(() => {
    const now = policy();
    if (now === current && !unseen) return;
    current = now;
    unseen = false;
    listener({ identities: false, policy: true });
  }, POLICY_POLL_MS);
  poll.unref();
  return {
    decidedUnder: (used) => {
      if (used !== current) unseen = true;
    },
    stop: () => {
      stopIdentities();
      clearInterval(poll);
    },
  };
}
