/**
 * `relais clients`: the client registry (protocol §11.3), from its detail answers (every page): each client's
 * program, status, the actions it serves, version, where it runs, since when and when it was last
 * seen; the sessions of one identity grouped under it (protocol §2.1). A table on a terminal, one JSON line per client in a pipe; `--watch` keeps it up to date
 * from the registry's notifications, and on a terminal redraws what fits in place (as top does),
 * asking again every 2 s so "last seen" moves (a change of it alone makes no notification): every
 * client while they all fit, else only those on screen.
 * Exit 3 when no registry answers (the router is not running), as `relais call` does.
 */
import { Command } from 'commander';
import { NoHandlerError, parseClientId, readAllPages, REGISTRY_ACTIONS, REGISTRY_CATEGORIES, type Bus, type ClientDetail, type ClientDetailChanges, type ClientDetailPayload } from '../library.js';
import { addConnectionOptions, connectCli, EXIT, fail, onInterrupt, stdoutWritten, writeLine, type GlobalOptions } from './common.js';
import { formatColumns, formatDuration } from './table.js';

interface ClientsOptions extends GlobalOptions {
  watch?: boolean;
  json?: boolean;
}

/** How often `--watch` on a terminal asks the registry again, for "last seen". */
const REFRESH_MS = 2000;
const ACTIONS_WIDTH = 48;

/** The terminal's alternate screen, cursor home, clear to the end of the line / screen (VT100), as top and nats-top redraw. */
const SCREEN = { enter: '\x1b[?1049h\x1b[?25l', leave: '\x1b[?25h\x1b[?1049l', home: '\x1b[H', clearLine: '\x1b[K', clearBelow: '\x1b[J' } as const;

export function clientsCommand(): Command {
  return addConnectionOptions(new Command('clients'))
    .description("list the clients on the bus from the router's registry: program, status, actions, version, host, last seen (a table on a terminal, JSON lines otherwise)")
    .option('-w, --watch', 'keep updating as clients come and go, redrawn in place on a terminal (Ctrl-C to stop)')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: ClientsOptions) => {
      const interactive = process.stdout.isTTY && !options.json;
      const bus = await connectCli(options, { info: { program: `clients${options.watch ? ' --watch' : ''}` } });
      const clients = new Map<string, ClientDetail>();
      let revision = -1;
      const screen = interactive && options.watch;
      const show = () => {
        const table = formatTable(clients, Date.now(), screen ? screenRows() : undefined);
        if (!screen) return process.stdout.write(`${table}\n`);
        // Each line overwrites the one drawn before, then what is left below goes: no flicker, no scroll-back.
        process.stdout.write(`${SCREEN.home}${table.split('\n').map((line) => `${line}${SCREEN.clearLine}`).join('\n')}\n${SCREEN.clearBelow}`);
      };
      const apply = (answer: ClientDetailPayload) => {
        if (answer.revision < revision) return;
        revision = answer.revision;
        clients.clear();
        for (const [id, detail] of Object.entries(answer.clients)) clients.set(id, detail);
      };
      let refresh: NodeJS.Timeout | undefined;
      let drawn = false;
      if (options.watch) {
        // Before anything is drawn: a user presses Ctrl-C as soon as the table shows.
        onInterrupt(() => {
          if (refresh) clearInterval(refresh);
          if (screen && drawn) process.stdout.write(SCREEN.leave);
          void bus.close().finally(() => process.exit(EXIT.OK));
        });
      }
      // Changes that come before the answer wait for it: applied alone they would make the whole table.
      const early: ClientDetailChanges[] = [];
      const applyChanges = (changes: ClientDetailChanges) => {
        if (changes.revision <= revision) return;
        revision = changes.revision;
        for (const [id, detail] of Object.entries(changes.clients)) {
          if (detail) clients.set(id, detail);
          else clients.delete(id);
          if (!interactive) writeLine(detail ? { id, ...detail } : { id, forgotten: true });
        }
        if (interactive) show();
      };
      if (options.watch) {
        // Subscribed before asking, so no change falls between the answer and the first notification.
        await bus.subscribe(`${REGISTRY_CATEGORIES.detail}/notification`, (message) => {
          const changes = message.envelope.payload as ClientDetailChanges;
          if (drawn) applyChanges(changes);
          else early.push(changes);
        });
      }
      apply(await askDetails(bus));
      if (screen) process.stdout.write(SCREEN.enter);
      if (interactive) show();
      else for (const [id, detail] of clients) writeLine({ id, ...detail });
      drawn = true;
      if (!options.watch) {
        await Promise.all([bus.close(), stdoutWritten()]);
        process.exit(EXIT.OK);
      }
      for (const changes of early.splice(0)) applyChanges(changes);
      if (screen) {
        refresh = setInterval(() => {
          const rows = screenRows();
          // More clients than the screen holds: only what it shows is asked again, one small answer each, not every page.
          const asked = rows !== undefined && clients.size > rows ? refreshLastSeen(bus, clients, idsOnScreen(clients, rows)) : askDetails(bus).then(apply);
          asked.then(show, show);
        }, REFRESH_MS);
      }
      if (!interactive) process.stderr.write('relais: watching the client registry\n');
    });
}

