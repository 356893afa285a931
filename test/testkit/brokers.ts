/**
 * Real brokers for tests and benchmarks: the embedded Aedes one and a Mosquitto process,
 * each on a free port of 127.0.0.1, each disposable. No fixed ports, no sleeps.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';

export type BrokerKind = 'aedes' | 'mosquitto' | 'nats';

export interface TestBroker {
  kind: BrokerKind;
  /** `mqtt://127.0.0.1:<port>` */
  url: string;
  /** `unix://...` when the broker also listens on a Unix socket. */
  unixUrl?: string;
  /** `ws://127.0.0.1:<port>` when asked for (`websocket: true`). */
  wsUrl?: string;
  /** `mqtts://127.0.0.1:<port>` when asked for (`tls: true`); its certificate is `tlsCa`. */
  tlsUrl?: string;
  /** PEM of the self-signed certificate the TLS listener presents (clients trust it as CA). */
  tlsCa?: string;
  /** With `observePublishers`: who published what, seen at the broker. */
  publishers?: PublisherEvents;
  /** Stops the broker as a crash would (clients see their connection drop). */
  stop(): Promise<void>;
  /** Starts it again on the same port and socket. */
  start(): Promise<void>;
  /** Hangs the broker: connections stay open, nothing is read or answered (a stopped process, a dead host). */
  freeze(): Promise<void>;
  /** Lets a frozen broker go on. */
  thaw(): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** True when `binary` is on the PATH (or in /usr/sbin, where Debian puts mosquitto). */
export function hasBinary(binary: string): boolean {
  return findBinary(binary) !== undefined;
}

