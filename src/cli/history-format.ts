/** How `relais history` shows rows to a person: one line each, or a timeline of one request. */
import type { HistoryRow } from '../index.js';

const DATA_WIDTH = 60;

function clock(epochMs: number): string {
  const date = new Date(epochMs);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function shortData(row: HistoryRow): string {
  const text = row.data === 'null' ? '' : row.data;
  const cut = text.length > DATA_WIDTH ? `${text.slice(0, DATA_WIDTH - 3)}...` : text;
  return row.truncated ? `${cut} (cut, ${row.size} B)` : cut;
}

function percent(row: HistoryRow): string {
  return row.progress === undefined ? '' : ` ${Math.round(row.progress * 100)}%`;
}

/** `#12 2026-12-01 01:40:02.123 final demo/echo h -> ui code 0 tok3n {"ok":true}`; a row pulled from a site says which: `#13 [poller-1] …`. */
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
    }
  })();
  const site = row.site === undefined ? '' : ` (site ${row.site})`;
  return `${offset}  ${what}${site}${data ? `  ${data}` : ''}`;
}
