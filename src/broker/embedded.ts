/**
 * The embedded broker: Aedes in this process, so `relais start` needs nothing installed.
 * Listeners: TCP (default 127.0.0.1:1883) and a Unix socket (protocol §1).
 */
import { Aedes } from 'aedes';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';

export interface EmbeddedBrokerOptions {
  /** TCP host to bind. Default `127.0.0.1` (least exposure; pass `0.0.0.0` to serve the network). */
  host?: string;
  /** TCP port; 0 picks a free one. Default 1883. `false` disables the TCP listener. */
  port?: number | false;
  /** Path of a Unix socket listener; none when absent. */
  unixPath?: string;
}

export const BROKER_DEFAULTS = { host: '127.0.0.1', port: 1883 } as const;

export interface EmbeddedBroker {
  readonly aedes: Aedes;
  /** `mqtt://host:port` of the TCP listener, when there is one. */
  readonly url?: string;
  /** `unix://path` of the Unix socket listener, when there is one. */
  readonly unixUrl?: string;
  readonly port?: number;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export class BrokerStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BrokerStartError';
  }
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? BROKER_DEFAULTS.host;
  const port = options.port === undefined ? BROKER_DEFAULTS.port : options.port;
  const aedes = await Aedes.createBroker({ id: 'relais-embedded' });
  const servers: net.Server[] = [];

  // DEPENDENCIES.md "Nagle stall": a progress response followed by the final one would wait
  // ~40 ms on the peer's delayed ACK; no-delay on every accepted socket removes it.
  const accept = (socket: net.Socket) => {
    socket.setNoDelay(true);
    aedes.handle(socket);
  };

  const closeAll = async () => {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
  };

  try {
    let url: string | undefined;
    let boundPort: number | undefined;
    if (port !== false) {
      const server = net.createServer(accept);
      await listen(server, { host, port }, `TCP ${host}:${port}`);
      servers.push(server);
      boundPort = (server.address() as net.AddressInfo).port;
      url = `mqtt://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
    }
    let unixUrl: string | undefined;
    if (options.unixPath) {
      await removeStaleSocket(options.unixPath);
      fs.mkdirSync(path.dirname(options.unixPath), { recursive: true });
      const server = net.createServer(accept);
      await listen(server, { path: options.unixPath }, `Unix socket ${options.unixPath}`);
      servers.push(server);
      unixUrl = `unix://${options.unixPath}`;
    }
    const broker: EmbeddedBroker = {
      aedes,
      ...(url !== undefined && { url, port: boundPort }),
      ...(unixUrl !== undefined && { unixUrl }),
      close: closeAll,
      [Symbol.asyncDispose]: closeAll,
    };
    return broker;
  } catch (error) {
    await closeAll();
    throw error;
  }
}

function listen(server: net.Server, where: net.ListenOptions, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(new BrokerStartError(`${label} is already in use: another broker may be running (choose another with --port, or stop it)`, { cause: error }));
      } else if (error.code === 'EACCES') {
        reject(new BrokerStartError(`no permission to listen on ${label}`, { cause: error }));
      } else {
        reject(new BrokerStartError(`cannot listen on ${label}: ${error.message}`, { cause: error }));
      }
    });
    server.listen(where, () => resolve());
  });
}

/** A socket file left by a crashed broker blocks `listen`; one nobody answers on is removed. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!alive) fs.unlinkSync(socketPath);
}
