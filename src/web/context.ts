/** What every route module shares: the bus client, the guard, the route table, the log, and asking the bus. */
import type { FastifyInstance } from 'fastify';
import type { Bus } from '../client/bus.js';
import type { RequestOptions } from '../client/types.js';
import { encodeJson } from '../protocol/envelope.js';
import type { Caller, Guard } from './auth.js';
import { ApiError, fromBusError } from './errors.js';
import type { RouteTable } from './route.js';

/** How long the API waits for the router's answer to a query. */
export const QUERY_TIMEOUT_MS = 10_000;

/** A request token made by the API: the library's own (random, protocol §3.1). */
export { newToken } from '../client/tokens.js';

/**
 * What the API sends on the bus it sends for its caller (protocol §11.2): the command names the
 * caller's identity, so the router records it as the author and answers as it would the caller.
 */
export function forCaller(caller: Caller | undefined): Pick<RequestOptions, 'onBehalfOf'> {
  return caller ? { onBehalfOf: caller.identity } : {};
}

/** Asks the router (or any handler) for `caller` and turns its failure into an HTTP error. */
export async function ask(context: WebContext, action: string, payload: unknown, what: string, caller: Caller | undefined): Promise<unknown> {
  try {
    return await context.bus.request(action, payload, { timeout: QUERY_TIMEOUT_MS, ...forCaller(caller) });
  } catch (error) {
    throw fromBusError(error, what);
  }
}

/**
 * A body the bus cannot carry is refused here (400), not after answering 202: JSON.parse reads
 * any depth, but encoding it again recurses, and fails on a body nested deeply enough.
 */
export function checkSendable(body: unknown): void {
  try {
    encodeJson(body ?? null, { what: 'the body' });
  } catch (error) {
    const why = error instanceof RangeError || (error as Error).cause instanceof RangeError ? 'it is nested too deeply to be encoded again' : (error as Error).message;
    throw new ApiError(400, 'unsendable_body', `the body cannot be sent on the bus: ${why}`);
  }
}

export interface WebContext {
  app: FastifyInstance;
  bus: Bus;
  guard: Guard;
  table: RouteTable;
  log: (line: string) => void;
  /** When the bus client's directory can be trusted to list every handler (protocol §7.2). */
  directorySettledAt: number;
}

/** The clients the bus client's directory says serve `action` (to `target` when given), alive. */
export function providers(bus: Bus, action: string, target?: string): string[] {
  return bus
    .clients()
    .filter((client) => client.status === 'alive' && client.lifecycle !== 'starting')
    .filter((client) => target === undefined || target === '*' || client.id === target)
    .filter((client) => client.actions.includes(action) || client.realtimeActions?.includes(action) || (target !== undefined && target !== '*' && client.targetedActions?.includes(action)))
    .map((client) => client.id);
}

/** `providers`, waiting while the directory settles after the API's connection (protocol §7.2). */
export async function providersSettled(context: WebContext, action: string, target?: string): Promise<string[]> {
  const found = providers(context.bus, action, target);
  const unsettledFor = context.directorySettledAt - Date.now();
  if (found.length > 0 || unsettledFor <= 0) return found;
  try {
    await context.bus.waitForHandler(action, { ...(target !== undefined && target !== '*' && { target }), timeout: unsettledFor });
  } catch {
    return [];
  }
  return providers(context.bus, action, target);
}
