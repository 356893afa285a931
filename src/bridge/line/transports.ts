/**
 * How a line bridge reaches its peer: it connects to a Unix socket (and connects again, with
 * back-off, whenever the peer goes away), listens on one (the peer connects; a newer connection
 * replaces the older), or opens a serial device (opened again after an error, with back-off).
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { LineBridge } from './line-bridge.js';

export interface Transport {
  close(): Promise<void>;
}

export interface Backoff {
  /** First delay before reconnecting, in ms; doubles each failure up to `maxDelay`, with full jitter. Default 100. */
  minDelay?: number;
  /** Default 5000. */
  maxDelay?: number;
}

/**
 * Keeps one stream open: `open()` makes one, `readyEvent` says it is usable; when it closes,
 * another is opened after a random delay up to min(maxDelay, minDelay × 2^failures).
 */
function keepOpen(what: string, open: () => Duplex, readyEvent: string, bridge: LineBridge, logger: Logger, backoff: Backoff): Transport {
  const minDelay = backoff.minDelay ?? 100;
  const maxDelay = backoff.maxDelay ?? 5000;
  let failures = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Duplex | undefined;
  const attempt = () => {
    if (stopped) return;
    const stream = open();
    current = stream;
    let ready = false;
    stream.once(readyEvent, () => {
      ready = true;
      failures = 0;
      bridge.attach(stream);
    });
    stream.on('error', (error: Error) => {
      // Attached streams log their own errors; before that, only the first failure of a series is worth a warning.
      if (ready) return;
      (failures === 0 ? logger.warn.bind(logger) : logger.debug.bind(logger))({ err: error.message }, `cannot open ${what}; trying again`);
      // A serial port that failed to open does not close by itself; a socket does, and this is then a no-op.
      stream.destroy();
    });
    stream.once('close', () => {
      if (stopped) return;
      const delay = Math.random() * Math.min(maxDelay, minDelay * 2 ** failures);
      failures += 1;
      timer = setTimeout(attempt, delay);
    });
  };
  attempt();
  return {
    async close() {
      stopped = true;
      clearTimeout(timer);
      current?.destroy();
    },
  };
}

/** Connects to the peer's Unix socket, and again after it goes away. */
export function connectSocket(path: string, bridge: LineBridge, logger: Logger, backoff: Backoff = {}): Transport {
  return keepOpen(`socket ${path}`, () => net.createConnection(path), 'connect', bridge, logger, backoff);
}

/** Listens on a Unix socket for the peer. A stale socket file (nobody listening) is replaced. */
export async function listenSocket(path: string, bridge: LineBridge, logger: Logger): Promise<Transport> {
  const server = net.createServer((socket) => bridge.attach(socket));
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await listen();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || (await someoneListens(path))) throw error;
    logger.info({ path }, 'removing a stale socket file');
    fs.unlinkSync(path);
    await listen();
  }
  server.on('error', (error) => logger.warn({ path, err: error.message }, 'socket listener error'));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        bridge.close();
        server.close(() => resolve());
      }),
  };
}

function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** The part of serialport@13's `SerialPort` the bridge uses: a Duplex that emits `open`. */
interface SerialPortModule {
  SerialPort: new (options: { path: string; baudRate: number; autoOpen?: boolean }) => Duplex;
}

/**
 * Opens a serial device through the `serialport` package (never `SerialPort.list()`, which
 * spawns udevadm). Rejects, saying so, when the package is not installed.
 */
export async function openSerial(path: string, baudRate: number, bridge: LineBridge, logger: Logger, backoff: Backoff = {}): Promise<Transport> {
  let module: SerialPortModule;
  try {
    const name = 'serialport';
    module = (await import(name)) as SerialPortModule;
  } catch (error) {
    throw new Error(`--serial needs the serialport package, which is not installed (${(error as Error).message.split('\n')[0]})`);
  }
  return keepOpen(`serial device ${path}`, () => new module.SerialPort({ path, baudRate }), 'open', bridge, logger, backoff);
}
