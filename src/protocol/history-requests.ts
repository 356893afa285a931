/**
 * The history one request per row, as a person reads it — who asked, who handled it, how it
 * ended in words and how long it took — from the rows of its token (protocol §11.1): a code 6
 * or a `requester time-out` cancel is a time-out (§4.5), code 5 a cancel (§4.4), a `kill` row
 * that killed names who asked (§11.5). Pure: `relais history` reads it; a page can too.
 */
import type { HistoryRow } from './history.js';

/** How a request ended, in words: `running` while nothing ended it. */
export const REQUEST_OUTCOMES = ['running', 'ok', 'failed', 'timed out', 'cancelled', 'killed'] as const;
export type RequestOutcome = (typeof REQUEST_OUTCOMES)[number];

/** Rows of one token a summary reads (its newest): the end, the kill and the handler are among them. */
export const SUMMARY_ROWS = 50;

export interface RequestSummary {
  /** The command row's id. */
  id: number;
  token: string;
  action: string;
  /** Who sent the command. */
  requester: string;
  /** The handler that answered (the source of its responses), else the command's target, when known. */
  handler?: string;
  outcome: RequestOutcome;
  /** The final answer's code, when one came. */
  code?: number;
  /** For `failed`: the error's message; for `cancelled`, the cancel's reason. */
  message?: string;
  /** For `killed`: who asked for the kill (protocol §11.5). */
  by?: string;
  /** When the command was sent (its `ts`, epoch ms). */
  started: number;
  /** From the command's `ts` to the end's, in ms; absent while `running`. */
  durationMs?: number;
  /** The last progress fraction, while running. */
  progress?: number;
  /** The site whose history it was pulled from (protocol §13.5). */
  site?: string;
}

/** A JSON text's value, or undefined. */
function parse(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

/**
 * One request from a command row and the newest rows of its token (any order). A command offered
 * again (a new `acceptBy`, §4.7) is a second command row of the same token: the first one seen
 * says when the request started.
 */
export function summarise(latest: HistoryRow, rows: readonly HistoryRow[]): RequestSummary {
  const byId = [...rows].sort((a, b) => a.id - b.id);
  const command = byId.find((row) => row.kind === 'command' && row.id <= latest.id) ?? latest;
  const responses = byId.filter((row) => row.kind === 'accepted' || row.kind === 'progress' || row.kind === 'final' || row.kind === 'error');
  const end = byId.find((row) => row.kind === 'final' || row.kind === 'error' || row.kind === 'put');
  const kill = byId.find((row) => row.kind === 'kill');
  const cancel = byId.find((row) => row.kind === 'cancel');
  const handler = responses[0]?.source ?? (command.target !== undefined && command.target !== '*' ? command.target : undefined);
  const cancelReason = cancel ? field(parse(cancel.data), 'reason') : undefined;
  const summary: RequestSummary = {
    id: command.id,
    token: command.token,
    action: command.action,
    requester: command.source,
    ...(handler !== undefined && { handler }),
    outcome: 'running',
    started: command.etime,
    ...(command.site !== undefined && { site: command.site }),
  };
  const finish = (outcome: RequestOutcome, at: number, extra: Partial<RequestSummary> = {}) => ({ ...summary, outcome, durationMs: Math.max(0, at - command.etime), ...extra });
  const killed = kill ? field(parse(kill.data), 'outcome') : undefined;
  if (kill && (killed === 'cancelled' || killed === 'handler-gone')) return finish('killed', (end ?? kill).etime, { by: kill.source, ...(end?.code !== undefined && { code: end.code }) });
  if (end) {
    const code = end.code ?? (end.kind === 'error' ? 1 : 0);
    if (code === 0) return finish('ok', end.etime, { code });
    if (code === 6 || cancelReason === 'requester time-out') return finish('timed out', end.etime, { code });
    if (code === 5) return finish('cancelled', end.etime, { code, ...(typeof cancelReason === 'string' && { message: cancelReason }) });
    const error = field(parse(end.data), 'error');
    const message = field(error, 'message');
    return finish('failed', end.etime, { code, ...(typeof message === 'string' && { message }) });
  }
  if (cancel) {
    if (cancelReason === 'requester time-out') return finish('timed out', cancel.etime);
    return finish('cancelled', cancel.etime, typeof cancelReason === 'string' ? { message: cancelReason } : {});
  }
  const progress = [...responses].reverse().find((row) => row.progress !== undefined)?.progress;
  return { ...summary, ...(progress !== undefined && { progress }) };
}

/**
 * Whether the rows seen so far of one token (any order) end its request, for a reader that
 * follows the history live: `ended` once nothing that comes later changes its summary; `settling`
 * when it looks ended but a more telling row may follow — a kill's cancel answered with code 5 is
 * followed by the `kill` row that says who killed it (§11.5), and a cancel by the handler's answer
 * to it, if a handler is there to answer (§4.4; a time-out with no handler gets none); `open` while
 * it runs. A `kill` row that finished nothing (`finished`, `unconfirmed`) ends nothing by itself.
 */
export function requestProgress(rows: readonly HistoryRow[]): 'open' | 'settling' | 'ended' {
  const kill = rows.find((row) => row.kind === 'kill');
  const killed = kill ? field(parse(kill.data), 'outcome') : undefined;
  if (killed === 'cancelled' || killed === 'handler-gone') return 'ended';
  const end = rows.find((row) => row.kind === 'final' || row.kind === 'error' || row.kind === 'put');
  const cancel = rows.find((row) => row.kind === 'cancel');
  if (end) {
    const killing = cancel !== undefined && field(parse(cancel.data), 'by') !== undefined;
    return end.code === 5 && killing && kill === undefined ? 'settling' : 'ended';
  }
  return cancel ? 'settling' : 'open';
}
