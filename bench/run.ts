/**
 * Relais benchmark: Relais against raw MQTT.js (the layer below) doing the same exchange on
 * the same broker, in one run, for the embedded Aedes broker (in a child process, plus an
 * in-process figure) and Mosquitto. With --peers, also Relais against the stacks people use
 * instead (raw MQTT.js QoS 0/1, Moleculer, NATS, bare TCP), requester, handler and broker
 * each in its own process (bench/scenarios/peers.ts, bench/peers/).
 *
 *   npm run bench                       # full run, both brokers (~3.5 min on 2 cores)
 *   npm run bench -- --quick            # smaller run (~30 s)
 *   npm run bench -- --broker aedes     # aedes | mosquitto | both (default); not used by peers
 *   npm run bench -- --only request,progress   # request, pubsub, realtime, progress, peers
 *   npm run bench -- --no-inproc --no-control  # skip the in-process Aedes / the Nagle control
 *   npm run bench -- --rt-receiver both # real-time client B in its own process (child, default), with A (same), or both
 *   npm run bench -- --peers            # the four scenarios, then the peers comparison (~4.5 min more)
 *   npm run bench -- --only peers       # the peers comparison alone (~4.5 min; with --quick ~1.5 min)
 *   npm run bench -- --only peers --peers-filter relais,nats   # only contenders whose id contains one of these
 *   npm run bench -- --only router      # the router (protocol §11): SQLite rows/s, rows lost, cost on the request path (~1.5 min on a quiet machine, ~3 on a busy one; --quick ~1 min)
 *   npm run bench -- --router           # the default scenarios, then the router one
 *   npm run bench -- --only transfer    # the agent (docs/agent.md): file transfer MB/s against cp and raw MQTT.js chunks, relais exec output latency (~30 s; --quick: 64 MB)
 *   npm run bench -- --only sealing     # sealed payloads (protocol §3.6): µs per seal / open, requests sealed vs not (~2 min; --quick ~1 min)
 *   npm run bench -- --only signing     # signed envelopes (protocol §12): µs per sign / verify, requests signed vs not (~1.5 min; --quick ~40 s)
 *   npm run bench -- --only security    # security (docs/security.md): the checks' cost (security on / off) and the slow-consumer fault (~2 min; --quick ~1 min)
 *   npm run bench -- --only cluster     # a 3-node NATS cluster (protocol §1.3): requester and handler on different nodes, Relais against raw MQTT.js QoS 0/1 and nats.js (~2 min; --quick ~1 min)
 *   npm run bench -- --only python      # the Python client (clients/python): Python → TS, TS → Python against TS → TS through one relais start, each client in its own process (~2.5 min; --quick ~1 min)
 *   npm run bench -- --only pubsub-apart   # pub/sub with the publisher, 1 or 10 subscribers and the broker (relais start, Mosquitto) each in its own process: Relais notify/subscribe against raw MQTT.js QoS 0, CPU per process (~6 min; --quick ~2 min)
 *   npm run bench -- --only idle        # 10,000 idle Relais clients on relais start (router on), in 4 fleet processes: memory per client, registry and directory settle times, CPU while idle (--quick: 2,000)
 *   npm run bench -- --only idle --idle-clients 1000 --idle-processes 2   # another count of clients, over another count of processes
 *   npm run bench -- --only idle --idle-lite   # presence-only peers (protocol §7.4: one connection, no directory) instead of library clients
 *   npm run bench -- --only idle --idle-on-demand   # library clients with directory: 'on-demand' (protocol §7.2)
 *   npm run bench -- --only idle --idle-no-realtime   # library clients without the real-time lane: one socket each (10,000 fit in 20,000 open files)
 *   npm run bench -- --only sites       # sites (protocol §13): requests across a link against one start, the link's CPU per message, the sync of 100,000 rows (~5 min on a busy machine; --quick ~2.5 min)
 *
 * The router scenario runs `relais start` with and without its router and, unless --broker aedes,
 * Mosquitto with and without a `relais router` process (bench/scenarios/router.ts).
 * Peers whose binary (mosquitto, nats-server) or npm package (moleculer, nats) is missing are
 * skipped with a loud line. Tables (markdown) go to stdout, progress lines to stderr.
 * Scenarios: bench/scenarios/.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { findBinary } from '../test/testkit/brokers.js';
import { startBenchBroker, type BenchBroker, type BenchBrokerKind } from './lib/brokers.js';
import { log, renderTable, type Table } from './lib/util.js';
import { peersTables } from './peers/report.js';
import { abortPeers, runPeers, type PeersConfig, type PeersResult } from './scenarios/peers.js';
import { progressTables, runProgress, type ProgressConfig, type ProgressResult } from './scenarios/progress.js';
import { abortPubSubApart, pubSubApartTables, pubSubTables, runPubSub, runPubSubApart, type PubSubApartConfig, type PubSubApartResult, type PubSubConfig, type PubSubResult } from './scenarios/pubsub.js';
import { realtimeTables, runRealtime, type ReceiverPlace, type RealtimeConfig, type RealtimeResult } from './scenarios/realtime.js';
import { requestTables, runRequest, type RequestConfig, type RequestResult } from './scenarios/request.js';
import { runRouter, routerTables, type RouterConfig, type RouterResult } from './scenarios/router.js';
import { runSigning, signingTables, type SigningConfig, type SigningResult } from './scenarios/signing.js';
import { runSealing, sealingTables, type SealingConfig, type SealingResult } from './scenarios/sealing.js';
import { runSecurity, securityTables, type SecurityConfig, type SecurityResult } from './scenarios/security.js';
import { runSites, sitesTables, type SitesConfig, type SitesResult } from './scenarios/sites.js';
import { clusterTables, runCluster, type ClusterConfig, type ClusterResult } from './scenarios/cluster.js';
import { runTransfer, transferTables, type TransferResult } from './scenarios/transfer.js';
import { pythonTables, runPython, type PythonConfig, type PythonResult } from './scenarios/python.js';
import { abortIdle, idleTables, runIdle, type IdleConfig, type IdleResult } from './scenarios/idle.js';

const SCENARIOS = ['request', 'pubsub', 'realtime', 'progress', 'peers', 'router', 'signing', 'sealing', 'security', 'transfer', 'sites', 'cluster', 'python', 'idle', 'pubsub-apart'] as const;
type Scenario = (typeof SCENARIOS)[number];
/** Run when --only is not given; peers only with --peers, router only with --router, security only with --only (each takes minutes). */
const DEFAULT_SCENARIOS: Scenario[] = ['request', 'pubsub', 'realtime', 'progress'];

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    broker: { type: 'string', default: 'both' },
    only: { type: 'string' },
    'no-inproc': { type: 'boolean', default: false },
    'no-control': { type: 'boolean', default: false },
    'rt-receiver': { type: 'string', default: 'child' },
    peers: { type: 'boolean', default: false },
    router: { type: 'boolean', default: false },
    'peers-filter': { type: 'string' },
    'idle-clients': { type: 'string' },
    'idle-processes': { type: 'string' },
    'idle-lite': { type: 'boolean', default: false },
    'idle-on-demand': { type: 'boolean', default: false },
    'idle-no-realtime': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (flags.help) {
  process.stdout.write(
    'usage: npm run bench -- [--quick] [--broker aedes|mosquitto|both] [--only request,pubsub,realtime,progress,peers,router,signing,sealing,security,transfer,sites,cluster,python,idle,pubsub-apart] [--no-inproc] [--no-control] [--rt-receiver child|same|both] [--peers] [--router] [--peers-filter id,...] [--idle-clients N] [--idle-processes P] [--idle-lite] [--idle-on-demand] [--idle-no-realtime]\n',
  );
  process.exit(0);
}

