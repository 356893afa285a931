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
 * - `mosquitto-router`: `mosquitto` plus the router as its own process (`bin/relais.js router --broker URL`);
 * - `relais-start-no-web`: `relais start --no-web` (broker and router), the lone start the sites scenario compares with;
 * - `relais-sites-pull`: a central `relais start --no-web` and a site `relais start --no-web --site bench-site
 *   --uplink <central's URL>` (pull, loopback), each its own process with its router; the requester
 *   gets the central's URL, the handler the site's (`urlFor`); `site` is the site's process;
 * - `relais-sites-on-site`: the same pair, requester and handler both on the site (the request never crosses the link).
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
import { startNatsCluster, type NatsCluster } from '../../test/testkit/nats-cluster.js';
import { findBinary, freePort, mosquittoConfig, waitForLine } from '../../test/testkit/brokers.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { log, withDeadline } from '../lib/util.js';
import { PeerProcess } from './process.js';
import { track } from './reaper.js';

export type PeerBrokerKind =
  | 'embedded'
  | 'aedes-plain'
  | 'mosquitto'
  | 'mosquitto-default'
  | 'nats-mqtt'
  | 'nats'
  | 'relais-start'
  | 'relais-start-no-router'
  | 'relais-start-secure'
  | 'mosquitto-router'
  | 'relais-start-no-web'
  | 'relais-sites-pull'
  | 'relais-sites-on-site'
  | 'nats-cluster-mqtt'
  | 'nats-cluster';

/** The site name of the sites kinds (protocol §13). */
export const BENCH_SITE = 'bench-site';

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
  'relais-start-no-web': 'relais start --no-web (broker + router, alone)',
  'relais-sites-pull': `central relais start + site relais start --site ${BENCH_SITE} --uplink (pull, loopback)`,
  'relais-sites-on-site': `the same central + site pair, both clients on the site`,
  'nats-cluster-mqtt': '3-node nats-server cluster, MQTT gateway (requester on node 0, handler on node 1)',
  'nats-cluster': '3-node nats-server cluster, core NATS (requester on node 0, handler on node 1)',
};

/** The binary each kind needs; the Node brokers need only this repository. */
export const BROKER_BINARY: Partial<Record<PeerBrokerKind, string>> = {
  mosquitto: 'mosquitto',
  'mosquitto-default': 'mosquitto',
  'mosquitto-router': 'mosquitto',
  'nats-mqtt': 'nats-server',
  nats: 'nats-server',
  'nats-cluster-mqtt': 'nats-server',
  'nats-cluster': 'nats-server',
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
  /** The sites kinds: the site's `relais start` (its broker, router and the link's end), and its history file. */
  site?: { pid: number; url: string; database: string };
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
    case 'nats-cluster-mqtt':
    case 'nats-cluster':
      return clusterBroker(kind);
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
    case 'relais-start-no-web': {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `relais-bench-${kind}-`));
      try {
        const { child, close, match, stderr } = await startRelaisCli(kind, ['start', '--no-web', '--port', '0', '--data-dir', dir, '--keep-rows', KEEP_ROWS], /clients connect with --broker (mqtt:\/\/\S+)/);
        return { kind, label: BROKER_LABELS[kind], url: match[1]!, pid: child.pid!, stderr, history: historyIn(dir), close };
      } catch (error) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
    case 'relais-sites-pull':
    case 'relais-sites-on-site': {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `relais-bench-${kind}-`));
      historyDirs.add(dir);
      const remove = () => {
        fs.rmSync(dir, { recursive: true, force: true });
        historyDirs.delete(dir);
      };
      const pair = await startSitePair(kind, dir).catch((error: unknown) => {
        remove();
        throw error;
      });
      const onSite = kind === 'relais-sites-on-site';
      return {
        kind,
        label: BROKER_LABELS[kind],
        url: pair.central.url,
        pid: pair.central.pid,
        site: { pid: pair.site.pid, url: pair.site.url, database: path.join(dir, 'site', 'history.db') },
        // The router that sees the requester's commands first: the central's, or the site's when both clients are there.
        history: { database: path.join(dir, onSite ? 'site' : 'central', 'history.db'), remove },
        urlFor: async (_id, role) => (onSite || role === 'handler' ? pair.site.url : pair.central.url),
        close: pair.close,
      };
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

export interface SitePairOptions {
  /** Extra flags of the central's `relais start` (e.g. `--site-sync-interval`). */
  centralArgs?: string[];
  /** Extra flags of the site's. */
  siteArgs?: string[];
  /** Where the site dials instead of the central's URL (a WAN proxy in front of it); given the central's port. */
  uplinkFor?(centralPort: number): Promise<string>;
  /** Do not wait for the link to come up (the caller times it). */
  noWaitForLink?: boolean;
  /** Run once the central is ready, before the site starts (e.g. connect an observer). */
  beforeSite?(central: RunningStart): Promise<void>;
}

