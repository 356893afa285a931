/**
 * Sites (protocol §13): a central and remote sites, each a whole `relais start`, joined by one
 * link per site. What travels about the links on the bus: the link's status and the clients a
 * site has, on retained topics; the address of a site's own router; what the central's router
 * answers about its sites. Pure: the link (src/sites), the library's directory, the router and
 * the CLI read it.
 */
import { z } from 'zod';
import { ROUTER_ID } from './history-feed.js';
import { BROKER_NOTICE_SOURCE } from './broker-notice.js';
import { checkClientId, SYSTEM_ROOT } from './topics.js';
import { LOGS_ACTION } from './logs.js';
import { CONTRACTS_ACTION } from './contracts.js';

/** The site name of a `relais start` without `--site`: the central. */
export const CENTRAL_SITE = 'central';

/** Where link statuses and site rosters live: `relais/sites/<site>` and `relais/sites/<site>/clients`. */
export const SITES_ROOT = `${SYSTEM_ROOT}/sites`;
/** Every link status and roster, for a subscriber. */
export const SITES_FILTER = `${SITES_ROOT}/#`;

/** The prefix of a site's own router as a target (protocol §13.3): `site:poller-1`. */
export const SITE_ADDRESS_PREFIX = 'site:';

/** The router actions a site's router serves at `site:<name>` (protocol §13.3). */
export const SITE_ROUTER_ACTIONS = [
  'relais/history/get',
  'relais/history/follow',
  'relais/history/put',
  'relais/clients/list/get',
  'relais/clients/detail/get',
  'relais/events/get',
  'relais/metrics/get',
  'relais/requests/kill',
  'relais/sites/get',
] as const;

/** `relais/sites/get`, served by every router: the links it knows, their status and, on a central, where each site's history stands. */
export const SITES_ACTION = 'relais/sites/get';

/**
 * Ids of a `relais start`'s own clients (its router, broker service, HTTP API): every site has
 * its own, so they never cross a link (a site's router is reached as `site:<name>` instead).
 */
export const PROCESS_OWN_IDS: readonly string[] = [ROUTER_ID, BROKER_NOTICE_SOURCE, 'relais-web'];

/** Why `name` is not a valid site name, or undefined: a client id (protocol §2.1) without `:` (so that `site:<name>` names one site). */
export function checkSiteName(name: string): string | undefined {
  const problem = checkClientId(name);
  if (problem) return problem.replace('client id', 'site name');
  if (name.includes(':')) return `site name ${JSON.stringify(name)} may not contain ':'`;
  return undefined;
}

/** The retained status of the link to `site`. */
export function siteStatusTopic(site: string): string {
  return `${SITES_ROOT}/${site}`;
}

/** The retained list of the clients `site` has (its roster). */
export function siteClientsTopic(site: string): string {
  return `${SITES_ROOT}/${site}/clients`;
}

/** The link's round-trip probe: published and read back by the link's own connection, never retained. */
export function siteProbeTopic(site: string): string {
  return `${SITES_ROOT}/${site}/probe`;
}

/** `site:<name>`: the target that reaches a site's own router. */
export function siteAddress(site: string): string {
  return `${SITE_ADDRESS_PREFIX}${site}`;
}

/** The site a `site:<name>` target names, or undefined for any other id. */
export function siteOfAddress(id: string): string | undefined {
  if (!id.startsWith(SITE_ADDRESS_PREFIX)) return undefined;
  const site = id.slice(SITE_ADDRESS_PREFIX.length);
  return checkSiteName(site) ? undefined : site;
}

export type SiteTopic = { kind: 'status'; site: string } | { kind: 'clients'; site: string } | { kind: 'probe'; site: string };

/** What a topic under `relais/sites/` is, or undefined. */
export function parseSiteTopic(topic: string): SiteTopic | undefined {
  if (!topic.startsWith(`${SITES_ROOT}/`)) return undefined;
  const [site, tail, ...rest] = topic.slice(SITES_ROOT.length + 1).split('/');
  if (site === undefined || checkSiteName(site) || rest.length > 0) return undefined;
  if (tail === undefined) return { kind: 'status', site };
  if (tail === 'clients') return { kind: 'clients', site };
  if (tail === 'probe') return { kind: 'probe', site };
  return undefined;
}

