/**
 * A throw-away PostgreSQL server for tests and benchmarks: `initdb` in a temporary folder, the
 * server listening on a Unix socket in that folder only (no TCP), run as the `postgres` user
 * when the tests run as root (the server refuses root). Settings for speed, not durability
 * (fsync off): the data lives as long as the test. `stop()` is a crash (immediate shutdown:
 * clients see their connections drop), `start()` the same data again, `close()` removes all.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findBinary } from './brokers.js';

export interface TestPostgres {
  /** `postgres://postgres@/postgres?host=<folder>`: the server's own database. */
  url: string;
  /** The folder holding the data and the socket. */
  dir: string;
  /** A new empty database; returns its URL (`user` and `password` go into the URL as given, e.g. to test redaction). */
  createDatabase(options?: { user?: string; password?: string }): Promise<string>;
  /** Stops the server as a crash would (immediate shutdown). */
  stop(): Promise<void>;
  /** Starts it again on the same data and socket; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Debian installs the server's binaries in /usr/lib/postgresql/<major>/bin, off the PATH: the newest there, else the PATH's. */
export function findPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const major of majors) {
    const bin = path.join(root, major, 'bin');
    if (fs.existsSync(path.join(bin, 'initdb')) && fs.existsSync(path.join(bin, 'pg_ctl'))) return bin;
  }
  const initdb = findBinary('initdb');
  return initdb && findBinary('pg_ctl') ? path.dirname(fs.realpathSync(initdb)) : undefined;
}

/**
 * Whether tests needing PostgreSQL run (as `peerGate` for a broker): when its binaries are
 * absent, a loud line and a skip, or a failure when RELAIS_REQUIRE_PEERS=1 (CI installs them).
 */
export function postgresGate(what: string): { run: boolean; skip: string | false } {
  if (findPostgresBin()) return { run: true, skip: false };
  if (process.env.RELAIS_REQUIRE_PEERS === '1') {
    throw new Error(`PostgreSQL (initdb, pg_ctl) is required (RELAIS_REQUIRE_PEERS=1) for ${what} but is not installed`);
  }
  const line = `!!! SKIPPING ${what}: PostgreSQL is not installed (apt-get install postgresql) !!!`;
  console.error(`\n${'!'.repeat(line.length)}\n${line}\n${'!'.repeat(line.length)}\n`);
  return { run: false, skip: 'PostgreSQL not installed' };
}

/** Settings of a test server: a socket in its folder, no TCP, nothing waits on the disk. */
function settings(dir: string): string {
  return [
    "listen_addresses = ''",
    `unix_socket_directories = '${dir}'`,
    'fsync = off',
    'full_page_writes = off',
    'max_connections = 60',
    'shared_buffers = 32MB',
    // A test's log goes to the server's log file only: quiet enough to read on a failure.
    "log_min_messages = 'warning'",
    '',
  ].join('\n');
}

/** Servers of this process still running: stopped when the process exits, whatever ended it short of SIGKILL. */
const running = new Set<() => void>();
process.once('exit', () => {
  for (const stopNow of running) stopNow();
});

