/**
 * Relais's own HTTP API (docs/http-api.md): send a command, read the history, the registry and
 * the event stream, kill a request. Each route asks the bus what `relais` CLI commands ask, as
 * the client `relais-web`, and declares the topics it acts on for its caller (`access`), which
 * the policy decides before the route runs (route.ts, auth.ts).
 */
import { HISTORY_ACTIONS, KILL_ACTION, KILL_WAIT_MS } from '../protocol/history.js';
import { REGISTRY_ACTIONS } from '../protocol/registry.js';
import { EVENTS_ACTION } from '../protocol/events.js';
import { requestTopic } from '../protocol/topics.js';
import { ApiError, fromBusError } from './errors.js';
import { ask, checkSendable, forCaller, newToken, providersSettled, QUERY_TIMEOUT_MS, type WebContext } from './context.js';
import { route } from './route.js';
import { publishes } from './route-access.js';
import * as s from './schemas.js';
import { eventStreamAccess, serveEventStream, wantsEventStream } from './sse.js';

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export function relaisRoutes(context: WebContext): void {
  const { app, table, guard, bus } = context;

  route(
    app,
    table,
    guard,
    {
      method: 'POST',
      url: '/api/actions/*',
      path: '/api/actions/{action}',
      tag: 'requests',
      summary: 'send a command: the JSON body is its payload; 202 with its token at once, the request goes on on the bus and its lifecycle lands in the history',
      params: s.actionParams,
      query: s.actionQuery,
      status: 202,
      response: s.tokenAnswer,
      errors: [400, 404, 413, 415],
      access: { acts: ({ params, query }) => [publishes(requestTopic(params['*'], query.target))] },
    },
    async ({ params, query, body, caller }) => {
      const action = params['*'];
      checkSendable(body);
      if ((await providersSettled(context, action, query.target)).length === 0) {
        throw new ApiError(404, 'unknown_action', query.target && query.target !== '*' ? `${query.target} is not alive or does not serve ${action}` : `no client serves ${action}`);
      }
      const token = newToken();
      const steps = bus.call(action, body ?? null, {
        token,
        timeout: query.timeout ?? DEFAULT_REQUEST_TIMEOUT_MS,
        ...(query.target !== undefined && { target: query.target }),
        ...(query.priority !== undefined && { priority: query.priority }),
        ...forCaller(caller),
      });
      // The request goes on without the HTTP caller: its steps land in the router's history.
      void (async () => {
        try {
          for await (const _step of steps);
        } catch (error) {
          context.log(`request ${token} (${action}) ended: ${(error as Error).message}`);
        }
      })();
      return { token };
    },
  );

  route(
    app,
    table,
    guard,
    { method: 'GET', url: '/api/history', path: '/api/history', tag: 'history', summary: "the router's history rows (protocol §11.2 relais/history/get); filters ANDed", query: s.historyQuery, status: 200, response: s.historyPage, errors: [400, 503, 504], access: { acts: () => [publishes(requestTopic(HISTORY_ACTIONS.get))] } },
    async ({ query, caller }) => {
      return ask(context, HISTORY_ACTIONS.get, query, 'the history', caller);
    },
  );

  route(
    app,
    table,
    guard,
    { method: 'GET', url: '/api/history/:token', path: '/api/history/{token}', tag: 'history', summary: "one request's rows, oldest first: its whole lifecycle", params: s.tokenParams, status: 200, response: s.historyPage, errors: [404, 503, 504], access: { acts: () => [publishes(requestTopic(HISTORY_ACTIONS.get))] } },
    async ({ params, caller }) => {
      const page = (await ask(context, HISTORY_ACTIONS.get, { token: params.token, limit: 10_000 }, 'the history', caller)) as { rows: unknown[] };
      if (page.rows.length === 0) throw new ApiError(404, 'unknown_token', `token ${params.token} is not in the history`);
      return page;
    },
  );

  route(
    app,
    table,
    guard,
    { method: 'GET', url: '/api/clients', path: '/api/clients', tag: 'clients', summary: "a page of the router's client registry, in id order (protocol §11.3 relais/clients/list/get); more: ask again with after = next", query: s.clientsQuery, status: 200, response: s.clientList, errors: [400, 503, 504], access: { acts: () => [publishes(requestTopic(REGISTRY_ACTIONS.listGet))] } },
    async ({ query, caller }) => {
      return ask(context, REGISTRY_ACTIONS.listGet, query, 'the client registry', caller);
    },
  );

  route(
    app,
    table,
    guard,
    { method: 'GET', url: '/api/clients/:id', path: '/api/clients/{id}', tag: 'clients', summary: 'one client in detail (relais/clients/detail/get): served actions, info', params: s.clientParams, status: 200, response: s.clientList, errors: [400, 404, 503, 504], access: { acts: () => [publishes(requestTopic(REGISTRY_ACTIONS.detailGet))] } },
    async ({ params, caller }) => {
      return ask(context, REGISTRY_ACTIONS.detailGet, { id: params.id }, 'the client registry', caller);
    },
  );

  route(
    app,
    table,
    guard,
    {
      method: 'GET',
      url: '/api/events',
      path: '/api/events',
      tag: 'events',
      summary: "the router's event stream (protocol §11.8 relais/events/get); with Accept: text/event-stream, the live stream as /api/events/stream",
      query: s.eventsQuery,
      status: 200,
      response: s.eventsPage,
      errors: [400, 503, 504],
      access: { acts: ({ query, request }) => (wantsEventStream(request) ? eventStreamAccess(request, query.since) : [publishes(requestTopic(EVENTS_ACTION))]) },
    },
    async ({ query, caller, request, reply }) => {
      if (wantsEventStream(request)) return serveEventStream(context, caller, request, reply, query.since);
      return ask(context, EVENTS_ACTION, query, 'the event stream', caller);
    },
  );

  route(
    app,
    table,
    guard,
    {
      method: 'GET',
      url: '/api/events/stream',
      path: '/api/events/stream',
      tag: 'events',
      summary: 'the event stream as Server-Sent Events: id = cursor; resumes after Last-Event-ID (or since) without a gap; event "gap" when retention removed events',
      query: s.streamQuery,
      status: 200,
      produces: 'text/event-stream',
      errors: [400],
      access: { acts: ({ query, request }) => eventStreamAccess(request, query.since) },
    },
    async ({ query, caller, request, reply }) => serveEventStream(context, caller, request, reply, query.since),
  );

  route(
    app,
    table,
    guard,
    {
      method: 'POST',
      url: '/api/kill/:token',
      path: '/api/kill/{token}',
      tag: 'requests',
      summary: 'cancel a running request by its token (protocol §11.5); optional body {"reason", "wait"}; killed is true only once the handler confirmed (its code-5 answer) or disappeared',
      params: s.tokenParams,
      body: s.killBody,
      status: 200,
      response: s.killAnswer,
      errors: [404, 409, 503, 504],
      // The router then checks whose request it is, for the caller the API names (protocol
      // §11.5): its own, or anyone's with requests:kill-any.
      access: { acts: () => [publishes(requestTopic(KILL_ACTION))] },
    },
    async ({ params, body, caller }) => {
      const reason = body?.reason ?? `killed over HTTP${caller ? ` by ${caller.identity}` : ''}`;
      const wait = body?.wait ?? KILL_WAIT_MS.default;
      try {
        return await bus.request(KILL_ACTION, { token: params.token, reason, wait }, { timeout: wait + QUERY_TIMEOUT_MS, ...forCaller(caller) });
      } catch (error) {
        throw fromBusError(error, 'the kill');
      }
    },
  );
}
