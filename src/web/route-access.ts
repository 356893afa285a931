/**
 * Every route of the web server says what it touches (docs/http-api.md "Authentication and
 * authorisation"), so that none can forget to be authorised: the bus topics an API route acts
 * on for its caller (decided by the Authorizer before the route's handler runs, route.ts), or
 * why it is open to anyone, or that the broker decides what it carries (`/mqtt`). The server
 * refuses to register a route that does not say (`requireDeclaredAccess`), and keeps the list of
 * what it registered, which a test walks.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import type { BusAccess } from '../security/authorizer.js';

/** What a route's caller needs, from its validated request. */
export type AccessOf<P = unknown, Q = unknown, B = unknown> = (input: { params: P; query: Q; body: B; request: FastifyRequest }) => BusAccess[];

export type RouteAccess<P = unknown, Q = unknown, B = unknown> =
  /** An identity (with security on), allowed each of these accesses by the policy. */
  | { acts: AccessOf<P, Q, B> }
  /** No identity: what it serves is public; says why. */
  | { open: string }
  /** An MQTT connection to the broker, which authenticates it and decides each packet as any client's; says so. */
  | { broker: string };

/** A publish on `topic`: what a client sending a command there needs. */
export const publishes = (topic: string): BusAccess => ({ operation: 'publish', topic });
/** A subscribe to `filter`: what a client reading it needs. */
export const subscribes = (filter: string): BusAccess => ({ operation: 'subscribe', topic: filter });

/** A route as the server registered it. */
export interface DeclaredRoute {
  method: string;
  url: string;
  access: RouteAccess<any, any, any>;
}

/** Where a route's declaration travels: its Fastify `config`. */
export function accessConfig(access: RouteAccess<any, any, any>): { access: RouteAccess<any, any, any> } {
  return { access };
}

/** A child context whose routes all get `access` (routes a plugin registers, such as the page's static files). */
const CONTEXT_ACCESS = 'relaisRouteAccess';

/**
 * Registers `plugin` in a child context of `app` whose routes, which cannot carry a `config`
 * of ours (a plugin's), all have `access`.
 */
export async function registerWithAccess(app: FastifyInstance, access: RouteAccess, plugin: (child: FastifyInstance) => Promise<void>): Promise<void> {
  await app.register(async (child) => {
    child.decorate(CONTEXT_ACCESS, access as never);
    await plugin(child);
  });
}

/**
 * Makes `app` refuse (throw, so the server does not start) a route that does not declare its
 * access; returns the routes registered, each with its declaration.
 */
export function requireDeclaredAccess(app: FastifyInstance): readonly DeclaredRoute[] {
  const routes: DeclaredRoute[] = [];
  app.addHook('onRoute', function (this: FastifyInstance, options: RouteOptions) {
    const declared = (options.config as { access?: RouteAccess } | undefined)?.access ?? (this as unknown as Record<string, RouteAccess | undefined>)[CONTEXT_ACCESS];
    const methods = ([] as string[]).concat(options.method);
    if (!declared) throw new Error(`route ${methods.join(',')} ${options.url} does not declare what it touches: give it an access (route-access.ts: { acts }, { open } or { broker })`);
    for (const method of methods) routes.push({ method, url: options.url, access: declared });
  });
  return routes;
}
