/** Aligned text columns under a header, as the CLI views print them on a terminal. */
import { printable } from '../logging/log-lines.js';

/**
 * Rows as columns padded to the widest cell, two spaces apart, under `header`; remote text is
 * shown harmlessly (printable). The last column is not padded.
 */
export function formatColumns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [header.map(String), ...rows.map((row) => row.map(printable))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  return cells.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ').trimEnd()).join('\n');
}

/** A duration as a person reads it: `12 ms`, `1.4 s`, `2m 05s`, `3h 02m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h ${String(Math.floor(seconds / 60) % 60).padStart(2, '0')}m`;
}

/**
 * Columns printed a line at a time, for a view that goes on live (`history --follow`): padded to
 * the widest cell seen so far — the header's, the first rows', `minWidths` at least, so that the
 * lines to come usually fit under a header printed before them. A wider cell later widens its
 * column from that line on; lines already printed stay as they were.
 */
export class LiveColumns {
  private readonly widths: number[];

  constructor(
    private readonly header: readonly string[],
    first: readonly (readonly string[])[] = [],
    minWidths: readonly number[] = [],
  ) {
    this.widths = header.map((title, column) => Math.max(title.length, minWidths[column] ?? 0, ...first.map((row) => printable(row[column] ?? '').length)));
  }

  headerLine(): string {
    return this.line(this.header);
  }

  line(row: readonly string[]): string {
    const cells = row.map(printable);
    return cells
      .map((cell, column) => {
        this.widths[column] = Math.max(this.widths[column] ?? 0, cell.length);
        return column === cells.length - 1 ? cell : cell.padEnd(this.widths[column]!);
      })
      .join('  ')
      .trimEnd();
  }
}
