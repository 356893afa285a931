/**
 * The client registry's wire contract (protocol §11.3): its action and notification names,
 * what their payloads hold, and the check of a request's payload. Pure: the router serves it
 * (src/router/registry.ts), `relais clients` and any UI read it.
 */
import { z } from 'zod';
import { utf8ByteLength } from './bytes.js';
import { InvalidMessageError, RelaisError } from './errors.js';
import { checkClientId } from './topics.js';

/** The registry's actions (protocol §11.3): Domogik MQ's `clients.list.get` / `clients.detail.get` on the topic scheme (protocol §2). */
export const REGISTRY_ACTIONS = {
  listGet: 'relais/clients/list/get',
  detailGet: 'relais/clients/detail/get',
} as const;

/** The registry's categories (protocol §11.3), Domogik MQ's `clients.list` / `clients.detail`: `<category>/notification`. */
export const REGISTRY_CATEGORIES = {
  list: 'relais/clients/list',
  detail: 'relais/clients/detail',
} as const;

/** A client's statuses (protocol §11.3), Domogik MQ's plugin statuses in lower case. */
export const CLIENT_STATUSES = ['starting', 'alive', 'stopped', 'dead', 'unknown'] as const;
export type ClientStatus = (typeof CLIENT_STATUSES)[number];

/** One client in a list (`relais/clients/list/get` and its notification). */
export interface ClientSummary {
  /** The identity of its client id (protocol §2.1): the id itself, or `alice` for `alice~tab1`. Sessions of one identity are grouped by it. */
  identity: string;
  /** The session of its client id (`tab1` for `alice~tab1`), when it has one. */
  session?: string;
  status: ClientStatus;
  host?: string;
  pid?: number;
  /** The `version` of the client's presence `info`, when it gives one. */
  version?: string;
  /** Epoch ms: when the registry saw it come up (`starting` or `alive` after anything else); absent while it is down. */
  connectedSince?: number;
  /** Epoch ms, the registry's clock: when the router last saw a presence of it or any message it sent (protocol §11.3). */
  lastSeen: number;
  /** The site it is a client of, from the site's roster (protocol §13.5); absent for the central's own clients. */
  site?: string;
}

/** One client in detail (`relais/clients/detail/get` and its notification). */
export interface ClientDetail extends ClientSummary {
  /** Actions served on the main lane (empty unless `alive`). */
  actions: string[];
  /** Actions served on the real-time lane (empty unless `alive`). */
  realtimeActions: string[];
  /** When this instance started (epoch ms), from its presence (protocol §7.1). */
  since?: number;
  /** Random per start (protocol §7.1), when the client gives one. */
  instance?: string;
  /** The client's free-form presence facts (role, version…): every presence field protocol §7.1 does not define. */
  info: Record<string, unknown>;
  /** Why the status is `unknown`: `presence cleared`, `invalid presence: …`, or `site <name> unreachable since <ISO time>` (protocol §13.5). */
  reason?: string;
}

/**
 * A reply or a notification: clients by id. `revision` counts the registry's changes, so a
 * reader that got a list at revision r applies only detail notifications with a larger one.
 * An answer is one page (protocol §11.3): `total` is how many clients the registry holds, and
 * `next`, when present, the `after` of the following page. The list notification is the first page.
 */
export interface ClientListPayload {
  revision: number;
  clients: Record<string, ClientSummary>;
  /** The id to send as `after` for the following page; absent on the last page. */
  next?: string;
  /** How many clients the registry holds. */
  total?: number;
}

export interface ClientDetailPayload {
  revision: number;
  clients: Record<string, ClientDetail>;
  /** The id to send as `after` for the following page; absent on the last page. */
  next?: string;
  /** How many clients the registry holds (answers without `id` only). */
  total?: number;
}

/** The detail notification: only the clients that changed; `null` for one the registry forgot (an ephemeral client that left). */
export interface ClientDetailChanges {
  revision: number;
  clients: Record<string, ClientDetail | null>;
}

const clientId = z.string().refine((id) => checkClientId(id) === undefined, { message: 'must be a client id (1-128 of letters, digits, _ . : @ -)' });

/** `relais/clients/detail/get` named a client the registry has never seen (or has forgotten). */
export class UnknownClientError extends RelaisError {
  override readonly name = 'UnknownClientError';
  constructor(id: string) {
    super('UNKNOWN_CLIENT', `the registry knows no client ${JSON.stringify(id)}`, { details: { id } });
  }
}

/** Most clients one page may ask for (`limit`, protocol §11.3). Without `limit`, a page holds as many as fit in one message. */
export const MAX_REGISTRY_PAGE_LIMIT = 1000;

/**
 * Room kept in an answer's message for what is not its `clients` (protocol §3.4): the envelope
 * (a destination of up to 128 characters, a token of up to 256), a signature, a sealed
 * message's header, and the answer's own `revision`, `total` and `next`.
 */
