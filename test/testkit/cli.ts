/** Runs the real `relais` binary as a user would (it needs `npm run build`, which `npm test` does first). */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const RELAIS_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/relais.js');

/**
 * The time-outs of CLI tests catch hangs; they must not fail a slow machine. `relais` loads
 * only the command it runs (src/cli/commands.ts), and `npm run build` bundles the client
 * commands: a `relais call` costs a third to a half of the CPU it did when every command loaded
 * everything (bench/RESULTS.md, "CLI start-up"), but `relais start` still loads the broker,
 * SQLite and the web server (about 1.3 s of CPU), and after a bare `tsc` the CLI runs unbundled.
 * On 2 cores shared with 8 busy processes, a start took 10 to 40 s (docs/reliability.md). A
 * suite of CLI tests gets CLI_SUITE_TIMEOUT; one CLI run or one awaited line the defaults below.
 */
export const CLI_SUITE_TIMEOUT = 600_000;
const RUN_TIMEOUT = 120_000;
const LINE_TIMEOUT = 60_000;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** An empty configuration directory for the CLI processes of this test process (made once). */
let emptyConfig: string | undefined;

/**
 * The environment of the CLI processes: tests run side by side, so a `relais start` that does
 * not name its web port takes a free one rather than 8080 (RELAIS_WEB_PORT). What the shell
 * running the tests holds for its own `relais` (RELAIS_BROKER, RELAIS_TOKEN, RELAIS_CA…, the
 * context it selected in ~/.config/relais) does not reach them: a test says what it uses.
 */
export function cliEnvironment(env: Record<string, string>): NodeJS.ProcessEnv {
  if (emptyConfig === undefined) {
    const made = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-cli-config-'));
    process.once('exit', () => fs.rmSync(made, { recursive: true, force: true }));
    emptyConfig = made;
  }
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('RELAIS_') || name === 'RELAIS_REQUIRE_PEERS'));
  return { ...inherited, XDG_CONFIG_HOME: emptyConfig, RELAIS_WEB_PORT: '0', ...env };
}

/** Runs `relais ...args` to completion (killed after `timeout` ms). */
export function runCli(args: string[], env: Record<string, string> = {}, timeout = RUN_TIMEOUT): Promise<CliResult> {
  const child = spawn(process.execPath, [RELAIS_BIN, ...args], { env: cliEnvironment(env), stdio: ['ignore', 'pipe', 'pipe'] });
  return collectRun(child, `relais ${args.join(' ')}`, timeout);
}

