/**
 * `relais sites`: the links of this broker's router to its sites (protocol §13), as the router
 * answers `relais/sites/get`: each link's status, since when, pull or push, its round trip, the
 * site's clients and, on a central, where its history stands in the site's (the last sync).
 * A table, or JSON with `--json`; `--watch` asks again whenever a link's status or a roster
 * changes, and every `--interval` seconds (the syncs change without them). Exit 3 when no router answers, as `relais clients`.
 */
import { Command } from 'commander';
import { checkTimeout, SITES_ACTION, type Bus, type SiteEntry, type SitesAnswer } from '../library.js';
import { addConnectionOptions, EXIT, fail, printable, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';
import { formatColumns } from './table.js';

interface SitesOptions extends GlobalOptions {
  json?: boolean;
  watch?: boolean;
  interval: string;
}

const COLUMNS = ['SITE', 'STATUS', 'SINCE', 'MODE', 'RTT', 'CLIENTS', 'SYNCED TO', 'LAG', 'LAST SYNC'] as const;
/** Changes coming together (a link coming up republishes its roster) make one redraw. */
const WATCH_COALESCE_MS = 200;

export function sitesCommand(): Command {
  return addConnectionOptions(new Command('sites'))
    .description("the router's links to its sites: status, since when, mode, round trip, clients, and where the central's copy of each site's history stands")
    .option('--json', 'the router\'s answer as JSON (one line; with --watch, one line per answer)')
    .option('-w, --watch', 'keep updating as links go up and down (Ctrl-C to stop)')
    .option('--interval <seconds>', 'with --watch: also ask again this often, for the syncs', '10')
    .action((options: SitesOptions) => {
      const seconds = Number(options.interval);
      if (!(seconds > 0) || checkTimeout(seconds * 1000)) fail(EXIT.USAGE, `--interval must be a positive number of seconds, got ${options.interval}`);
      return withRouter(options, SITES_ACTION, 'relais sites asks the router', async (bus, signal) => {
        const show = (answer: SitesAnswer) => {
          if (options.json) writeLine(answer);
          else process.stdout.write(`${options.watch && process.stdout.isTTY ? '\x1b[2J\x1b[H' : ''}${formatSites(answer)}\n`);
        };
        show(await ask(bus));
        if (!options.watch) return EXIT.OK;
        await watch(bus, signal, show, seconds * 1000);
        return EXIT.OK;
      });
    });
}

function ask(bus: Bus, signal?: AbortSignal): Promise<SitesAnswer> {
  return bus.request<SitesAnswer>(SITES_ACTION, {}, { timeout: 10_000, ...(signal && { signal }) });
}

/** Asks again on each change the library sees on the sites' topics, and every `refreshMs`, until Ctrl-C (withRouter aborts `signal`). */
async function watch(bus: Bus, signal: AbortSignal, show: (answer: SitesAnswer) => void, refreshMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let asking = false;
  let again = false;
  const refresh = async () => {
    if (asking) return void (again = true);
    asking = true;
    try {
      show(await ask(bus, signal));
    } catch (error) {
      if (!signal.aborted) process.stderr.write(`relais: ${(error as Error).message}\n`);
    } finally {
      asking = false;
      if (again && !signal.aborted) {
        again = false;
        void refresh();
      }
    }
  };
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, WATCH_COALESCE_MS);
  };
  bus.siteDirectory.on('change', soon);
  const ticker = setInterval(() => void refresh(), refreshMs);
  if (!process.stdout.isTTY) process.stderr.write('relais: watching the sites\n');
  await new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(ticker);
  clearTimeout(timer);
  bus.siteDirectory.off('change', soon);
}

/** The answer as an aligned text table, sorted by site, then a line naming the router's own site. */
export function formatSites(answer: SitesAnswer): string {
  const rows = Object.entries(answer.sites)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([site, entry]) => [site, entry.status, time(entry.since), entry.mode ?? '-', entry.rttMs === undefined ? '-' : `${Math.round(entry.rttMs)} ms`, clients(entry), ...sync(entry)]);
  const down = Object.values(answer.sites).filter((entry) => entry.status === 'down').length;
  return `${formatColumns(COLUMNS, rows)}\n${rows.length} site${rows.length === 1 ? '' : 's'}${down ? `, ${down} down` : ''} (this router's site: ${printable(answer.site)})`;
}

function time(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function clients(entry: SiteEntry): string {
  const refused = entry.refused?.length ?? 0;
  return `${entry.clients.length}${refused ? ` (${refused} refused)` : ''}`;
}

/** SYNCED TO, LAG and LAST SYNC: the central's copy of the site's history (protocol §13.5). */
function sync(entry: SiteEntry): [string, string, string] {
  const state = entry.sync;
  if (!state) return ['-', '-', '-'];
  const position = `${state.position}${state.positionCtime === undefined ? '' : ` (${time(state.positionCtime)})`}`;
  const last = state.lastSync;
  const running = state.runningSince === undefined ? '' : `syncing since ${time(state.runningSince)}${last ? '; ' : ''}`;
  const lastText = last ? `${last.outcome}, ${last.rows} row${last.rows === 1 ? '' : 's'}, ${time(last.at)}${last.error ? `: ${last.error}` : ''}` : '';
  return [position, state.lag === undefined ? '-' : String(state.lag), `${running}${lastText}` || '-'];
}
