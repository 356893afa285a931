/**
 * The registry's table of clients (protocol §11.3), from the presence messages on
 * `relais/presence/<id>` (protocol §7.1). Pure: no bus, no timers; the caller says what arrived
 * and when. It applies §7.1's ordering rules, so a retained copy or a Last Will that arrives
 * after a newer presence never wins, and it remembers which clients changed since the last
 * notification (the coalescing of §11.3).
 */
import { judgePresence, orderAfter, parsePresence, PRESENCE_FIELDS, type PresenceOrder } from '../protocol/presence.js';
import type { ClientDetail, ClientDetailChanges, ClientDetailPayload, ClientListPayload, ClientStatus, ClientSummary } from '../protocol/registry.js';

/** What arrived on a client's presence topic. */
export type PresenceReading =
  | { kind: 'presence'; payload: unknown }
  /** An empty retained message: the presence was cleared (protocol §7.1). */
  | { kind: 'cleared' }
  /** Not a presence a directory accepts (protocol §7.1: an unknown status makes it invalid). */
  | { kind: 'invalid'; reason: string };

interface Entry {
  detail: ClientDetail;
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
  /** Ids changed since the last `takeChanges()`. */
  private readonly changed = new Set<string>();
  /** Counts visible changes (protocol §11.3 `revision`). */
  private revisionCount = 0;

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
    const wasUp = known !== undefined && (known.detail.status === 'alive' || known.detail.status === 'starting') && known.detail.instance === presence.instance;
    const detail: ClientDetail = {
      status,
      ...(presence.host !== undefined && { host: presence.host }),
      ...(presence.pid !== undefined && { pid: presence.pid }),
      ...(typeof presence.info.version === 'string' && { version: presence.info.version }),
      ...(up && { connectedSince: wasUp ? known.detail.connectedSince! : seeded ? presence.since : now }),
      lastSeen: now,
      actions: up ? presence.actions : [],
      realtimeActions: up ? presence.realtimeActions : [],
      since: presence.since,
      ...(presence.instance !== undefined && { instance: presence.instance }),
      info: presence.info,
    };
    return this.store(id, known, { detail, order: orderAfter(presence, known?.order), ephemeral: presence.ephemeral });
  }

  /** Cleared or invalid: `unknown` for a client seen before (an ephemeral one is forgotten); a clear for one never seen is nothing. */
  private lose(id: string, known: Entry | undefined, reason: string, now: number): boolean {
    if (known?.ephemeral) return this.forget(id, known);
    if (!known && reason === 'presence cleared') return false;
    const { connectedSince: _connectedSince, ...before } = known?.detail ?? { info: {} };
    const detail: ClientDetail = { ...before, status: 'unknown', reason, lastSeen: now, actions: [], realtimeActions: [] };
    return this.store(id, known, { detail, order: undefined, ephemeral: false });
  }

  private forget(id: string, known: Entry | undefined): boolean {
    if (!known) return false;
    this.entries.delete(id);
    this.markChanged(id);
    return true;
  }

  private store(id: string, known: Entry | undefined, entry: Entry): boolean {
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

  list(): ClientListPayload {
    const clients: Record<string, ClientSummary> = {};
    for (const [id, { detail }] of this.entries) clients[id] = summaryOf(detail);
    return { revision: this.revisionCount, clients };
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

function summaryOf(detail: ClientDetail): ClientSummary {
  const { status, host, pid, version, connectedSince, lastSeen } = detail;
  return {
    status,
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