export const REGISTRY_ANSWER_ROOM_BYTES = 8 * 1024;

/** Where a page starts and how long it may be (protocol §11.3). */
export interface RegistryPageRequest {
  /** The page starts at the first id after this one, in code-unit order; it need not be a client the registry knows. */
  after?: string;
  /** At most this many clients (1..MAX_REGISTRY_PAGE_LIMIT); absent: as many as fit in one message. */
  limit?: number;
}

const pageFields = {
  after: clientId.optional(),
  limit: z.number().int().min(1).max(MAX_REGISTRY_PAGE_LIMIT).optional(),
};
/** `relais/clients/list/get` takes `after` and `limit`; `relais/clients/detail/get` those, or an `id` alone. */
const listRequestSchema = z.strictObject(pageFields);
const detailRequestSchema = z
  .strictObject({ id: clientId.optional(), ...pageFields })
  .refine((request) => request.id === undefined || (request.after === undefined && request.limit === undefined), {
    message: "'id' names one client: it takes no 'after' or 'limit'",
    path: ['id'],
  });

export function parseListRequest(payload: unknown): RegistryPageRequest {
  return parseRequest(listRequestSchema, payload, REGISTRY_ACTIONS.listGet);
}

export function parseDetailRequest(payload: unknown): RegistryPageRequest & { id?: string } {
  return parseRequest(detailRequestSchema, payload, REGISTRY_ACTIONS.detailGet);
}

/**
 * One page of the registry (protocol §11.3): from `ids` (sorted in code-unit order), the clients
 * after `after`, at most `limit`, and only as many as keep the JSON of `clients` within
 * `maxBytes`, measured entry by entry as it is built. At least one client when any remains, so a
 * reader always moves on. `next` is the last id taken when some remain after it.
 */
export function takePage<T>(ids: readonly string[], request: RegistryPageRequest, maxBytes: number, entryOf: (id: string) => T): { clients: Record<string, T>; next?: string } {
  const clients: Record<string, T> = {};
  let index = request.after === undefined ? 0 : firstAfter(ids, request.after);
  const end = request.limit === undefined ? ids.length : Math.min(ids.length, index + request.limit);
  let bytes = 2; // {}
  let taken = 0;
  for (; index < end; index += 1) {
    const id = ids[index]!;
    const entry = entryOf(id);
    // "id":{…} and the comma before all but the first.
    const entryBytes = utf8ByteLength(JSON.stringify(id)) + 1 + utf8ByteLength(JSON.stringify(entry)) + (taken > 0 ? 1 : 0);
    if (taken > 0 && bytes + entryBytes > maxBytes) break;
    clients[id] = entry;
    bytes += entryBytes;
    taken += 1;
  }
  return index < ids.length && taken > 0 ? { clients, next: ids[index - 1]! } : { clients };
}

/** The index of the first id greater than `after` in sorted `ids` (binary search). */
export function firstAfter(ids: readonly string[], after: string): number {
  let low = 0;
  let high = ids.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (ids[middle]! <= after) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Bytes of `clients` one answer may carry under a message limit of `maxMessageBytes` (protocol §3.4). */
export function registryAnswerBytes(maxMessageBytes: number): number {
  return Math.max(1024, maxMessageBytes - REGISTRY_ANSWER_ROOM_BYTES);
}

/**
 * Reads every page (protocol §11.3): asks with `after` set to each answer's `next` until an
 * answer has none. The result has the FIRST page's revision: a reader subscribed to the detail
 * notifications before asking applies those with a larger one, which also brings the clients
 * added before `after` while it was paging.
 */
export async function readAllPages<T>(ask: (request: RegistryPageRequest) => Promise<{ revision: number; clients: Record<string, T>; next?: string; total?: number }>): Promise<{ revision: number; clients: Record<string, T>; total: number }> {
  const first = await ask({});
  const clients: Record<string, T> = { ...first.clients };
  let next = first.next;
  let total = first.total ?? Object.keys(clients).length;
  while (next !== undefined) {
    const page = await ask({ after: next });
    Object.assign(clients, page.clients);
    total = page.total ?? total;
    // A registry that does not move on would loop forever: ids go up, or the reading stops.
    if (page.next !== undefined && page.next <= next) throw new Error(`the registry's page after ${next} says next ${page.next}: not after it`);
    next = page.next;
  }
  return { revision: first.revision, clients, total };
}

/** `null`/absent reads as `{}`; anything else must match, or InvalidMessageError names the field (protocol §5.2). */
function parseRequest<T>(schema: z.ZodType<T>, payload: unknown, action: string): T {
  const result = schema.safeParse(payload ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join('.') : '(payload)';
    return `field '${field}': ${issue.message}`;
  });
  throw new InvalidMessageError(`invalid ${action} payload: ${problems.join('; ')}`, { details: { issues: problems } });
}