export async function startPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  // As root, the server runs as `postgres`, which must own the folder (mkdtemp gives root 0700).
  const asRoot = process.getuid?.() === 0;
  const as = (command: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, command), ...args]] : [path.join(bin, command), args]);
  const failed = (command: string, args: string[], error: unknown) => {
    const { stderr, stdout } = error as { stderr?: Buffer | string; stdout?: Buffer | string };
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    return new Error(`${command} ${args[0] ?? ''} failed: ${stderr?.toString() ?? ''}${stdout?.toString() ?? ''}${log}`);
  };
  /** Asynchronous, so that the test's own sockets are read meanwhile (as a router's would be while its server restarts). */
  const run = async (command: string, args: string[]) => {
    const [file, argv] = as(command, args);
    try {
      await promisify(execFile)(file, argv, { cwd: dir });
    } catch (error) {
      throw failed(command, args, error);
    }
  };
  const runSync = (command: string, args: string[]) => {
    const [file, argv] = as(command, args);
    try {
      execFileSync(file, argv, { stdio: 'pipe', cwd: dir });
    } catch (error) {
      throw failed(command, args, error);
    }
  };
  if (asRoot) {
    const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'postgres']).toString().trim()));
    fs.chownSync(dir, uid!, gid!);
  }
  await run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '--encoding=UTF8', '--locale=C']);
  fs.appendFileSync(path.join(data, 'postgresql.conf'), settings(dir));

  let up = false;
  const stopArgs = ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '30'];
  const stopNow = () => runSync('pg_ctl', stopArgs);
  const start = async () => {
    if (up) return;
    // -w: pg_ctl returns once the server accepts connections (or fails after -t seconds, with the log).
    await run('pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '60']);
    up = true;
    running.add(stopNow);
  };
  const stop = async () => {
    if (!up) return;
    up = false;
    running.delete(stopNow);
    await run('pg_ctl', stopArgs);
  };
  const close = async () => {
    await stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const url = `postgres://postgres@/postgres?host=${dir}`;
  let databases = 0;
  const createDatabase = async (options: { user?: string; password?: string } = {}) => {
    databases += 1;
    const name = `relais_test_${databases}`;
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    const user = options.user ?? 'postgres';
    const credentials = options.password === undefined ? user : `${user}:${encodeURIComponent(options.password)}`;
    return `postgres://${credentials}@/${name}?host=${dir}`;
  };
  await start();
  return { url, dir, createDatabase, stop, start, close, [Symbol.asyncDispose]: close };
}

/** A way to a test server's socket that a test can freeze, as a router cut off (or its host frozen) would be. */
export interface FreezableWay {
  /** The database's URL through this way. */
  url: string;
  /** Whether something is held now. */
  readonly frozen: boolean;
  /**
   * From the first client message that contains `text` (`'COMMIT'`, say), nothing more goes
   * either way: that message and what follows are held, neither end hears of it. Resolves once
   * it happened.
   */
  freezeAt(text: string): Promise<void>;
  /** Sends what was held and forwards again. */
  thaw(): void;
  close(): Promise<void>;
}

/**
 * A Unix socket in its own folder, forwarding to the server's (`.s.PGSQL.5432`, as libpq and pg
 * name it), for the database at `url`: the connections that go this way can be frozen while
 * others reach the server directly.
 */
export async function freezableWay(server: TestPostgres, databaseUrl: string): Promise<FreezableWay> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-pg-way-'));
  const socketName = '.s.PGSQL.5432';
  let frozen = false;
  let trigger: { text: string; reached: () => void } | undefined;
  const held: Array<() => void> = [];
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(path.join(server.dir, socketName));
    const forward = (from: net.Socket, to: net.Socket, watch: boolean) => {
      from.on('data', (chunk: Buffer) => {
        if (!frozen && watch && trigger && chunk.includes(trigger.text)) {
          frozen = true;
          trigger.reached();
          trigger = undefined;
        }
        if (frozen) held.push(() => to.write(chunk));
        else to.write(chunk);
      });
      // A cut way tells neither end of a close either, until it is thawed.
      const end = () => (frozen ? held.push(() => to.destroy()) : to.destroy());
      from.on('close', end);
      from.on('error', end);
    };
    forward(client, upstream, true);
    forward(upstream, client, false);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
  });
  await new Promise<void>((resolve) => proxy.listen(path.join(dir, socketName), resolve));
  return {
    url: databaseUrl.replace(/\?host=.*$/, `?host=${dir}`),
    get frozen() {
      return frozen;
    },
    freezeAt(text) {
      return new Promise<void>((resolve) => (trigger = { text, reached: resolve }));
    },
    thaw() {
      frozen = false;
      for (const send of held.splice(0)) send();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
