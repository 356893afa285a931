/**
 * The brokers of the peers benchmark, each its own process on 127.0.0.1 and a free port,
 * each with its pid (to read its CPU from /proc):
 *
 * - `embedded`: Relais' embedded broker (src/broker; TCP_NODELAY on accepted sockets);
 * - `aedes-plain`: aedes@1.2.0 as its README starts it, `net.createServer(aedes.handle)`, Nagle on;
 * - `mosquitto`: Mosquitto with the testkit config (`set_tcp_nodelay true`, raised limits);
 * - `mosquitto-default`: Mosquitto with nothing but a listener (Nagle on, 20 in flight, 1000 queued);
 * - `nats-mqtt`: nats-server's MQTT gateway (server_name, JetStream in a temp store_dir, mqtt.listen);
 * - `nats`: core nats-server (no JetStream), for the NATS contenders;
 * - `relais-start`: the real `bin/relais.js start` (embedded broker and, in the same process,
 *   the router on the in-memory stream, history in a temp data directory), for the router scenario;
 * - `relais-start-no-router`: the same with `--no-router` (the broker alone);
 * - `relais-start-secure`: `relais start --no-router --secure` (identities, the default policy,
 *   the source check); each process gets an identity of its own (`urlFor`);
 * - `mosquitto-router`: `mosquitto` plus the router as its own process (`bin/relais.js router --broker URL`).
 *
 * A broker with a router says where its history is (`history`): the data directory outlives
 * `close()` (the router flushes on SIGTERM), so the file can be checked afterwards; `history.remove()` deletes it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { findBinary, freePort, mosquittoConfig, waitForLine } from '../../test/testkit/brokers.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { log, withDeadline } from '../lib/util.js';
import { PeerProcess } from './process.js';
import { track } from './reaper.js';

export type PeerBrokerKind = 'embedded' | 'aedes-plain' | 'mosquitto' | 'mosquitto-default' | 'nats-mqtt' | 'nats' | 'relais-start' | 'relais-start-no-router' | 'relais-start-secure' | 'mosquitto-router';

export const BROKER_LABELS: Record<PeerBrokerKind, string> = {
  embedded: 'embedded (Aedes, no-delay)',
  'aedes-plain': 'plain Aedes',
  mosquitto: 'Mosquitto, set_tcp_nodelay',
  'mosquitto-default': 'Mosquitto, defaults',
  'nats-mqtt': 'nats-server MQTT',
  nats: 'nats-server (core NATS)',
  'relais-start': 'relais start (broker + router, one process)',
  'relais-start-no-router': 'relais start --no-router',
  'relais-start-secure': 'relais start --no-router --secure',
  'mosquitto-router': 'Mosquitto, set_tcp_nodelay + relais router process',
};

/** The binary each kind needs; the Node brokers need only this repository. */
export const BROKER_BINARY: Partial<Record<PeerBrokerKind, string>> = {
  mosquitto: 'mosquitto',
  'mosquitto-default': 'mosquitto',
  'mosquitto-router': 'mosquitto',
  'nats-mqtt': 'nats-server',
  nats: 'nats-server',
};

export interface PeerBroker {
  kind: PeerBrokerKind;
  label: string;
  url: string;
  pid: number;
  /** Where the router of this broker records (relais-start, mosquitto-router). */
  history?: BrokerHistory;
  /** With security on: the URL (with an identity's credentials) for process `id` in `role`. */
  urlFor?(id: string, role: 'requester' | 'handler'): Promise<string>;
  /** What `relais start` wrote on stderr so far (its broker's log lines), with when each line came (performance.now()). */
  stderr?: Array<{ at: number; line: string }>;
  close(): Promise<void>;
}

export interface BrokerHistory {
  /** The SQLite file; complete once the broker is closed (the router flushes on SIGTERM). */
  database: string;
  /** The router's own process, when it is not the broker's. */
  routerPid?: number;
  /** Deletes the data directory. */
  remove(): void;
}

const relaisBin = fileURLToPath(new URL('../../bin/relais.js', import.meta.url));