const quick = flags.quick ?? false;
const brokerFlag = flags.broker ?? 'both';
if (!['aedes', 'mosquitto', 'both'].includes(brokerFlag)) {
  process.stderr.write(`--broker must be aedes, mosquitto or both, not ${brokerFlag}\n`);
  process.exit(2);
}
const only = new Set<Scenario>(
  flags.only
    ? flags.only.split(',').map((name) => {
        const scenario = name.trim() as Scenario;
        if (!SCENARIOS.includes(scenario)) {
          process.stderr.write(`unknown scenario ${name}; choose among ${SCENARIOS.join(', ')}\n`);
          process.exit(2);
        }
        return scenario;
      })
    : [...DEFAULT_SCENARIOS, ...(flags.peers ? (['peers'] as const) : []), ...(flags.router ? (['router'] as const) : [])],
);
const runsPeers = only.has('peers');
const runsRouter = only.has('router');
const runsSigning = only.has('signing');
const runsSealing = only.has('sealing');
const runsSecurity = only.has('security');
const runsTransfer = only.has('transfer');
const runsSites = only.has('sites');
const runsCluster = only.has('cluster');
const runsPython = only.has('python');
const runsIdle = only.has('idle');
const runsPubSubApart = only.has('pubsub-apart');
/** The scenarios that run once per broker of the plan below (peers, router, signing, security, transfer and sites bring their own brokers). */
const perBroker = [...only].filter((scenario) => !['peers', 'router', 'signing', 'sealing', 'security', 'transfer', 'sites', 'cluster', 'python', 'idle', 'pubsub-apart'].includes(scenario));

