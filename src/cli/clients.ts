/**
 * `relais clients`: the client registry's list (protocol §11.3). A table on a terminal, one
 * JSON line per client in a pipe; `--watch` keeps updating from the registry's notifications.
 * Exit 3 when no registry answers (the router is not running), as `relais call` does.
 */
import { Command } from 'commander';
import { NoHandlerError, REGISTRY_ACTIONS, REGISTRY_CATEGORIES, type Bus, type ClientDetailChanges, type ClientListPayload, type ClientSummary } from '../index.js';
import { addConnectionOptions, connectCli, EXIT, fail, onInterrupt, writeLine, type GlobalOptions } from './common.js';

interface ClientsOptions extends GlobalOptions {
  watch?: boolean;
  json?: boolean;
}

const COLUMNS = ['ID', 'SITE', 'STATUS', 'HOST', 'PID', 'VERSION', 'UP SINCE', 'LAST SEEN'] as const;

export function clientsCommand(): Command {
  return addConnectionOptions(new Command('clients'))
    .description("list the clients on the bus with their status, from the router's registry (a table on a terminal, JSON lines otherwise)")
    .option('-w, --watch', 'keep updating as clients come and go (Ctrl-C to stop)')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: ClientsOptions) => {
      const interactive = process.stdout.isTTY && !options.json;
      const bus = await connectCli(options);
      const clients = new Map<string, ClientSummary>();
      let revision = -1;
      const show = () => process.stdout.write(`${interactive && options.watch ? '\x1b[2J\x1b[H' : ''}${formatTable(clients)}\n`);
      if (options.watch) {
        // Subscribed before asking, so no change falls between the answer and the first notification.
        await bus.subscribe(`${REGISTRY_CATEGORIES.detail}/notification`, (message) => {
          const changes = message.envelope.payload as ClientDetailChanges;
          if (changes.revision <= revision) return;
          revision = changes.revision;
          for (const [id, detail] of Object.entries(changes.clients)) {
            if (detail) clients.set(id, detail);
            else clients.delete(id);
            if (!interactive) writeLine(detail ? { id, ...summaryOf(detail) } : { id, forgotten: true });
          }
          if (interactive) show();
        });
      }
      const list = await askList(bus);
      if (list.revision > revision) {
        revision = list.revision;
        for (const [id, summary] of Object.entries(list.clients)) clients.set(id, summary);
      }
      if (interactive) show();
      else for (const [id, summary] of clients) writeLine({ id, ...summary });
      if (!options.watch) {
        await bus.close();
        process.exit(EXIT.OK);
      }
      onInterrupt(() => void bus.close().finally(() => process.exit(EXIT.OK)));
      if (!interactive) process.stderr.write('relais: watching the client registry\n');
    });
}

async function askList(bus: Bus): Promise<ClientListPayload> {
  try {
    return await bus.request<ClientListPayload>(REGISTRY_ACTIONS.listGet, {}, { timeout: 10_000 });
  } catch (error) {
    await bus.close();
    if (error instanceof NoHandlerError) fail(EXIT.NO_HANDLER, `no client registry answers ${REGISTRY_ACTIONS.listGet}: the router is not running (${error.message})`);
    throw error;
  }
}

function summaryOf(detail: ClientSummary): ClientSummary {
  const { status, site, host, pid, version, connectedSince, lastSeen } = detail;
  return { status, ...(site !== undefined && { site }), ...(host !== undefined && { host }), ...(pid !== undefined && { pid }), ...(version !== undefined && { version }), ...(connectedSince !== undefined && { connectedSince }), lastSeen };
}

/** Remote text as is, or JSON-quoted when it holds control characters: a presence must not drive the terminal. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(text) ? JSON.stringify(text) : text;
}

/** The clients as an aligned text table, sorted by id. */
export function formatTable(clients: ReadonlyMap<string, ClientSummary>): string {
  const time = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
  const rows = [...clients.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, client]) => [id, client.site ?? '-', client.status, client.host ?? '-', client.pid === undefined ? '-' : String(client.pid), client.version ?? '-', time(client.connectedSince), time(client.lastSeen)].map(printable));
  const table = [[...COLUMNS], ...rows];
  const widths = COLUMNS.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
  const lines = table.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd());
  return `${lines.join('\n')}\n${rows.length} client${rows.length === 1 ? '' : 's'}`;
}