/** History data directories not removed yet: an interrupted run (Ctrl-C, watchdog) leaves none behind in the temp folder. */
const historyDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of historyDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function historyIn(dir: string, routerPid?: number): BrokerHistory {
  historyDirs.add(dir);
  return {
    database: path.join(dir, 'history.db'),
    ...(routerPid !== undefined && { routerPid }),
    remove: () => {
      fs.rmSync(dir, { recursive: true, force: true });
      historyDirs.delete(dir);
    },
  };
}
/** Retention far above what a run records: pruning must not delete rows the check counts. */
const KEEP_ROWS = '1000000000';

export async function startPeerBroker(kind: PeerBrokerKind): Promise<PeerBroker> {
  switch (kind) {
    case 'embedded':
    case 'aedes-plain': {
      const { peer, ready } = await PeerProcess.start(`broker ${kind}`, 'aedes.ts', [kind === 'embedded' ? 'embedded' : 'plain']);
      return { kind, label: BROKER_LABELS[kind], url: ready.url!, pid: peer.pid, close: async () => void (await peer.close()) };
    }
    case 'mosquitto':
    case 'mosquitto-default': {
      const port = await freePort();
      const config = kind === 'mosquitto' ? mosquittoConfig(port) : ['log_dest stderr', `listener ${port} 127.0.0.1`, 'allow_anonymous true', ''].join('\n');
      return startDaemon(kind, 'mosquitto', (dir) => {
        fs.writeFileSync(path.join(dir, 'mosquitto.conf'), config);
        return ['-c', path.join(dir, 'mosquitto.conf')];
      }, /mosquitto version .* running/, `mqtt://127.0.0.1:${port}`);
    }
    case 'nats-mqtt': {
      const [port, mqttPort] = [await freePort(), await freePort()];
      return startDaemon(kind, 'nats-server', (dir) => {
        const config = [
          'server_name: relais_bench_mqtt',
          `listen: 127.0.0.1:${port}`,
          `jetstream { store_dir: ${JSON.stringify(path.join(dir, 'js'))} }`,
          `mqtt { listen: 127.0.0.1:${mqttPort} }`,
          '',
        ].join('\n');
        fs.writeFileSync(path.join(dir, 'nats.conf'), config);
        return ['-c', path.join(dir, 'nats.conf')];
      }, /Server is ready/, `mqtt://127.0.0.1:${mqttPort}`);
    }
    case 'nats': {
      const port = await freePort();
      return startDaemon(kind, 'nats-server', () => ['-a', '127.0.0.1', '-p', String(port)], /Server is ready/, `nats://127.0.0.1:${port}`);
    }
    case 'relais-start':
    case 'relais-start-no-router':
    case 'relais-start-secure': {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `relais-bench-${kind}-`));
      const args = ['start', '--web-port', '0', '--port', '0', '--data-dir', dir, ...(kind === 'relais-start' ? ['--keep-rows', KEEP_ROWS] : ['--no-router'])];
      // --secure refuses to start with no identity; the processes' own are added when they start.
      const identities = kind === 'relais-start-secure' ? new IdentityStore(path.join(dir, 'identities.json')) : undefined;
      if (identities) {
        await identities.add('bench-admin', ['admin']);
        // Least privilege: a service serves what the policy grants it; the bench's handlers serve bench/.
        const benchRule = { name: 'bench handlers serve bench/', roles: ['service'], publish: ['bench/${path}/response/+'], subscribe: ['bench/${path}/request', 'bench/${path}/request/${id}', 'bench/${path}/cancel'] };
        fs.writeFileSync(path.join(dir, 'policy.json'), JSON.stringify({ ...DEFAULT_POLICY_DATA, rules: [...DEFAULT_POLICY_DATA.rules, benchRule] }));
        args.push('--secure');
      }
      try {
        const { child, close, match, stderr } = await startRelaisCli(kind, args, /clients connect with --broker (mqtt:\/\/\S+)/);
        const history = kind === 'relais-start' ? historyIn(dir) : undefined;
        const url = match[1]!;
        return {
          kind,
          label: BROKER_LABELS[kind],
          url,
          pid: child.pid!,
          stderr,
          ...(history && { history }),
          ...(identities && {
            urlFor: async (id: string, role: 'requester' | 'handler') => {
              const { token } = await identities.add(id, [role === 'handler' ? 'service' : 'client']);
              return url.replace('mqtt://', `mqtt://${id}:${token}@`);
            },
          }),
          close: async () => {
            await close();
            if (!history) fs.rmSync(dir, { recursive: true, force: true });
          },
        };
      } catch (error) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
    case 'mosquitto-router': {
      const broker = await startPeerBroker('mosquitto');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `relais-bench-${kind}-`));
      try {
        const router = await startRelaisCli(`${kind} router`, ['router', '--broker', broker.url, '--data-dir', dir, '--keep-rows', KEEP_ROWS], /router recording the history/);
        return {
          kind,
          label: BROKER_LABELS[kind],
          url: broker.url,
          pid: broker.pid,
          history: historyIn(dir, router.child.pid!),
          // The router first: it stores what it holds while the broker is still there.
          close: async () => {
            await router.close();
            await broker.close();
          },
        };
      } catch (error) {
        await broker.close();
        fs.rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

/**
 * `node bin/relais.js <args>` (the compiled CLI, as users run it); ready when its stdout prints
 * a line matching `ready`. Closed by SIGTERM (relais start and relais router flush the history
 * and exit), SIGKILL after 10 s.
 */
async function startRelaisCli(label: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess; match: RegExpMatchArray; stderr: Array<{ at: number; line: string }>; close(): Promise<void> }> {
  const child = track(spawn(process.execPath, [relaisBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RELAIS_LOG_LEVEL: process.env.RELAIS_LOG_LEVEL ?? 'warn' } }));
  const exited = () => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await withDeadline(exited(), 10_000, `${label} exit`).catch(async () => {
      log(`${label} did not exit within 10 s of SIGTERM: killed (its history may miss what it held)`);
      child.kill('SIGKILL');
      await withDeadline(exited(), 5000, `${label} exit after SIGKILL`).catch(() => {});
    });
  };
  const stderr: Array<{ at: number; line: string }> = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      if (stderr.length < 10_000) stderr.push({ at: performance.now(), line });
      process.stderr.write(`[${label}] ${line}\n`);
    }
  });
  const lines = createInterface({ input: child.stdout! });
  try {
    const match = await withDeadline(
      new Promise<RegExpMatchArray>((resolve, reject) => {
        lines.on('line', (line) => {
          const found = line.match(ready);
          if (found) resolve(found);
        });
        child.once('exit', (code) => reject(new Error(`${label} exited (${code}) before it was ready`)));
      }),
      30_000,
      `${label} start`,
    );
    return { child, match, stderr, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A broker binary in a temp folder of its own; SIGTERM (then SIGKILL) and the folder removed on close. */
async function startDaemon(kind: PeerBrokerKind, binaryName: string, args: (dir: string) => string[], ready: RegExp, url: string): Promise<PeerBroker> {
  const binary = findBinary(binaryName);
  if (!binary) throw new Error(`${binaryName} is not installed`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `relais-peers-${kind}-`));
  let child: ChildProcess | undefined;
  const exited = () => new Promise<void>((resolve) => (child!.exitCode !== null || child!.signalCode !== null ? resolve() : child!.once('exit', () => resolve())));
  const close = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await withDeadline(exited(), 5000, `${kind} exit`).catch(async () => {
        child!.kill('SIGKILL');
        await withDeadline(exited(), 5000, `${kind} exit after SIGKILL`).catch(() => {});
      });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    child = track(spawn(binary, args(dir), { stdio: ['ignore', 'ignore', 'pipe'] }));
    await waitForLine(child, ready, 15_000, binaryName);
  } catch (error) {
    await close();
    throw error;
  }
  child.stderr!.resume(); // its connection log lines are not read, but must not fill the pipe
  return { kind, label: BROKER_LABELS[kind], url, pid: child.pid!, close };
}
