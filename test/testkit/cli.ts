/** Runs the real `relais` binary as a user would (it needs `npm run build`, which `npm test` does first). */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const RELAIS_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/relais.js');

/**
 * The time-outs of CLI tests catch hangs; they must not fail a slow machine. A CLI start costs
 * about 1.3 s of CPU (it loads every sub-command's modules), so on 2 cores shared with 8 busy
 * processes one start takes 10 to 40 s (docs/reliability.md). A suite of CLI tests gets
 * CLI_SUITE_TIMEOUT; one CLI run or one awaited line gets the defaults below.
 */
export const CLI_SUITE_TIMEOUT = 600_000;
const RUN_TIMEOUT = 120_000;
const LINE_TIMEOUT = 60_000;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `relais ...args` to completion (killed after `timeout` ms). */
/**
 * The environment of the CLI processes: tests run side by side, so a `relais start` that does
 * not name its web port takes a free one rather than 8080 (RELAIS_WEB_PORT).
 */
function cliEnvironment(env: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, RELAIS_WEB_PORT: '0', ...env };
}

export function runCli(args: string[], env: Record<string, string> = {}, timeout = RUN_TIMEOUT): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RELAIS_BIN, ...args], { env: cliEnvironment(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`relais ${args.join(' ')} did not exit within ${timeout} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeout);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RunningCli {
  child: ChildProcess;
  output(): string;
  /** Resolves with the first match of `pattern` in stdout+stderr; rejects on exit or time-out. */
  waitFor(pattern: RegExp, timeout?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts a long-running `relais ...args` (start, serve, sub). */
export function startCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const child = spawn(process.execPath, [RELAIS_BIN, ...args], { env: cliEnvironment(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    seen += chunk;
    for (const listener of listeners) listener();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    output: () => seen,
    waitFor(pattern, timeout = LINE_TIMEOUT) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = seen.match(pattern);
          if (match) finish(undefined, match);
        };
        const timer = setTimeout(() => finish(new Error(`relais ${args.join(' ')}: no ${pattern} within ${timeout} ms; output:\n${seen}`)), timeout);
        const finish = (error?: Error, match?: RegExpMatchArray) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (error) reject(error);
          else resolve(match!);
        };
        listeners.add(check);
        void exited.then((code) => finish(new Error(`relais ${args.join(' ')} exited (${code}) before ${pattern}; output:\n${seen}`)));
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
