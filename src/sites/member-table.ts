/**
 * Who a link carries (protocol §13.2): the site's clients, as their presences on the site's
 * broker say, less the ids another client of the central or of another site already has
 * (refused, with the reason); and, from what the carried ones serve, the request and cancel
 * filters the central-side connection holds. Pure bookkeeping: the link does the I/O.
 */
import type { ReadPresence } from '../protocol/presence.js';
import { duplicateReason, LIBRARY_BUILTIN_ACTIONS, SITE_ROUTER_ACTIONS, siteAddress, type SiteClients } from '../protocol/sites.js';
import { cancelTopic, requestTopic } from '../protocol/topics.js';

/** A site client's presence as the site's broker holds it: the bytes go up unchanged. */
export interface SitePresence {
  bytes: Buffer;
  /** Read, when it reads as a presence (protocol §7.1). */
  info: ReadPresence | undefined;
}

export interface MembershipChange {
  /** Carried from now on: their presences go up. */
  added: string[];
  /** No longer on the site: their presences on the central are cleared. */
  removed: string[];
  /** Refused since the last change, with the reason (logged once). */
  refused: Array<{ id: string; reason: string }>;
}

export class MemberTable {
  /** The site's clients with a presence on the site's broker. */
  private readonly onSite = new Map<string, SitePresence>();
  /** Ids with a presence on the central that the link did not publish. */
  private readonly onCentral = new Set<string>();
  /** Other sites' rosters, as the central holds them. */
  private readonly otherRosters = new Map<string, Set<string>>();
  /** The ids of the link's own roster on the central when its connection came up: presences it published before. */
  private previousRoster = new Set<string>();
  /** What the site's router serves at `site:<site>` (its presence's actions within SITE_ROUTER_ACTIONS), when it has one. */
  private routerActions: readonly string[] | undefined;
  readonly carried = new Set<string>();
  readonly refused = new Map<string, string>();

  constructor(private readonly site: string) {}

  siteRouter(actions: readonly string[] | undefined): void {
    this.routerActions = actions;
  }

  sitePresence(id: string, presence: SitePresence | undefined): void {
    if (presence) this.onSite.set(id, presence);
    else this.onSite.delete(id);
  }

  /** Presence bytes of a site client, as its broker holds them. */
  presenceOf(id: string): SitePresence | undefined {
    return this.onSite.get(id);
  }

  /** Ids with a presence on the site's broker: after the site-side connection comes back, those not heard again are gone. */
  siteIds(): string[] {
    return [...this.onSite.keys()];
  }

  /** A client of the site (a command from it is never carried down: no loops). */
  isSiteClient(id: string): boolean {
    return this.onSite.has(id);
  }

  /** The central-side connection (re)connects: what it held of the central is read again. */
  centralReconnecting(): void {
    this.onCentral.clear();
    this.otherRosters.clear();
    this.previousRoster = new Set();
  }

  /** The link's own roster as the central had it (read at each connection, before anything is republished). */
  ownRoster(ids: readonly string[]): void {
    for (const id of ids) this.previousRoster.add(id);
  }

  /** The ids the link carried before this connection: those no longer on the site are cleared. */
  previouslyCarried(): string[] {
    return [...this.previousRoster];
  }

  /** A presence on the central (the link's own among them: only ids it does not carry are ever checked against these). */
  centralPresence(id: string, present: boolean): void {
    if (present) this.onCentral.add(id);
    else this.onCentral.delete(id);
  }

  otherRoster(site: string, ids: readonly string[] | undefined): void {
    if (site === this.site) return;
    if (ids && ids.length > 0) this.otherRosters.set(site, new Set(ids));
    else this.otherRosters.delete(site);
  }

  /**
   * Decides again who is carried. A client already carried stays so while it is on the site
   * (the check is made before carrying; the broker's claims are the backstop); a refused one
   * is carried once the other client with its id is gone.
   */
  settle(): MembershipChange {
    const change: MembershipChange = { added: [], removed: [], refused: [] };
    for (const id of this.carried) {
      if (!this.onSite.has(id)) {
        this.carried.delete(id);
        this.previousRoster.delete(id);
        change.removed.push(id);
      }
    }
    for (const id of this.refused.keys()) if (!this.onSite.has(id)) this.refused.delete(id);
    for (const id of this.onSite.keys()) {
      if (this.carried.has(id)) continue;
      const reason = this.duplicateOf(id);
      if (reason === undefined) {
        this.refused.delete(id);
        this.carried.add(id);
        change.added.push(id);
      } else if (this.refused.get(id) !== reason) {
        this.refused.set(id, reason);
        change.refused.push({ id, reason });
      }
    }
    return change;
  }

  /** The roster the link publishes on the central. */
  roster(): SiteClients {
    const clients = [...this.carried];
    if (this.routerActions !== undefined) clients.push(siteAddress(this.site));
    const refused = [...this.refused].map(([id, reason]) => ({ id, reason }));
    return { site: this.site, clients, ...(refused.length > 0 && { refused }) };
  }

  /**
   * What the central-side connection subscribes to for the carried clients (protocol §13.2):
   * `A/request/X` and `A/cancel` for each action A a living member X serves (its actions, its
   * real-time and targeted actions, the library's built-ins), `A/request` for those it serves
   * untargeted, and `R/request/site:<site>` for the site's router.
   */
  centralFilters(): Set<string> {
    const filters = new Set<string>();
    const add = (make: () => string) => {
      try {
        filters.add(make());
      } catch {
        // An action name no topic can hold (a hostile presence): nothing to subscribe to.
      }
    };
    for (const id of this.carried) {
      const info = this.onSite.get(id)?.info;
      if (info?.status !== 'alive') continue;
      const untargeted = [...info.actions, ...info.realtimeActions];
      for (const action of new Set([...untargeted, ...info.targetedActions, ...LIBRARY_BUILTIN_ACTIONS])) {
        add(() => requestTopic(action, id));
        add(() => cancelTopic(action));
      }
      for (const action of untargeted) add(() => requestTopic(action));
    }
    for (const action of this.routerActions ?? []) {
      add(() => requestTopic(action, siteAddress(this.site)));
      add(() => cancelTopic(action));
    }
    return filters;
  }

  private duplicateOf(id: string): string | undefined {
    // A presence the link published before this connection (in its roster then) is its own.
    if (this.onCentral.has(id) && !this.previousRoster.has(id)) return duplicateReason({ central: true });
    for (const [site, ids] of this.otherRosters) if (ids.has(id)) return duplicateReason({ site });
    return undefined;
  }
}

/** The actions of the site router's presence that `site:<site>` serves. */
export function siteRouterActions(info: ReadPresence | undefined): string[] | undefined {
  if (info?.status !== 'alive') return undefined;
  return [...info.actions, ...info.realtimeActions, ...info.targetedActions].filter((action) => (SITE_ROUTER_ACTIONS as readonly string[]).includes(action));
}
