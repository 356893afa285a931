/**
 * `relais history --follow` one row per request: the router streams step rows (protocol §11.2
 * `follow`); this folds them by token and hands on one summary when a request ends — ok,
 * failed, cancelled, killed, timed out — read as `relais history` reads stored requests
 * (src/protocol/history-requests.ts). Memory stays bounded however long it follows and however
 * many requests never end.
 */
import type { HistoryRow } from '../library.js';
import { requestProgress, summarise, type RequestSummary } from '../protocol/history-requests.js';

/** Requests followed at once; past it the oldest is dropped, and its end is summarised from the router's rows (`fetchRows`). */
const MAX_OPEN_REQUESTS = 10_000;

/** Ended tokens remembered, so that a row after the end (a late `kill` row, a redelivery) does not print the request twice. */
const MAX_ENDED_REMEMBERED = 10_000;

/** How long a request that looks ended waits for a more telling row (`settling`): the kill row comes right after the end it caused. */
export const SETTLE_MS = 2000;

export interface RequestFollowerOptions {
  /** Prints one ended request. */
  print(request: RequestSummary): void;
  /** The rows the router holds under a token: for a request whose command came before the follow began. */
  fetchRows(token: string): Promise<HistoryRow[]>;
  /** Whether an ended request is shown (the requester and handler filters apply to whole requests). */
  shows(request: RequestSummary): boolean;
  settleMs?: number;
}

export class RequestFollower {
  /** The rows kept per open token: all but progress, of which the latest only (and the first response, which names the handler). */
  private readonly open = new Map<string, HistoryRow[]>();
  private readonly ended = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Summaries are printed in the order the requests ended, even when one needs the router's rows first. */
  private printing: Promise<void> = Promise.resolve();

  constructor(private readonly options: RequestFollowerOptions) {}

  /** A request already shown as ended (in the table printed before following): its later rows are not shown again. */
  markEnded(token: string): void {
    this.remember(token);
  }

  add(row: HistoryRow): void {
    if (this.ended.has(row.token)) return;
    const rows = this.open.get(row.token) ?? [];
    if (rows.length === 0) {
      if (this.open.size >= MAX_OPEN_REQUESTS) this.forget(this.open.keys().next().value!);
      this.open.set(row.token, rows);
    }
    if (row.kind === 'progress') {
      const previous = rows.findLastIndex((kept) => kept.kind === 'progress');
      const isFirstResponse = rows.findIndex((kept) => kept.kind === 'accepted' || kept.kind === 'progress') === previous;
      if (previous >= 0 && !isFirstResponse) rows.splice(previous, 1);
    }
    rows.push(row);
    const progress = requestProgress(rows);
    if (progress === 'ended') this.end(row.token);
    else if (progress === 'settling') this.settle(row.token);
  }

  /** Prints what still settles (the follow is ending) and waits for the printing to finish. */
  async flush(): Promise<void> {
    for (const token of [...this.timers.keys()]) this.end(token);
    await this.printing;
  }

  private settle(token: string): void {
    clearTimeout(this.timers.get(token));
    this.timers.set(
      token,
      setTimeout(() => this.end(token), this.options.settleMs ?? SETTLE_MS),
    );
  }

  private end(token: string): void {
    const rows = this.open.get(token) ?? [];
    this.forget(token);
    this.remember(token);
    this.printing = this.printing.then(async () => {
      let command = rows.find((row) => row.kind === 'command');
      let all = rows;
      if (!command) {
        // Sent before the follow began: the router's rows of the token say who sent it and when.
        const stored = await this.options.fetchRows(token).catch(() => []);
        command = stored.find((row) => row.kind === 'command');
        all = [...stored, ...rows.filter((row) => !stored.some((kept) => kept.id === row.id))];
      }
      if (!command) return;
      const request = summarise(command, all);
      if (this.options.shows(request)) this.options.print(request);
    });
  }

  private forget(token: string): void {
    clearTimeout(this.timers.get(token));
    this.timers.delete(token);
    this.open.delete(token);
  }

  private remember(token: string): void {
    this.ended.add(token);
    if (this.ended.size > MAX_ENDED_REMEMBERED) this.ended.delete(this.ended.values().next().value!);
  }
}
