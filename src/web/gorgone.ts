/**
 * Centreon Gorgone-compatible routes (docs/http-api.md "Gorgone-compatible routes"), so a
 * Gorgone HTTP client works unchanged: `POST /api/core/action/command` runs its commands with
 * an agent's `system/command/batch` (docs/agent.md), `GET /api/log/<token>` reads the token's
 * history as Gorgone's log rows (gorgone-log.ts). Errors take Gorgone's shape (`{error, message}`).
 */
import os from 'node:os';
import { z } from 'zod';
import { HISTORY_ACTIONS, type HistoryPage } from '../protocol/history.js';
import { checkClientId, requestTopic } from '../protocol/topics.js';
import { ask, checkSendable, forCaller, newToken, providersSettled, type WebContext } from './context.js';
import { ApiError } from './errors.js';
import { BATCH_ACTION, filterLog, gorgoneLog } from './gorgone-log.js';
import { route } from './route.js';
import { publishes } from './route-access.js';
import type { BusAccess } from '../security/authorizer.js';

/** Gorgone's default per-command time-out (seconds), used to bound the whole batch. */
const GORGONE_COMMAND_TIMEOUT_S = 30;
const MARGIN_MS = 10_000;

/** The paths whose errors take Gorgone's shape. */
export function isGorgonePath(url: string): boolean {
  return /^\/api\/(log|nodes|core|internal|centreon)(\/|$|\?)/.test(url);
}

/** Gorgone's error bodies (its docs/api.md "Errors"). */
export function gorgoneError(error: ApiError): { error: string; message: string } {
  if (error.status === 401) return { error: 'http_error_401', message: 'unauthorized' };
  if (error.status === 403) return { error: 'http_error_403', message: 'forbidden' };
  if (error.code === 'bad_json') return { error: 'decode_error', message: 'Cannot decode response' };
  return { error: error.code, message: error.message };
}

const nodeParams = z.object({ id: z.string().refine((value) => !checkClientId(value), 'a client id (protocol §2.1)').describe('the node: the agent client id') }).strict();
const logParams = z.object({ token: z.string().min(1).max(1024) }).strict();
const nodeLogParams = nodeParams.extend({ token: z.string().min(1).max(1024) }).strict();
const logQuery = z
  .object({
    code: z.coerce.number().int().optional().describe('only rows with this code'),
    limit: z.coerce.number().int().min(1).optional().describe('only the last x rows'),
    ctime: z.coerce.number().int().optional().describe('only rows stored at or after this time (seconds)'),
    etime: z.coerce.number().int().optional().describe('only rows of an event after this time (seconds)'),
  })
  .describe("Gorgone's log filters");
const commandsBody = z
  .array(
    z
      .object({
        command: z.string().min(1).describe('a command line, run by /bin/sh -c where the agent allow-list has a shell rule for it'),
        timeout: z.number().positive().optional().describe('seconds; default the agent defaultTimeout'),
        continue_on_error: z.boolean().optional().describe('go on with the next command after a failure; default false'),
      })
      .passthrough(),
  )
  .min(1)
  .max(100);
const tokenAnswer = z.object({ token: z.string() });
const logAnswer = z.object({
  data: z.array(z.object({ ctime: z.number().int(), etime: z.number().int(), id: z.string(), instant: z.number().int(), data: z.string().describe('JSON text'), token: z.string(), code: z.number().int() })),
  token: z.string(),
  message: z.string().describe('"Logs found"'),
  error: z.string().optional().describe('"no_log" when the token has no row (the answer is still 200, data empty)'),
});

