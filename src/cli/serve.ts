/**
 * `relais serve <action> -- <command> [args...]`: any program becomes a handler.
 * The payload goes to its stdin as JSON; each stdout line that is a JSON object with a
 * `progress` field is a progress response; the last JSON line is the result; a non-zero
 * exit is an error response carrying stderr. The command line is fixed by whoever starts
 * `serve`: requesters only reach the program's stdin, never its arguments or a shell. A
 * cancelled or timed-out request stops the program's whole process group (SIGTERM, then
 * SIGKILL 2 s later).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { checkPath, RelaisError, type HandlerContext } from '../library.js';
import { addConnectionOptions, addDirectoryOption, connectCli, fail, EXIT, onInterrupt, type GlobalOptions } from './common.js';
import { addLogFormatOption, logFormatOf } from './log-lines.js';
import { commandLogger } from '../logging/log-lines.js';

const STDERR_KEPT = 4096;

export function serveCommand(): Command {
  return addDirectoryOption(addLogFormatOption(addConnectionOptions(new Command('serve'))))
    .description('serve an action with a program: payload on its stdin, progress and result as JSON lines on its stdout')
    .argument('<action>', 'action path to serve')
    .argument('<command...>', 'program and its arguments, after --')
    .option('--lane <lane>', 'main or realtime', 'main')
    .option('--sealed-only', 'refuse commands whose payload is not sealed (code 3; protocol §3.6): with --sealing-key to open them and --sealing-keys to seal the answers back')
    .action(async (action: string, commandLine: string[], options: GlobalOptions & { lane: string; logFormat?: string; sealedOnly?: boolean; directory: 'full' | 'on-demand' }) => {
      const problem = checkPath(action);
      if (problem) fail(EXIT.USAGE, problem);
      const [program, ...args] = commandLine;
      if (!program) fail(EXIT.USAGE, 'give the program to run after --');
      if (options.sealedOnly && (options.sealingKey === undefined || options.sealingKeys === undefined)) {
        fail(EXIT.USAGE, '--sealed-only needs --sealing-key (opens the commands) and --sealing-keys (seals the answers back for each requester)');
      }
      // A handler's failures are warnings of this process: on a terminal readable, with the error's text.
      const logger = commandLogger(options.verbose ? 'debug' : 'info', 'relais', logFormatOf(options));
      const bus = await connectCli(options, { ephemeral: false, logger, directory: options.directory, info: { program: `serve ${action}` } });
      await bus.handle(action, (payload, ctx) => runProgram(program, args, payload, ctx), {
        lane: options.lane === 'realtime' ? 'realtime' : 'main',
        ...(options.sealedOnly && { sealed: 'require' as const }),
      });
      onInterrupt(async () => {
        await bus.close();
        process.exit(EXIT.OK);
      });
      process.stderr.write(`relais: serving ${action} with ${[program, ...args].join(' ')} as ${bus.id}\n`);
    });
}

/** How long a cancelled program has after SIGTERM before its whole process group gets SIGKILL. */
const KILL_GRACE_MS = 2000;

/** Signals the program's process group: what it started itself stops with it (a shell's children, say). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // The group is gone already.
  }
}

function runProgram(program: string, args: string[], payload: unknown, ctx: HandlerContext): Promise<unknown> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that a cancel stops everything it started.
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let result: unknown = null;
    let stderr = '';
    const onAbort = () => {
      signalGroup(child, 'SIGTERM');
      setTimeout(() => signalGroup(child, 'SIGKILL'), KILL_GRACE_MS).unref();
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    child.stdin.on('error', () => {}); // the program may exit without reading its input
    child.stdin.end(JSON.stringify(payload));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-STDERR_KEPT);
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const value = parseLine(line);
      if (value === undefined) return;
      if (isProgress(value)) {
        const { progress, ...data } = value;
        ctx.progress(progress > 1 ? Math.min(progress / 100, 1) : Math.max(progress, 0), Object.keys(data).length ? data : undefined);
      } else {
        result = value;
      }
    });
    child.on('error', (error) => {
      ctx.signal.removeEventListener('abort', onAbort);
      reject(new RelaisError('SPAWN_FAILED', `cannot run ${program}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      ctx.signal.removeEventListener('abort', onAbort);
      if (code === 0) return resolve(result);
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      reject(new RelaisError('COMMAND_FAILED', `${program} ${how}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, { details: { exitCode: code, signal, stderr } }));
    });
  });
}

function parseLine(line: string): unknown {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[') && !trimmed.startsWith('"')) return undefined;
  try {
    return JSON.parse(trimmed);
  } catch {
    return undefined;
  }
}

function isProgress(value: unknown): value is { progress: number } & Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { progress?: unknown }).progress === 'number';
}