export interface RunningStart {
  pid: number;
  url: string;
  /** Resolves with performance.now() when a line of its standard output matches (lines already printed count). */
  line(pattern: RegExp, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * A central `relais start --no-web` in `<dir>/central`, then a site `relais start --no-web --site
 * bench-site --uplink <central>` in `<dir>/site` (protocol §13.1, pull), each with its router
 * and retention far above a run; ready once the site printed `link up` (unless `noWaitForLink`).
 * Closed site first (its link says `down` at the central), then the central.
 */
export async function startSitePair(label: string, dir: string, options: SitePairOptions = {}): Promise<{ central: RunningStart; site: RunningStart; close(): Promise<void> }> {
  const common = ['--no-web', '--port', '0', '--keep-rows', KEEP_ROWS];
  const start = async (name: string, args: string[]): Promise<RunningStart> => {
    const cli = await startRelaisCli(`${label} ${name}`, ['start', ...common, '--data-dir', path.join(dir, name), ...args], /clients connect with --broker (mqtt:\/\/\S+)/);
    return { pid: cli.child.pid!, url: cli.match[1]!, line: cli.line, close: cli.close };
  };
  const central = await start('central', options.centralArgs ?? []);
  try {
    await options.beforeSite?.(central);
    const uplink = options.uplinkFor ? await options.uplinkFor(Number(new URL(central.url).port)) : central.url;
    const site = await start('site', ['--site', BENCH_SITE, '--uplink', uplink, ...(options.siteArgs ?? [])]);
    const close = async () => {
      await site.close();
      await central.close();
    };
    if (!options.noWaitForLink) await site.line(new RegExp(`site ${BENCH_SITE}: link up`), 30_000).catch(async (error: unknown) => {
      await close();
      throw error;
    });
    return { central, site, close };
  } catch (error) {
    await central.close();
    throw error;
  }
}

/**
 * `node bin/relais.js <args>` (the compiled CLI, as users run it); ready when its stdout prints
 * a line matching `ready`. Closed by SIGTERM (relais start and relais router flush the history
 * and exit), SIGKILL after 10 s.
 */
async function startRelaisCli(
  label: string,
  args: string[],
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpMatchArray; stderr: Array<{ at: number; line: string }>; line(pattern: RegExp, timeoutMs: number): Promise<number>; close(): Promise<void> }> {
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
  // Every standard output line with when it came, for line(): a line printed before the wait began counts.
  const printed: Array<{ at: number; line: string }> = [];
  lines.on('line', (text) => void (printed.length < 10_000 && printed.push({ at: performance.now(), line: text })));
  const line = (pattern: RegExp, timeoutMs: number) =>
    withDeadline(
      new Promise<number>((resolve, reject) => {
        const seen = printed.find((entry) => pattern.test(entry.line));
        if (seen) return resolve(seen.at);
        const onLine = (text: string) => {
          if (!pattern.test(text)) return;
          lines.off('line', onLine);
          resolve(performance.now());
        };
        lines.on('line', onLine);
        child.once('exit', (code) => reject(new Error(`${label} exited (${code}) before printing ${pattern}`)));
      }),
      timeoutMs,
      `${label}: ${pattern}`,
    );
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
    return { child, match, stderr, line, close };
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

/**
 * The two cluster kinds share one 3-node cluster (test/testkit/nats-cluster.ts, its
 * recommended MQTT settings, protocol §1.3 "On a NATS cluster"): the MQTT contenders use its
 * gateways, nats.js its client ports; each requester is on node 0, each handler on node 1.
 * The broker's pid is node 1's (the handler's node; the other two are named in the log).
 */
let sharedCluster: { cluster: Promise<NatsCluster>; users: number } | undefined;
async function clusterBroker(kind: 'nats-cluster-mqtt' | 'nats-cluster'): Promise<PeerBroker> {
  sharedCluster ??= { cluster: startNatsCluster({ nodes: 3 }), users: 0 };
  const shared = sharedCluster;
  shared.users += 1;
  const cluster = await shared.cluster;
  const urls = kind === 'nats-cluster' ? cluster.natsUrls : cluster.urls;
  log(`peers: ${kind}: node pids ${[0, 1, 2].map((i) => cluster.pid(i)).join(', ')}`);
  return {
    kind,
    label: BROKER_LABELS[kind],
    url: urls[1]!,
    pid: cluster.pid(1)!,
    urlFor: async (_id, role) => urls[role === 'handler' ? 1 : 0]!,
    close: async () => {
      shared.users -= 1;
      if (shared.users > 0) return;
      if (sharedCluster === shared) sharedCluster = undefined;
      await cluster.close();
    },
  };
}
