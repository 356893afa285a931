/**
 * The central's pull of each site's history (protocol §13.5; Gorgone's GETLOG → PUTLOG →
 * SETLOGS, Centreon's `synchistory`). For each site whose link is up, after each down→up and
 * every `intervalMs`: take the site's lock (one sync per site at a time), ask the site's router
 * (`site:<site>`) for its newest row id (the lag), then for pages of 1,000 rows after the stored
 * position, with their digests, and store each page with the new position in one transaction,
 * until no more. The whole sync has a time-out: at it the lock is freed, what was stored stays,
 * and the next sync goes on from the stored position. Every sync ends with a `site.sync` event.
 *
 * The questions go through a client of their own whose id is the central's site name: at the
 * site, the asker is then the link's principal (protocol §13.1), which may read every row.
 */
import type { Logger } from 'pino';
import type { Bus } from '../client/bus.js';
import { HISTORY_ACTIONS, historyPageSchema, type HistoryPage, type HistoryRowInput } from '../protocol/history.js';
import type { z } from 'zod';
import { siteAddress, type SiteSyncState } from '../protocol/sites.js';
import { ResponseCode } from '../protocol/errors.js';
import type { HistoryStore, SiteSyncOutcome } from './history-store.js';
import type { SiteChange, SiteWatch } from './site-watch.js';

export const SITE_SYNC_DEFAULTS = {
  /** How often each site whose link is up is synced (ms), besides after each reconnection. */
  intervalMs: 60_000,
  /** How long one whole sync may hold its site's lock (ms): Gorgone's one minute. */
  timeoutMs: 60_000,
  /** Rows asked per page. */
  pageRows: 1000,
} as const;

/** What the `site.sync` event says (protocol §11.8). */
export interface SiteSyncEvent {
  site: string;
  outcome: SiteSyncOutcome['outcome'];
  /** Rows stored by this sync (rows already held are not counted). */
  rows: number;
  ms: number;
  /** The site's id of the last row the central has. */
  position: number;
  /** Rows the site had past `position` when this sync began, less those it stored. */
  lag: number;
  error?: string;
}

export interface SiteSyncOptions {
  store: HistoryStore;
  sites: SiteWatch;
  /** This router's own site name: never synced. */
  ownSite: string;
  /** The client that asks the sites (opened on first use, kept). */
  asker: () => Promise<Bus>;
  onSync: (event: SiteSyncEvent) => void;
  logger: Logger;
  intervalMs?: number;
  timeoutMs?: number;
  pageRows?: number;
}

class SyncTimeout extends Error {}

/** A question's own time-out is the sync's, plus this: the sync's deadline ends it first, as `timeout`. */
const QUESTION_GRACE_MS = 1000;

export class SiteSync {
  /** The locks: the sites a sync runs for now, and since when. */
  private readonly running = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly stopWatching: () => void;
  private closed = false;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly pageRows: number;
  /** The running syncs, to end them at once when the router closes. */
  private readonly stops = new Set<AbortController>();
  private readonly ending = new Set<Promise<void>>();

  constructor(private readonly options: SiteSyncOptions) {
    this.intervalMs = options.intervalMs ?? SITE_SYNC_DEFAULTS.intervalMs;
    this.timeoutMs = options.timeoutMs ?? SITE_SYNC_DEFAULTS.timeoutMs;
    this.pageRows = options.pageRows ?? SITE_SYNC_DEFAULTS.pageRows;
    this.stopWatching = options.sites.watch((change) => this.onChange(change));
    this.timer = setInterval(() => {
      for (const site of options.sites.sites()) if (this.isUp(site)) this.trigger(site);
    }, this.intervalMs);
    this.timer.unref();
    // Links already up when the router starts: it may have missed their last reconnection.
    for (const site of options.sites.sites()) if (this.isUp(site)) this.trigger(site);
  }

  /** Where the central stands in each site's history it syncs, with the locks held now. */
  async states(): Promise<Record<string, SiteSyncState>> {
    const states: Record<string, SiteSyncState> = await this.options.store.siteSyncs();
    for (const [site, since] of this.running) states[site] = { ...(states[site] ?? { position: 0 }), runningSince: since };
    return states;
  }

  /** Starts a sync of `site` unless one runs (its lock is held); resolves when that sync ends. */
  trigger(site: string): Promise<void> {
    if (this.closed || this.running.has(site)) return Promise.resolve();
    this.running.set(site, Date.now());
    const run = this.run(site).finally(() => {
      this.running.delete(site);
      this.ending.delete(run);
    });
    this.ending.add(run);
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.stopWatching();
    for (const stop of this.stops) stop.abort(new Error('the router is closing'));
    await Promise.allSettled([...this.ending]);
  }

  /**
   * Only a site whose roster this router reads (the link publishes rosters on the central's
   * broker alone, protocol §13.2): a site's router, which sees its central's status, does not
   * pull the central's history.
   */
  private isUp(site: string): boolean {
    return site !== this.options.ownSite && this.options.sites.roster(site) !== undefined && this.options.sites.status(site)?.status === 'up';
  }