export function findBinary(binary: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const candidate = path.join(dir, binary);
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Whether tests needing `binary` run. When it is absent: a loud line and a skip, or a
 * failure when RELAIS_REQUIRE_PEERS=1 (CI installs the peers and sets it).
 */
export function peerGate(binary: string, what: string): { run: boolean; skip: string | false } {
  if (hasBinary(binary)) return { run: true, skip: false };
  if (process.env.RELAIS_REQUIRE_PEERS === '1') {
    throw new Error(`${binary} is required (RELAIS_REQUIRE_PEERS=1) for ${what} but is not installed`);
  }
  const line = `!!! SKIPPING ${what}: ${binary} is not installed (apt-get install ${binary === 'mosquitto' ? 'mosquitto mosquitto-clients' : binary}) !!!`;
  console.error(`\n${'!'.repeat(line.length)}\n${line}\n${'!'.repeat(line.length)}\n`);
  return { run: false, skip: `${binary} not installed` };
}

export interface BrokerOptions {
  unix?: boolean;
  websocket?: boolean;
  tls?: boolean;
  /** Report which MQTT client id published each message (`TestBroker.publishers`). */
  observePublishers?: boolean;
}

/** Emits `publish` (clientId, topic) for each message a client publishes, as the broker saw it. */
export type PublisherEvents = EventEmitter<{ publish: [clientId: string, topic: string] }>;

export async function startAedes(options: BrokerOptions = {}): Promise<TestBroker> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-aedes-'));
  const unixPath = options.unix ? path.join(dir, 'broker.sock') : undefined;
  const certificate = options.tls ? makeTlsCertificate(dir) : undefined;
  const listeners = (ports: { port: number; wsPort?: number; tlsPort?: number }) => ({
    port: ports.port,
    ...(unixPath && { unixPath }),
    ...(options.websocket && { wsPort: ports.wsPort ?? 0 }),
    ...(certificate && { tls: { cert: certificate.cert, key: certificate.key, port: ports.tlsPort ?? 0 } }),
  });
  const publishers: PublisherEvents | undefined = options.observePublishers ? new EventEmitter() : undefined;
  const observe = (started: EmbeddedBroker) => {
    if (publishers) started.aedes.on('publish', (packet, client) => client && publishers.emit('publish', client.id, packet.topic));
    return started;
  };
  let broker: EmbeddedBroker | undefined = observe(await startEmbeddedBroker(listeners({ port: 0 })));
  const ports = { port: broker.port!, ...(broker.wsPort !== undefined && { wsPort: broker.wsPort }), ...(broker.tlsPort !== undefined && { tlsPort: broker.tlsPort }) };
  const stop = async () => {
    const running = broker;
    broker = undefined;
    if (running) {
      // Destroy the sockets first so clients see a dropped connection, as with a crash.
      for (const client of Object.values((running.aedes as unknown as { clients: Record<string, { conn: { destroy(): void } }> }).clients)) client.conn.destroy();
      await running.close();
    }
  };
  const start = async () => {
    broker ??= observe(await startEmbeddedBroker(listeners(ports)));
  };
  // In process, so it cannot be stopped like a process: it stops reading its clients instead.
  const connected = () => Object.values((broker?.aedes as unknown as { clients?: Record<string, { pause(): void; resume(): void }> } | undefined)?.clients ?? {});
  const freeze = async () => {
    for (const client of connected()) client.pause();
  };
  const thaw = async () => {
    for (const client of connected()) client.resume();
  };
  const close = async () => {
    await stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return {
    kind: 'aedes',
    url: broker.url!,
    ...(publishers && { publishers }),
    ...(broker.unixUrl && { unixUrl: broker.unixUrl }),
    ...(broker.wsUrl && { wsUrl: broker.wsUrl }),
    ...(broker.tlsUrl && certificate && { tlsUrl: broker.tlsUrl, tlsCa: certificate.cert }),
    stop,
    start,
    freeze,
    thaw,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with openssl in `dir`, valid
 * one day. Clients trust it by passing it as their CA.
 */
export function makeTlsCertificate(dir: string): { cert: string; key: string; certPath: string; keyPath: string } {
  const openssl = findBinary('openssl');
  if (!openssl) throw new Error('openssl is not installed');
  const certPath = path.join(dir, 'broker.crt');
  const keyPath = path.join(dir, 'broker.key');
  execFileSync(openssl, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyPath, '-out', certPath,
  ], { stdio: 'pipe' });
  return { cert: fs.readFileSync(certPath, 'utf8'), key: fs.readFileSync(keyPath, 'utf8'), certPath, keyPath };
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Mosquitto as the project configures it (protocol §1): no-delay, raised queues, loopback only. */
export function mosquittoConfig(
  port: number,
  socketPath?: string,
  extra: { wsPort?: number; tls?: { port: number; certPath: string; keyPath: string }; debugLog?: boolean } = {},
): string {
  return [
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    // "Received PUBLISH from <client id> (...)": who published what (observePublishers).
    ...(extra.debugLog ? ['log_type debug'] : []),
    'user root',
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // protocol §1.2: without it a progress+final pair stalls ~40 ms on delayed ACK.
    'set_tcp_nodelay true',
    // protocol §1.2: the defaults (1000 queued, 20 in flight) drop messages silently under load.
    'max_queued_messages 1000000',
    'max_inflight_messages 0',
    // protocol §1.2, §11.1: a persistent session (the router's) keeps QoS 0 messages too while it is away.
    'queue_qos0_messages true',
    ...(socketPath ? [`listener 0 ${socketPath}`] : []),
    ...(extra.wsPort !== undefined ? [`listener ${extra.wsPort} 127.0.0.1`, 'protocol websockets'] : []),
    ...(extra.tls ? [`listener ${extra.tls.port} 127.0.0.1`, `certfile ${extra.tls.certPath}`, `keyfile ${extra.tls.keyPath}`] : []),
    '',
  ].join('\n');
}

export async function startMosquitto(options: BrokerOptions = {}): Promise<TestBroker> {
  const binary = findBinary('mosquitto');
  if (!binary) throw new Error('mosquitto is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-mosquitto-'));
  const socketPath = options.unix ? path.join(dir, 'mosquitto.sock') : undefined;
  const port = await freePort();
  const wsPort = options.websocket ? await freePort() : undefined;
  const certificate = options.tls ? makeTlsCertificate(dir) : undefined;
  const tls = certificate && { port: await freePort(), certPath: certificate.certPath, keyPath: certificate.keyPath };
  const configPath = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(configPath, mosquittoConfig(port, socketPath, { ...(wsPort !== undefined && { wsPort }), ...(tls && { tls }), debugLog: options.observePublishers ?? false }));
  const publishers: PublisherEvents | undefined = options.observePublishers ? new EventEmitter() : undefined;
  const { start, stop, close, current } = brokerProcess(binary, ['-c', configPath], /mosquitto version .* running/, 'mosquitto', dir, (started) => {
    if (!publishers) return;
    // Read on for good: a debug log left unread would fill the pipe and stall the broker.
    let partial = '';
    started.stderr!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const seen = /Received PUBLISH from (\S+) \(d\d, q\d, r\d, m\d+, '([^']*)'/.exec(line);
        if (seen) publishers.emit('publish', seen[1]!, seen[2]!);
      }
    });
  });
  await start();
  const { freeze, thaw } = freezer(current);
  return {
    kind: 'mosquitto',
    url: `mqtt://127.0.0.1:${port}`,
    ...(publishers && { publishers }),
    ...(socketPath && { unixUrl: `unix://${socketPath}` }),
    ...(wsPort !== undefined && { wsUrl: `ws://127.0.0.1:${wsPort}` }),
    ...(tls && certificate && { tlsUrl: `mqtts://127.0.0.1:${tls.port}`, tlsCa: certificate.cert }),
    stop,
    start,
    freeze,
    thaw,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** `freeze()` and `thaw()` for a broker that is a process: SIGSTOP and SIGCONT. */
export function freezer(child: () => ChildProcess | undefined): Pick<TestBroker, 'freeze' | 'thaw'> {
  return {
    freeze: async () => void child()?.kill('SIGSTOP'),
    thaw: async () => void child()?.kill('SIGCONT'),
  };
}

export async function startBroker(kind: BrokerKind, options: BrokerOptions = {}): Promise<TestBroker> {
  if (kind === 'nats') return (await import('./nats.js')).startNats();
  return kind === 'aedes' ? startAedes(options) : startMosquitto(options);
}

/**
 * A broker in a child process that says on stderr when it is ready: started and stopped as a
 * crash would (SIGKILL), its folder removed on close. `onStart` sees each process started.
 */
export function brokerProcess(binary: string, args: string[], ready: RegExp, label: string, dir: string, onStart?: (child: ChildProcess) => void) {
  let child: ChildProcess | undefined;
  const start = async () => {
    if (child) return;
    const started = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    await waitForLine(started, ready, 15_000, label);
    onStart?.(started);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (running && running.exitCode === null) {
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGKILL');
      await exited;
    }
  };
  const close = async () => {
    await stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { start, stop, close, current: () => child };
}

/** Resolves when the child's stderr prints a line matching `pattern`; rejects on exit or time-out. */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeout: number, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => finish(new Error(`${label} did not start within ${timeout} ms; it said:\n${seen}`)), timeout);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (pattern.test(seen)) finish();
    };
    const onExit = (code: number | null) => finish(new Error(`${label} exited with ${code} before it was ready; it said:\n${seen}`));
    const finish = (error?: Error) => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}
