/**
 * The table of `relais` sub-commands: what `relais --help` lists without loading any of them,
 * and the one import `relais <name>` runs. A command's module loads its dependencies (the
 * broker, SQLite, the web server…) when it is named, so `relais pub` does not pay for `relais
 * start` (bench/cli-startup.ts measures it; test/cli/startup.test.ts checks what each loads).
 *
 * A new command is one row here; its `usage` must be what the command itself prints after its
 * name (startup.test.ts compares them).
 */
import type { Command } from 'commander';

export interface CommandEntry {
  name: string;
  /** The arguments after the name, as commander prints them: `[options] <topic> <json>`. */
  usage: string;
  /** One line for the list; the command's own --help says the rest. */
  summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'start', usage: '[options]', summary: 'start the embedded broker and the router (history in the data directory)', load: async () => (await import('./start.js')).startCommand() },
  { name: 'init', usage: '[options]', summary: 'create a secure set-up: a CA, certificates, an admin identity, the policy and a config', load: async () => (await import('./init.js')).initCommand() },
  { name: 'pub', usage: '[options] <topic> [json]', summary: 'publish a JSON message as-is on a topic', load: async () => (await import('./pub.js')).pubCommand() },
  { name: 'notify', usage: '[options] <category> [json]', summary: 'publish a notification on <category>/notification', load: async () => (await import('./pub.js')).notifyCommand() },
  { name: 'sub', usage: '[options] <filter...>', summary: 'print the messages on topic filters', load: async () => (await import('./sub.js')).subCommand() },
  { name: 'call', usage: '[options] <action> [json]', summary: 'send a command, show its progress, print its result', load: async () => (await import('./call.js')).callCommand() },
  { name: 'serve', usage: '[options] <action> <command...>', summary: 'serve an action with a program (payload on stdin, progress and result on stdout)', load: async () => (await import('./serve.js')).serveCommand() },
  { name: 'router', usage: '[options]', summary: 'run the router alone against a broker (relais start already runs one)', load: async () => (await import('./router.js')).routerCommand() },
  { name: 'history', usage: '[options]', summary: 'the request history the router keeps', load: async () => (await import('./history.js')).historyCommand() },
  { name: 'stats', usage: '[options]', summary: "request and error rates, latencies per action; the broker's figures", load: async () => (await import('./stats.js')).statsCommand() },
  { name: 'kill', usage: '[options] <token>', summary: 'cancel a running request by its token', load: async () => (await import('./kill.js')).killCommand() },
  { name: 'clients', usage: '[options]', summary: 'the clients on the bus, their status and actions', load: async () => (await import('./clients.js')).clientsCommand() },
  { name: 'sites', usage: '[options]', summary: "the router's links to its sites", load: async () => (await import('./sites.js')).sitesCommand() },
  { name: 'kv', usage: '[options] [command]', summary: "the router's key-value store: get, put, del, ls, history, watch, buckets", load: async () => (await import('./kv.js')).kvCommand() },
  { name: 'events', usage: '[options]', summary: 'the event stream: status changes, requests, notifications, warnings', load: async () => (await import('./events.js')).eventsCommand() },
  { name: 'logs', usage: '[options] <client-id>', summary: 'print the recent log lines of a client', load: async () => (await import('./logs.js')).logsCommand() },
  { name: 'context', usage: '[options] [command]', summary: 'save a broker and its credentials under a name (add, select, ls, show, rm); --context <name> on any command', load: async () => (await import('./context.js')).contextCommand() },
  { name: 'policy', usage: '[options] [command]', summary: 'check and export the authorisation policy', load: async () => (await import('./policy.js')).policyCommand() },
  { name: 'identity', usage: '[options] [command]', summary: 'manage identities: secret tokens, client certificates and signing keys', load: async () => (await import('./identity.js')).identityCommand() },
  { name: 'contracts', usage: '[options]', summary: 'the contracts of the actions served on the bus, or an AsyncAPI 3 document', load: async () => (await import('./contracts.js')).contractsCommand() },
  { name: 'agent', usage: '[options]', summary: "serve this host's built-in actions (disks, commands, components, benchmark)", load: async () => (await import('./agent.js')).agentCommand() },
  { name: 'exec', usage: '[options] <agent> <command...>', summary: 'run a command on an agent, its output live here', load: async () => (await import('./exec.js')).execCommand() },
  { name: 'bridge', usage: '[options] [command]', summary: 'legacy transports on the bus: the PSEC MVP line protocol, xPL', load: async () => (await import('./bridge.js')).bridgeCommand() },
  { name: 'send', usage: '[options] <agent> <local-path> <disk:path>', summary: 'send a local file or folder to a disk of an agent', load: async () => (await import('./transfer.js')).sendCommand() },
  { name: 'fetch', usage: '[options] <agent> <disk:path> <local-path>', summary: 'fetch a file or folder from a disk of an agent', load: async () => (await import('./transfer.js')).fetchCommand() },
];

/**
 * The sub-command a command line names: its first word, or the word after `help`. None when
 * an option comes first (`relais --help`, `relais -V`): the program's own options end there.
 */
export function namedCommand(args: readonly string[]): CommandEntry | undefined {
  const [first, second] = args;
  const name = first === 'help' ? second : first;
  return COMMANDS.find((entry) => entry.name === name);
}
