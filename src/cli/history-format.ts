/** How `relais history` shows rows to a person: one row per request, aligned step rows, or a timeline of one request. */
import type { HistoryRow } from '../library.js';
import type { RequestSummary } from '../protocol/history-requests.js';
import { formatColumns, formatDuration, LiveColumns } from './table.js';
import { storedBytesSummary } from './binary-payload.js';
import { sealedSummary } from './sealed-payload.js';

const DATA_WIDTH = 60;
const MESSAGE_WIDTH = 60;

function clock(epochMs: number): string {
  const date = new Date(epochMs);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function cut(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 3)}...` : text;
}

function shortData(row: HistoryRow): string {
  // A sealed payload this client did not open (protocol §3.6, §11.1): whom it is for and its size.
  if (row.seal !== undefined && !row.opened) return sealedSummary(row.seal, row.size);
  const data = plainData(row);
  return row.opened ? `${data} (sealed)`.trimStart() : data;
}

function plainData(row: HistoryRow): string {
  // A binary payload (protocol §11.1): its size and digest, not its Base64.
  if (row.sha256 !== undefined) return storedBytesSummary(row.size, row.sha256);
  const text = cut(row.data === 'null' ? '' : row.data, DATA_WIDTH);
  return row.truncated ? `${text} (cut, ${row.size} B)` : text;
}

function percent(row: HistoryRow): string {
  return row.progress === undefined ? '' : ` ${Math.round(row.progress * 100)}%`;
}

/** How a request ended, in words: `ok`, `failed: disk full`, `timed out`, `cancelled`, `killed by alice`, `running 40%`. */
export function outcomeWords(request: RequestSummary): string {
  switch (request.outcome) {
    case 'running':
      return request.progress === undefined ? 'running' : `running ${Math.round(request.progress * 100)}%`;
    case 'failed':
      return `failed: ${cut(request.message ?? `code ${request.code ?? 1}`, MESSAGE_WIDTH)}`;
    case 'cancelled':
      return request.message === undefined ? 'cancelled' : `cancelled: ${cut(request.message, MESSAGE_WIDTH)}`;
    case 'killed':
      return `killed by ${request.by ?? '?'}`;
    default:
      return request.outcome;
  }
}

export const REQUEST_COLUMNS = ['TIME', 'ACTION', 'REQUESTER', 'HANDLER', 'OUTCOME', 'DURATION', 'TOKEN'] as const;

function requestCells(request: RequestSummary): string[] {
  return [
    clock(request.started),
    request.action,
    request.site === undefined ? request.requester : `${request.requester} [${request.site}]`,
    request.handler ?? '-',
    outcomeWords(request),
    request.durationMs === undefined ? '-' : formatDuration(request.durationMs),
    request.token,
  ];
}

/** Requests, one line each, aligned under a header (oldest first, as given); a request pulled from a site shows `requester [site]`. */
export function formatRequests(requests: readonly RequestSummary[]): string {
  return formatColumns(REQUEST_COLUMNS, requests.map(requestCells));
}

/** Widths the columns of `--follow` start with, before any request has ended: most actions, ids and outcomes fit. */
const LIVE_REQUEST_WIDTHS = [23, 24, 16, 16, 16, 8];

/** Requests as they end (`--follow`): the header and the first ones aligned, then one line each, in the same columns. */
export function requestTable(first: readonly RequestSummary[]): { header: string; line(request: RequestSummary): string } {
  const columns = new LiveColumns(REQUEST_COLUMNS, first.map(requestCells), LIVE_REQUEST_WIDTHS);
  return { header: columns.headerLine(), line: (request) => columns.line(requestCells(request)) };
}

export const STEP_COLUMNS = ['ID', 'TIME', 'KIND', 'ACTION', 'FROM', 'TO', 'CODE', 'TOKEN', 'DATA'] as const;

function stepCells(row: HistoryRow): string[] {
  return [
    `#${row.id}${row.site === undefined ? '' : ` [${row.site}]`}`,
    clock(row.etime),
    `${row.kind}${percent(row)}`,
    row.action,
    row.source,
    row.target ?? '-',
    row.code === undefined ? '-' : String(row.code),
    row.token,
    shortData(row),
  ];
}

/** Step rows (`--steps`), aligned under a header. */
export function formatSteps(rows: readonly HistoryRow[]): string {
  return formatColumns(STEP_COLUMNS, rows.map(stepCells));
}

/** `#12 2026-12-01 01:40:02.123 final demo/echo h -> ui code 0 tok3n {"ok":true}`: one step as it arrives live (--follow). */
export function formatRow(row: HistoryRow): string {
  const code = row.code === undefined ? '' : ` code ${row.code}`;
  const to = row.target === undefined ? '' : ` -> ${row.target}`;
  const site = row.site === undefined ? '' : ` [${row.site}]`;
  return `#${row.id}${site} ${clock(row.etime)} ${row.kind.padEnd(8)} ${row.action} ${row.source}${to}${code}${percent(row)} ${row.token} ${shortData(row)}`.trimEnd();
}

/** One step of a request's timeline, timed from its first row: `+12 ms  accepted by h`. */
export function formatTimelineStep(row: HistoryRow, first: HistoryRow): string {
  const offset = row === first ? clock(row.etime) : `+${row.etime - first.etime} ms`.padStart(23);
  const data = shortData(row);
  const what = (() => {
    switch (row.kind) {
      case 'command':
        return `sent ${row.action} by ${row.source} to ${row.target ?? 'any handler'}`;
      case 'accepted':
        return `accepted by ${row.source}`;
      case 'progress':
        return `progress${percent(row)} from ${row.source}`;
      case 'final':
        return `final from ${row.source}, code ${row.code ?? 0}`;
      case 'error':
        return `error from ${row.source}, code ${row.code ?? 1}`;
      case 'cancel':
        return `cancelled by ${row.source}`;
      case 'put':
        return `result put by ${row.source}, code ${row.code ?? 0}`;
      case 'kill':
        return `kill asked by ${row.source}`;
    }
  })();
  const site = row.site === undefined ? '' : ` (site ${row.site})`;
  return `${offset}  ${what}${site}${data ? `  ${data}` : ''}`;
}
