/**
 * A token's history rows (protocol §11.1) as Centreon Gorgone's log rows, so a Gorgone HTTP
 * client polling `GET /api/log/<token>` reads what it expects. Pure. Gorgone's codes
 * (gorgone::standard::constants): 0 ACTION_BEGIN, 1 ACTION_FINISH_KO, 2 ACTION_FINISH_OK,
 * 4 ACTION_CONTINUE, 100 MODULE_ACTION_COMMAND_RESULT. Exactly one row ends a request with 1
 * or 2, and it is the last: a client polls until it sees one. docs/http-api.md has the table.
 */
import type { HistoryRow } from '../protocol/history.js';

export const GORGONE_CODES = { begin: 0, finishKo: 1, finishOk: 2, continue: 4, commandResult: 100 } as const;

/** One row of Gorgone's `GET /api/log/<token>` answer: times in seconds, `data` a JSON string. */
export interface GorgoneLogRow {
  ctime: number;
  etime: number;
  id: string;
  instant: 0;
  data: string;
  token: string;
  code: number;
}

export const BATCH_ACTION = 'system/command/batch';

const seconds = (ms: number) => Math.floor(ms / 1000);

function parseData(row: HistoryRow): unknown {
  if (row.truncated) return undefined;
  try {
    return JSON.parse(row.data);
  } catch {
    return undefined;
  }
}

interface BatchResult {
  command?: string;
  exitCode?: number | null;
  signal?: string | null;
  durationMs?: number;
  tail?: Array<{ line?: string }>;
  timedOut?: boolean;
}

/** Gorgone's rows for one history row (a batch's final gives one row per command, then the closing one). */
function convert(row: HistoryRow): Array<{ code: number; data: Record<string, unknown>; suffix?: string }> {
  const payload = parseData(row);
  switch (row.kind) {
    case 'command':
      return [{ code: GORGONE_CODES.begin, data: { message: row.action === BATCH_ACTION ? 'commands processing has started' : `${row.action} has started`, request_content: payload ?? row.data } }];
    case 'accepted':
      return [{ code: GORGONE_CODES.begin, data: { message: 'command has started', handler: row.source } }];
    case 'progress':
      return [{ code: GORGONE_CODES.continue, data: { message: 'command output', handler: row.source, ...(row.progress !== undefined && { progress: row.progress }), output: payload ?? row.data } }];
    case 'cancel':
      return [{ code: GORGONE_CODES.continue, data: { message: 'cancel requested', by: row.source, details: payload ?? row.data } }];
    case 'kill':
      return [{ code: GORGONE_CODES.continue, data: { message: 'kill outcome', by: row.source, details: payload ?? row.data } }];
    case 'put':
      return [{ code: row.code ? GORGONE_CODES.finishKo : GORGONE_CODES.finishOk, data: typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? { ...payload } : { message: payload ?? row.data } }];
    case 'error': {
      const error = (payload as { error?: { name?: string; message?: string; details?: unknown } } | undefined)?.error;
      return [{ code: GORGONE_CODES.finishKo, data: { message: error?.message ?? 'the request failed', relais_code: row.code, error: error?.name, ...(error?.details !== undefined && { details: error.details }) } }];
    }
    case 'final':
      return row.action === BATCH_ACTION ? batchFinal(row, payload) : [{ code: GORGONE_CODES.finishOk, data: { message: `${row.action} has finished successfully`, result: payload ?? row.data } }];
  }
}

/** Gorgone's action module: one result row per command, then "commands processing has ..." (class.pm action_command). */
function batchFinal(row: HistoryRow, payload: unknown): Array<{ code: number; data: Record<string, unknown>; suffix?: string }> {
  const answer = payload as { results?: BatchResult[]; completed?: boolean } | undefined;
  const results = Array.isArray(answer?.results) ? answer.results : [];
  const rows: Array<{ code: number; data: Record<string, unknown>; suffix?: string }> = results.map((result, index) => ({
    code: GORGONE_CODES.commandResult,
    suffix: `.${index}`,
    data: {
      message: result.timedOut ? 'command execution issue' : 'command has finished',
      command: result.command,
      result: { exit_code: result.exitCode ?? -1, stdout: (result.tail ?? []).map((line) => line.line ?? '').join('\n') },
      metrics: { duration: Math.round((result.durationMs ?? 0) / 1000) },
    },
  }));
  const completed = answer?.completed !== false;
  rows.push({
    code: completed ? GORGONE_CODES.finishOk : GORGONE_CODES.finishKo,
    suffix: '',
    data: { message: completed ? 'commands processing has finished successfully' : 'commands processing has been interrupted because of error' },
  });
  return rows;
}

export function gorgoneLog(rows: readonly HistoryRow[]): GorgoneLogRow[] {
  return rows.flatMap((row) =>
    convert(row).map((entry) => ({
      ctime: seconds(row.ctime),
      etime: seconds(row.etime),
      id: `${row.id}${entry.suffix ?? ''}`,
      instant: 0 as const,
      data: JSON.stringify(entry.data),
      token: row.token,
      code: entry.code,
    })),
  );
}

/** Gorgone's query filters on a log: `code`, `ctime` (at or after), `etime` (after), `limit` (the last x). */
export function filterLog(rows: GorgoneLogRow[], filters: { code?: number | undefined; ctime?: number | undefined; etime?: number | undefined; limit?: number | undefined }): GorgoneLogRow[] {
  const kept = rows.filter((row) => (filters.code === undefined || row.code === filters.code) && (filters.ctime === undefined || row.ctime >= filters.ctime) && (filters.etime === undefined || row.etime > filters.etime));
  return filters.limit === undefined ? kept : kept.slice(-filters.limit);
}