/** Every client, page after page (protocol §11.3), with the first page's revision: the notifications after it apply. */
async function askDetails(bus: Bus): Promise<ClientDetailPayload> {
  try {
    return await readAllPages((page) => bus.request<ClientDetailPayload>(REGISTRY_ACTIONS.detailGet, page, { timeout: 10_000 }));
  } catch (error) {
    if (!(error instanceof NoHandlerError)) throw error;
    await bus.close();
    fail(EXIT.NO_HANDLER, `no client registry answers ${REGISTRY_ACTIONS.detailGet}: the router is not running (${error.message})`);
  }
}

/** The rows of the terminal the table's clients may take: its height less the header, the count line and one spare; undefined when unknown. */
function screenRows(): number | undefined {
  const rows = process.stdout.rows;
  return rows !== undefined && rows > 4 ? rows - 3 : undefined;
}

/**
 * "Last seen" of the clients on screen, each asked by id (protocol §11.3): a change of it alone makes
 * no notification. Only that field is taken, never older: status and the rest come from the notifications.
 */
async function refreshLastSeen(bus: Bus, clients: Map<string, ClientDetail>, ids: string[]): Promise<void> {
  await Promise.all(
    ids.map((id) =>
      bus.request<ClientDetailPayload>(REGISTRY_ACTIONS.detailGet, { id }, { timeout: REFRESH_MS }).then(
        (answer) => {
          const known = clients.get(id);
          const seen = answer.clients[id]?.lastSeen;
          if (known && seen !== undefined && seen > known.lastSeen) clients.set(id, { ...known, lastSeen: seen });
        },
        // Forgotten meanwhile, or no answer in time: the notifications and the next turn say the rest.
        () => {},
      ),
    ),
  );
}

/** What a client runs: the `program` of its presence (the CLI's `serve demo/install`, `sub #`), else its `role` in brackets. */
function programOf(client: Pick<ClientDetail, 'info'>): string {
  const { program, role } = client.info ?? {};
  if (typeof program === 'string') return program;
  return typeof role === 'string' ? `(${role})` : '-';
}

/** The actions it serves (real-time ones marked `rt:`), cut to a width with how many more. */
function actionsOf(client: Pick<ClientDetail, 'actions' | 'realtimeActions'>): string {
  const all = [...(client.actions ?? []), ...(client.realtimeActions ?? []).map((action) => `rt:${action}`)];
  if (all.length === 0) return '-';
  let text = '';
  for (const [index, action] of all.entries()) {
    const next = text ? `${text}, ${action}` : action;
    const more = all.length - index - 1;
    if (next.length + (more > 0 ? ` +${more}`.length : 0) > ACTIONS_WIDTH && text) return `${text} +${all.length - index}`;
    text = next;
  }
  return text;
}

/** `just now`, `12 s ago`, `3m 05s ago`. */
function ago(ms: number | undefined, now: number): string {
  if (ms === undefined) return '-';
  const elapsed = Math.max(0, now - ms);
  return elapsed < 1000 ? 'just now' : `${formatDuration(elapsed).replace(/^(\d+)\.\d s$/, '$1 s')} ago`;
}