const rtReceiverFlag = flags['rt-receiver'] ?? 'child';
if (!['child', 'same', 'both'].includes(rtReceiverFlag)) {
  process.stderr.write(`--rt-receiver must be child, same or both, not ${rtReceiverFlag}\n`);
  process.exit(2);
}
const rtReceivers: ReceiverPlace[] = rtReceiverFlag === 'both' ? ['child', 'same'] : [rtReceiverFlag as ReceiverPlace];

const config = quick
  ? {
      request: { warmup: 200, sequential: 1000, batch: 250, inFlight: 100, concurrentTotal: 5000, rounds: 1 } satisfies RequestConfig,
      pubsub: { messages: 20_000, rounds: 1, chunk: 500 } satisfies PubSubConfig,
      realtime: { bulkMessages: 800, transfers: 1, rounds: 1, idleSamples: 200, bulkBytes: 64 * 1024, window: 16, steadyMBps: 100, modes: ['steady', 'burst'], receivers: rtReceivers } satisfies RealtimeConfig,
      progress: { warmup: 50, calls: 300, batch: 100 } satisfies ProgressConfig,
      control: { warmup: 2, calls: 20, batch: 10 } satisfies ProgressConfig,
      peers: { rounds: 1, warmup: 100, warmupCapMs: 500, warmupLoadMs: 500, sequential: 300, sequentialCapMs: 1500, inFlight: 100, loadMs: 750, repeats: 4 } satisfies PeersConfig,
      router: {
        peers: { rounds: 1, warmup: 100, warmupCapMs: 500, warmupLoadMs: 500, sequential: 300, sequentialCapMs: 1500, inFlight: 100, loadMs: 1500, repeats: 2 },
        storeBatches: [10, 100, 1000],
        storeMs: 500,
        mosquitto: false,
      } satisfies RouterConfig,
      signing: {
        peers: { rounds: 1, warmup: 100, warmupCapMs: 500, warmupLoadMs: 500, sequential: 300, sequentialCapMs: 1500, inFlight: 100, loadMs: 1500, repeats: 2 },
        micro: 2000,
        mosquitto: false,
      } satisfies SigningConfig,
      sealing: {
        peers: { rounds: 1, warmup: 100, warmupCapMs: 500, warmupLoadMs: 500, sequential: 300, sequentialCapMs: 1500, inFlight: 100, loadMs: 1500, repeats: 2 },
        micro: 500,
        mosquitto: false,
      } satisfies SealingConfig,
      security: {
        peers: { rounds: 2, warmup: 100, warmupCapMs: 500, warmupLoadMs: 500, sequential: 300, sequentialCapMs: 1500, inFlight: 100, loadMs: 1500, repeats: 2 },
        slowConsumer: { rounds: 1, inFlight: 10, windowMs: 3500, burstAtMs: 300, count: 150, bytes: 64 * 1024 },
      } satisfies SecurityConfig,
      sites: {
        peers: { rounds: 1, warmup: 100, warmupCapMs: 500, warmupLoadMs: 500, sequential: 300, sequentialCapMs: 1500, inFlight: 100, loadMs: 1500, repeats: 1 },
        syncRows: 20_000,
        wan: true,
        syncCapMs: 60_000,
      } satisfies SitesConfig,
      cluster: { peers: { rounds: 1, warmup: 100, warmupCapMs: 500, warmupLoadMs: 500, sequential: 300, sequentialCapMs: 1500, inFlight: 100, loadMs: 1500, repeats: 2 } } satisfies ClusterConfig,
      python: { peers: { rounds: 1, warmup: 100, warmupCapMs: 500, warmupLoadMs: 500, sequential: 300, sequentialCapMs: 1500, inFlight: 100, loadMs: 1500, repeats: 2 } } satisfies PythonConfig,
      pubsubApart: { rounds: 1, messages: { 1: 20_000, 10: 5000 }, chunk: 500, brokers: ['relais-start', 'mosquitto'], sides: ['relais', 'raw'] } satisfies PubSubApartConfig,
      // Library clients cost N² presence deliveries (bench/RESULTS.md): 2,000 take minutes to connect on 2 cores.
      idle: { clients: 2000, processes: 2, concurrency: 25, rounds: 1, idleMs: 10_000, capMs: 12 * 60_000 } satisfies IdleConfig,
    }
  : {
      request: { warmup: 500, sequential: 5000, batch: 500, inFlight: 100, concurrentTotal: 20_000, rounds: 2 } satisfies RequestConfig,
      pubsub: { messages: 100_000, rounds: 2, chunk: 500 } satisfies PubSubConfig,
      realtime: { bulkMessages: 800, transfers: 3, rounds: 2, idleSamples: 300, bulkBytes: 64 * 1024, window: 16, steadyMBps: 100, modes: ['steady', 'paced', 'burst'], receivers: rtReceivers } satisfies RealtimeConfig,
      progress: { warmup: 100, calls: 2000, batch: 250 } satisfies ProgressConfig,
      control: { warmup: 5, calls: 60, batch: 30 } satisfies ProgressConfig,
      // Five interleaved rounds: medians with their spread, as the performance targets are stated.
      peers: { rounds: 5, warmup: 300, warmupCapMs: 500, warmupLoadMs: 1000, sequential: 1000, sequentialCapMs: 3000, inFlight: 100, loadMs: 2000, repeats: 8 } satisfies PeersConfig,
      router: {
        peers: { rounds: 3, warmup: 300, warmupCapMs: 500, warmupLoadMs: 1000, sequential: 1000, sequentialCapMs: 3000, inFlight: 100, loadMs: 3000, repeats: 12 },
        storeBatches: [1, 10, 100, 1000],
        storeMs: 1500,
        mosquitto: false,
      } satisfies RouterConfig,
      signing: {
        peers: { rounds: 3, warmup: 300, warmupCapMs: 500, warmupLoadMs: 1000, sequential: 1000, sequentialCapMs: 3000, inFlight: 100, loadMs: 2000, repeats: 6 },
        micro: 5000,
        mosquitto: false,
      } satisfies SigningConfig,
      sealing: {
        peers: { rounds: 3, warmup: 300, warmupCapMs: 500, warmupLoadMs: 1000, sequential: 1000, sequentialCapMs: 3000, inFlight: 100, loadMs: 2000, repeats: 6 },
        micro: 2000,
        mosquitto: false,
      } satisfies SealingConfig,
      security: {
        peers: { rounds: 3, warmup: 300, warmupCapMs: 500, warmupLoadMs: 1000, sequential: 1000, sequentialCapMs: 3000, inFlight: 100, loadMs: 2000, repeats: 4 },
        slowConsumer: { rounds: 3, inFlight: 10, windowMs: 3500, burstAtMs: 300, count: 150, bytes: 64 * 1024 },
      } satisfies SecurityConfig,
      sites: {
        peers: { rounds: 3, warmup: 300, warmupCapMs: 500, warmupLoadMs: 1000, sequential: 1000, sequentialCapMs: 3000, inFlight: 100, loadMs: 2000, repeats: 3 },
        syncRows: 100_000,
        wan: true,
        syncCapMs: 90_000,
      } satisfies SitesConfig,
      cluster: { peers: { rounds: 3, warmup: 300, warmupCapMs: 500, warmupLoadMs: 1000, sequential: 1000, sequentialCapMs: 3000, inFlight: 100, loadMs: 2000, repeats: 4 } } satisfies ClusterConfig,
      // Sized for 2 shared cores: 3 interleaved rounds, a 2 s window each; Python's sequential p50 being a few times TS's, 1000 fit in the 5 s cap.
      python: { peers: { rounds: 3, warmup: 300, warmupCapMs: 1000, warmupLoadMs: 1000, sequential: 1000, sequentialCapMs: 5000, inFlight: 100, loadMs: 2000, repeats: 4 } } satisfies PythonConfig,
      // Sized for 2 cores: 4 fleet processes of 2,500 clients (5,000 sockets) each; an idle window of 30 s covers a keep-alive period.
      pubsubApart: { rounds: 3, messages: { 1: 50_000, 10: 20_000 }, chunk: 500, brokers: ['relais-start', 'mosquitto'], sides: ['relais', 'relais-q0', 'raw'] } satisfies PubSubApartConfig,
      idle: { clients: 10_000, processes: 4, concurrency: 25, rounds: 2, idleMs: 30_000, capMs: 15 * 60_000 } satisfies IdleConfig,
    };
