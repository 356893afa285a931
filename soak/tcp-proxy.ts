/**
 * A TCP proxy on 127.0.0.1 between one client process and the broker (or the web server), with
 * the faults of a real network, each switched on and off by the soak:
 *
 * - `cut()`: every connection through it is destroyed (both sockets, as a lost link is);
 * - `refuse`: new connections are closed at once (a partition, with `cut()` first);
 * - `stall`: nothing moves either way and nothing is read (the peers' buffers fill, connections
 *   stay open: a dead route, a frozen NAT);
 * - `latency`: each chunk waits `latencyMs` ± `jitterMs` one way, order kept;
 * - `slowRead`: towards the client, at most `bytesPerSecond` (a client on a thin link, or one
 *   that reads slowly): the broker's writes back up.
 *
 * Network jitter uses Math.random: the schedule of faults is replayed from the seed, the
 * nanoseconds of a network are not.
 */
import net from 'node:net';

export interface LinkFaults {
  stall: boolean;
  latency?: { latencyMs: number; jitterMs: number };
  /** Towards the client only. */
  slowRead?: { bytesPerSecond: number };
}

export interface FaultyProxy {
  readonly name: string;
  readonly port: number;
  /** New connections are closed at once while true. */
  refuse: boolean;
  readonly faults: LinkFaults;
  /** Connections accepted so far, and cut by `cut()`. */
  readonly stats: { accepted: number; cut: number };
  cut(): number;
  setStall(on: boolean): void;
  setLatency(latency: LinkFaults['latency']): void;
  setSlowRead(slowRead: LinkFaults['slowRead']): void;
  /** Every fault off (connections stay as they are). */
  heal(): void;
  close(): Promise<void>;
}

/** Queued bytes of one direction above which its source stops being read (backpressure). */
const HIGH_WATER = 256 * 1024;

export async function startFaultyProxy(name: string, targetPort: number): Promise<FaultyProxy> {
  const faults: LinkFaults = { stall: false };
  const connections = new Set<Connection>();
  const stats = { accepted: 0, cut: 0 };
  let refuse = false;
  const server = net.createServer((client) => {
    if (refuse) return void client.destroy();
    stats.accepted += 1;
    const upstream = net.connect(targetPort, '127.0.0.1');
    const connection = new Connection(client, upstream, faults, () => connections.delete(connection));
    connections.add(connection);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const each = (run: (connection: Connection) => void) => {
    for (const connection of connections) run(connection);
  };
  return {
    name,
    port,
    get refuse() {
      return refuse;
    },
    set refuse(value: boolean) {
      refuse = value;
    },
    faults,
    stats,
    cut() {
      const count = connections.size;
      stats.cut += count;
      each((connection) => connection.destroy());
      return count;
    },
    setStall(on) {
      faults.stall = on;
      each((connection) => connection.changed());
    },
    setLatency(latency) {
      faults.latency = latency;
      each((connection) => connection.changed());
    },
    setSlowRead(slowRead) {
      faults.slowRead = slowRead;
      each((connection) => connection.changed());
    },
    heal() {
      refuse = false;
      faults.stall = false;
      delete faults.latency;
      delete faults.slowRead;
      each((connection) => connection.changed());
    },
    async close() {
      each((connection) => connection.destroy());
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One client connection and its upstream: two directions, each a `Pipe`. */
class Connection {
  private readonly up: Pipe;
  private readonly down: Pipe;

  constructor(
    private readonly client: net.Socket,
    private readonly upstream: net.Socket,
    faults: LinkFaults,
    onClose: () => void,
  ) {
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true); // a proxy must not add Nagle's delay of its own (docs: DEPENDENCIES "Nagle stall")
      socket.on('error', () => this.destroy());
      socket.on('close', () => {
        this.destroy();
        onClose();
      });
    }
    this.up = new Pipe(client, upstream, faults, false);
    this.down = new Pipe(upstream, client, faults, true);
  }

  changed(): void {
    this.up.changed();
    this.down.changed();
  }

  destroy(): void {
    this.up.stop();
    this.down.stop();
    this.client.destroy();
    this.upstream.destroy();
  }
}

/** One direction of a connection: forwards at once when the link is clean, else through a timed queue. */
class Pipe {
  private readonly queue: Array<{ chunk: Buffer; releaseAt: number }> = [];
  private queued = 0;
  private lastRelease = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingForDrain = false;
  private tokens = 0;
  private tokensAt = Date.now();
  private stopped = false;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly faults: LinkFaults,
    private readonly towardsClient: boolean,
  ) {
    from.on('data', (chunk: Buffer) => this.receive(chunk));
  }

  private get clean(): boolean {
    return !this.faults.stall && !this.faults.latency && !(this.towardsClient && this.faults.slowRead);
  }

  private receive(chunk: Buffer): void {
    if (this.stopped) return;
    if (this.clean && this.queue.length === 0 && !this.waitingForDrain) {
      if (!this.to.write(chunk)) this.awaitDrain();
      return;
    }
    const latency = this.faults.latency;
    const delay = latency ? Math.max(0, latency.latencyMs + (Math.random() * 2 - 1) * latency.jitterMs) : 0;
    // Never before the chunk ahead of it: a TCP stream keeps its order whatever the jitter.
    this.lastRelease = Math.max(this.lastRelease, Date.now() + delay);
    this.queue.push({ chunk, releaseAt: this.lastRelease });
    this.queued += chunk.length;
    if (this.queued > HIGH_WATER) this.from.pause();
    this.pump();
  }

  changed(): void {
    if (this.faults.stall) this.from.pause();
    else if (!this.waitingForDrain && this.queued <= HIGH_WATER) this.from.resume();
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.queue.length = 0;
  }

  private awaitDrain(): void {
    this.waitingForDrain = true;
    this.from.pause();
    this.to.once('drain', () => {
      this.waitingForDrain = false;
      if (!this.faults.stall && this.queued <= HIGH_WATER) this.from.resume();
      this.pump();
    });
  }

  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped || this.waitingForDrain || this.faults.stall) return;
    const slow = this.towardsClient ? this.faults.slowRead : undefined;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const now = Date.now();
      if (head.releaseAt > now) return this.wake(head.releaseAt - now);
      let chunk = head.chunk;
      if (slow) {
        this.tokens = Math.min(slow.bytesPerSecond / 10, this.tokens + ((now - this.tokensAt) / 1000) * slow.bytesPerSecond);
        this.tokensAt = now;
        const allowed = Math.floor(this.tokens);
        if (allowed <= 0) return this.wake(20);
        if (chunk.length > allowed) {
          head.chunk = chunk.subarray(allowed);
          chunk = chunk.subarray(0, allowed);
        } else this.queue.shift();
        this.tokens -= chunk.length;
      } else this.queue.shift();
      this.queued -= chunk.length;
      if (!this.to.write(chunk)) return this.awaitDrain();
    }
    if (this.queued <= HIGH_WATER && !this.faults.stall) this.from.resume();
  }

  private wake(ms: number): void {
    this.timer = setTimeout(() => this.pump(), Math.max(1, ms));
  }
}
