/**
 * The registry's table of clients (protocol §11.3), from the presence messages on
 * `relais/presence/<id>` (protocol §7.1). Pure: no bus, no timers; the caller says what arrived
 * and when. It applies §7.1's ordering rules, so a retained copy or a Last Will that arrives
 * after a newer presence never wins, and it remembers which clients changed since the last
 * notification (the coalescing of §11.3).
 */
import { judgePresence, orderAfter, parsePresence, PRESENCE_FIELDS, type PresenceOrder } from '../protocol/presence.js';
import { parseClientId } from '../protocol/topics.js';
import { firstAfter, takePage, type ClientDetail, type ClientDetailChanges, type ClientDetailPayload, type ClientListPayload, type ClientStatus, type ClientSummary, type RegistryPageRequest } from '../protocol/registry.js';

/** What arrived on a client's presence topic. */
export type PresenceReading =
  | { kind: 'presence'; payload: unknown }
  /** An empty retained message: the presence was cleared (protocol §7.1). */
  | { kind: 'cleared' }
  /** Not a presence a directory accepts (protocol §7.1: an unknown status makes it invalid). */
  | { kind: 'invalid'; reason: string };

interface Entry {
  /** What the registry shows: `base`, with the client's site and that site's link (protocol §13.5). */
  detail: ClientDetail;
  /** What its presences say. */
  base: ClientDetail;
  /** Ordering state of protocol §7.1; undefined once cleared or invalid: the next presence applies whatever it says. */
  order: PresenceOrder | undefined;
  ephemeral: boolean;
}

/** A valid presence, read as protocol §7.1 describes it. */
interface Presence {
  status: 'alive' | 'stopped' | 'dead';
  since: number;
  seq: number;
  instance?: string;
  ephemeral: boolean;
  starting: boolean;
  actions: string[];
  realtimeActions: string[];
  host?: string;
  pid?: number;
  info: Record<string, unknown>;
}

export class ClientTable {
  private readonly entries = new Map<string, Entry>();
  /**
   * The ids of `entries` in code-unit order, the order of pages (protocol §11.3): kept sorted as
   * clients come and go (a binary search and a splice), so a page costs only its own clients.
   */
  private readonly sortedIds: string[] = [];
  /** Ids changed since the last `takeChanges()`. */
  private readonly changed = new Set<string>();
  /** Counts visible changes (protocol §11.3 `revision`). */
  private revisionCount = 0;
  /** The site of each client a site's roster lists (protocol §13.5). */
  private readonly siteOf = new Map<string, string>();
  /** Each site's roster, as last applied. */
  private readonly members = new Map<string, ReadonlySet<string>>();
  /** Sites whose link is down, and since when (epoch ms). */
  private readonly downSince = new Map<string, number>();

