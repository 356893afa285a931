/**
 * The embedded broker: Aedes in this process, so `relais start` needs nothing installed.
 * Listeners (protocol §1): TCP (default 127.0.0.1:1883), a Unix socket, and on request MQTT
 * over WebSocket (browsers, mobile web views) and MQTT over TLS (other machines).
 */
import { Aedes } from 'aedes';
import fs from 'node:fs';
import http from 'node:http';
import { createServer as httpsCreateServer } from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { memoryPair } from './memory-pair.js';
import { presentedButUnverified } from '../security/peer-certificate.js';
import { BrokerStartError, listen } from './listen.js';
import { listenPrivately, removeStaleSocket } from './unix-socket.js';

export { BrokerStartError };
import { enforce, type BrokerSecurity, type DenialCounts } from './enforce.js';
import { ROUTER_JOURNAL_DEFAULTS, type RouterJournal, type RouterJournalOptions } from './router-journal.js';
import { installRouterJournal } from './router-journal-hooks.js';
import { clearRefusedCopiesByIdentity, type OutgoingPersistence } from './refused-copies.js';
import { indexRetained } from './retained-index.js';
import { BROKER_LIMITS, guardReads, noCutOffs, checkConnect, rememberConnect, slowConsumerPolicy, type BrokerLimits, type CutOffCounts } from './limits.js';
import { countTraffic, noTraffic, type TrafficCounts } from './traffic.js';

export interface EmbeddedBrokerOptions {
  /** Address every network listener binds. Default `127.0.0.1` (least exposure; `0.0.0.0` serves the network). */
  host?: string;
  /** TCP port; 0 picks a free one. Default 1883. `false` disables the TCP listener. */
  port?: number | false;
  /** Path of a Unix socket listener; none when absent. */
  unixPath?: string;
  /** File mode of the Unix socket: 0o600 (the default: the broker's user only) or 0o660 with `unixGroup`. */
  unixMode?: number;
  /** Group (name or gid) that owns the Unix socket, for `unixMode` 0o660. */
  unixGroup?: string | number;
  /** Port of an MQTT-over-WebSocket listener (any path, subprotocol `mqtt`); 0 picks a free one. None when absent. */
  wsPort?: number;
  /**
   * Web page origins (`https://ui.example:8443`) allowed to open the WebSocket listener; `*`
   * allows any. A browser sends its page's origin, so without this any web site the user
   * visits could command the bus through `ws://127.0.0.1`. Clients that send no `Origin`
   * (programs, not browsers) are always accepted. Default: none.
   */
  wsOrigins?: readonly string[];
  /**
   * An MQTT-over-TLS listener (TLS 1.3 only): PEM certificate chain and private key; port 8883
   * unless given (0 picks a free one), on `host` unless given. With `ca`, clients may present a
   * certificate signed by it: with `security` on, its CN is their identity (docs/security.md);
   * a certificate that does not verify (unknown CA, expired) is refused at the handshake.
   * `wsPort` adds MQTT over WebSocket over TLS (wss://, for browsers beyond this machine), with
   * the same certificates, origins and authentication.
   */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer; port?: number; host?: string; wsPort?: number };
  /**
   * Resource limits on every network connection (packet size, CONNECT time-out, keep-alive,
   * slow consumers); each field defaults to BROKER_LIMITS. In-process streams (`accept`,
   * `connectInProcess`) are trusted: only the CONNECT time-out and keep-alive limit apply.
   */
  limits?: Partial<BrokerLimits>;
  /** Where the broker says why it closed a connection (one line each). Default: standard error, prefixed `relais broker:`. */
  log?: (line: string) => void;
  /**
   * Authentication and authorisation (docs/security.md "Identities and enforcement"): every
   * network client must CONNECT as an identity of `identities` (username, token as password),
   * with its identity as client id, or a session `<identity>~<session>` up to the policy's
   * `sessions.max` (each with its lane `~rt`, protocol §2.1); `policy` decides every SUBSCRIBE and
   * PUBLISH. In-process streams (`connectInProcess`, `accept`) are trusted, except a link's
   * (`connectInProcess({ identity })`). Absent: no checks.
   */
  security?: BrokerSecurity;
  /**
   * What the broker keeps for the router until it has stored it (protocol §11.1 "The journal");
   * each field defaults to ROUTER_JOURNAL_DEFAULTS. `false`: none.
   */
  routerJournal?: Partial<RouterJournalOptions> | false;
}

