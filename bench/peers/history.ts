/**
 * Reading a router's history file from the benchmark, read-only, while the router writes it
 * (WAL: a reader never blocks the writer) and after it stopped: how many rows so far, and the
 * rows of the benchmark's action by kind, to check that none was lost.
 */
import Database from 'better-sqlite3';

export class HistoryReader {
  private db: Database.Database | undefined;

  constructor(readonly database: string) {}

  /** Rows stored so far: the highest id (ids only grow, and nothing is pruned in a run: `--keep-rows` is far above it). Cheap at any size. */
  rows(): number {
    this.db ??= new Database(this.database, { readonly: true, fileMustExist: true });
    return (this.db.prepare('SELECT coalesce(max(id), 0) FROM history').pluck().get() as number) ?? 0;
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }
}

export interface HistoryCounts {
  /** Rows of `action` by kind (command, accepted, progress, final, error, cancel, put). */
  byKind: Record<string, number>;
  /** Distinct tokens among its command rows, and among its final rows. */
  commandTokens: number;
  finalTokens: number;
  /** Tokens with a final row but no command row, and the reverse. */
  finalWithoutCommand: number;
  commandWithoutFinal: number;
  /** All rows in the file, every action. */
  total: number;
}

/** Counts the rows of `action` in a closed (or live) history file. */
export function countHistory(database: string, action: string): HistoryCounts {
  const db = new Database(database, { readonly: true, fileMustExist: true });
  try {
    const byKind: Record<string, number> = {};
    for (const row of db.prepare('SELECT kind, count(*) AS n FROM history WHERE action = ? GROUP BY kind').all(action) as Array<{ kind: string; n: number }>) byKind[row.kind] = row.n;
    const distinct = (kind: string) => db.prepare('SELECT count(DISTINCT token) FROM history WHERE action = ? AND kind = ?').pluck().get(action, kind) as number;
    const orphans = (has: string, lacks: string) =>
      db
        .prepare('SELECT count(DISTINCT token) FROM history h WHERE action = ? AND kind = ? AND NOT EXISTS (SELECT 1 FROM history o WHERE o.token = h.token AND o.kind = ?)')
        .pluck()
        .get(action, has, lacks) as number;
    return {
      byKind,
      commandTokens: distinct('command'),
      finalTokens: distinct('final'),
      finalWithoutCommand: orphans('final', 'command'),
      commandWithoutFinal: orphans('command', 'final'),
      total: db.prepare('SELECT count(*) FROM history').pluck().get() as number,
    };
  } finally {
    db.close();
  }
}