  private onChange(change: SiteChange): void {
    const { site } = change;
    if (change.kind === 'status' && change.after?.status === 'up' && change.before?.status !== 'up' && this.isUp(site)) void this.trigger(site);
    // The roster may come after the status: the first one of a site whose link is up starts its sync.
    if (change.kind === 'roster' && change.before === undefined && this.isUp(site)) void this.trigger(site);
  }

  private async run(site: string): Promise<void> {
    const started = Date.now();
    const stop = new AbortController();
    this.stops.add(stop);
    const deadline = setTimeout(() => stop.abort(new SyncTimeout(`the sync of site ${site} took longer than ${this.timeoutMs} ms`)), this.timeoutMs);
    let position = 0;
    let rows = 0;
    let lag = 0;
    let outcome: SiteSyncOutcome['outcome'] = 'done';
    let error: string | undefined;
    try {
      position = (await this.options.store.siteSyncs())[site]?.position ?? 0;
      const bus = await this.bounded(this.options.asker(), stop.signal);
      const ask = async (query: Record<string, unknown>) => {
        const left = Math.max(1, started + this.timeoutMs - Date.now());
        // The sync starts when the router sees the link come up; its asking client may see that a moment later: it waits for it (protocol §13.4).
        const answer = await this.bounded(bus.request<HistoryPage>(HISTORY_ACTIONS.get, query, { target: siteAddress(site), signal: stop.signal, timeout: left + QUESTION_GRACE_MS, waitForSite: left }), stop.signal);
        // The site's answer is checked like any input from the network before a row of it is stored.
        const read = historyPageSchema.safeParse(answer);
        if (!read.success) throw new Error(`the site's router answered a page that is not one: ${read.error.issues.slice(0, 3).map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
        return read.data;
      };
      const newest = (await ask({ order: 'newest', limit: 1 })).rows[0]?.id ?? 0;
      lag = Math.max(0, newest - position);
      let limit = this.pageRows;
      for (let more = true; more; ) {
        let page: z.output<typeof historyPageSchema>;
        try {
          page = await ask({ afterId: position, order: 'oldest', limit, digests: true });
        } catch (failure) {
          // A page over the message size limit (protocol §3.4: rows of up to --max-data bytes each): ask for half as many, for the rest of this sync.
          if ((failure as { responseCode?: unknown }).responseCode !== ResponseCode.PAYLOAD_TOO_LARGE || limit === 1 || stop.signal.aborted) throw failure;
          limit = Math.max(1, Math.floor(limit / 2));
          continue;
        }
        if (stop.signal.aborted) throw stop.signal.reason; // a page that comes after the time-out is not written
        if (page.rows.length === 0) break;
        const last = page.rows.reduce((a, b) => (b.id > a.id ? b : a));
        if (last.id <= position) throw new Error(`the site's router answered rows at or before id ${position}, which was asked after`);
        const input = page.rows.map(siteRowInput);
        rows += (await this.options.store.appendFromSite(site, { rows: input, position: last.id, positionCtime: last.ctime, lag: Math.max(0, newest - last.id) })).length;
        position = last.id;
        lag = Math.max(0, newest - position);
        more = page.more;
      }
    } catch (failure) {
      if (stop.signal.aborted && stop.signal.reason instanceof SyncTimeout) {
        outcome = 'timeout';
        error = stop.signal.reason.message;
      } else {
        outcome = 'failed';
        error = (failure as Error).message;
      }
    } finally {
      clearTimeout(deadline);
      this.stops.delete(stop);
    }
    const ms = Date.now() - started;
    const event: SiteSyncEvent = { site, outcome, rows, ms, position, lag, ...(error !== undefined && { error }) };
    try {
      await this.options.store.recordSiteSync(site, { at: Date.now(), outcome, rows, ms, ...(error !== undefined && { error }) }, lag);
    } catch (failure) {
      this.options.logger.error({ site, err: (failure as Error).message }, 'sites: the outcome of a sync could not be stored');
    }
    const log = { site, outcome, rows, ms, position, lag, ...(error !== undefined && { err: error }) };
    if (outcome === 'done') this.options.logger.info(log, 'sites: history synced');
    else this.options.logger.warn(log, `sites: history sync ${outcome === 'timeout' ? 'timed out (the next one goes on from the position stored)' : 'failed'}`);
    this.options.onSync(event);
  }

  /** `promise`, or the time-out's rejection as soon as the sync's deadline passes (the lock is freed then, whatever is pending). */
  private bounded<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (failure: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(failure as Error);
        },
      );
    });
  }
}

/**
 * A site's row as the central stores it: the site's digest keeps its identity; its id and ctime
 * are the site's, not ours; its site is the one it was pulled from, whatever it says.
 */
function siteRowInput(row: z.output<typeof historyPageSchema>['rows'][number]): HistoryRowInput {
  const { id: _id, ctime: _ctime, site: _site, digest, ...rest } = row;
  if (typeof digest !== 'string' || digest.length === 0) throw new Error(`the site's row ${row.id} came without its digest: the site's router does not answer digests: true`);
  return { ...rest, digest };
}
