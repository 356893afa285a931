/**
 * The sites as the page sees them (protocol §13.4): live from the retained link statuses and
 * rosters the library reads (`bus.sites()`), and, when the router serves it and the policy
 * allows, its answer to `relais/sites/get` for what only the router knows (where the central's
 * copy of each site's history stands). Asked again on each change and every 10 s.
 */
import { NoHandlerError, NotAuthorizedError, SITES_ACTION, type Bus, type SitesAnswer, type SiteView } from 'relais/browser';
import { QUERY_TIMEOUT_MS } from './query.js';
import { Store } from '../ui/store.js';

/** The syncs change without the retained topics: the router is asked again this often. */
const REFRESH_MS = 10_000;
/** A link coming up republishes its roster and status together: one question for both. */
const COALESCE_MS = 300;

export interface SitesState {
  /** From the retained topics, through the library. */
  live: SiteView[];
  /** The router's last answer, when it gave one. */
  answer?: SitesAnswer;
  /** Why there is no router answer (no router serving it, or the policy); the live part still shows. */
  problem?: string;
}

export function watchSites(bus: Bus, stopping: AbortSignal): Store<SitesState> {
  const store = new Store<SitesState>({ live: bus.sites() });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let asking = false;
  const ask = async () => {
    if (asking || stopping.aborted) return;
    asking = true;
    try {
      const answer = await bus.request<SitesAnswer>(SITES_ACTION, {}, { timeout: QUERY_TIMEOUT_MS });
      const { problem: _gone, ...rest } = store.value;
      store.set({ ...rest, answer });
    } catch (error) {
      const problem =
        error instanceof NoHandlerError
          ? `no router answers ${SITES_ACTION}: the sync columns are empty`
          : error instanceof NotAuthorizedError
            ? `the policy does not let this identity ask ${SITES_ACTION}: the sync columns are empty`
            : `could not ask ${SITES_ACTION}: ${(error as Error).message}`;
      store.set({ ...store.value, problem });
    } finally {
      asking = false;
    }
  };
  const changed = () => {
    store.set({ ...store.value, live: bus.sites() });
    clearTimeout(timer);
    timer = setTimeout(() => void ask(), COALESCE_MS);
  };
  bus.siteDirectory.on('change', changed);
  const ticker = setInterval(() => void ask(), REFRESH_MS);
  stopping.addEventListener('abort', () => {
    clearInterval(ticker);
    clearTimeout(timer);
    bus.siteDirectory.off('change', changed);
  });
  void ask();
  return store;
}

/** The site a client belongs to, from the rosters; undefined for a client of this broker's own site. */
export function siteOfClient(state: SitesState, id: string): string | undefined {
  for (const view of state.live) if (view.roster?.clients.includes(id)) return view.site;
  for (const [site, entry] of Object.entries(state.answer?.sites ?? {})) if (entry.clients.includes(id)) return site;
  return undefined;
}