/** What a child process wrote and its exit code once it has closed; SIGKILLed and rejected after `timeout` ms. */
export function collectRun(child: ChildProcessByStdio<null, Readable, Readable>, what: string, timeout = RUN_TIMEOUT): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not exit within ${timeout} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeout);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What a long-running process wrote so far (stdout and stderr as they came), and a wait for a line of it. */
export interface WatchedOutput {
  output(): string;
  /** Resolves with the first match of `pattern` in what it wrote; rejects on exit or time-out. */
  waitFor(pattern: RegExp, timeout?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code when the process has closed. */
  exited: Promise<number | null>;
}

/** Watches what `child` writes on stdout and stderr; `what` names it in errors. */
export function watchOutput(child: ChildProcessByStdio<Writable | null, Readable, Readable>, what: string): WatchedOutput {
  let seen = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    seen += chunk;
    for (const listener of listeners) listener();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    output: () => seen,
    exited,
    waitFor(pattern, timeout = LINE_TIMEOUT) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = seen.match(pattern);
          if (match) finish(undefined, match);
        };
        const timer = setTimeout(() => finish(new Error(`${what}: no ${pattern} within ${timeout} ms; output:\n${seen}`)), timeout);
        const finish = (error?: Error, match?: RegExpMatchArray) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (error) reject(error);
          else resolve(match!);
        };
        listeners.add(check);
        void exited.then((code) => finish(new Error(`${what} exited (${code}) before ${pattern}; output:\n${seen}`)));
        check();
      });
    },
  };
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
  const { output, waitFor, exited } = watchOutput(child, `relais ${args.join(' ')}`);
  return {
    child,
    output,
    waitFor,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A `relais start` on free ports, ready: its broker, router (unless `--no-router`) and web server (unless `--no-web`) are up. */
export interface RelaisStart {
  /** The process running now (another one after `restart()`). */
  readonly cli: RunningCli;
  /** The plain MQTT listener, as the start line names it for clients (`clients connect with --broker …`). */
  url: string;
  port: number;
  /** The page and HTTP API (`http://127.0.0.1:<port>/`), unless `--no-web`; on another free port after `restart()`, unless `--web-port` names one. */
  readonly webUrl?: string;
  /** `mqtts://localhost:<port>` (the name the generated certificates are for), when it listens with TLS. */
  tlsUrl?: string;
  /** `ws://…/mqtt`, when it listens for MQTT over WebSocket (`--ws-port`). */
  wsUrl?: string;
  /** Its data directory: the one given with `--data-dir`, else a temporary one `close()` removes (none with `--config`). */
  dataDir?: string;
  /** The environment of a CLI that talks to it: `RELAIS_BROKER`, and errors only in its log. */
  env: Record<string, string>;
  /** A long-running `relais ...args` against it (`env` added to `this.env`); `close()` stops it. */
  startCli(args: string[], env?: Record<string, string>): RunningCli;
  /** `relais serve <action> [--id id] -- <program...>`, once it says it is serving; `close()` stops it. */
  serve(action: string, program: string[], options?: { id?: string; env?: Record<string, string> }): Promise<RunningCli>;
  /**
   * Stops it (SIGTERM) and starts it again on the same port with the same data: clients lose
   * their connection and come back. `awayMs`: how long it stays stopped, for a test of what an
   * outage leaves behind (a gap in the router's metrics) — the outage is the scenario, not a wait.
   */
  restart(awayMs?: number): Promise<void>;
  /** Stops what `startCli`/`serve` started, then it (SIGTERM, a clean stop: exit 0); removes the data directory it made; resolves with its exit code. */
  close(): Promise<number | null>;
}

/** Whether `args` gives `option` (`--port 1`, `--port=1`). */
function gives(args: readonly string[], option: string): boolean {
  return args.some((arg) => arg === option || arg.startsWith(`${option}=`));
}

/**
 * Starts `relais start ...args` and waits until it is ready: its last start-up line
 * (`clients connect with --broker …`) comes once the broker, router, web server and site links
 * are up. Without `--port` (`--web-port`) it takes a free one; without `--data-dir` or
 * `--config`, a temporary data directory. `env` goes to the start process (RELAIS_LOG_LEVEL…). A start that fails or
 * does not come up within `timeout` ms is killed and its output is in the error.
 */
export async function startRelais(args: string[] = [], options: { env?: Record<string, string>; timeout?: number } = {}): Promise<RelaisStart> {
  const timeout = options.timeout ?? RUN_TIMEOUT;
  const madeDir = gives(args, '--data-dir') || gives(args, '--config') ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'relais-start-'));
  const givenDir = args[args.indexOf('--data-dir') + 1];
  const launch = async (port: string) => {
    // A free web port too, over what a --config file names (RELAIS_WEB_PORT=0 yields to it).
    const webPort = gives(args, '--web-port') || args.includes('--no-web') ? [] : ['--web-port', '0'];
    const cli = startCli(['start', ...(gives(args, '--port') ? [] : ['--port', port]), ...webPort, ...(madeDir ? ['--data-dir', madeDir] : []), ...args], options.env);
    try {
      const [, url] = await cli.waitFor(/clients connect with --broker (\S+)/, timeout);
      const web = /web page and HTTP API on (http\S+)/.exec(cli.output())?.[1];
      const tlsPort = /mqtts:\/\/[^\s:]+:(\d+)/.exec(cli.output())?.[1];
      const ws = /listening on .*?(ws:\/\/\S+)/.exec(cli.output())?.[1];
      return { cli, url: url!, ...(web && { web }), ...(tlsPort && { tlsUrl: `mqtts://localhost:${tlsPort}` }), ...(ws && { ws }) };
    } catch (error) {
      await cli.stop('SIGKILL');
      throw error;
    }
  };
  const running: RunningCli[] = [];
  let current = await launch('0');
  const port = Number(new URL(current.url).port);
  const env = { RELAIS_BROKER: current.url, RELAIS_LOG_LEVEL: 'error' };
  const startAgainst = (cliArgs: string[], extra: Record<string, string> = {}) => {
    const cli = startCli(cliArgs, { ...env, ...extra });
    running.push(cli);
    return cli;
  };
  return {
    get cli() {
      return current.cli;
    },
    url: current.url,
    port,
    get webUrl() {
      return current.web;
    },
    ...(current.tlsUrl && { tlsUrl: current.tlsUrl }),
    ...(current.ws && { wsUrl: current.ws }),
    ...((madeDir ?? (gives(args, '--data-dir') ? givenDir : undefined)) && { dataDir: madeDir ?? givenDir }),
    env,
    startCli: startAgainst,
    async serve(action, program, serveOptions = {}) {
      const server = startAgainst(['serve', action, ...(serveOptions.id ? ['--id', serveOptions.id] : []), '--', ...program], serveOptions.env);
      await server.waitFor(new RegExp(`serving ${action.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), timeout);
      return server;
    },
    async restart(awayMs = 0) {
      await current.cli.stop('SIGTERM');
      if (awayMs > 0) await new Promise((resolve) => setTimeout(resolve, awayMs));
      current = await launch(String(port));
    },
    async close() {
      await Promise.all(running.map((cli) => cli.stop()));
      const code = await current.cli.stop('SIGTERM');
      if (madeDir) fs.rmSync(madeDir, { recursive: true, force: true });
      return code;
    },
  };
}
