/**
 * Runs `relais ...args` on a terminal, as a person at a shell does: util-linux `script` gives
 * it a pseudo-terminal (its stdout and stderr are a TTY: the views print tables there, JSON
 * lines in a pipe; the long-running commands log readable lines), and what it writes there
 * comes back here. The environment is the one of every CLI a test runs (cliEnvironment).
 */
import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { RELAIS_BIN, cliEnvironment, collectRun, watchOutput, type CliResult } from './cli.js';

/** Wide enough that a view's table is not cut to an 80-column terminal. */
const TERMINAL_ENV = { COLUMNS: '200' };

/** `script -qefc <command> /dev/null`: -q no "Script started" lines, -e its exit code is the command's, -f flushed as written; the log goes nowhere. */
function onTerminal(args: string[], env: Record<string, string>, keyboard: 'ignore', rows?: number): ChildProcessByStdio<null, Readable, Readable>;
function onTerminal(args: string[], env: Record<string, string>, keyboard: 'pipe', rows?: number): ChildProcessByStdio<Writable, Readable, Readable>;
function onTerminal(args: string[], env: Record<string, string>, keyboard: 'ignore' | 'pipe', rows?: number) {
  // `exec`: the shell `script` runs becomes relais, so script's one child is the process to signal.
  // `stty rows`: a terminal of that height, as a small window would be.
  const command = `${rows === undefined ? '' : `stty rows ${rows} cols ${TERMINAL_ENV.COLUMNS}; `}exec ${[process.execPath, RELAIS_BIN, ...args].map(quoted).join(' ')}`;
  // script's stdin is the terminal's keyboard: what is written there is typed (Ctrl-C included); ignored, the command reads end of file at once.
  return spawn('script', ['-qefc', command, '/dev/null'], { env: cliEnvironment({ ...TERMINAL_ENV, ...env }), stdio: [keyboard, 'pipe', 'pipe'] });
}

/** Runs `relais ...args` to completion on a terminal: what it showed (\r\n as \n) and the exit code; killed after `timeout` ms (collectRun's default). */
export async function runInTerminal(args: string[], env: Record<string, string> = {}, timeout?: number): Promise<CliResult> {
  const result = await collectRun(onTerminal(args, env, 'ignore'), `relais ${args.join(' ')} (on a terminal)`, timeout);
  return { ...result, stdout: result.stdout.replace(/\r\n/g, '\n') };
}

export interface TerminalCli {
  output(): string;
  /** Resolves with the first match of `pattern` in what the terminal showed; rejects on exit or time-out. */
  waitFor(pattern: RegExp, timeout?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` to the relais process and resolves when the terminal closes. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Types `keys` on the terminal: `\x03` is Ctrl-C, which its line discipline turns into SIGINT for relais. */
  type(keys: string): void;
  /** Resolves with relais's exit code (script -e) when the terminal has closed. */
  exited: Promise<number | null>;
}

function quoted(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/** Starts a long-running `relais ...args` on a terminal (`rows` high, if given); `stop()` signals the relais process itself, found as `script`'s child. */
export function startOnTerminal(args: string[], env: Record<string, string> = {}, options: { rows?: number } = {}): TerminalCli {
  const child = onTerminal(args, env, 'pipe', options.rows);
  const { output, waitFor, exited } = watchOutput(child, `relais ${args.join(' ')} on a terminal`);
  return {
    output,
    waitFor,
    exited,
    type: (keys) => child.stdin.write(keys),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        let relais: string[] = [];
        try {
          relais = execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
        } catch {
          // pgrep exits 1 when script has no child left: relais has ended already.
        }
        for (const pid of relais) process.kill(Number(pid), signal);
        if (relais.length === 0) child.kill(signal);
      }
      await exited;
    },
  };
}
