/**
 * A cluster of nats-server processes, each with its MQTT gateway and JetStream, the clustered
 * engine a deployment may run Relais on (docs/protocol.md §1.3 "On a NATS cluster"): free
 * ports of 127.0.0.1, one temporary folder, routes from every node to all. Each node can be
 * killed (SIGKILL, as a crash) and started again on its ports and store.
 *
 * Ready means every live node's MQTT gateway takes a CONNECT and a QoS 1 SUBSCRIBE: the
 * gateway keeps sessions and QoS 1 subscriptions in JetStream streams, which need a JetStream
 * meta leader elected across the cluster; until then a SUBSCRIBE fails (DEPENDENCIES.md).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { connect, type Bus } from '../../src/index.js';
import { brokerProcess, findBinary, freePort, type TestBroker } from './brokers.js';
import { testLogger, type Kit } from './index.js';

export interface NatsCluster {
  /** `mqtt://127.0.0.1:<port>`: the MQTT gateway of each node, by index. */
  urls: string[];
  /**
   * Every node's URL, node `first`'s first, as a client's `broker` (docs/deploy.md: clients
   * name every node): it connects there, and moves to the next one when that one is lost.
   */
  brokersFrom(first: number): string;
  /** `nats://127.0.0.1:<port>`: each node's NATS client port (for nats.js peers). */
  natsUrls: string[];
  /** Kills node `i` as a crash would (SIGKILL): its clients see their connection drop. */
  kill(i: number): Promise<void>;
  /**
   * Starts node `i` (or several at once) again on its ports and store, and waits until the
   * cluster is ready. A majority of nodes must run for that: start a whole cluster in one call.
   */
  start(i: number | readonly number[]): Promise<void>;
  /** Whether node `i` runs. */
  running(i: number): boolean;
  /** The process id of node `i`, while it runs (the benchmark reads its CPU time). */
  pid(i: number): number | undefined;
  /** SIGSTOP / SIGCONT of node `i` (a frozen host). */
  freeze(i: number): Promise<void>;
  thaw(i: number): Promise<void>;
  /** Waits until every running node's gateway takes a CONNECT and a QoS 1 SUBSCRIBE. */
  ready(timeout?: number): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface NatsClusterOptions {
  nodes?: number;
  /** How long `startNatsCluster` and `start(i)` wait for readiness (ms). */
  readyTimeout?: number;
  /**
   * The settings of each node's `mqtt {}` block besides `listen` (nats-server's names);
   * `RECOMMENDED_MQTT` by default, `{}` for nats-server's own defaults.
   */
  mqtt?: Record<string, string | number | boolean>;
}

/**
 * What docs/protocol.md §1.3 "On a NATS cluster" recommends: each QoS 1 subscription is a
 * JetStream consumer, by default replicated on three nodes and on disk, which made a SUBSCRIBE
 * take 0.2–0.6 s and a client's connect() 3–5 s on a 3-node cluster; one replica in memory,
 * 5–10 ms and ~0.1 s. Relais's sessions are clean but the router's, so nothing is lost that a
 * replica would have kept (§1.3 says what the router's session risks).
 */
export const RECOMMENDED_MQTT = { consumer_replicas: 1, consumer_memory_storage: true } as const;

