/**
 * `relais/sites/get` (protocol §13.5), served by every router: the links it reads the status
 * and roster of on `relais/sites/#`, and, for the sites whose history it pulls, where it stands.
 */
import type { Bus } from '../client/bus.js';
import type { Registration } from '../client/types.js';
import { SITES_ACTION, sitesQuerySchema, type SiteEntry, type SitesAnswer, type SiteSyncState } from '../protocol/sites.js';
import { parsed } from './history-service.js';
import type { SiteWatch } from './site-watch.js';

export function serveSites(bus: Bus, ownSite: string, sites: SiteWatch, syncStates: () => Promise<Record<string, SiteSyncState>>): Promise<Registration> {
  return bus.handle(SITES_ACTION, async (payload: unknown): Promise<SitesAnswer> => {
    const query = parsed(() => sitesQuerySchema.parse(payload ?? {}));
    return sitesAnswer(ownSite, sites, await syncStates(), query.site);
  });
}

/** Every site known from its status, its roster or its sync state (or only `only`). */
export function sitesAnswer(ownSite: string, sites: SiteWatch, syncs: Record<string, SiteSyncState>, only?: string): SitesAnswer {
  const answer: SitesAnswer = { site: ownSite, sites: {} };
  const names = new Set([...sites.sites(), ...Object.keys(syncs)]);
  for (const site of [...names].sort()) {
    if (only !== undefined && site !== only) continue;
    const status = sites.status(site);
    const roster = sites.roster(site);
    const entry: SiteEntry = {
      status: status?.status ?? 'unknown',
      // A will (a pulling site's connection lost) has no `since`: when this router saw it, as the registry says it (protocol §13.5).
      ...(status && { since: status.since ?? status.seenAt }),
      ...(status && { mode: status.mode }),
      ...(status?.rttMs !== undefined && { rttMs: status.rttMs }),
      ...(status?.carried !== undefined && { carried: status.carried }),
      clients: roster?.clients ?? [],
      ...(roster?.refused !== undefined && { refused: roster.refused }),
      ...(syncs[site] !== undefined && { sync: syncs[site] }),
    };
    answer.sites[site] = entry;
  }
  return answer;
}
