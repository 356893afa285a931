/**
 * `relais history`: the router's request history. A table on a terminal, JSON lines in a pipe;
 * `--token T` shows one request as a timeline; `--follow` goes on live (protocol §11.2).
 */
import { Command } from 'commander';
import { endsLifecycle, HISTORY_ACTIONS, HISTORY_KINDS, type HistoryPage, type HistoryQuery, type HistoryRow, type Step } from '../index.js';
import type { Bus } from '../index.js';
import { addConnectionOptions, fail, EXIT, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';
import { formatRow, formatTimelineStep } from './history-format.js';

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
    .description('the request history the router keeps: a table (a timeline with --token), JSON lines in a pipe')
    .option('--token <token>', "one request's whole lifecycle, as a timeline")
    .option('--action <action>', 'only this action')
    .option('--source <id>', 'only what this client sent')
    .option('--target <id>', 'only what was sent to this client')
    .option('--site <name>', "only rows pulled from this site's history (protocol §13.5)")
    .option('--kind <kind>', `only these rows: ${HISTORY_KINDS.join(', ')}`)
    .option('--code <n>', 'only responses with this code (0 ok, 1 error...)')
    .option('--since <when>', 'only rows recorded since: 30s, 10m, 2h, 7d or a date')
    .option('-n, --limit <n>', 'how many of the newest rows', '50')
    .option('-f, --follow', 'then go on with new rows as they are recorded (with --token: until the request ends)')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: HistoryOptions) => {
      const query = queryOf(options);
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) fail(EXIT.USAGE, `--limit must be a whole number from 1 to 10000, got ${options.limit}`);
      const interactive = process.stdout.isTTY && !options.json;
      await withRouter(options, HISTORY_ACTIONS.get, 'the history is kept by the router', async (bus, signal) => {
        const print = printer(interactive, options.token !== undefined);
        const shown = await showStored(bus, query, options.token !== undefined ? 10_000 : limit, print);
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

/** Prints the newest `limit` matching rows, oldest first, and returns them. */
async function showStored(bus: Bus, query: HistoryQuery, limit: number, print: Print): Promise<HistoryRow[]> {
  const page = (await bus.request(HISTORY_ACTIONS.get, { ...query, order: 'newest', limit })) as HistoryPage;
  const rows = page.rows.reverse();
  for (const row of rows) print(row);
  return rows;
}

/** New rows as the router records them, until the request ends (with a token) or Ctrl-C. */
async function followLive(bus: Bus, query: HistoryQuery, signal: AbortSignal, print: Print): Promise<void> {
  const steps: AsyncIterable<Step> = bus.call(HISTORY_ACTIONS.follow, query, { timeout: 2 ** 31 - 1, signal });
  for await (const step of steps) {
    if (step.kind === 'progress') for (const row of step.payload as HistoryRow[]) print(row);
    else if (step.kind === 'final' && step.payload) print(step.payload as HistoryRow);
  }
}