export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const nodes = options.nodes ?? 3;
  const readyTimeout = options.readyTimeout ?? 30_000;
  const binary = findBinary('nats-server');
  if (!binary) throw new Error('nats-server is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-nats-cluster-'));
  // Nine ports asked one at a time: the kernel may hand one out twice once it is released.
  const taken = new Set<number>();
  const distinctPort = async () => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) return taken.add(port), port;
    }
  };
  const ports = [];
  for (let i = 0; i < nodes; i++) ports.push({ client: await distinctPort(), route: await distinctPort(), mqtt: await distinctPort() });
  const routes = ports.map((port) => `nats-route://127.0.0.1:${port.route}`);
  const processes = ports.map((port, i) => {
    const nodeDir = path.join(dir, `n${i}`);
    fs.mkdirSync(nodeDir);
    const configPath = path.join(nodeDir, 'nats.conf');
    fs.writeFileSync(
      configPath,
      [
        `server_name: relais-n${i}-${process.pid}`,
        `listen: 127.0.0.1:${port.client}`,
        `jetstream { store_dir: ${JSON.stringify(path.join(nodeDir, 'js'))} }`,
        // A route to itself is recognised and dropped by nats-server: one list for all.
        `cluster { name: relais-${process.pid}, listen: 127.0.0.1:${port.route}, routes: [${routes.join(', ')}] }`,
        `mqtt { listen: 127.0.0.1:${port.mqtt}${Object.entries(options.mqtt ?? RECOMMENDED_MQTT).map(([key, value]) => `, ${key}: ${JSON.stringify(value)}`).join('')} }`,
        '',
      ].join('\n'),
    );
    return brokerProcess(binary, ['-c', configPath], /Server is ready/, `nats-server node ${i}`, nodeDir);
  });
  const urls = ports.map((port) => `mqtt://127.0.0.1:${port.mqtt}`);
  const running = (i: number) => processes[i]!.current() !== undefined;

  const ready = async (timeout = readyTimeout) => {
    const deadline = Date.now() + timeout;
    const pending = new Map<number, string>();
    for (let i = 0; i < nodes; i++) if (running(i)) pending.set(i, 'not tried yet');
    while (pending.size > 0) {
      for (const i of [...pending.keys()]) {
        const failure = await probe(urls[i]!, Math.max(500, Math.min(3000, deadline - Date.now())));
        if (failure === undefined) pending.delete(i);
        else pending.set(i, failure);
      }
      if (pending.size === 0) break;
      if (Date.now() >= deadline) {
        const what = [...pending].map(([i, why]) => `node ${i} (${urls[i]}): ${why}`).join('; ');
        throw new Error(`the NATS cluster was not ready within ${timeout} ms (a CONNECT and a QoS 1 SUBSCRIBE on each node's MQTT gateway): ${what}`);
      }
      // A poll, not a wait for an event: JetStream says nothing to an outsider when its leader is elected.
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  const close = async () => {
    await Promise.all(processes.map((node) => node.stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(processes.map((node) => node.start()));
    await ready();
  } catch (error) {
    await close();
    throw error;
  }
  return {
    urls,
    brokersFrom: (first) => [...urls.slice(first), ...urls.slice(0, first)].join(','),
    natsUrls: ports.map((port) => `nats://127.0.0.1:${port.client}`),
    kill: (i) => processes[i]!.stop(),
    start: async (which) => {
      await Promise.all((typeof which === 'number' ? [which] : which).map((i) => processes[i]!.start()));
      await ready();
    },
    running,
    pid: (i) => processes[i]!.current()?.pid,
    freeze: async (i) => void processes[i]!.current()?.kill('SIGSTOP'),
    thaw: async (i) => void processes[i]!.current()?.kill('SIGCONT'),
    ready,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A CONNECT then a QoS 1 SUBSCRIBE on `url`: undefined when both succeeded, else why not. */
async function probe(url: string, timeout: number): Promise<string | undefined> {
  let client: mqtt.MqttClient | undefined;
  const timer = new Promise<string>((resolve) => setTimeout(() => resolve(`no answer within ${timeout} ms`), timeout).unref());
  const attempt = (async () => {
    client = await mqtt.connectAsync(url, { clientId: `relais-ready-${process.pid}-${Math.random().toString(36).slice(2)}`, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: timeout }, false);
    const granted = await client.subscribeAsync('relais-ready/probe', { qos: 1 });
    return granted[0]?.qos === 1 ? undefined : `SUBSCRIBE refused (granted ${granted[0]?.qos})`;
  })()
    .catch((error: unknown) => (error as Error).message || String(error))
    // Also when the time-out won: a connection that succeeds late is closed then.
    .finally(() => client?.end(true));
  return Promise.race([attempt, timer]);
}

/**
 * A `Kit` (test/testkit/index.ts) on a cluster: each client names every node, as deployed
 * (docs/deploy.md), and connects first to the next node in turn, so two clients connected one
 * after the other start on different nodes (a handler and the requester of `pair()` do). `broker` stands for the whole cluster: its `url` is
 * node 0's gateway, and stopping it kills every node (the broker dies), starting it starts
 * them all and waits until the cluster is ready.
 */
export async function setupNatsCluster(options: NatsClusterOptions = {}): Promise<Kit & { cluster: NatsCluster }> {
  const cluster = await startNatsCluster(options);
  const every = (action: (i: number) => Promise<void>) => Promise.all(cluster.urls.map((_, i) => action(i))).then(() => {});
  const broker: TestBroker = {
    kind: 'nats',
    url: cluster.urls[0]!,
    stop: () => every(cluster.kill),
    start: () => cluster.start(cluster.urls.map((_, i) => i)),
    freeze: () => every(cluster.freeze),
    thaw: () => every(cluster.thaw),
    close: cluster.close,
    [Symbol.asyncDispose]: cluster.close,
  };
  const clients: Bus[] = [];
  let next = 0;
  return {
    cluster,
    broker,
    async connect(id, extra = {}) {
      const bus = await connect({ id, broker: cluster.brokersFrom(next++ % cluster.urls.length), logger: testLogger, ...extra });
      clients.push(bus);
      return bus;
    },
    async cleanup() {
      await Promise.all(clients.map((bus) => bus.close()));
      await cluster.close();
    },
  };
}