  get revision(): number {
    return this.revisionCount;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Records what arrived for `id` at `now` (epoch ms). `seeded`: it was already up when the
   * registry started, so its instance's `since` is the best "connected since" known.
   * Returns true when what the registry shows changed.
   */
  apply(id: string, reading: PresenceReading, now: number, seeded = false): boolean {
    const known = this.entries.get(id);
    if (reading.kind !== 'presence') return this.lose(id, known, reading.kind === 'cleared' ? 'presence cleared' : `invalid presence: ${reading.reason}`, now);
    const presence = readPresence(reading.payload);
    if (!presence) return this.lose(id, known, 'invalid presence: its status is not alive, stopped or dead', now);
    const verdict = judgePresence(presence, known?.order);
    if (verdict === 'older') return false;
    // An ephemeral client that is gone leaves no trace (protocol §7.1).
    if (verdict === 'forget') return this.forget(id, known);
    const status: ClientStatus = presence.starting ? 'starting' : presence.status;
    const up = status === 'alive' || status === 'starting';
    const wasUp = known !== undefined && (known.base.status === 'alive' || known.base.status === 'starting') && known.base.instance === presence.instance;
    const detail: ClientDetail = {
      ...identityFields(id),
      status,
      ...(presence.host !== undefined && { host: presence.host }),
      ...(presence.pid !== undefined && { pid: presence.pid }),
      ...(typeof presence.info.version === 'string' && { version: presence.info.version }),
      ...(up && { connectedSince: wasUp ? known.base.connectedSince! : seeded ? presence.since : now }),
      lastSeen: now,
      actions: up ? presence.actions : [],
      realtimeActions: up ? presence.realtimeActions : [],
      since: presence.since,
      ...(presence.instance !== undefined && { instance: presence.instance }),
      info: presence.info,
    };
    return this.store(id, known, { base: detail, order: orderAfter(presence, known?.order), ephemeral: presence.ephemeral });
  }

  /**
   * A message from `id` arrived at `now` (any message whose envelope's `source` it is): its
   * `lastSeen` moves (protocol §11.3). Not a visible change: no revision, no notification.
   */
  seen(id: string, now: number): void {
    const entry = this.entries.get(id);
    if (!entry || entry.detail.lastSeen >= now) return;
    entry.detail.lastSeen = now;
    entry.base.lastSeen = now;
  }

  /**
   * A site's roster (protocol §13.2): its clients show `site`; those no longer listed lose it.
   * Returns true when what the registry shows changed.
   */
  applyRoster(site: string, clients: readonly string[]): boolean {
    const before = this.members.get(site) ?? new Set<string>();
    const after = new Set(clients);
    if (after.size > 0) this.members.set(site, after);
    else this.members.delete(site);
    let changed = false;
    for (const id of before) {
      if (after.has(id) || this.siteOf.get(id) !== site) continue;
      this.siteOf.delete(id);
      changed = this.refresh(id) || changed;
    }
    for (const id of after) {
      if (this.siteOf.get(id) === site) continue;
      this.siteOf.set(id, site);
      changed = this.refresh(id) || changed;
    }
    return changed;
  }

  /**
   * A site's link status: while it is down (since `downSince`, epoch ms), its clients are
   * `unknown` whatever their presences last said; `undefined`, they show their presences again.
   * Returns true when what the registry shows changed.
   */
  applySiteLink(site: string, downSince: number | undefined): boolean {
    if (downSince === undefined) {
      if (!this.downSince.delete(site)) return false;
    } else {
      if (this.downSince.has(site)) return false; // down since the first time it was seen down
      this.downSince.set(site, downSince);
    }
    let changed = false;
    for (const id of this.members.get(site) ?? []) if (this.siteOf.get(id) === site) changed = this.refresh(id) || changed;
    return changed;
  }

  /** Shows `id` again from its presences and its site. */
  private refresh(id: string): boolean {
    const known = this.entries.get(id);
    return known ? this.store(id, known, { base: known.base, order: known.order, ephemeral: known.ephemeral }) : false;
  }

  /** `base` as shown: with its site, and `unknown` while that site's link is down. */
  private shown(id: string, base: ClientDetail): ClientDetail {
    const site = this.siteOf.get(id);
    if (site === undefined) return base;
    const since = this.downSince.get(site);
    if (since === undefined) return { ...base, site };
    const { connectedSince: _connectedSince, ...rest } = base;
    return { ...rest, site, status: 'unknown', reason: `site ${site} unreachable since ${new Date(since).toISOString()}`, actions: [], realtimeActions: [] };
  }

  /** Cleared or invalid: `unknown` for a client seen before (an ephemeral one is forgotten); a clear for one never seen is nothing. */
  private lose(id: string, known: Entry | undefined, reason: string, now: number): boolean {
    if (known?.ephemeral) return this.forget(id, known);
    if (!known && reason === 'presence cleared') return false;
    const { connectedSince: _connectedSince, ...before }: Partial<ClientDetail> & Pick<ClientDetail, 'identity' | 'info'> = known?.base ?? { ...identityFields(id), info: {} };
    const detail: ClientDetail = { ...before, status: 'unknown', reason, lastSeen: now, actions: [], realtimeActions: [] };
    return this.store(id, known, { base: detail, order: undefined, ephemeral: false });
  }

  private forget(id: string, known: Entry | undefined): boolean {
    if (!known) return false;
    this.entries.delete(id);
    this.sortedIds.splice(firstAfter(this.sortedIds, id) - 1, 1);
    this.markChanged(id);
    return true;
  }

  private store(id: string, known: Entry | undefined, next: Omit<Entry, 'detail'>): boolean {
    const entry: Entry = { ...next, detail: this.shown(id, next.base) };
    if (!this.entries.has(id)) this.sortedIds.splice(firstAfter(this.sortedIds, id), 0, id);
    this.entries.set(id, entry);
    // lastSeen alone is no news: a reconnection storm must not make notifications.
    if (known && sameButLastSeen(known.detail, entry.detail)) return false;
    this.markChanged(id);
    return true;
  }

  private markChanged(id: string): void {
    this.revisionCount += 1;
    this.changed.add(id);
  }

  /** The clients changed since the last call, for the detail notification; `null` for a forgotten one. */
  takeChanges(): ClientDetailChanges | undefined {
    if (this.changed.size === 0) return undefined;
    const clients: Record<string, ClientDetail | null> = {};
    for (const id of this.changed) clients[id] = this.entries.get(id)?.detail ?? null;
    this.changed.clear();
    return { revision: this.revisionCount, clients };
  }

  /** Every client (the list notification, protocol §11.3). */
  list(): ClientListPayload {
    const clients: Record<string, ClientSummary> = {};
    for (const [id, { detail }] of this.entries) clients[id] = summaryOf(detail);
    return { revision: this.revisionCount, clients };
  }

  /** One page of the list (`relais/clients/list/get`), its `clients` within `maxBytes` of JSON. */
  listPage(request: RegistryPageRequest, maxBytes: number): ClientListPayload {
    const page = takePage(this.sortedIds, request, maxBytes, (id) => summaryOf(this.entries.get(id)!.detail));
    return { revision: this.revisionCount, total: this.entries.size, ...page };
  }

  /** One page of details (`relais/clients/detail/get` without `id`), its `clients` within `maxBytes` of JSON. */
  detailPage(request: RegistryPageRequest, maxBytes: number): ClientDetailPayload {
    const page = takePage(this.sortedIds, request, maxBytes, (id) => this.entries.get(id)!.detail);
    return { revision: this.revisionCount, total: this.entries.size, ...page };
  }

  /** Every client in detail, or only `id` (undefined when the registry does not know it). */
  details(id?: string): ClientDetailPayload | undefined {
    if (id !== undefined) {
      const entry = this.entries.get(id);
      return entry ? { revision: this.revisionCount, clients: { [id]: entry.detail } } : undefined;
    }
    const clients: Record<string, ClientDetail> = {};
    for (const [clientId, { detail }] of this.entries) clients[clientId] = detail;
    return { revision: this.revisionCount, clients };
  }
}

/** `identity` and `session` of a client id (protocol §2.1); an id outside the grammar is its own identity. */
function identityFields(id: string): Pick<ClientSummary, 'identity' | 'session'> {
  const parts = parseClientId(id);
  if ('problem' in parts) return { identity: id };
  return { identity: parts.identity, ...(parts.session !== undefined && { session: parts.session }) };
}

function summaryOf(detail: ClientDetail): ClientSummary {
  const { identity, session, status, host, pid, version, connectedSince, lastSeen, site } = detail;
  return {
    identity,
    ...(session !== undefined && { session }),
    status,
    ...(site !== undefined && { site }),
    ...(host !== undefined && { host }),
    ...(pid !== undefined && { pid }),
    ...(version !== undefined && { version }),
    ...(connectedSince !== undefined && { connectedSince }),
    lastSeen,
  };
}

/** A presence as the registry shows it: protocol §7.1's reading, and the fields it does not define as the client's `info`. */
function readPresence(payload: unknown): Presence | undefined {
  const read = parsePresence(payload);
  if (!read) return undefined;
  return {
    status: read.status,
    since: read.since,
    seq: read.seq,
    ...(read.instance !== undefined && { instance: read.instance }),
    ephemeral: read.ephemeral === true,
    starting: read.status === 'alive' && read.lifecycle === 'starting',
    actions: read.actions,
    realtimeActions: read.realtimeActions,
    ...(typeof read.host === 'string' && { host: read.host }),
    ...(typeof read.pid === 'number' && { pid: read.pid }),
    info: Object.fromEntries(Object.entries(read).filter(([key]) => !PRESENCE_FIELDS.has(key))),
  };
}

function sameButLastSeen(a: ClientDetail, b: ClientDetail): boolean {
  return JSON.stringify({ ...a, lastSeen: 0 }) === JSON.stringify({ ...b, lastSeen: 0 });
}
