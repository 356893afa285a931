/**
 * The link between a site and its central (protocol §13.2), written once in terms of its two
 * connections: `central` (to the central's broker) and `site` (to the site's). In pull mode the
 * site's `relais start` runs it (central = its WAN connection, site = its own broker); in push
 * mode the central's does (central = its own broker, site = the WAN connection).
 *
 * What crosses: the site clients' presences, roster and chosen notifications up; commands for
 * them and their cancels down; the responses to the commands it carried up. Forwarded messages
 * keep their bytes, except `site:<site>`: its commands go to the site router's topic, its
 * router's answers and presence come up from `site:<site>`.
 */
import { randomUUID } from 'node:crypto';
import { decode, encode, encodeMessage, type Envelope } from '../protocol/envelope.js';
import { ROUTER_ID } from '../protocol/history-feed.js';
import { notificationMessage, presenceMessage } from '../protocol/messages.js';
import { parsePresence } from '../protocol/presence.js';
import {
  everyResponseFilter,
  isSiteClientId,
  parseSiteTopic,
  rememberedUntil,
  LINK_TIMING,
  SITE_ROSTERS_FILTER,
  SITE_ROUTER_ACTIONS,
  siteAddress,
  siteClientsSchema,
  siteClientsTopic,
  siteRouterPresence,
} from '../protocol/sites.js';
import { parseTopic, PRESENCE_FILTER, presenceTopic, requestTopic, type ParsedTopic } from '../protocol/topics.js';
import { mqttPayload } from '../client/connection/connection.js';
import type { LinkConnection } from './link-connection.js';
import { LinkStatus, probePayload, readProbe, type LinkNames, type Side } from './link-status.js';
import { MemberTable, siteRouterActions } from './member-table.js';
import { TokenTable } from './token-table.js';

export interface LinkLog {
  info(line: string): void;
  warn(line: string): void;
}

export interface SiteLinkOptions extends LinkNames {
  /** The connection to the central's broker, and the one to the site's. */
  connections: Record<Side, LinkConnection>;
  /** MQTT filters of the site's notifications and logs that go up (protocol §13.2 item 7). */
  notifications?: readonly string[];
  log: LinkLog;
  /** Bound of the remembered commands (REMEMBERED_REQUESTS.max). */
  maxRemembered?: number;
}

/** Every message whose bytes the link parses is at most what the broker let through: no second limit here. */
const ANY_SIZE = Number.POSITIVE_INFINITY;
/** After the site side comes back, a client not heard again within this is taken as gone. */
const STALE_PRESENCE_GRACE_MS = 2000;
/** The sweep of remembered commands runs this often. */
const SWEEP_INTERVAL_MS = 10_000;
/** A full table of remembered commands is logged at its first forgotten command, then every this many. */
const FORGOTTEN_LOG_EVERY = 10_000;