export const BROKER_DEFAULTS = { host: '127.0.0.1', port: 1883, tlsPort: 8883 } as const;

/** Whether `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

export interface EmbeddedBroker {
  readonly aedes: Aedes;
  /** `mqtt://host:port` of the TCP listener, when there is one. */
  readonly url?: string;
  readonly port?: number;
  /** `unix://path` of the Unix socket listener, when there is one. */
  readonly unixUrl?: string;
  /** `ws://host:port` of the WebSocket listener, when there is one. */
  readonly wsUrl?: string;
  readonly wsPort?: number;
  /** `mqtts://host:port` of the TLS listener, when there is one. */
  readonly tlsUrl?: string;
  readonly tlsPort?: number;
  /** `wss://host:port` of the WebSocket-over-TLS listener, when there is one. */
  readonly wssUrl?: string;
  readonly wssPort?: number;
  /**
   * A new MQTT connection to this broker without a socket: give it to `connect({ stream })`.
   * In-process clients (the router inside `relais start`) skip the TCP hop, and are trusted.
   * With `identity` (a link's local connection, protocol §13.2) and `security` on, the stream
   * is not trusted: it is admitted as that identity (its CONNECT's client id must be it, a
   * session of it or either's `~rt`; no credentials) with role `site` added to the roles the identities give
   * it (it may have no entry; revoked, it is refused), and every SUBSCRIBE and PUBLISH on it is
   * decided as a network client's. Without `security`, `identity` changes nothing.
   */
  connectInProcess(options?: { identity?: string }): Duplex;
  /** Serves one MQTT connection carried by `stream` (a worker thread's port, protocol §11); closed with the broker. */
  accept(stream: Duplex): void;
  /**
   * Serves one MQTT connection from outside the process that arrived some other way (the web
   * server's `/mqtt` WebSocket): untrusted, like a listener's, so the limits and the security
   * apply. `address` names it in log lines; `tlsSocket` is the TLS socket beneath, if any
   * (its client certificate then names the identity). Closed with the broker.
   */
  serveConnection(stream: Duplex, address: string, tlsSocket?: tls.TLSSocket): void;
  /** With `security`: denials since the start, by kind (each is also logged). */
  readonly denials?: DenialCounts;
  /** Connections closed by each resource limit since the start (each is also logged). */
  readonly cutOffs: CutOffCounts;
  /** Messages and payload bytes in and out since the start (protocol §11.9). */
  readonly traffic: TrafficCounts;
  /** What is kept for the router (absent with `routerJournal: false`). */
  readonly routerJournal?: RouterJournal;
  /** When the broker started (epoch ms). */
  readonly startedAt: number;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? BROKER_DEFAULTS.host;
  const port = options.port === undefined ? BROKER_DEFAULTS.port : options.port;
  const startedAt = Date.now();
  const limits: BrokerLimits = { ...BROKER_LIMITS, ...definedFields(options.limits ?? {}) };
  const log = options.log ?? ((line: string) => void process.stderr.write(`relais broker: ${line}\n`));
  const aedes = await Aedes.createBroker({
    id: 'relais-embedded',
    connectTimeout: limits.connectTimeoutMs,
    preConnect: rememberConnect as never,
  });
  // Before any client connects: a SUBSCRIBE then costs the retained messages under its filter, not all of them.
  indexRetained((aedes as unknown as { persistence: unknown }).persistence as Parameters<typeof indexRetained>[0]);
  // Overlapping subscriptions of a persistent session must not drop its connection.
  clearRefusedCopiesByIdentity((aedes as unknown as { persistence: OutgoingPersistence }).persistence);
  const cutOffs = noCutOffs();
  const logLimit = (_client: unknown, error: Error) => {
    if (error.message === 'connect did not arrive in time') {
      cutOffs.connectTimeout++;
      log(`closed a connection that sent no CONNECT within ${limits.connectTimeoutMs} ms (connectTimeoutMs)`);
    }
  };
  // In-process streams: the process's own clients (the router), trusted by the security hooks.
  const trusted = new WeakSet<object>();
  // The TLS socket under each secured connection: enforce reads its client certificate there.
  const tlsPeers = new WeakMap<object, tls.TLSSocket>();
  // Where each network connection comes from: failed authentications are counted by it.
  const addresses = new WeakMap<object, string>();
  // The in-process streams of links, by the identity of the link's other end: checked, not trusted.
  const links = new WeakMap<object, string>();
  const denials = options.security ? enforce(aedes, options.security, { trusted, tlsPeers, addresses, links }, log) : undefined;
  checkConnect(aedes, limits.maxKeepaliveSeconds, log, cutOffs);
  // After the security's hooks: a PUBLISH it refuses never reaches the journal.
  const routerJournal = options.routerJournal === false ? undefined : installRouterJournal(aedes, { ...ROUTER_JOURNAL_DEFAULTS, ...definedFields(options.routerJournal ?? {}) }, log);
  // Last on the hooks: each PUBLISH counted as it arrived, each copy as it leaves.
  const traffic = noTraffic();
  countTraffic(aedes, traffic);
  aedes.on('clientError', logLimit);
  aedes.on('connectionError', logLimit);
  const servers: net.Server[] = [];
  const sockets = new Set<{ destroy(): void }>();
  const webSockets: WebSocketServer[] = [];

  // protocol §1.2: a progress response followed by the final one would wait
  // ~40 ms on the peer's delayed ACK; no-delay on every accepted socket removes it.
  const accept = (socket: net.Socket) => {
    socket.setNoDelay(true);
    // A client with keep-alive 0 never pings: the kernel's probes find its socket if it goes half-open.
    socket.setKeepAlive(true, limits.tcpKeepaliveMs);
    protect(socket, `${socket.remoteAddress ?? 'unix socket'}${socket.remotePort ? `:${socket.remotePort}` : ''}`);
  };
  // docs/security.md "Bounded resources (broker)": headers are checked before Aedes buffers a
  // body, and a client that stops reading is cut off instead of holding every delivery.
  const protect = (stream: Duplex, address: string) => {
    addresses.set(stream, address);
    guardReads(stream, address, limits, log, cutOffs);
    slowConsumerPolicy(aedes.handle(stream) as never, stream, address, limits, log, cutOffs);
  };

  const closeAll = async () => {
    // Stop accepting first, then drop the clients: a server's close waits for its connections,
    // including ones Aedes does not own yet (a TLS handshake, a socket that never sent CONNECT).
    const closed = servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const server of webSockets) {
      for (const socket of server.clients) socket.terminate();
      server.close();
    }
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await Promise.all(closed);
  };
  const track = (server: net.Server) => {
    server.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    return server;
  };
  const bindTcp = async (server: net.Server, wanted: number, scheme: string, label: string, on = host) => {
    await listen(track(server), { host: on, port: wanted }, `${label} ${on}:${wanted}`, label);
    servers.push(server);
    const bound = (server.address() as net.AddressInfo).port;
    return { port: bound, url: `${scheme}://${on.includes(':') ? `[${on}]` : on}:${bound}` };
  };

  /** Serves MQTT over WebSocket on `server` (http or https; subprotocol mqtt), origins checked. */
  const serveWebSockets = (server: http.Server) => {
    const origins = new Set(options.wsOrigins ?? []);
    const sockets = new WebSocketServer({
      server,
      verifyClient: ({ origin }: { origin?: string }) => !origin || origins.has('*') || origins.has(origin),
    });
    webSockets.push(sockets);
    sockets.on('error', () => {}); // the HTTP server's errors, already reported by listen()
    sockets.on('connection', (socket, request) => {
      request.socket.setNoDelay(true);
      request.socket.setKeepAlive(true, limits.tcpKeepaliveMs);
      const stream = createWebSocketStream(socket);
      if (request.socket instanceof tls.TLSSocket) tlsPeers.set(stream, request.socket);
      protect(stream, `websocket ${request.socket.remoteAddress}:${request.socket.remotePort}`);
    });
    return server;
  };
  /** Certificates are optional (token clients send none), but one that fails to verify is refused here. */
  const verifiedPeer = (socket: tls.TLSSocket) => {
    const refused = presentedButUnverified(socket);
    if (!refused) return true;
    log(`refused the client certificate of ${socket.remoteAddress}:${socket.remotePort} (${refused})`);
    socket.destroy();
    return false;
  };
  const secured = <T extends tls.Server>(create: () => T): T => {
    let server: T;
    try {
      server = create();
    } catch (error) {
      throw new BrokerStartError(`the TLS certificate or key is not usable: ${(error as Error).message}`, { cause: error });
    }
    server.on('tlsClientError', (error: Error & { code?: string }, socket: tls.TLSSocket) => log(`refused a TLS handshake from ${socket.remoteAddress}:${socket.remotePort}: ${error.code ?? error.message}`));
    return server;
  };

  try {
    const listeners: Partial<Record<'url' | 'port' | 'unixUrl' | 'wsUrl' | 'wsPort' | 'tlsUrl' | 'tlsPort' | 'wssUrl' | 'wssPort', string | number>> = {};
    if (port !== false) {
      const tcp = await bindTcp(net.createServer(accept), port, 'mqtt', 'TCP');
      Object.assign(listeners, { url: tcp.url, port: tcp.port });
    }
    if (options.unixPath) {
      await removeStaleSocket(options.unixPath);
      fs.mkdirSync(path.dirname(options.unixPath), { recursive: true });
      const server = track(net.createServer(accept));
      await listenPrivately(server, options.unixPath, options.unixMode ?? 0o600, options.unixGroup);
      servers.push(server);
      listeners.unixUrl = `unix://${options.unixPath}`;
    }
    if (options.wsPort !== undefined) {
      const ws = await bindTcp(serveWebSockets(http.createServer(explainWebSocketPort)), options.wsPort, 'ws', 'WebSocket');
      Object.assign(listeners, { wsUrl: ws.url, wsPort: ws.port });
    }
    if (options.tls) {
      const secureOptions: tls.TlsOptions = {
        cert: options.tls.cert,
        key: options.tls.key,
        minVersion: 'TLSv1.3', // docs/security.md "Listeners": the external listener speaks TLS 1.3 only
        ...(options.tls.ca !== undefined && { ca: options.tls.ca, requestCert: true, rejectUnauthorized: false }),
      };
      const tlsHost = options.tls.host ?? host;
      const server = secured(() =>
        tls.createServer(secureOptions, (socket) => {
          if (!verifiedPeer(socket)) return;
          tlsPeers.set(socket, socket);
          accept(socket);
        }),
      );
      const secure = await bindTcp(server, options.tls.port ?? BROKER_DEFAULTS.tlsPort, 'mqtts', 'TLS', tlsHost);
      Object.assign(listeners, { tlsUrl: secure.url, tlsPort: secure.port });
      if (options.tls.wsPort !== undefined) {
        const https = secured(() => httpsCreateServer(secureOptions, explainWebSocketPort));
        // The certificate is checked once the handshake is done, before the HTTP upgrade is read.
        https.on('secureConnection', (socket: tls.TLSSocket) => void verifiedPeer(socket));
        const wss = await bindTcp(serveWebSockets(https), options.tls.wsPort, 'wss', 'WebSocket over TLS', tlsHost);
        Object.assign(listeners, { wssUrl: wss.url, wssPort: wss.port });
      }
    }
    const handleInProcess = (stream: Duplex, linkIdentity: string | undefined) => {
      sockets.add(stream);
      stream.once('close', () => sockets.delete(stream));
      if (linkIdentity !== undefined && denials) links.set(stream, linkIdentity);
      else trusted.add(stream);
      aedes.handle(stream);
    };
    const acceptStream = (stream: Duplex) => handleInProcess(stream, undefined);
    const connectInProcess = (inProcess: { identity?: string } = {}) => {
      const [client, server] = memoryPair();
      handleInProcess(server, inProcess.identity);
      return client;
    };
    const serveConnection = (stream: Duplex, address: string, tlsSocket?: tls.TLSSocket) => {
      sockets.add(stream);
      stream.once('close', () => sockets.delete(stream));
      if (tlsSocket) tlsPeers.set(stream, tlsSocket);
      protect(stream, address);
    };
    const broker = { aedes, ...listeners, ...(denials && { denials }), ...(routerJournal && { routerJournal }), cutOffs, traffic, startedAt, connectInProcess, accept: acceptStream, serveConnection, close: closeAll, [Symbol.asyncDispose]: closeAll } as EmbeddedBroker;
    return broker;
  } catch (error) {
    await closeAll();
    throw error;
  }
}

function definedFields<T extends object>(partial: T): T {
  return Object.fromEntries(Object.entries(partial).filter(([, value]) => value !== undefined)) as T;
}


function explainWebSocketPort(_request: http.IncomingMessage, response: http.ServerResponse): void {
  response.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
  response.end('This is an MQTT-over-WebSocket endpoint: connect with an MQTT client (subprotocol mqtt).\n');
}
