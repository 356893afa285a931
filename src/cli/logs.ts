/**
 * `relais logs <client-id>`: the recent log lines of a library client, served by the client
 * itself on the built-in action `relais/logs/get` (protocol §11.4). Readable lines on a
 * terminal, the JSON lines as pino wrote them otherwise (as `relais call` decides). With
 * `--follow`, new lines as they are written until Ctrl-C; when the client ends the follow (after
 * its `logs.lockTimeout`, a minute by default) it is asked again from the last line seen, without
 * a gap. The client's own lines at info and above unless `--level` says otherwise; every line
 * of a `--source` (a plain-text log file has no levels: asking one would hide all of it).
 * Exit 0 (also when Ctrl-C ends a follow); 1 on an error (e.g. BUSY: too many follows run); 2 on a usage
 * mistake; 3 when the client is not connected; 124 on a time-out.
 */
import { Command } from 'commander';
import {
  CancelledError,
  checkClientId,
  LOG_LINE_LEVELS,
  LOGS_ACTION,
  MAX_LOG_LINES,
  NoHandlerError,
  TimeoutError,
  type Bus,
  type LogLineLevel,
  type LogsAnswer,
  type LogsProgress,
} from '../library.js';
import { addConnectionOptions, connectCli, EXIT, exitWhenWritten, fail, onInterrupt, type GlobalOptions } from './common.js';
import { readableLogLine } from '../logging/log-lines.js';

interface LogsCommandOptions extends GlobalOptions {
  lines: string;
  level?: string;
  pattern?: string;
  source?: string;
  follow?: boolean;
  json?: boolean;
  timeout: string;
}

/** How long one follow request may run: the serving client's lock time-out ends it well before. */
const FOLLOW_REQUEST_TIMEOUT_MS = 24 * 3600_000;

export function logsCommand(): Command {
  return addConnectionOptions(new Command('logs'))
    .description('print the recent log lines of a client (readable on a terminal, JSON lines otherwise)')
    .argument('<client-id>', 'the client whose logs to read')
    .option('-n, --lines <n>', `the newest lines to print, up to ${MAX_LOG_LINES}`, '100')
    .option('-l, --level <level>', `only lines at this level and above: ${Object.keys(LOG_LINE_LEVELS).join(', ')} (default: info for the client's own lines, every line of a --source)`)
    .option('-p, --pattern <text>', 'only lines containing this text (plain text, not a regular expression)')
    .option('-s, --source <name>', "another log the client serves: an agent's configured log files by name, or journal (docs/agent.md)")
    .option('-f, --follow', 'then print new lines as they are written, until Ctrl-C')
    .option('--json', 'JSON lines even on a terminal')
    .option('--timeout <seconds>', 'give up waiting for the answer after this many seconds', '30')
    .action(async (clientId: string, options: LogsCommandOptions) => {
      const problem = checkClientId(clientId);
      if (problem) fail(EXIT.USAGE, problem);
      const lines = Number(options.lines);
      if (!Number.isInteger(lines) || lines < 1 || lines > MAX_LOG_LINES) fail(EXIT.USAGE, `--lines must be an integer from 1 to ${MAX_LOG_LINES}, got ${options.lines}`);
      if (options.level !== undefined && !Object.hasOwn(LOG_LINE_LEVELS, options.level)) {
        fail(EXIT.USAGE, `--level must be one of ${Object.keys(LOG_LINE_LEVELS).join(', ')}, got ${options.level}`);
      }
      const seconds = Number(options.timeout);
      if (!(seconds > 0 && seconds <= 24 * 3600)) fail(EXIT.USAGE, `--timeout must be a positive number of seconds up to a day, got ${options.timeout}`);
      const print = process.stdout.isTTY && !options.json ? printReadable : printJson;
      // A source's lines may carry no level (a plain-text file passes no level filter, protocol §11.4): all of them unless asked.
      const level = (options.level ?? (options.source === undefined ? 'info' : undefined)) as LogLineLevel | undefined;
      const bus = await connectCli(options);
      const controller = new AbortController();
      onInterrupt(() => controller.abort(new Error('interrupted')));
      let exitCode: number = EXIT.OK;
      try {
        const request = { lines, ...(level !== undefined && { level }), ...(options.pattern && { pattern: options.pattern }), ...(options.source && { source: options.source }) };
        if (!options.follow) {
          const answer = await bus.request<LogsAnswer>(LOGS_ACTION, request, { target: clientId, timeout: seconds * 1000, signal: controller.signal });
          answer.lines.forEach(print);
          noteWhatIsKept(answer, level, clientId);
        } else {
          await follow(bus, clientId, request, print, controller.signal);
        }
      } catch (error) {
        exitCode = controller.signal.aborted && options.follow ? EXIT.OK : exitCodeOf(error);
        if (exitCode !== EXIT.OK) process.stderr.write(`relais: ${describeFailure(bus, clientId, error)}\n`);
      } finally {
        await bus.close();
      }
      await exitWhenWritten(exitCode);
    });
}