/** Which end dialled: `pull`, the site dialled the central (its uplink); `push`, the central dialled the site (a downlink). */
export const LINK_MODES = ['pull', 'push'] as const;
export type LinkMode = (typeof LINK_MODES)[number];

const epochMs = z.number().int().nonnegative();

/**
 * The payload of `relais/sites/<site>` (retained, QoS 1), a notification envelope from the
 * link's end on that broker. On the central it describes the link to `<site>`; on a site, the
 * link to the central (`<site>` is then the central's name). `down` is also the will of a
 * pulling site's connection, with no `rttMs`.
 */
export const siteStatusSchema = z
  .object({
    site: z.string().refine((value) => !checkSiteName(value), 'a site name'),
    status: z.enum(['up', 'down']),
    /** Since when the link has had this status (epoch ms, the publisher's clock); absent in a will. */
    since: epochMs.optional(),
    mode: z.enum(LINK_MODES),
    /** The link's last round trip (ms), measured over its connection. */
    rttMs: z.number().nonnegative().optional(),
    /** Messages carried since the link came up, each way. */
    carried: z.object({ down: z.number().int().nonnegative(), up: z.number().int().nonnegative() }).strict().optional(),
  })
  .passthrough();
export type SiteStatus = z.infer<typeof siteStatusSchema>;

/** An id a site has that the link does not carry to the central: another client there already has it. */
export const refusedClientSchema = z.object({ id: z.string(), reason: z.string() }).strict();
export type RefusedClient = z.infer<typeof refusedClientSchema>;

/**
 * The payload of `relais/sites/<site>/clients` (retained, QoS 1), published on the central by
 * the link: the ids the site's clients have there (every one the link announces a presence
 * for, `site:<site>` included), and those it refused as duplicates (protocol §13.2).
 */
export const siteClientsSchema = z
  .object({
    site: z.string().refine((value) => !checkSiteName(value), 'a site name'),
    clients: z.array(z.string()).max(100_000),
    refused: z.array(refusedClientSchema).optional(),
  })
  .passthrough();
export type SiteClients = z.infer<typeof siteClientsSchema>;

/** Where the central's history stands in one site's (protocol §13.5): Centreon's `synchistory` row. */
export interface SiteSyncState {
  /** The id of the last row of the site's history the central has (0: none yet). */
  position: number;
  /** The `ctime` of that row on the site (epoch ms), when known. */
  positionCtime?: number;
  /** Rows the site had past `position` when last asked. */
  lag?: number;
  /** When the last sync ended (epoch ms), and how. */
  lastSync?: { at: number; outcome: 'done' | 'timeout' | 'failed'; rows: number; ms: number; error?: string };
  /** A sync holds the site's lock now: since when (epoch ms). */
  runningSince?: number;
}

/** One link as `relais/sites/get` answers it. */
export interface SiteEntry {
  status: 'up' | 'down' | 'unknown';
  since?: number;
  mode?: LinkMode;
  rttMs?: number;
  carried?: { down: number; up: number };
  /** The site's clients (from its roster); none on a site's answer about its central. */
  clients: string[];
  refused?: RefusedClient[];
  /** On a central: where its history stands in the site's. */
  sync?: SiteSyncState;
}

/** The answer of `relais/sites/get`. */
export interface SitesAnswer {
  /** The answering router's own site name. */
  site: string;
  sites: Record<string, SiteEntry>;
}

export const sitesQuerySchema = z.object({ site: z.string().optional() }).strict();

/**
 * What a library client subscribes to read the links' statuses and the rosters (protocol
 * §13.4): both retained topics, not the link's round-trip probes, which every client would
 * otherwise receive every 5 s per site. Covered by `SITES_FILTER` in a policy.
 */
export const SITE_DIRECTORY_FILTERS = [`${SITES_ROOT}/+`, `${SITES_ROOT}/+/clients`] as const;

// ---------------------------------------------------------------------------------------------
// The link (protocol §13.1, §13.2): what its two connections do, in numbers and pure rules.