export function gorgoneRoutes(context: WebContext): void {
  const { app, table, guard, bus } = context;

  type Caller = Parameters<typeof guard.authorise>[0];
  const runCommands = async (node: string | undefined, commands: z.output<typeof commandsBody>, caller: Caller, authorise: (accesses: readonly BusAccess[]) => void) => {
    checkSendable(commands);
    const agent = node !== undefined ? (await providersSettled(context, BATCH_ACTION, node))[0] : (await agentOfThisHost(context))[0];
    const token = newToken();
    if (agent === undefined) {
      const why = node !== undefined ? `node ${node} is not alive or does not serve ${BATCH_ACTION}` : `no agent serving ${BATCH_ACTION} runs on this host (${os.hostname()}): start relais agent with services.command`;
      // The log ends at once, with the reason, where a Gorgone client will look for it.
      await ask(context, HISTORY_ACTIONS.put, { token, action: BATCH_ACTION, code: 1, data: { message: why } }, 'writing the log', caller);
      context.log(`Gorgone command ${token} not run: ${why}`);
      return { token };
    }
    // The agent found for this host: a command targeted at it.
    authorise([publishes(requestTopic(BATCH_ACTION, agent))]);
    const budgetMs = commands.reduce((sum, command) => sum + (command.timeout ?? GORGONE_COMMAND_TIMEOUT_S) * 1000, MARGIN_MS);
    const steps = bus.call(BATCH_ACTION, commands, { token, target: agent, timeout: Math.min(budgetMs, 24 * 3600 * 1000), ...forCaller(caller) });
    void (async () => {
      try {
        for await (const _step of steps);
      } catch (error) {
        context.log(`Gorgone command ${token} on ${agent} ended: ${(error as Error).message}`);
      }
    })();
    return { token };
  };

  const commandSpec = { method: 'POST', tag: 'gorgone', body: commandsBody, status: 200, response: tokenAnswer, errors: [400] } as const;
  route(
    app,
    table,
    guard,
    { ...commandSpec, url: '/api/core/action/command', path: '/api/core/action/command', summary: "Gorgone's COMMAND on the agent serving this host: [{command, timeout, continue_on_error}]; answers {token} at once", access: { acts: () => [publishes(requestTopic(BATCH_ACTION))] } },
    async ({ body, caller, authorise }) => runCommands(undefined, body, caller, authorise),
  );
  route(
    app,
    table,
    guard,
    { ...commandSpec, url: '/api/nodes/:id/core/action/command', path: '/api/nodes/{id}/core/action/command', params: nodeParams, summary: "Gorgone's COMMAND on the node (agent) {id}", access: { acts: ({ params }) => [publishes(requestTopic(BATCH_ACTION, params.id))] } },
    async ({ params, body, caller, authorise }) => runCommands(params.id, body, caller, authorise),
  );

  const readLog = async (token: string, query: z.output<typeof logQuery>, caller: Caller) => {
    const page = (await ask(context, HISTORY_ACTIONS.get, { token, limit: 10_000 }, 'the log', caller)) as HistoryPage;
    const data = filterLog(gorgoneLog(page.rows), query);
    if (page.rows.length === 0) return { error: 'no_log', message: 'No log found for token', data: [], token };
    return { message: 'Logs found', token, data };
  };
  const logSpec = { method: 'GET', tag: 'gorgone', query: logQuery, status: 200, response: logAnswer, summary: "a token's log in Gorgone's shape, from the router's history", access: { acts: () => [publishes(requestTopic(HISTORY_ACTIONS.get))] } } as const;
  route(app, table, guard, { ...logSpec, url: '/api/log/:token', path: '/api/log/{token}', params: logParams }, async ({ params, query, caller }) => readLog(params.token, query, caller));
  route(app, table, guard, { ...logSpec, url: '/api/nodes/:id/log/:token', path: '/api/nodes/{id}/log/{token}', params: nodeLogParams }, async ({ params, query, caller }) =>
    readLog(params.token, query, caller),
  );
}

/** The agents on this machine serving the batch action: presence `host` is this host name. */
async function agentOfThisHost(context: WebContext): Promise<string[]> {
  const serving = new Set(await providersSettled(context, BATCH_ACTION));
  return context.bus
    .clients()
    .filter((client) => serving.has(client.id) && client.host === os.hostname())
    .map((client) => client.id)
    .sort();
}
