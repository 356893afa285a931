/**
 * The client registry's wire contract (protocol §11.3): its action and notification names,
 * what their payloads hold, and the check of a request's payload. Pure: the router serves it
 * (src/router/registry.ts), `relais clients` and any UI read it.
 */
import { z } from 'zod';
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
 */
export interface ClientListPayload {
  revision: number;
  clients: Record<string, ClientSummary>;
}

export interface ClientDetailPayload {
  revision: number;
  clients: Record<string, ClientDetail>;
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

/** `relais/clients/list/get` takes no field; `relais/clients/detail/get` an optional `id`. */
const listRequestSchema = z.strictObject({});
const detailRequestSchema = z.strictObject({ id: clientId.optional() });

export function parseListRequest(payload: unknown): Record<string, never> {
  return parseRequest(listRequestSchema, payload, REGISTRY_ACTIONS.listGet) as Record<string, never>;
}

export function parseDetailRequest(payload: unknown): { id?: string } {
  return parseRequest(detailRequestSchema, payload, REGISTRY_ACTIONS.detailGet);
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