/** The link's timings (protocol §13.1, §13.2). */
export const LINK_TIMING = {
  /** `up` is published again this often, with the latest round trip and counts. */
  statusIntervalMs: 10_000,
  /** The WAN connection measures its round trip this often. */
  probeIntervalMs: 5_000,
  /** A roster is published at most this often (4 a second): a burst of presences makes one. */
  rosterMinIntervalMs: 250,
  /** MQTT keep-alive of the WAN connection. */
  keepaliveSeconds: 30,
  /** Reconnection of the WAN connection: full-jitter back-off from this, doubling… */
  reconnectFirstMs: 100,
  /** …to at most this. */
  reconnectMaxMs: 30_000,
} as const;

/** How long the link remembers a command it carried down, so that its responses and cancels cross (protocol §13.2). */
export const REMEMBERED_REQUESTS = {
  /** At most this many: beyond, the oldest is forgotten (counted, logged). */
  max: 100_000,
  /** Kept this long past the command's `deadline`… */
  afterDeadlineMs: 60_000,
  /** …or this long after it crossed, for a command without one. */
  withoutDeadlineMs: 600_000,
} as const;

/** Built-in actions every library client serves on `A/request/<its id>` (protocol §11.4, §7.6): carried for every member. */
export const LIBRARY_BUILTIN_ACTIONS: readonly string[] = [LOGS_ACTION, CONTRACTS_ACTION];

/** The moment a carried command is forgotten (protocol §13.2). */
export function rememberedUntil(deadline: number | undefined, now: number): number {
  return deadline !== undefined ? Math.max(deadline, now) + REMEMBERED_REQUESTS.afterDeadlineMs : now + REMEMBERED_REQUESTS.withoutDeadlineMs;
}

/**
 * Whether a presence seen on a site's broker is one of the site's clients, whom the link carries
 * to the central (protocol §13.2): not a process's own client (each site has its own router,
 * reached as `site:<name>`), not a `site:` address, not the link's own connections.
 */
export function isSiteClientId(id: string, linkIds: readonly string[]): boolean {
  return !PROCESS_OWN_IDS.includes(id) && !id.startsWith(SITE_ADDRESS_PREFIX) && !linkIds.includes(id);
}

/** Why the link does not carry a site's client up (protocol §13.2): another client of the central or of another site has its id. */
export function duplicateReason(owner: { central: true } | { site: string }): string {
  return 'central' in owner ? 'a client of the central has this id' : `a client of site ${owner.site} has this id`;
}

/**
 * The presence of `site:<site>` on the central, made from the site router's (protocol §13.2):
 * the same fields without `role` (the router role stays the central's own router's), serving
 * only SITE_ROUTER_ACTIONS.
 */
export function siteRouterPresence(routerPresence: Record<string, unknown>): Record<string, unknown> {
  const { role: _role, ...rest } = routerPresence;
  const served = (list: unknown) => (Array.isArray(list) ? list.filter((action) => (SITE_ROUTER_ACTIONS as readonly unknown[]).includes(action)) : []);
  return {
    ...rest,
    actions: served(routerPresence.actions),
    ...(routerPresence.realtimeActions !== undefined && { realtimeActions: served(routerPresence.realtimeActions) }),
    ...(routerPresence.targetedActions !== undefined && { targetedActions: served(routerPresence.targetedActions) }),
  };
}

/**
 * The payload of `relais/sites/<site>/probe` (QoS 0, never retained): the WAN connection's own
 * round trip. `link` tells the link's messages from any other's on a broker with several links.
 */
export const siteProbeSchema = z.object({ link: z.string().max(256), sentAt: epochMs }).strict();
export type SiteProbe = z.infer<typeof siteProbeSchema>;

/** Every site's roster on a broker: the link reads the others' to refuse a duplicate id (protocol §13.2). */
export const SITE_ROSTERS_FILTER = `${SITES_ROOT}/+/clients`;

/** Every response of `action`, whoever the requester: what the link watches on a site for the commands it carried (protocol §13.2). */
export function everyResponseFilter(action: string): string {
  return `${action}/response/+`;
}