const peersFilter = flags['peers-filter']?.split(',').map((part) => part.trim()).filter(Boolean);

// Which broker runs which scenarios.
const plan: Array<{ kind: BenchBrokerKind; scenarios: Scenario[] }> = [];
const hasMosquitto = findBinary('mosquitto') !== undefined;
if (brokerFlag !== 'mosquitto' && perBroker.length) {
  plan.push({ kind: 'aedes', scenarios: perBroker });
  if (!flags['no-inproc'] && !quick) plan.push({ kind: 'aedes-inproc', scenarios: perBroker.filter((s) => s === 'request' || s === 'progress') });
}
if (brokerFlag !== 'aedes' && perBroker.length) {
  if (!hasMosquitto) {
    process.stderr.write('mosquitto is not installed (apt-get install mosquitto); run with --broker aedes\n');
    process.exit(2);
  }
  plan.push({ kind: 'mosquitto', scenarios: perBroker });
  if (!flags['no-control'] && only.has('progress')) plan.push({ kind: 'mosquitto-nagle', scenarios: ['progress'] });
}

// Every broker started is closed on the way out, whatever happens.
const live = new Set<BenchBroker>();
async function closeBrokers(): Promise<void> {
  await Promise.all([...live].map((broker) => broker.close().catch(() => {})));
  live.clear();
  await abortPeers();
  await abortIdle();
  await abortPubSubApart();
}
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: closing the brokers`);
    void closeBrokers().finally(() => process.exit(130));
  });
}
const watchdogMs =
  (quick ? 3 * 60_000 : 9 * 60_000) * (perBroker.length ? 1 : 0) + (runsPeers ? (quick ? 3 * 60_000 : 8 * 60_000) : 0) + (runsRouter ? (quick ? 3 * 60_000 : 6 * 60_000) : 0) + (runsSigning ? (quick ? 3 * 60_000 : 5 * 60_000) : 0) + (runsSealing ? (quick ? 4 * 60_000 : 7 * 60_000) : 0) + (runsSecurity ? (quick ? 3 * 60_000 : 5 * 60_000) : 0) + (runsTransfer ? 3 * 60_000 : 0) + (runsSites ? (quick ? 5 * 60_000 : 7 * 60_000) : 0) + (runsCluster ? (quick ? 3 * 60_000 : 5 * 60_000) : 0) + (runsPython ? (quick ? 3 * 60_000 : 6 * 60_000) : 0) + (runsPubSubApart ? (quick ? 4 : 12) * 60_000 : 0) + (runsIdle ? config.idle.rounds * (config.idle.capMs + 5 * 60_000) : 0);
const watchdog = setTimeout(() => {
  log(`the benchmark ran over ${watchdogMs / 60_000} minutes; stopping`);
  void closeBrokers().finally(() => process.exit(1));
}, watchdogMs);
watchdog.unref();

const results = {
  request: [] as RequestResult[],
  pubsub: [] as PubSubResult[],
  realtime: [] as RealtimeResult[],
  progress: [] as ProgressResult[],
  peers: undefined as PeersResult | undefined,
  router: undefined as RouterResult | undefined,
  signing: undefined as SigningResult | undefined,
  sealing: undefined as SealingResult | undefined,
  security: undefined as SecurityResult | undefined,
  sites: undefined as SitesResult | undefined,
  cluster: undefined as ClusterResult | undefined,
  python: undefined as PythonResult | undefined,
  idle: undefined as IdleResult | undefined,
  pubsubApart: undefined as PubSubApartResult | undefined,
};

const started = Date.now();
const loadBefore = os.loadavg();
const codeAtStart = codeVersion();
let failed = false;
for (const step of plan) {
  if (step.scenarios.length === 0) continue;
  log(`starting ${step.kind}`);
  const broker = await startBenchBroker(step.kind);
  live.add(broker);
  try {
    for (const scenario of step.scenarios) {
      try {
        if (scenario === 'request') results.request.push(await runRequest(broker, config.request));
        if (scenario === 'pubsub') results.pubsub.push(await runPubSub(broker, config.pubsub));
        if (scenario === 'realtime') results.realtime.push(await runRealtime(broker, config.realtime));
        if (scenario === 'progress') results.progress.push(await runProgress(broker, step.kind === 'mosquitto-nagle' ? config.control : config.progress));
      } catch (error) {
        failed = true;
        log(`${broker.label}: ${scenario} FAILED: ${(error as Error).stack ?? error}`);
      }
    }
  } finally {
    await broker.close();
    live.delete(broker);
  }
}
let peersSeconds = 0;
if (runsPeers) {
  const peersStarted = Date.now();
  try {
    results.peers = await runPeers({ ...config.peers, ...(peersFilter && { filter: peersFilter }) });
    if (results.peers.results.some((result) => result.failed) || results.peers.leftovers.length) failed = true;
  } catch (error) {
    failed = true;
    log(`peers FAILED: ${(error as Error).stack ?? error}`);
  }
  peersSeconds = (Date.now() - peersStarted) / 1000;
}
let routerSeconds = 0;
if (runsRouter) {
  const routerStarted = Date.now();
  // With Mosquitto unless --broker aedes (or it is missing: a loud line, the relais start rows still run).
  const withMosquitto = brokerFlag !== 'aedes' && hasMosquitto;
  if (!withMosquitto && brokerFlag !== 'aedes') process.stderr.write('\n!!! router: mosquitto is not installed: the Mosquitto rows are skipped !!!\n\n');
  try {
    results.router = await runRouter({ ...config.router, mosquitto: withMosquitto });
    if (results.router.failed) failed = true;
  } catch (error) {
    failed = true;
    log(`router FAILED: ${(error as Error).stack ?? error}`);
  }
  routerSeconds = (Date.now() - routerStarted) / 1000;
}
let signingSeconds = 0;
if (runsSigning) {
  const signingStarted = Date.now();
  const withMosquitto = brokerFlag !== 'aedes' && hasMosquitto;
  if (!withMosquitto && brokerFlag !== 'aedes') process.stderr.write('\n!!! signing: mosquitto is not installed: the Mosquitto rows are skipped !!!\n\n');
  try {
    results.signing = await runSigning({ ...config.signing, mosquitto: withMosquitto });
    if (results.signing.peers.results.some((result) => result.failed)) failed = true;
  } catch (error) {
    failed = true;
    log(`signing FAILED: ${(error as Error).stack ?? error}`);
  }
  signingSeconds = (Date.now() - signingStarted) / 1000;
}
let sealingSeconds = 0;
if (runsSealing) {
  const sealingStarted = Date.now();
  const withMosquitto = brokerFlag !== 'aedes' && hasMosquitto;
  if (!withMosquitto && brokerFlag !== 'aedes') process.stderr.write('\n!!! sealing: mosquitto is not installed: the Mosquitto rows are skipped !!!\n\n');
  try {
    results.sealing = await runSealing({ ...config.sealing, mosquitto: withMosquitto });
    if (results.sealing.peers.results.some((result) => result.failed)) failed = true;
  } catch (error) {
    failed = true;
    log(`sealing FAILED: ${(error as Error).stack ?? error}`);
  }
  sealingSeconds = (Date.now() - sealingStarted) / 1000;
}
let securitySeconds = 0;
if (runsSecurity) {
  const securityStarted = Date.now();
  try {
    results.security = await runSecurity(config.security);
    if (results.security.failed) failed = true;
  } catch (error) {
    failed = true;
    log(`security FAILED: ${(error as Error).stack ?? error}`);
  }
  securitySeconds = (Date.now() - securityStarted) / 1000;
}
let sitesSeconds = 0;
if (runsSites) {
  const sitesStarted = Date.now();
  try {
    results.sites = await runSites(config.sites);
    if (results.sites.failed) failed = true;
  } catch (error) {
    failed = true;
    log(`sites FAILED: ${(error as Error).stack ?? error}`);
  }
  sitesSeconds = (Date.now() - sitesStarted) / 1000;
}
let clusterSeconds = 0;
if (runsCluster) {
  const clusterStarted = Date.now();
  try {
    results.cluster = await runCluster(config.cluster);
    if (results.cluster.failed) failed = true;
  } catch (error) {
    failed = true;
    log(`cluster FAILED: ${(error as Error).stack ?? error}`);
  }
  clusterSeconds = (Date.now() - clusterStarted) / 1000;
}
let pythonSeconds = 0;
if (runsPython) {
  const pythonStarted = Date.now();
  try {
    results.python = await runPython(config.python);
    if (results.python.failed) failed = true;
  } catch (error) {
    failed = true;
    log(`python FAILED: ${(error as Error).stack ?? error}`);
  }
  pythonSeconds = (Date.now() - pythonStarted) / 1000;
}
let pubsubApartSeconds = 0;
if (runsPubSubApart) {
  const apartStarted = Date.now();
  try {
    results.pubsubApart = await runPubSubApart({ ...config.pubsubApart, brokers: config.pubsubApart.brokers.filter((kind) => (kind === 'mosquitto' ? brokerFlag !== 'aedes' && hasMosquitto : brokerFlag !== 'mosquitto')) });
    if (results.pubsubApart.failed) failed = true;
  } catch (error) {
    failed = true;
    log(`pubsub-apart FAILED: ${(error as Error).stack ?? error}`);
  }
  pubsubApartSeconds = (Date.now() - apartStarted) / 1000;
}
let idleSeconds = 0;
if (runsIdle) {
  const idleStarted = Date.now();
  try {
    results.idle = await runIdle({
      ...config.idle,
      ...(flags['idle-clients'] && { clients: Number(flags['idle-clients']) }),
      ...(flags['idle-processes'] && { processes: Number(flags['idle-processes']) }),
      ...(flags['idle-lite'] && { lite: true }),
      ...(flags['idle-on-demand'] && { onDemand: true }),
      ...(flags['idle-no-realtime'] && { noRealtime: true }),
    });
    if (results.idle.failed) failed = true;
  } catch (error) {
    failed = true;
    log(`idle FAILED: ${(error as Error).stack ?? error}`);
  }
  idleSeconds = (Date.now() - idleStarted) / 1000;
}
let transferResult: TransferResult | undefined;
if (runsTransfer) {
  try {
    transferResult = await runTransfer({ fileBytes: (quick ? 64 : 256) * 1024 * 1024, lines: quick ? 100 : 300 });
  } catch (error) {
    failed = true;
    log(`transfer FAILED: ${(error as Error).stack ?? error}`);
  }
}
clearTimeout(watchdog);

const tables: Table[] = [
  ...(results.request.length ? requestTables(results.request) : []),
  ...(results.pubsub.length ? pubSubTables(results.pubsub, config.pubsub) : []),
  ...(results.realtime.length ? realtimeTables(results.realtime, config.realtime) : []),
  ...(results.progress.length ? progressTables(results.progress) : []),
];

if (tables.length) {
  process.stdout.write(`## Relais vs raw MQTT.js${quick ? ' (--quick)' : ''}\n\n${environment('all clients in this process; Aedes in a child process unless marked in-process; everything on 127.0.0.1 (TCP)')}\n\n`);
  for (const table of tables) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.peers) {
  const setup = 'requester, handler and broker each in its own process (one broker process per kind, shared in turns); everything on 127.0.0.1 (TCP)';
  process.stdout.write(`## Peers, each process apart${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n${peersEnvironment()}\n\n`);
  for (const table of peersTables(results.peers)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.router) {
  const setup = 'requester, handler and broker each in its own process (relais start: broker and router in one process); everything on 127.0.0.1 (TCP); the store alone in the benchmark process';
  process.stdout.write(`## Router${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- better-sqlite3 ${packageVersion('better-sqlite3')}; wall time of the router scenario: ${routerSeconds.toFixed(0)} s\n\n`);
  for (const table of routerTables(results.router)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.signing) {
  const setup = 'requester, handler and broker each in its own process; everything on 127.0.0.1 (TCP); the micro loops in the benchmark process (src/ through tsx)';
  process.stdout.write(`## Signed envelopes${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- wall time of the signing scenario: ${signingSeconds.toFixed(0)} s\n\n`);
  for (const table of signingTables(results.signing)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.sealing) {
  const setup = 'requester, handler and broker each in its own process; everything on 127.0.0.1 (TCP); the micro loops in the benchmark process (src/ through tsx)';
  process.stdout.write(`## Sealed payloads${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- wall time of the sealing scenario: ${sealingSeconds.toFixed(0)} s\n\n`);
  for (const table of sealingTables(results.sealing)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.security) {
  const setup = 'every client and the broker each in its own process (relais start --no-router); everything on 127.0.0.1 (TCP)';
  process.stdout.write(`## Security${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- wall time of the security scenario: ${securitySeconds.toFixed(0)} s\n\n`);
  for (const table of securityTables(results.security)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.sites) {
  const setup = 'every client and every relais start (central, site, lone start) each in its own process (the compiled CLI, bin/relais.js); everything on 127.0.0.1 (TCP), the WAN a TCP proxy in this process (test/testkit/wan-proxy.ts)';
  process.stdout.write(`## Sites${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- better-sqlite3 ${packageVersion('better-sqlite3')}; wall time of the sites scenario: ${sitesSeconds.toFixed(0)} s\n\n`);
  for (const table of sitesTables(results.sites)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.cluster) {
  const setup = 'a 3-node nats-server cluster (routes, JetStream, the MQTT gateway with consumer_replicas 1 and consumer_memory_storage, protocol §1.3), each requester on node 0 and each handler on node 1, each in its own process; everything on 127.0.0.1 (TCP); the broker CPU column is node 1';
  process.stdout.write(`## NATS cluster${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- nats-server ${binaryVersion('nats-server', ['--version'], /v(\d+\.\d+\.\d+)/)}, nats (nats.js) ${packageVersion('nats')}; wall time of the cluster scenario: ${clusterSeconds.toFixed(0)} s\n\n`);
  for (const table of clusterTables(results.cluster)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.python) {
  const setup = 'the requester, the handler and relais start (embedded broker + router) each in its own process; the TS side bench/peers/relais.ts (dist/), the Python side bench/peers/python-peer.py (clients/python on PYTHONPATH); everything on 127.0.0.1 (TCP)';
  process.stdout.write(`## Python client${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- wall time of the python scenario: ${pythonSeconds.toFixed(0)} s\n\n`);
  for (const table of pythonTables(results.python)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.pubsubApart) {
  const setup = 'the publisher, each subscriber and the broker each in its own process (relais start: broker + router, the compiled CLI; Mosquitto with the testkit config); clients compiled (dist/); everything on 127.0.0.1 (TCP)';
  process.stdout.write(`## Pub/sub, every process apart${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- wall time of the pubsub-apart scenario: ${pubsubApartSeconds.toFixed(0)} s\n\n`);
  for (const table of pubSubApartTables(results.pubsubApart)) process.stdout.write(`${renderTable(table)}\n`);
}
if (results.idle) {
  const setup = 'relais start (embedded broker + router, the compiled CLI) in its own process; the idle clients in fleet processes (bench/peers/idle-fleet.ts, dist/), many clients each; the watcher and the fresh client in the bench process; everything on 127.0.0.1 (TCP)';
  process.stdout.write(`## Idle clients${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n- wall time of the idle scenario: ${idleSeconds.toFixed(0)} s\n\n`);
  for (const table of idleTables(results.idle)) process.stdout.write(`${renderTable(table)}\n`);
}
if (transferResult) {
  const setup = 'broker (Aedes), agent (relais agent), each sender and receiver in its own process; everything on 127.0.0.1 (TCP); files in os.tmpdir()';
  process.stdout.write(`## Agent${quick ? ' (--quick)' : ''}\n\n${environment(setup)}\n\n`);
  for (const table of transferTables(transferResult)) process.stdout.write(`${renderTable(table)}\n`);
}
log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s${failed ? ' (some scenarios FAILED, see above)' : ''}`);
if (failed) process.exitCode = 1;

/** The commit measured, and whether src/ had uncommitted changes (the working tree is what runs). */
function codeVersion(): string {
  const git = (args: string[]) => spawnSync('git', args, { encoding: 'utf8', timeout: 5000 }).stdout?.trim() ?? '';
  const dirty = git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length;
  return `commit ${git(['rev-parse', '--short', 'HEAD']) || '?'}${dirty ? ` + ${dirty} uncommitted file(s) in src/` : ''}`;
}

function packageVersion(pkg: string): string {
  try {
    return (JSON.parse(fs.readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'absent';
  }
}

function binaryVersion(name: string, args: string[], pattern: RegExp): string {
  const binary = findBinary(name);
  if (!binary) return 'absent';
  const out = spawnSync(binary, args, { encoding: 'utf8', timeout: 5000 });
  return `${out.stdout ?? ''}${out.stderr ?? ''}`.match(pattern)?.[1] ?? '?';
}

function environment(setup: string): string {
  const codeAtEnd = codeVersion();
  return [
    `- code: ${codeAtStart}${codeAtEnd !== codeAtStart ? ` at the start, ${codeAtEnd} at the end (src/ changed during the run)` : ''}`,
    `- date: ${new Date().toISOString()}`,
    `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}`,
    `- Node ${process.version}; mqtt (MQTT.js) ${packageVersion('mqtt')}; aedes ${packageVersion('aedes')}; Mosquitto ${binaryVersion('mosquitto', ['-h'], /mosquitto version (\S+)/)}`,
    `- load average (1 min) just before the run: ${loadBefore[0]!.toFixed(2)} (anything else running on the 2 cores skews the figures; the run itself keeps both busy)`,
    `- ${setup}`,
  ].join('\n');
}

function peersEnvironment(): string {
  return [
    `- moleculer ${packageVersion('moleculer')}; nats (nats.js) ${packageVersion('nats')}; nats-server ${binaryVersion('nats-server', ['--version'], /v(\d+\.\d+\.\d+)/)}`,
    `- wall time of the peers scenario: ${peersSeconds.toFixed(0)} s`,
  ].join('\n');
}
