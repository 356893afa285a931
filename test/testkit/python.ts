/**
 * Python peers for the cross-language tests: Debian's `/usr/bin/python3` running
 * test/python/fixtures/peer.py, a program that uses the `relais` Python package
 * (clients/python) as an application would, driven over stdin/stdout with one JSON line each
 * way. The tests drive Python clients the way they drive TypeScript ones and wait on what the
 * peer reports, never on a sleep.
 *
 * Two paho versions: Debian 12's python3-paho-mqtt 1.6 (the system one) and paho 2.x, unpacked
 * from Debian 13's package into RELAIS_PAHO2_PATH (default /tmp/paho2/usr/lib/python3/dist-packages
 * when it exists; .ci/run sets it). Without python3 + paho (or without paho 2.x for the tests
 * that need it): a loud line and a skip, or a failure under RELAIS_REQUIRE_PEERS=1, as
 * `peerGate` does for Mosquitto.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eachLine } from './broker-process.js';
import { within } from './index.js';

export const PYTHON = '/usr/bin/python3';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * The package's source tree, put on PYTHONPATH as a user without pip would (docs/python.md).
 * RELAIS_PYTHON_PACKAGE runs the tests against another copy (a mutated one, to see a test fail).
 */
export const PYTHON_PACKAGE_DIR = process.env.RELAIS_PYTHON_PACKAGE || path.join(ROOT, 'clients/python');
const PEER = path.join(ROOT, 'test/python/fixtures/peer.py');
const SYSTEM_PAHO = '/usr/lib/python3/dist-packages/paho';
const DEFAULT_PAHO2 = '/tmp/paho2/usr/lib/python3/dist-packages';

/** Which paho a Python peer runs with: `1` is Debian's system package, `2` the unpacked 2.x. */
export type PahoVersion = 1 | 2;

/** The directory holding paho 2.x (`<dir>/paho/mqtt`), or undefined when there is none. */
export function paho2Path(): string | undefined {
  const configured = process.env.RELAIS_PAHO2_PATH;
  const candidate = configured || DEFAULT_PAHO2;
  if (fs.existsSync(path.join(candidate, 'paho/mqtt/client.py'))) return candidate;
  if (configured) throw new Error(`RELAIS_PAHO2_PATH=${configured} holds no paho/mqtt/client.py`);
  return undefined;
}

/** An optional Python module some tests need (the package works without it), and the Debian package that brings it. */
export interface PythonModule {
  module: string;
  debianPackage: string;
}

/** `cryptography`, for signed envelopes (protocol §12) and sealed payloads (§3.6): Debian's python3-cryptography. */
export const CRYPTOGRAPHY: PythonModule = { module: 'cryptography.hazmat.primitives.asymmetric.x25519', debianPackage: 'python3-cryptography' };

