/**
 * A WAN between two brokers that a test controls: a TCP proxy on 127.0.0.1 that forwards to a
 * target with added latency and jitter in each direction (bytes stay in order, as on a real
 * connection), `cut()` to drop every connection and refuse new ones, `restore()` to let them
 * back, and counts of the bytes it carried.
 */
import net from 'node:net';

export interface Latency {
  /** Mean one-way delay added to every chunk, in ms. */
  ms: number;
  /** Each chunk's delay is drawn in [ms − jitter, ms + jitter]. */
  jitterMs?: number;
}

export interface WanProxyOptions {
  /** Added from the dialling side to the target. */
  toTarget?: Latency;
  /** Added from the target back to the dialling side. */
  fromTarget?: Latency;
}

export interface WanProxy {
  port: number;
  /** `mqtt://127.0.0.1:<port>`. */
  url: string;
  /** Bytes carried so far, each way. */
  readonly bytes: { toTarget: number; fromTarget: number };
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Whether the WAN is cut. */
  readonly isCut: boolean;
  /** Drops every connection and refuses new ones until `restore()`; returns how many were dropped. */
  cut(): number;
  restore(): void;
  close(): Promise<void>;
}

export async function startWanProxy(targetPort: number, options: WanProxyOptions = {}, targetHost = '127.0.0.1'): Promise<WanProxy> {
  const open = new Set<net.Socket>();
  const bytes = { toTarget: 0, fromTarget: 0 };
  let accepted = 0;
  let isCut = false;

  /**
   * Pipes `from` into `to` with the delay of `latency`, never letting a later chunk pass an
   * earlier one. When `from` ends, `to` ends once the bytes in flight are delivered, as on a
   * real network (a DISCONNECT is not lost); a cut destroys both at once.
   */
  const delayed = (from: net.Socket, to: net.Socket, latency: Latency | undefined, count: (n: number) => void) => {
    // One FIFO drained by one timer at a time. A timer per chunk does not keep them in order:
    // Node counts a timer from the loop's cached clock, not from Date.now(), so a chunk queued
    // later in the same loop turn, due at the same time, gets a shorter delay and fires first;
    // swapped bytes corrupt the MQTT stream and the broker drops the connection.
    const queue: Array<{ due: number; chunk: Buffer | 'end' }> = [];
    let timer: NodeJS.Timeout | undefined;
    const drain = () => {
      timer = undefined;
      while (queue.length > 0 && queue[0]!.due <= Date.now()) {
        const { chunk } = queue.shift()!;
        if (to.destroyed) continue;
        if (chunk === 'end') to.end();
        else to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(drain, Math.max(1, queue[0]!.due - Date.now()));
    };
    const push = (due: number, chunk: Buffer | 'end') => {
      queue.push({ due: Math.max(due, queue.at(-1)?.due ?? 0), chunk });
      if (!timer) timer = setTimeout(drain, Math.max(0, queue[0]!.due - Date.now()));
    };
    from.on('end', () => push(Date.now(), 'end'));
    from.on('data', (chunk: Buffer) => {
      count(chunk.length);
      if (!latency) return void to.write(chunk);
      const jitter = latency.jitterMs ?? 0;
      push(Date.now() + latency.ms + (Math.random() * 2 - 1) * jitter, chunk);
    });
  };

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    if (isCut) return void client.destroy();
    accepted += 1;
    client.setNoDelay(true);
    const upstream = net.connect({ port: targetPort, host: targetHost, allowHalfOpen: true });
    upstream.setNoDelay(true);
    delayed(client, upstream, options.toTarget, (n) => (bytes.toTarget += n));
    delayed(upstream, client, options.fromTarget, (n) => (bytes.fromTarget += n));
    for (const [socket, other] of [[client, upstream], [upstream, client]] as const) {
      open.add(socket);
      socket.on('close', (hadError) => {
        open.delete(socket);
        if (hadError) other.destroy();
      });
      socket.on('error', () => other.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    bytes,
    get accepted() {
      return accepted;
    },
    get isCut() {
      return isCut;
    },
    cut() {
      isCut = true;
      const count = open.size;
      for (const socket of open) socket.destroy();
      return count;
    },
    restore() {
      isCut = false;
    },
    async close() {
      isCut = true;
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
