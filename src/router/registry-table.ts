/**
 * The registry's table of clients (protocol §11.3), from the presence messages on
 * `relais/presence/<id>` (protocol §7.1). Pure: no bus, no timers; the caller says what arrived
 * and when. It applies §7.1's ordering rules, so a retained copy or a Last Will that arrives
 * after a newer presence never wins, and it remembers which clients changed since the last
 * notification (the coalescing of §11.3).
 */
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
  order: { since: number; seq: number; instance?: string } | undefined;
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

/** Fields of the presence payload that the protocol defines; the rest is the client's `info`. */
const PROTOCOL_FIELDS = new Set(['status', 'actions', 'realtimeActions', 'targetedActions', 'since', 'seq', 'instance', 'acks', 'ephemeral', 'lifecycle', 'host', 'pid']);

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
    if (known?.order && isOlder(presence, known.order)) return false;
    // An ephemeral client that is gone leaves no trace (protocol §7.1).
    if (presence.ephemeral && presence.status !== 'alive') return this.forget(id, known);
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
    // A will carries seq 0 (made at connection time): keep the known counter (protocol §7.1).
    const sameInstance = known?.order?.instance === presence.instance;
    const seq = presence.status === 'dead' && sameInstance ? Math.max(presence.seq, known?.order?.seq ?? 0) : presence.seq;
    const order = { since: presence.since, seq, ...(presence.instance !== undefined && { instance: presence.instance }) };
    return this.store(id, known, { detail, order, ephemeral: presence.ephemeral });
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

/**
 * protocol §7.1 ordering: an earlier instance's presence is ignored, so is an older one of the
 * same instance; a will of the same instance always applies. A will of another instance that
 * started in the same millisecond never displaces this one: the old will must not win.
 */
function isOlder(incoming: Presence, known: { since: number; seq: number; instance?: string }): boolean {
  if (incoming.since !== known.since) return incoming.since < known.since;
  const otherInstance = incoming.instance !== undefined && known.instance !== undefined && incoming.instance !== known.instance;
  if (otherInstance) return incoming.status === 'dead';
  if (incoming.status === 'dead') return false;
  return incoming.seq <= known.seq;
}

function readPresence(payload: unknown): Presence | undefined {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
  const fields = payload as Record<string, unknown>;
  const status = fields.status;
  if (status !== 'alive' && status !== 'stopped' && status !== 'dead') return undefined;
  const strings = (value: unknown) => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);
  const info = Object.fromEntries(Object.entries(fields).filter(([key]) => !PROTOCOL_FIELDS.has(key)));
  return {
    status,
    since: typeof fields.since === 'number' ? fields.since : 0,
    seq: typeof fields.seq === 'number' ? fields.seq : 0,
    ...(typeof fields.instance === 'string' && { instance: fields.instance }),
    ephemeral: fields.ephemeral === true,
    starting: status === 'alive' && fields.lifecycle === 'starting',
    actions: strings(fields.actions),
    realtimeActions: strings(fields.realtimeActions),
    ...(typeof fields.host === 'string' && { host: fields.host }),
    ...(typeof fields.pid === 'number' && { pid: fields.pid }),
    info,
  };
}

function sameButLastSeen(a: ClientDetail, b: ClientDetail): boolean {
  return JSON.stringify({ ...a, lastSeen: 0 }) === JSON.stringify({ ...b, lastSeen: 0 });
}