export class SiteLink {
  readonly status: LinkStatus;
  readonly members: MemberTable;
  readonly tokens: TokenTable;
  private readonly central: LinkConnection;
  private readonly site: LinkConnection;
  private readonly wanSide: Side;
  private readonly instance = randomUUID();
  /** Each side has been read again since its connection came up (the barrier passed). */
  private readonly ready: Record<Side, boolean> = { central: false, site: false };
  /** Counts the connections of each side: work for an older connection stops. */
  private readonly generation: Record<Side, number> = { central: 0, site: 0 };
  private readonly barriers = new Map<string, () => void>();
  /** Retained on the central, the link's own roster is read until the barrier: what it carried before. */
  private readingOwnRoster = false;
  /** Site ids heard since the site-side connection came up: the others left while it was down. */
  private heardOnSite = new Set<string>();
  /** What the link holds on the central now, by id: republished when it changes, all of it at each connection. */
  private readonly published = new Map<string, Buffer>();
  private routerPresence: Buffer | undefined;
  private publishedRouterPresence: Buffer | undefined;
  private readonly commandFilters = new Set<string>();
  private lastRoster: string | undefined;
  private rosterTimer: NodeJS.Timeout | undefined;
  private lastRosterAt = 0;
  private settleQueued = false;
  private settling: Promise<void> = Promise.resolve();
  /** Commands and cancels leave for the site in order, behind any subscription their responses need. */
  private toSite: Promise<void> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];
  private wanFailureLogged = false;
  private stopped = false;

  constructor(private readonly options: SiteLinkOptions) {
    this.central = options.connections.central;
    this.site = options.connections.site;
    this.wanSide = options.mode === 'pull' ? 'central' : 'site';
    this.status = new LinkStatus(options, Date.now());
    this.members = new MemberTable(options.site);
    this.tokens = new TokenTable(options.maxRemembered);
    for (const side of ['central', 'site'] as const) {
      const connection = options.connections[side];
      connection.on('up', () => void this.sideUp(side));
      connection.on('down', (reason) => this.sideDown(side, reason));
      connection.on('attemptFailed', (reason) => this.attemptFailed(side, reason));
    }
    this.central.on('message', (topic, payload, qos, retained) => this.fromCentral(topic, payload, qos, retained));
    this.site.on('message', (topic, payload, qos) => this.fromSite(topic, payload, qos));
    this.timers.push(
      setInterval(() => this.status.status === 'up' && this.publishStatus(), LINK_TIMING.statusIntervalMs),
      setInterval(() => this.probe(), LINK_TIMING.probeIntervalMs),
      setInterval(() => this.sweep(), SWEEP_INTERVAL_MS),
    );
    for (const timer of this.timers) timer.unref();
  }

  private get log(): LinkLog {
    return this.options.log;
  }

  private connection(side: Side): LinkConnection {
    return side === 'central' ? this.central : this.site;
  }

  /** Says `down` on both brokers, then closes both connections (a clean DISCONNECT: no will). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    if (this.rosterTimer) {
      // The roster is what a next link reads to clear the clients that leave meanwhile: it goes out first.
      clearTimeout(this.rosterTimer);
      this.rosterTimer = undefined;
      await this.publishRoster();
    }
    this.status.set('down', Date.now());
    await this.publishStatus();
    await Promise.all([this.central.close(), this.site.close()]);
  }

  // --- connections --------------------------------------------------------------------------

  private async sideUp(side: Side): Promise<void> {
    const generation = ++this.generation[side];
    const connection = this.connection(side);
    if (side === this.wanSide) this.wanFailureLogged = false;
    const filters = [PRESENCE_FILTER, this.status.probeTopic(side)];
    if (side === 'central') {
      this.members.centralReconnecting();
      this.readingOwnRoster = true;
      this.published.clear();
      this.publishedRouterPresence = undefined;
      this.lastRoster = undefined;
      filters.push(SITE_ROSTERS_FILTER);
    } else {
      this.heardOnSite = new Set();
      filters.push(...(this.options.notifications ?? []), ...this.tokens.actions().map(everyResponseFilter));
    }
    await connection.subscribe(filters);
    // The retained presences and rosters come as a stream after the SUBACK, usually before our
    // own probe comes back (two round trips, for a long stream): then the picture of this broker
    // is whole. What comes later is still read (a late roster of the link's own included).
    for (let trip = 0; trip < 2; trip++) if (!(await this.barrier(side, generation))) return;
    if (side === 'central') this.readingOwnRoster = false;
    else {
      // A client not heard again left while the site side was away; the retained stream may
      // still be coming, so it is judged a moment later (a false "left" would clear it centrally).
      const unheard = this.members.siteIds().filter((id) => !this.heardOnSite.has(id));
      if (unheard.length > 0 || (this.routerPresence && !this.heardOnSite.has(ROUTER_ID))) {
        const judge = setTimeout(() => {
          if (this.generation.site !== generation) return;
          for (const id of unheard) if (!this.heardOnSite.has(id)) this.members.sitePresence(id, undefined);
          if (!this.heardOnSite.has(ROUTER_ID)) this.siteRouterPresenceChanged(undefined);
          this.settleSoon();
        }, STALE_PRESENCE_GRACE_MS);
        judge.unref();
      }
    }
    this.ready[side] = true;
    if (this.linkIsUp() && this.status.status !== 'up') {
      // The link comes back: what the central holds of the site is republished whole, before `up`.
      this.published.clear();
      this.publishedRouterPresence = undefined;
      this.lastRoster = undefined;
      this.clearGoneMembers();
    }
    this.settle();
    await this.settling;
    if (this.generation[side] !== generation) return;
    if (!this.updateStatus()) void this.publishStatusOn(side);
  }

  private sideDown(side: Side, reason: string): void {
    this.generation[side] += 1;
    this.ready[side] = false;
    for (const release of this.barriers.values()) release();
    this.barriers.clear();
    if (!this.stopped) this.updateStatus(`${side === this.wanSide ? `${this.connection(side).label} ` : 'this broker '}${reason}`);
  }

  private attemptFailed(side: Side, reason: string): void {
    if (side !== this.wanSide || this.wanFailureLogged || this.stopped) return;
    this.wanFailureLogged = true; // once per outage: a WAN down for an hour writes one line
    this.log.warn(`site ${this.options.site}: cannot reach ${this.connection(side).label} (${reason}); trying again with back-off`);
  }

  /** Resolves true once a probe sent now on `side` comes back on the same connection, false if it drops first. */
  private barrier(side: Side, generation: number): Promise<boolean> {
    const nonce = `${this.instance}/${side}/${generation}`;
    return new Promise((resolve) => {
      this.barriers.set(nonce, () => resolve(this.generation[side] === generation && !this.stopped));
      void this.connection(side).publish(this.status.probeTopic(side), probePayload(nonce, Date.now()), 1);
    });
  }

  /** Whether the link is up changed: log it, say it on both brokers. Returns true when it changed. */
  private updateStatus(reason?: string): boolean {
    const up = this.linkIsUp();
    if (!this.status.set(up ? 'up' : 'down', Date.now())) return false;
    const { site, mode } = this.options;
    if (up) this.log.info(`site ${site}: link up (${mode}, ${this.connection(this.wanSide).label})`);
    else this.log.warn(`site ${site}: link down: ${reason ?? 'connection lost'}`);
    void this.publishStatus();
    return true;
  }

  private linkIsUp(): boolean {
    return this.ready.central && this.ready.site && this.central.up && this.site.up && !this.stopped;
  }

  private async publishStatus(): Promise<void> {
    await Promise.all([this.publishStatusOn('central'), this.publishStatusOn('site')]);
  }

  private async publishStatusOn(side: Side): Promise<void> {
    await this.connection(side).publish(this.status.topic(side), this.status.message(side), 1, true);
  }

  private probe(): void {
    const wan = this.connection(this.wanSide);
    void wan.publish(this.status.probeTopic(this.wanSide), probePayload(this.instance, Date.now()), 0);
  }

  private probeArrived(payload: Buffer): void {
    const probe = readProbe(payload);
    if (!probe) return;
    if (probe.link === this.instance) this.status.rttMs = Math.max(0, Date.now() - probe.sentAt);
    const release = this.barriers.get(probe.link);
    if (release) {
      this.barriers.delete(probe.link);
      release();
    }
  }

  // --- from the central -----------------------------------------------------------------------

  private fromCentral(topic: string, payload: Buffer, qos: 0 | 1, retained: boolean): void {
    const siteTopic = parseSiteTopic(topic);
    if (siteTopic) {
      if (siteTopic.kind === 'probe') this.probeArrived(payload);
      else if (siteTopic.kind === 'clients') this.rosterArrived(siteTopic.site, payload, retained);
      return;
    }
    const parsed = parseTopic(topic);
    if (parsed.kind === 'presence') {
      this.members.centralPresence(parsed.clientId, payload.length > 0);
      this.settleSoon();
    } else if (parsed.kind === 'request') this.carryCommand(topic, parsed, payload, qos);
    else if (parsed.kind === 'cancel') this.carryCancel(topic, payload, qos);
  }

  private rosterArrived(site: string, payload: Buffer, retained: boolean): void {
    let clients: string[] | undefined;
    if (payload.length > 0) {
      const decoded = decode(payload, ANY_SIZE);
      const roster = decoded.ok ? siteClientsSchema.safeParse(decoded.envelope.payload) : undefined;
      if (!roster?.success) return;
      clients = roster.data.clients;
    }
    if (site === this.options.site) {
      // The retained one is what the central held when this connection came (the link's echoes are not retained).
      if (!this.readingOwnRoster && !retained) return;
      this.members.ownRoster(clients ?? []);
      if (this.status.status === 'up') {
        this.clearGoneMembers(); // it came after the link was up: its clients that left are cleared now
        this.settleSoon();
      }
      return;
    }
    this.members.otherRoster(site, clients);
    this.settleSoon();
  }

  /** Protocol §13.2 item 4: a command for a carried client (or `site:<site>`) goes down unchanged. */
  private carryCommand(topic: string, parsed: Extract<ParsedTopic, { kind: 'request' }>, payload: Buffer, qos: 0 | 1): void {
    if (!this.ready.site) return; // the requester's library sees the link down (protocol §13.4)
    let siteTopic = topic;
    const toSiteRouter = parsed.target === siteAddress(this.options.site);
    if (toSiteRouter) {
      if (!(SITE_ROUTER_ACTIONS as readonly string[]).includes(parsed.action)) return;
      siteTopic = requestTopic(parsed.action, ROUTER_ID); // the topic only: the envelope still says site:<site>
    } else if (parsed.target !== undefined && !this.members.carried.has(parsed.target)) return;
    const sender = senderOf(payload);
    if (sender && this.members.isSiteClient(sender.source)) return; // a site client's own command: never back down (no loops)
    if (sender?.token !== undefined) {
      const { firstOfAction, forgotten } = this.tokens.remember(sender.source, sender.token, { action: parsed.action, until: rememberedUntil(sender.deadline, Date.now()), toSiteRouter });
      if (forgotten && this.tokens.forgottenEarly % FORGOTTEN_LOG_EVERY === 1) {
        this.log.warn(`site ${this.options.site}: ${this.tokens.forgottenEarly} carried command(s) forgotten before their deadline: more than ${this.tokens.size} in flight; their late responses stay on the site`);
      }
      if (firstOfAction) this.toSite = this.toSite.then(() => this.site.subscribe([everyResponseFilter(parsed.action)]));
    }
    this.sendToSite(siteTopic, payload, qos);
  }

  /** Protocol §13.2 item 6: a cancel of a command the link carried goes down unchanged. */
  private carryCancel(topic: string, payload: Buffer, qos: 0 | 1): void {
    const sender = senderOf(payload);
    if (sender?.token === undefined || !this.tokens.get(sender.source, sender.token)) return;
    this.sendToSite(topic, payload, qos);
  }

  private sendToSite(topic: string, payload: Buffer, qos: 0 | 1): void {
    this.toSite = this.toSite.then(async () => {
      if (await this.site.publish(topic, payload, qos)) this.status.carried.down += 1;
    });
  }

  // --- from the site ----------------------------------------------------------------------------

  private fromSite(topic: string, payload: Buffer, qos: 0 | 1): void {
    const siteTopic = parseSiteTopic(topic);
    if (siteTopic) {
      if (siteTopic.kind === 'probe') this.probeArrived(payload);
      return;
    }
    const parsed = parseTopic(topic);
    if (parsed.kind === 'presence') this.sitePresenceArrived(parsed.clientId, payload);
    else if (parsed.kind === 'response') this.carryResponse(topic, parsed.requester, payload, qos);
    else if (parsed.kind === 'notification' || parsed.kind === 'log') this.carryNotification(topic, payload, qos);
  }

  private sitePresenceArrived(id: string, payload: Buffer): void {
    if (id === ROUTER_ID) {
      this.heardOnSite.add(id);
      this.siteRouterPresenceChanged(payload.length > 0 ? payload : undefined);
      this.settleSoon();
      return;
    }
    if (!isSiteClientId(id, [this.options.site, this.options.central])) return;
    this.heardOnSite.add(id);
    this.members.sitePresence(id, payload.length > 0 ? { bytes: payload, info: presenceIn(payload) } : undefined);
    this.settleSoon();
  }

  private siteRouterPresenceChanged(payload: Buffer | undefined): void {
    this.routerPresence = payload;
    this.members.siteRouter(siteRouterActions(payload && presenceIn(payload)));
  }

  /** Protocol §13.2 item 5: the responses to carried commands go up unchanged, the site router's from `site:<site>`. */
  private carryResponse(topic: string, requester: string, payload: Buffer, qos: 0 | 1): void {
    const decoded = decode(payload, ANY_SIZE);
    const token = decoded.ok ? decoded.envelope.token : decoded.sender?.token;
    const remembered = token === undefined ? undefined : this.tokens.get(requester, token);
    if (!remembered) return; // between two clients of the site: it stays there
    let bytes: Buffer | string = payload;
    // The requester's library takes answers only from the client it asked (protocol §4); a binary answer stays binary (§3.5).
    if (remembered.toSiteRouter && decoded.ok && decoded.envelope.source === ROUTER_ID) bytes = mqttPayload(encodeMessage({ ...decoded.envelope, source: siteAddress(this.options.site) }));
    void this.central.publish(topic, bytes, qos).then((sent) => sent && (this.status.carried.up += 1));
  }

  /** Protocol §13.2 item 7: a notification or log of a carried client, on a chosen filter, goes up unchanged. */
  private carryNotification(topic: string, payload: Buffer, qos: 0 | 1): void {
    const sender = senderOf(payload);
    if (!sender || !this.members.carried.has(sender.source)) return;
    void this.central.publish(topic, payload, qos).then((sent) => sent && (this.status.carried.up += 1));
  }

  // --- membership -------------------------------------------------------------------------------

  /** As the link comes up, both sides read: ids it carried before this connection that have left the site are cleared on the central. */
  private clearGoneMembers(): void {
    for (const id of this.members.previouslyCarried()) {
      const gone = id === siteAddress(this.options.site) ? this.routerPresence === undefined : !this.members.isSiteClient(id);
      if (gone) void this.central.publish(presenceTopic(id), '', 1, true);
    }
  }

  private settleSoon(): void {
    if (this.settleQueued) return;
    this.settleQueued = true;
    setImmediate(() => {
      this.settleQueued = false;
      this.settle();
    });
  }

  /** Decides again who is carried and brings the central in line: subscriptions, presences, roster. One at a time. */
  private settle(): void {
    // A failed pass must not end the chain: every later settle would be skipped, and the central
    // would stop hearing of the site's clients for as long as the process runs.
    this.settling = this.settling
      .then(() => this.settleNow())
      .catch((error: unknown) => this.log.warn(`site ${this.options.site}: could not bring the central in line: ${error instanceof Error ? error.message : String(error)}`));
  }

  private async settleNow(): Promise<void> {
    if (!this.ready.central || !this.ready.site || this.stopped) return;
    const change = this.members.settle();
    for (const { id, reason } of change.refused) this.log.warn(`site ${this.options.site}: ${id} is not carried to the central: ${reason}`);
    // The subscriptions first: a requester that sees a presence may send at once.
    const filters = this.filterChanges();
    if (filters.added.length > 0) await this.central.subscribe(filters.added);
    for (const id of change.removed) {
      this.published.delete(id);
      void this.central.publish(presenceTopic(id), '', 1, true);
    }
    for (const id of this.members.carried) {
      // A client that left while the subscriptions were acknowledged: the next pass (queued by its empty presence) clears it.
      const bytes = this.members.presenceOf(id)?.bytes;
      if (!bytes || this.published.get(id)?.equals(bytes)) continue;
      this.published.set(id, bytes);
      void this.central.publish(presenceTopic(id), bytes, 1, true);
    }
    this.publishRouterPresence();
    if (filters.removed.length > 0) void this.central.unsubscribe(filters.removed);
    this.scheduleRoster();
  }

  private publishRouterPresence(): void {
    const current = this.routerPresence;
    if (current === this.publishedRouterPresence) return;
    this.publishedRouterPresence = current;
    const address = siteAddress(this.options.site);
    const decoded = current && decode(current, ANY_SIZE);
    const info = decoded && decoded.ok && typeof decoded.envelope.payload === 'object' && decoded.envelope.payload !== null ? (decoded.envelope.payload as Record<string, unknown>) : undefined;
    void this.central.publish(presenceTopic(address), info ? encode(presenceMessage(address, siteRouterPresence(info))) : '', 1, true);
  }

  /** The command and cancel filters the central side must add and drop to follow the carried clients. */
  private filterChanges(): { added: string[]; removed: string[] } {
    const wanted = this.members.centralFilters();
    const added = [...wanted].filter((filter) => !this.commandFilters.has(filter));
    const removed = [...this.commandFilters].filter((filter) => !wanted.has(filter));
    for (const filter of added) this.commandFilters.add(filter);
    for (const filter of removed) this.commandFilters.delete(filter);
    return { added, removed };
  }

  private scheduleRoster(): void {
    if (this.rosterTimer) return;
    const wait = Math.max(0, this.lastRosterAt + LINK_TIMING.rosterMinIntervalMs - Date.now());
    this.rosterTimer = setTimeout(() => {
      this.rosterTimer = undefined;
      if (!this.stopped) void this.publishRoster();
    }, wait);
  }

  private async publishRoster(): Promise<void> {
    if (!this.ready.central) return;
    const roster = JSON.stringify(this.members.roster());
    if (roster === this.lastRoster) return;
    this.lastRoster = roster;
    this.lastRosterAt = Date.now();
    const message = encode(notificationMessage({ source: this.options.site, payload: JSON.parse(roster), priority: 'normal' }));
    await this.central.publish(siteClientsTopic(this.options.site), message, 1, true);
  }

  private sweep(): void {
    const gone = this.tokens.sweep(Date.now());
    if (gone.length > 0) void this.site.unsubscribe(gone.map(everyResponseFilter));
  }
}

/** Who sent a message and its token and deadline, as far as they can be read. */
function senderOf(payload: Buffer): { source: string; token?: string; deadline?: number } | undefined {
  const decoded = decode(payload, ANY_SIZE);
  if (!decoded.ok) return decoded.sender;
  const { source, token, deadline } = decoded.envelope as Envelope;
  return { source, ...(token !== undefined && { token }), ...(deadline !== undefined && { deadline }) };
}

function presenceIn(payload: Buffer): ReturnType<typeof parsePresence> {
  const decoded = decode(payload, ANY_SIZE);
  return decoded.ok ? parsePresence(decoded.envelope.payload) : undefined;
}

