/**
 * The sites this client's broker is linked to (protocol §13.4): each link's status
 * (`relais/sites/<site>`) and each site's roster (`relais/sites/<site>/clients`), both
 * retained. What a request reads to fail at once, or wait, when its handler is on a site whose
 * link is down, and what handler choice reads to avoid such a handler. A bus with no
 * `relais/sites/` topics has no site here, and nothing changes for its requests.
 */
import type { Logger } from 'pino';
import type { DecodeResult } from '../../protocol/envelope.js';
import { SiteUnreachableError } from '../../protocol/errors.js';
import { siteOfAddress, siteClientsSchema, siteStatusSchema, type SiteClients, type SiteStatus, type SiteTopic } from '../../protocol/sites.js';
import { Emitter } from '../emitter.js';

/** What this client knows of one site. */
export interface SiteView {
  site: string;
  /** The link's last status; absent before one came (or after it was cleared). */
  status?: SiteStatus;
  /** The site's roster: the ids its clients have here, and those refused as duplicates. */
  roster?: SiteClients;
}

/** A site whose link is down, as a request to one of its clients is told. */
export interface DownSite {
  site: string;
  since?: number;
}

/** More sites than any deployment has: past it, new ones are ignored with a log line (a flood of made-up topics must not grow memory). */
const MAX_SITES = 10_000;

export class SiteDirectory extends Emitter<{
  /** A site's status or roster changed (or it was forgotten). */
  change: [site: string];
}> {
  private readonly sites = new Map<string, SiteView>();
  /** Which site each client id belongs to, from the rosters. */
  private readonly siteOfClient = new Map<string, string>();
  private downCount = 0;
  /** Topics not confirmed since the last reconnection: their retained copy may have been cleared meanwhile. */
  private unconfirmed: Set<string> | undefined;

  constructor(private readonly logger: Logger) {
    super();
  }

  /** True while some known site's link is down: the only case where requests look further. */
  get anyDown(): boolean {
    return this.downCount > 0;
  }

  /**
   * A message on `relais/sites/...`. A status or roster replaces the one held; an empty
   * (cleared) one forgets it; an invalid one is logged and ignored. Probes are not read.
   */
  update(topic: SiteTopic, payloadLength: number, decoded: () => DecodeResult): void {
    if (topic.kind === 'probe') return;
    this.unconfirmed?.delete(`${topic.kind} ${topic.site}`);
    if (payloadLength === 0) return this.set(topic.site, topic.kind, undefined);
    const result = decoded();
    const schema = topic.kind === 'status' ? siteStatusSchema : siteClientsSchema;
    const parsed = result.ok ? schema.safeParse(result.envelope.payload) : undefined;
    const problem = !result.ok
      ? result.error.message
      : !parsed!.success
        ? parsed!.error.issues.map((issue) => `${issue.path.join('.') || 'payload'}: ${issue.message}`).join('; ')
        : parsed!.data.site !== topic.site
          ? `it names site ${JSON.stringify(parsed!.data.site)}`
          : undefined;
    if (problem !== undefined) {
      this.logger.warn({ site: topic.site, kind: topic.kind, err: problem.slice(0, 300) }, `invalid site ${topic.kind} on relais/sites/; ignored`);
      return;
    }
    this.set(topic.site, topic.kind, parsed!.data as SiteStatus & SiteClients);
  }

  private set(site: string, kind: 'status' | 'clients', value: (SiteStatus & SiteClients) | undefined): void {
    let view = this.sites.get(site);
    if (!view) {
      if (!value) return;
      if (this.sites.size >= MAX_SITES) {
        this.logger.warn({ site, max: MAX_SITES }, 'too many sites on relais/sites/; this one is ignored');
        return;
      }
      this.sites.set(site, (view = { site }));
    }
    if (kind === 'status') {
      if (view.status?.status === 'down') this.downCount -= 1;
      if (value) view.status = value;
      else delete view.status;
      if (view.status?.status === 'down') this.downCount += 1;
    } else {
      for (const id of view.roster?.clients ?? []) if (this.siteOfClient.get(id) === site) this.siteOfClient.delete(id);
      if (value) view.roster = value;
      else delete view.roster;
      // A client listed by two sites stays with the first (the link refuses the duplicate, protocol §13.2).
      for (const id of view.roster?.clients ?? []) if (!this.siteOfClient.has(id)) this.siteOfClient.set(id, site);
    }
    if (!view.status && !view.roster) this.sites.delete(site);
    this.emit('change', site);
  }

  /** The site `clientId` is a client of (from the rosters), or the site a `site:<name>` address names. */
  siteOf(clientId: string): string | undefined {
    return this.siteOfClient.get(clientId) ?? siteOfAddress(clientId);
  }

  /** The down site `clientId` belongs to, or undefined when it belongs to none, or to one whose link is up. */
  down(clientId: string): DownSite | undefined {
    if (this.downCount === 0) return undefined;
    const site = this.siteOf(clientId);
    const status = site === undefined ? undefined : this.sites.get(site)?.status;
    if (site === undefined || status?.status !== 'down') return undefined;
    return status.since === undefined ? { site } : { site, since: status.since };
  }

  /** Every site known, by name. */
  list(): SiteView[] {
    return [...this.sites.values()].sort((a, b) => a.site.localeCompare(b.site)).map((view) => ({ ...view }));
  }

  /** After a reconnection: what the broker holds is sent again; what it no longer holds is forgotten once the directory settles. */
  beginReload(): void {
    this.unconfirmed = new Set([...this.sites.values()].flatMap((view) => [...(view.status ? [`status ${view.site}`] : []), ...(view.roster ? [`clients ${view.site}`] : [])]));
  }

  endReload(): void {
    const stale = this.unconfirmed;
    this.unconfirmed = undefined;
    for (const key of stale ?? []) {
      const [kind, site] = key.split(' ') as ['status' | 'clients', string];
      this.set(site, kind, undefined);
    }
  }
}

/** ISO time to the second: what a person reads in a message. */
export function isoSecond(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The error of a request whose handler is on a site whose link is down (protocol §13.4):
 * `site poller-1 is unreachable since 2026-12-06T04:12:03Z (its link is down): agent-p1 cannot be reached`.
 */
export function siteUnreachable(down: DownSite, handler: string, waitedMs?: number): SiteUnreachableError {
  const since = down.since === undefined ? '' : ` since ${isoSecond(down.since)}`;
  const waited = waitedMs === undefined ? '' : ` (waited ${Math.round(waitedMs)} ms for it)`;
  return new SiteUnreachableError(`site ${down.site} is unreachable${since} (its link is down): ${handler} cannot be reached${waited}`, down.since === undefined ? { site: down.site } : { site: down.site, since: down.since });
}