const COLUMNS = ['ID', 'PROGRAM', 'STATUS', 'ACTIONS', 'VERSION', 'HOST', 'PID', 'UP SINCE', 'LAST SEEN'] as const;

type ShownClient = Partial<ClientDetail> & Pick<ClientDetail, 'status' | 'lastSeen'>;

/** A client's identity and session: the registry's fields, else read from its id (a router before sessions). */
function identityAndSession(id: string, client: ShownClient): { identity: string; session?: string } {
  if (client.identity !== undefined) return { identity: client.identity, ...(client.session !== undefined && { session: client.session }) };
  const parts = parseClientId(id);
  return 'problem' in parts ? { identity: id } : { identity: parts.identity, ...(parts.session !== undefined && { session: parts.session }) };
}

/**
 * The clients as an aligned text table, by identity: the sessions of one identity
 * (`alice~tab1`, protocol §2.1) indented under it, below a line naming the identity when it is
 * not connected itself. A SITE column when one is a site's. With `maxRows`, the rows past it are
 * left out and the count line says how many (`--watch` draws what fits on the screen, as top does).
 */
export function formatTable(clients: ReadonlyMap<string, ShownClient>, now = Date.now(), maxRows?: number): string {
  const sites = [...clients.values()].some((client) => client.site !== undefined);
  const all = tableRows(clients, now, sites);
  const rows = maxRows === undefined ? all : all.slice(0, maxRows);
  const hidden = all.slice(rows.length).filter((row) => row.id !== undefined).length;
  const table = formatColumns([...COLUMNS, ...(sites ? ['SITE'] : [])], rows.map((row) => row.cells));
  const below = hidden > 0 ? ` (${hidden} below the screen: relais clients lists them all)` : '';
  return `${table}\n${clients.size} client${clients.size === 1 ? '' : 's'}${below}`;
}

/** The ids of the clients in the first `maxRows` rows of the table, as formatTable orders them. */
export function idsOnScreen(clients: ReadonlyMap<string, ShownClient>, maxRows: number): string[] {
  return tableRows(clients, Date.now(), false)
    .slice(0, maxRows)
    .flatMap((row) => (row.id === undefined ? [] : [row.id]));
}

/** The table's rows in order, each with the client it shows (none for an identity's heading line). */
function tableRows(clients: ReadonlyMap<string, ShownClient>, now: number, sites: boolean): Array<{ id?: string; cells: string[] }> {
  const time = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
  const groups = new Map<string, Array<[string, ShownClient, string | undefined]>>();
  for (const [id, client] of clients) {
    const { identity, session } = identityAndSession(id, client);
    let group = groups.get(identity);
    if (!group) groups.set(identity, (group = []));
    group.push([id, client, session]);
  }
  const blank = (first: string, second: string) => ({ cells: [first, second, ...Array<string>(COLUMNS.length - 2 + (sites ? 1 : 0)).fill('')] });
  const rows: Array<{ id?: string; cells: string[] }> = [];
  for (const identity of [...groups.keys()].sort((a, b) => a.localeCompare(b))) {
    // The identity's own connection first, then its sessions by name.
    const members = groups.get(identity)!.sort(([a, , sa], [b, , sb]) => (sa === undefined ? -1 : sb === undefined ? 1 : sa.localeCompare(sb)) || a.localeCompare(b));
    const sessions = members.filter(([, , session]) => session !== undefined).length;
    if (sessions > 0 && members[0]![2] !== undefined) rows.push(blank(identity, `(${sessions} session${sessions === 1 ? '' : 's'})`));
    for (const [id, client, session] of members) {
      rows.push({
        id,
        cells: [
          session === undefined ? id : `  ${id}`,
          programOf({ info: client.info ?? {} }),
          client.status,
          actionsOf({ actions: client.actions ?? [], realtimeActions: client.realtimeActions ?? [] }),
          client.version ?? '-',
          client.host ?? '-',
          client.pid === undefined ? '-' : String(client.pid),
          time(client.connectedSince),
          ago(client.lastSeen, now),
          ...(sites ? [client.site ?? '-'] : []),
        ],
      });
    }
  }
  return rows;
}
