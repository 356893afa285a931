/**
 * `relais history`: the router's request history (protocol §11.2). One row per request by
 * default (who asked, who handled it, how it ended, how long it took), `--steps` for the rows
 * themselves; aligned columns on a terminal, JSON lines in a pipe; `--token T` shows one request
 * as a timeline; `--follow` goes on live: a row per request as it ends (with `--steps`, per step).
 */
import { Command } from 'commander';
import { endsLifecycle, HISTORY_ACTIONS, HISTORY_KINDS, type HistoryPage, type HistoryQuery, type HistoryRow, type Step } from '../library.js';
import type { Bus } from '../library.js';
import { addConnectionOptions, fail, EXIT, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';
import { formatRow, formatSteps, formatTimelineStep, requestTable } from './history-format.js';
import { RequestFollower } from './history-follow.js';
import { summarise, SUMMARY_ROWS, type RequestSummary } from '../protocol/history-requests.js';
import { followRows } from '../client/requesting/index.js';

interface HistoryOptions extends GlobalOptions {
  token?: string;
  action?: string;
  source?: string;
  target?: string;
  site?: string;
  kind?: string;
  code?: string;
  since?: string;
  limit: string;
  follow?: boolean;
  steps?: boolean;
  json?: boolean;
}

/** `10m`, `2h`, `30s`, `7d`, or a date: the epoch ms it means. */
export function parseSince(text: string, now = Date.now()): number | undefined {
  const relative = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text);
  if (relative) return now - Number(relative[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 's' | 'm' | 'h' | 'd'];
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : date;
}

export function historyCommand(): Command {
  return addConnectionOptions(new Command('history'))
    .description('the request history the router keeps, one row per request (--steps: per step; --token: a timeline): aligned columns on a terminal, JSON lines in a pipe')
    .option('--token <token>', "one request's whole lifecycle, as a timeline")
    .option('--action <action>', 'only this action')
    .option('--source <id>', 'only what this client sent (per request: its requester)')
    .option('--target <id>', 'only what was sent to this client (per request: the handler it was sent to)')
    .option('--site <name>', "only rows pulled from this site's history (protocol §13.5)")
    .option('--steps', 'one row per step (command, accepted, progress, final…) instead of one per request')
    .option('--kind <kind>', `only these rows: ${HISTORY_KINDS.join(', ')} (implies --steps)`)
    .option('--code <n>', 'only responses with this code: 0 ok, 1 error... (implies --steps)')
    .option('--since <when>', 'only rows recorded since: 30s, 10m, 2h, 7d or a date')
    .option('-n, --limit <n>', 'how many of the newest requests (rows with --steps)', '50')
    .option('-f, --follow', 'then go on live: a row per request as it ends, also for one shown running (with --steps: each step as it is recorded; with --token: until the request ends)')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: HistoryOptions) => {
      const query = queryOf(options);
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) fail(EXIT.USAGE, `--limit must be a whole number from 1 to 10000, got ${options.limit}`);
      const interactive = process.stdout.isTTY && !options.json;
      const perRequest = !options.steps && options.token === undefined && options.kind === undefined && options.code === undefined;
      await withRouter(options, HISTORY_ACTIONS.get, 'the history is kept by the router', async (bus, signal) => {
        if (perRequest) {
          // Read before the table: a request that ends between the two is seen by the follow, not lost.
          const afterId = options.follow ? await newestRowId(bus, query) : undefined;
          const requests = await newestRequests(bus, query, limit);
          let print: (request: RequestSummary) => void = writeLine;
          if (interactive) {
            const table = requestTable(requests);
            print = (request) => process.stdout.write(`${table.line(request)}\n`);
            if (requests.length > 0 || options.follow) process.stdout.write(`${table.header}\n`);
            else process.stderr.write('relais: no matching requests in the history\n');
          }
          for (const request of requests) print(request);
          if (afterId !== undefined) await followRequests(bus, query, afterId, requests, signal, print);
          return;
        }
        const print = printer(interactive, options.token !== undefined);
        const shown = await showStored(bus, query, options.token !== undefined ? 10_000 : limit, print, interactive && options.token === undefined);
        // A request already ended has nothing more to follow.
        const ended = options.token !== undefined && shown.some(endsLifecycle);
        if (options.follow && !ended) await followLive(bus, { ...query, ...(shown.length > 0 && { afterId: shown.at(-1)!.id }) }, signal, print);
        else if (shown.length === 0 && interactive) process.stderr.write('relais: no matching rows in the history\n');
      });
    });
}

function queryOf(options: HistoryOptions): HistoryQuery {
  const query: HistoryQuery = {};
  if (options.token !== undefined) query.token = options.token;
  if (options.action !== undefined) query.action = options.action;
  if (options.source !== undefined) query.source = options.source;
  if (options.target !== undefined) query.target = options.target;
  if (options.site !== undefined) query.site = options.site;
  if (options.kind !== undefined) {
    if (!(HISTORY_KINDS as readonly string[]).includes(options.kind)) fail(EXIT.USAGE, `--kind must be one of ${HISTORY_KINDS.join(', ')}`);
    query.kind = options.kind as HistoryQuery['kind'];
  }
  if (options.code !== undefined) {
    const code = Number(options.code);
    if (!Number.isInteger(code)) fail(EXIT.USAGE, `--code must be a whole number, got ${options.code}`);
    query.code = code;
  }
  if (options.since !== undefined) {
    const since = parseSince(options.since);
    if (since === undefined) fail(EXIT.USAGE, `--since must be like 30s, 10m, 2h, 7d or a date, got ${options.since}`);
    query.ctimeFrom = Math.max(0, Math.floor(since));
  }
  return query;
}