/** Follows until `signal` aborts; each time the client's lock times out, asks again after the last line seen. */
async function follow(bus: Bus, clientId: string, request: { lines: number; level?: LogLineLevel; pattern?: string; source?: string }, print: (line: Record<string, unknown>) => void, signal: AbortSignal): Promise<void> {
  let payload: Record<string, unknown> = { ...request, follow: true };
  for (;;) {
    let next: number | undefined;
    for await (const step of bus.call(LOGS_ACTION, payload, { target: clientId, timeout: FOLLOW_REQUEST_TIMEOUT_MS, signal })) {
      if (step.kind === 'accepted') continue;
      const answer = step.payload as LogsProgress;
      answer.lines.forEach(print);
      next = answer.next;
      if (step.kind === 'final' && (step.payload as LogsAnswer).ended !== 'lock-timeout') return;
    }
    // Every line after the last one seen, however many were written in between.
    payload = { ...request, lines: MAX_LOG_LINES, follow: true, ...(next !== undefined && { after: next }) };
  }
}

function noteWhatIsKept(answer: LogsAnswer, asked: LogLineLevel | undefined, clientId: string): void {
  if (answer.unavailable) process.stderr.write(`relais: note: this source is unavailable on ${clientId}: ${answer.unavailable}\n`);
  const kept = LOG_LINE_LEVELS[answer.kept.level as LogLineLevel];
  if (asked !== undefined && kept !== undefined && LOG_LINE_LEVELS[asked] < kept) {
    process.stderr.write(`relais: note: ${clientId} keeps lines at ${answer.kept.level} and above (its connect option logs.level)\n`);
  }
  if (answer.truncated) process.stderr.write('relais: note: older lines were left out to keep the answer within the message size limit\n');
}

function describeFailure(bus: Bus, clientId: string, error: unknown): string {
  if (error instanceof NoHandlerError) {
    const presence = bus.directory.get(clientId);
    if (presence?.status !== 'alive') return `client ${clientId} is not connected`;
    return `client ${clientId} does not serve its logs (a library without logs on demand, or connected with logs: false)`;
  }
  return (error as Error).message;
}

function exitCodeOf(error: unknown): number {
  if (error instanceof NoHandlerError) return EXIT.NO_HANDLER;
  if (error instanceof TimeoutError) return EXIT.TIMEOUT;
  if (error instanceof CancelledError) return EXIT.INTERRUPTED;
  return EXIT.ERROR;
}

function printJson(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** `2026-12-01 01:38:20.511 WARN  relais: connection lost; reconnecting (lane=main broker=mqtt://…)`: remote text made printable. */
function printReadable(line: Record<string, unknown>): void {
  process.stdout.write(`${readableLogLine(JSON.stringify(line), { time: true })}\n`);
}