function imports(module: string): boolean {
  try {
    execFileSync(PYTHON, ['-c', `import ${module}`], { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

function missing(version: PahoVersion, needs: readonly PythonModule[] = []): string | undefined {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} is not installed (apt-get install python3 python3-paho-mqtt)`;
  if (!fs.existsSync(SYSTEM_PAHO)) return `${PYTHON} has no paho (apt-get install python3-paho-mqtt)`;
  for (const need of needs) if (!imports(need.module)) return `${PYTHON} cannot import ${need.module} (apt-get install ${need.debianPackage})`;
  if (version === 2 && paho2Path() === undefined) {
    return `paho-mqtt 2.x is not unpacked (RELAIS_PAHO2_PATH, or ${DEFAULT_PAHO2}: .ci/run shows how to fetch Debian 13's python3-paho-mqtt_2.1.0-1_all.deb and dpkg-deb -x it)`;
  }
  return undefined;
}

/**
 * Whether tests of `what` with paho `version` run: a loud line and a skip when Python, paho,
 * paho 2.x or a module of `needs` is missing, a failure under RELAIS_REQUIRE_PEERS=1 (CI installs them).
 */
export function pythonGate(what: string, version: PahoVersion = 1, needs: readonly PythonModule[] = []): { skip: string | false } {
  const reason = missing(version, needs);
  if (reason === undefined) return { skip: false };
  if (process.env.RELAIS_REQUIRE_PEERS === '1') throw new Error(`RELAIS_REQUIRE_PEERS=1 but ${what} cannot run: ${reason}`);
  const line = `!!! SKIPPING ${what}: ${reason} !!!`;
  console.error(`\n${'!'.repeat(line.length)}\n${line}\n${'!'.repeat(line.length)}\n`);
  return { skip: reason };
}

/** The environment of a Python process using the package with paho `version`. */
export function pythonEnvironment(version: PahoVersion, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const paths = [PYTHON_PACKAGE_DIR, ...(version === 2 ? [paho2Path()!] : [])];
  // PYTHONDONTWRITEBYTECODE: no __pycache__ left in the source tree by the tests.
  return { ...process.env, PYTHONPATH: paths.join(':'), PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', ...extra };
}

/** What the peer says: a reply to a command (`re`), a step of a call, or an event (`event`). */
export type PeerLine = Record<string, unknown> & { event?: string; re?: number };

/** Matches the peer's line of `event` (`run`, `started`, `cancelled`…) for the request `token`. */
export const peerEvent = (event: string, token: string) => (line: PeerLine) => line.event === event && line.token === token;

/** An error as the peer reports it: its Python class (and the classes it derives from), code, message. */
export interface PeerError {
  type: string;
  /** Every class in its MRO, `relais.errors.TimeoutError` as `TimeoutError` (and `builtins.TimeoutError`). */
  types: string[];
  message: string;
  response_code?: number | null;
  remote_name?: string | null;
  handler?: string | null;
  details?: unknown;
  cause?: PeerError | null;
}

/** True when the peer's error is the `relais` package's class `name` (or derives from it). */
export function isRelaisError(error: PeerError | undefined, name: string): boolean {
  return (error?.types ?? []).some((type) => type.startsWith('relais.') && type.endsWith(`.${name}`));
}

export class PeerCommandError extends Error {
  constructor(readonly op: string, readonly error: PeerError) {
    super(`peer ${op} failed: ${error.type}: ${error.message}`);
  }
}

export interface PythonPeer {
  /** The client id it connected with (its `connect`). */
  id: string;
  paho: PahoVersion;
  child: ChildProcess;
  /** Every line it wrote on stdout, parsed, in order. */
  lines: PeerLine[];
  /** Emits `line` for each. */
  events: EventEmitter;
  /** Sends a command; resolves with its reply's `result`, rejects with a PeerCommandError on `ok: false`. */
  send<T = unknown>(op: string, args?: Record<string, unknown>, timeout?: number): Promise<T>;
  /** Sends a command and returns its number without waiting (its reply is awaited with `reply`). */
  start(op: string, args?: Record<string, unknown>): number;
  /** The reply to command `re`: `{ ok, result | error }`. */
  reply(re: number, timeout?: number): Promise<{ ok: boolean; result?: unknown; error?: PeerError }>;
  /** Resolves with the first line (seen already or to come) that `match` accepts. */
  next(match: (line: PeerLine) => boolean, what: string, timeout?: number): Promise<PeerLine>;
  /** Every line seen so far that `match` accepts. */
  seen(match: (line: PeerLine) => boolean): PeerLine[];
  /** What it wrote on stderr (Python's logging, tracebacks), for failure messages. */
  stderr(): string;
  signal(signal: NodeJS.Signals): void;
  /** Closes its bus (when connected), then ends it; SIGKILL after `grace` ms. */
  stop(grace?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<PythonPeer>();
// Whatever a test leaves (a failure before its `after`), the process does not outlive the run.
process.once('exit', () => {
  for (const peer of running) {
    peer.child.kill('SIGCONT');
    peer.child.kill('SIGKILL');
  }
});

/** Default time-out of one command to a peer: a hang, not slowness, fails it (2 shared cores). */
const COMMAND_TIMEOUT = 30_000;

/**
 * Starts a Python peer with paho `version` and connects its bus with `connect` (the keyword
 * arguments of `relais.connect`, e.g. `{ id, broker }`); resolves once connected. Stop it
 * with `stop()` or `stopPythonPeers()`.
 */
export async function startPythonPeer(connect: Record<string, unknown> & { id: string; broker: string }, version: PahoVersion = 1, options: { env?: Record<string, string>; connectTimeout?: number } = {}): Promise<PythonPeer> {
  const child = spawn(PYTHON, [PEER], { env: pythonEnvironment(version, options.env), stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: PeerLine[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    if (process.env.RELAIS_TEST_LOG) process.stderr.write(`[py ${connect.id}] ${chunk}`);
  });
  eachLine(child.stdout!, (text) => {
    let line: PeerLine;
    try {
      line = JSON.parse(text) as PeerLine;
    } catch {
      line = { event: 'unparsed', text };
    }
    lines.push(line);
    events.emit('line', line);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => {
    events.emit('exit');
    resolve({ code, signal });
  }));
  // A write after the process died must not crash the test process (EPIPE).
  child.stdin!.on('error', () => {});
  let counter = 0;
  const describe = () => `python peer ${connect.id} (paho ${version}, pid ${child.pid})`;

  const next: PythonPeer['next'] = (match, what, timeout = COMMAND_TIMEOUT) => {
    const found = lines.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onLine = (line: PeerLine) => {
        if (match(line)) finish(undefined, line);
      };
      const onExit = () => finish(new Error(`${describe()} exited before ${what}; stderr:\n${stderr.slice(-4000)}`));
      const timer = setTimeout(() => finish(new Error(`${describe()}: no ${what} within ${timeout} ms; stderr:\n${stderr.slice(-4000)}`)), timeout);
      const finish = (error?: Error, line?: PeerLine) => {
        clearTimeout(timer);
        events.off('line', onLine);
        events.off('exit', onExit);
        if (error) reject(error);
        else resolve(line!);
      };
      events.on('line', onLine);
      events.once('exit', onExit);
    });
  };
  const start: PythonPeer['start'] = (op, args = {}) => {
    counter += 1;
    child.stdin!.write(`${JSON.stringify({ ...args, op, id: counter })}\n`);
    return counter;
  };
  const reply: PythonPeer['reply'] = async (re, timeout = COMMAND_TIMEOUT) => {
    const line = await next((candidate) => candidate.re === re && 'ok' in candidate, `the reply to command ${re}`, timeout);
    return line as unknown as { ok: boolean; result?: unknown; error?: PeerError };
  };
  const peer: PythonPeer = {
    id: connect.id,
    paho: version,
    child,
    lines,
    events,
    exited,
    start,
    reply,
    next,
    seen: (match) => lines.filter(match),
    stderr: () => stderr,
    async send<T>(op: string, args: Record<string, unknown> = {}, timeout = COMMAND_TIMEOUT) {
      const answer = await reply(start(op, args), timeout);
      if (!answer.ok) throw new PeerCommandError(op, answer.error!);
      return answer.result as T;
    },
    signal(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    async stop(grace = 10_000) {
      running.delete(peer);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGCONT');
      start('exit');
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), grace);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(peer);
  try {
    const ready = await next((line) => line.event === 'ready', 'its ready line', options.connectTimeout ?? COMMAND_TIMEOUT);
    if (version === 2 && !String(ready.paho).startsWith('2.')) throw new Error(`${describe()} runs paho ${String(ready.paho)}, not 2.x`);
    if (version === 1 && !String(ready.paho).startsWith('1.')) throw new Error(`${describe()} runs paho ${String(ready.paho)}, not 1.x`);
    await peer.send('connect', { options: connect }, options.connectTimeout ?? COMMAND_TIMEOUT);
  } catch (error) {
    child.kill('SIGKILL');
    running.delete(peer);
    throw error;
  }
  return peer;
}

/** Stops every peer still running (a test's `after`). */
export async function stopPythonPeers(): Promise<void> {
  await Promise.all([...running].map((peer) => peer.stop()));
}

/** Resolves when the peer process has exited, with its exit code and signal. */
export function peerExit(peer: PythonPeer, timeout = COMMAND_TIMEOUT): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return within(peer.exited, timeout, `the exit of python peer ${peer.id}`);
}

/** Runs `python3 ...args` with the package on its path to completion (killed after `timeout` ms): `python -m relais` as a user would. */
export function runPython(args: string[], version: PahoVersion = 1, timeout = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(PYTHON, args, { env: pythonEnvironment(version), timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

/** Both paho versions, for the scenarios run with each. */
export const PAHO_VERSIONS: readonly PahoVersion[] = [1, 2];
