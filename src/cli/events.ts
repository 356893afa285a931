/** `relais events`: the router's one event stream, from a cursor, then live (protocol §11.8). */
import { Command } from 'commander';
import { EVENTS_ACTION, type BusEvent, type EventGap, type EventsPage } from '../library.js';
import { addConnectionOptions, fail, EXIT, writeLine, type GlobalOptions } from './common.js';
import { withRouter } from './router-client.js';

interface EventsCommandOptions extends GlobalOptions {
  since?: string;
  lines: string;
  follow?: boolean;
  json?: boolean;
}

/** `#42 01:40:02.123 request.finished demo/echo h -> ui code 0 12 ms` */
export function formatEvent(item: BusEvent | EventGap): string {
  if (item.type === 'gap') return `-- ${item.missed} events after #${item.after} were removed by retention before they could be read --`;
  const time = new Date(item.time).toISOString().slice(11, 23);
  const d = item.data as Record<string, unknown>;
  const text = (() => {
    switch (item.type) {
      case 'client':
        return `${d.id} ${d.status}`;
      case 'request.started':
        return `${d.action} ${d.source} -> ${d.target ?? 'any'} ${d.token}`;
      case 'request.finished':
        return `${d.action} ${d.handler} -> ${d.requester} code ${d.code}${d.durationMs === undefined ? '' : ` ${d.durationMs} ms`} ${d.token}`;
      case 'log':
        return `${d.level} ${d.category} ${d.source}: ${d.message}`;
      case 'history.gap':
        return d.missed === null
          ? `the router was away from ${new Date(Number(d.from)).toISOString()}: what was published meanwhile may be missing from the history`
          : `${d.missed} not recorded (${d.commands} commands, ${d.responses} responses, ${d.cancels} cancels) from ${new Date(Number(d.from)).toISOString()} to ${new Date(Number(d.to)).toISOString()}`;
      default:
        return `${d.category} from ${d.source} ${d.truncated ? `(${d.size} B, cut)` : JSON.stringify(d.payload)}`;
    }
  })();
  return `#${item.cursor} ${time} ${item.type} ${text}`;
}

export function eventsCommand(): Command {
  return addConnectionOptions(new Command('events'))
    .description('the one event stream: client status changes, requests started and finished, notifications, warnings and errors')
    .option('--since <cursor>', 'the events after this cursor (what a consumer saw last), then live with --follow')
    .option('-n, --lines <n>', 'without --since: how many of the newest to show first', '20')
    .option('-f, --follow', 'go on with new events as they happen, across lost connections (Ctrl-C stops)')
    .option('--json', 'JSON lines even on a terminal')
    .action(async (options: EventsCommandOptions) => {
      const since = options.since === undefined ? undefined : Number(options.since);
      if (since !== undefined && !(Number.isInteger(since) && since >= 0)) fail(EXIT.USAGE, `--since must be a cursor (a whole number), got ${options.since}`);
      const lines = Number(options.lines);
      if (!Number.isInteger(lines) || lines < 1 || lines > 5000) fail(EXIT.USAGE, `--lines must be a whole number from 1 to 5000, got ${options.lines}`);
      const print = process.stdout.isTTY && !options.json ? (item: BusEvent | EventGap) => process.stdout.write(`${formatEvent(item)}\n`) : writeLine;
      await withRouter(options, EVENTS_ACTION, 'the event stream comes from the router', async (bus, signal) => {
        let cursor = since;
        if (cursor === undefined) {
          const page = (await bus.request(EVENTS_ACTION, { limit: lines })) as EventsPage;
          for (const event of page.events) print(event);
          cursor = page.latest;
        }
        if (options.follow) {
          for await (const item of bus.events({ since: cursor, signal })) print(item);
          return;
        }
        // Up to now: what is stored after the cursor, without waiting for more.
        for (let more = true; more; ) {
          const page = (await bus.request(EVENTS_ACTION, { since: cursor, limit: 1000 })) as EventsPage;
          if (page.missed) print({ type: 'gap', missed: page.missed, after: cursor });
          for (const event of page.events) print(event);
          cursor = page.events.at(-1)?.cursor ?? page.latest;
          more = page.more;
        }
      });
    });
}
