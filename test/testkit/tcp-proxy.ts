/**
 * A TCP proxy on 127.0.0.1 that a test controls: it forwards to a port, and `cut()` destroys
 * every connection through it (a lost connection, for real, on both sides' sockets); while
 * `refuse` is set, new connections are closed at once, so the client stays offline until the
 * test lets it back. `hold()` stops forwarding what its clients send, as a network that has
 * stopped delivering: cut then, what was held is lost, as bytes in flight are.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  url: string;
  /** New connections are closed at once while true. */
  refuse: boolean;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** From now on, what clients send is held, not forwarded (until `cut()`, which drops it). */
  hold(): void;
  /** Resolves once what is held so far (MQTT packets, as sent) passes `check` (at once if it does): each chunk held is checked as it comes. */
  whenHeld(check: (held: Buffer) => boolean): Promise<void>;
  /** Destroys every open connection, and what was held; forwards again afterwards. Returns how many there were. */
  cut(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let accepted = 0;
  let refuse = false;
  let holding = false;
  let held: Buffer[] = [];
  let heldWaiters: Array<{ check: (held: Buffer) => boolean; resolve(): void }> = [];
  const heldChanged = () => {
    const bytes = Buffer.concat(held);
    heldWaiters = heldWaiters.filter((waiter) => !(waiter.check(bytes) && (waiter.resolve(), true)));
  };
  const server = net.createServer((client) => {
    if (refuse) return void client.destroy();
    accepted += 1;
    const upstream = net.connect(targetPort, targetHost);
    for (const [socket, other] of [[client, upstream], [upstream, client]] as const) {
      open.add(socket);
      socket.on('close', () => {
        open.delete(socket);
        other.destroy();
      });
      socket.on('error', () => other.destroy());
      socket.on('data', (chunk: Buffer) => {
        if (holding && socket === client) {
          held.push(chunk);
          heldChanged();
        } else other.write(chunk);
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get refuse() {
      return refuse;
    },
    set refuse(value: boolean) {
      refuse = value;
    },
    url: `mqtt://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    hold() {
      holding = true;
    },
    whenHeld(check) {
      if (check(Buffer.concat(held))) return Promise.resolve();
      return new Promise<void>((resolve) => heldWaiters.push({ check, resolve }));
    },
    cut() {
      const count = open.size;
      for (const socket of open) socket.destroy();
      holding = false;
      held = [];
      return count;
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