type Print = (row: HistoryRow) => void;

function printer(interactive: boolean, timeline: boolean): Print {
  if (!interactive) return (row) => writeLine(row);
  if (!timeline) return (row) => process.stdout.write(`${formatRow(row)}\n`);
  let first: HistoryRow | undefined;
  return (row) => {
    first ??= row;
    process.stdout.write(`${formatTimelineStep(row, first)}\n`);
  };
}

/** Prints the newest `limit` matching rows, oldest first (`aligned`: as one table under a header), and returns them. */
async function showStored(bus: Bus, query: HistoryQuery, limit: number, print: Print, aligned: boolean): Promise<HistoryRow[]> {
  const page = (await bus.request(HISTORY_ACTIONS.get, { ...query, order: 'newest', limit })) as HistoryPage;
  // Sealed rows this identity holds a key for (--sealing-key) read opened (protocol §3.6, §11.1).
  const rows = bus.openRows(page.rows).reverse();
  if (aligned && rows.length > 0) process.stdout.write(`${formatSteps(rows)}\n`);
  else for (const row of rows) print(row);
  return rows;
}

/**
 * The newest `limit` requests matching the filters, oldest first: their command rows, then the
 * newest rows of each token (asked side by side), summarised (protocol §11.1's rows read as
 * outcomes). Filters on a command row: `source` is the requester, `target` the handler it was sent to.
 */
async function newestRequests(bus: Bus, query: HistoryQuery, limit: number): Promise<RequestSummary[]> {
  const { page: commands, router } = await askHistory(bus, { ...query, kind: 'command', order: 'newest', limit });
  // A command offered again (§4.7) is another command row of the same token: one request.
  const firsts = new Map<string, HistoryRow>();
  for (const command of commands.rows) firsts.set(command.token, command);
  const summaries = await Promise.all(
    [...firsts.values()].sort((a, b) => b.id - a.id).map(async (command) => {
      // From the router that listed it: another one (a site's router, a second router) keeps other rows, or none, under that token.
      const rows = (await bus.request(HISTORY_ACTIONS.get, { token: command.token, order: 'newest', limit: SUMMARY_ROWS }, { target: router })) as HistoryPage;
      return summarise(bus.openRows([command])[0]!, bus.openRows(rows.rows));
    }),
  );
  return summaries.reverse();
}

/** One page of the history and the router that answered it. */
async function askHistory(bus: Bus, query: HistoryQuery & { order: 'newest'; limit: number }): Promise<{ page: HistoryPage; router: string }> {
  for await (const step of bus.call(HISTORY_ACTIONS.get, query)) if (step.kind === 'final') return { page: step.payload as HistoryPage, router: step.source };
  throw new Error(`${HISTORY_ACTIONS.get} ended without an answer`);
}

/** The id of the newest row matching the filters a follow uses, 0 when none: a follow of requests starts after it. */
async function newestRowId(bus: Bus, query: HistoryQuery): Promise<number> {
  const { source: _source, target: _target, ...rows } = query;
  const page = (await bus.request(HISTORY_ACTIONS.get, { ...rows, order: 'newest', limit: 1 })) as HistoryPage;
  return page.rows[0]?.id ?? 0;
}

/**
 * Requests as they end, until Ctrl-C: the router streams every step after `afterId` and the
 * follower folds them (src/cli/history-follow.ts). `source` and `target` filter whole requests
 * (the requester; the handler), not steps: a request's end comes from its handler, or the router.
 */
async function followRequests(bus: Bus, query: HistoryQuery, afterId: number, shown: readonly RequestSummary[], signal: AbortSignal, print: (request: RequestSummary) => void): Promise<void> {
  const { source, target, ...rows } = query;
  const follower = new RequestFollower({
    print,
    fetchRows: async (token) => bus.openRows(((await bus.request(HISTORY_ACTIONS.get, { token, order: 'newest', limit: SUMMARY_ROWS })) as HistoryPage).rows),
    shows: (request) => (source === undefined || request.requester === source) && (target === undefined || request.handler === target),
  });
  for (const request of shown) if (request.outcome !== 'running') follower.markEnded(request.token);
  try {
    await followLive(bus, { ...rows, afterId }, signal, (row) => follower.add(row));
  } finally {
    await follower.flush();
  }
}

/** New rows as the router records them, until the request ends (with a token) or Ctrl-C; resumed after lost connections, none missed or doubled. */
async function followLive(bus: Bus, query: HistoryQuery, signal: AbortSignal, print: Print): Promise<void> {
  const { afterId, ...rest } = query;
  for await (const row of followRows(bus, rest, { timeout: 2 ** 31 - 1, signal, ...(afterId !== undefined && { afterId }) })) print(bus.openRows([row])[0]!);
}
