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

/** Calls `listener` at each change of the identities in force or of the policy; returns how to stop. */
export function onSecurityChange(store: IdentityStore, policy: Policy | (() => Policy), listener: (change: SecurityChange) => void): () => void {
  const stopIdentities = store.onChange(() => listener({ identities: true, policy: false }));
  if (typeof policy !== 'function') return stopIdentities;
  let current = policy();
  const poll = setInterval(() => {
    const now = policy();
    if (now === current) return;
    current = now;
    listener({ identities: false, policy: true });
  }, POLICY_POLL_MS);
  poll.unref();
  return () => {
    stopIdentities();
    clearInterval(poll);
  };
}
