/**
 * The presence a client keeps retained on `relais/presence/<id>` (protocol §7.1): its shape, how
 * a receiver reads one, and the ordering rule that tells a newer presence from an older one
 * arriving late. Written once here for every reader: the client's directory and the router's
 * registry.
 */

/** What a client announces about itself (retained on `relais/presence/<id>`, protocol §7.1). */
export interface PresenceInfo {
  status: 'alive' | 'stopped' | 'dead';
  actions: string[];
  realtimeActions?: string[];
  /** When this client instance started (epoch ms). */
  since: number;
  /** Counter of this instance's presence messages, to drop ones that arrive out of order. */
  seq?: number;
  /** Random per start: tells this instance from another client with the same id (protocol §7.5). */
  instance?: string;
  /** The client acknowledges commands and remembers their tokens (protocol §4.7). */
  acks?: boolean;
  /** A short-lived client: a presence of it that is not `alive` reads as forgotten. */
  ephemeral?: boolean;
  /**
   * `"starting"` while a client with `startup: 'manual'` has not called `markReady()`; absent
   * otherwise. Only with `status: "alive"` and no actions (protocol §7.1).
   */
  lifecycle?: 'starting';
  /**
   * Built-in actions it serves only when a command names it as target (`relais/logs/get`,
   * protocol §11.4): apart from `actions`, so never picked for an untargeted request.
   */
  targetedActions?: string[];
  /** Actions with a declared contract, and its hash (protocol §7.6); `relais/contracts/get` gives them whole. */
  contracts?: Record<string, string>;
  [extra: string]: unknown;
}

/** A presence as a receiver reads it: every list present, `since` and `seq` numbers (protocol §7.1 defaults). */
export type ReadPresence = PresenceInfo & { realtimeActions: string[]; targetedActions: string[]; seq: number };

/** Fields of the presence payload that protocol §7.1 defines; the rest is the client's free-form `info`. */
export const PRESENCE_FIELDS: ReadonlySet<string> = new Set(['status', 'actions', 'realtimeActions', 'targetedActions', 'since', 'seq', 'instance', 'acks', 'ephemeral', 'lifecycle', 'host', 'pid']);

/**
 * Reads a presence payload (protocol §7.1): undefined when its `status` is not `alive`,
 * `stopped` or `dead` (an invalid presence, read as a cleared one); otherwise every field
 * the protocol defines has its default, items that are not strings are dropped from the
 * lists, an `instance` that is not a string is ignored, and the other fields are kept.
 */
export function parsePresence(payload: unknown): ReadPresence | undefined {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
  const fields = payload as Record<string, unknown>;
  const status = fields.status;
  if (status !== 'alive' && status !== 'stopped' && status !== 'dead') return undefined;
  const { instance: _instance, ...rest } = fields;
  const read: ReadPresence = {
    ...rest,
    status,
    actions: strings(fields.actions),
    realtimeActions: strings(fields.realtimeActions),
    targetedActions: strings(fields.targetedActions),
    since: typeof fields.since === 'number' ? fields.since : 0,
    seq: typeof fields.seq === 'number' ? fields.seq : 0,
  };
  if (typeof fields.instance === 'string') read.instance = fields.instance;
  return read;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

/** A presence's place in its client's sequence (protocol §7.1). */
export interface PresenceOrder {
  since: number;
  seq: number;
  instance?: string | undefined;
}

/**
 * protocol §7.1 ordering: a presence of an earlier instance (smaller `since`) is ignored, so is
 * an older one (not a larger `seq`) of the same instance; a will (`dead`) of the same instance
 * always applies. A will of another instance that started in the same millisecond never
 * displaces this one: an old will must not win; any other presence of that instance applies.
 */
export function isOlderPresence(incoming: Pick<PresenceInfo, 'status' | 'since' | 'seq' | 'instance'>, known: PresenceOrder): boolean {
  if (incoming.since !== known.since) return incoming.since < known.since;
  const otherInstance = incoming.instance !== undefined && known.instance !== undefined && incoming.instance !== known.instance;
  if (otherInstance) return incoming.status === 'dead';
  if (incoming.status === 'dead') return false;
  return (incoming.seq ?? 0) <= known.seq;
}

/** What a receiver does with a presence it holds `known` for (undefined: none, or cleared). */
export type PresenceVerdict =
  /** Older than the one held: ignored. */
  | 'older'
  /** An ephemeral client that is gone leaves no trace: forget it (protocol §7.1). */
  | 'forget'
  | 'apply';

export function judgePresence(incoming: Pick<PresenceInfo, 'status' | 'since' | 'seq' | 'instance' | 'ephemeral'>, known: PresenceOrder | undefined): PresenceVerdict {
  if (known !== undefined && isOlderPresence(incoming, known)) return 'older';
  if (incoming.ephemeral === true && incoming.status !== 'alive') return 'forget';
  return 'apply';
}

/**
 * The order to hold once `incoming` applies: a will carries `seq` 0 (made at connection time),
 * so after the will of the instance it knows, a receiver keeps that instance's counter
 * (protocol §7.1); a new instance starts from its own.
 */
export function orderAfter(incoming: Pick<PresenceInfo, 'status' | 'since' | 'seq' | 'instance'>, known: PresenceOrder | undefined): PresenceOrder {
  const seq = incoming.seq ?? 0;
  const keepCounter = known !== undefined && incoming.status === 'dead' && incoming.since === known.since && incoming.instance === known.instance;
  return { since: incoming.since, seq: keepCounter ? Math.max(seq, known.seq) : seq, ...(incoming.instance !== undefined && { instance: incoming.instance }) };
}
