/**
 * A TCP proxy on 127.0.0.1 that a test controls: it forwards to a port, and `cut()` destroys
 * every connection through it (a lost connection, for real, on both sides' sockets); while
 * `refuse` is set, new connections are closed at once, so the client stays offline until the
 * test lets it back.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  url: string;
  /** New connections are closed at once while true. */
  refuse: boolean;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Destroys every open connection; returns how many there were. */
  cut(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let accepted = 0;
  let refuse = false;
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
      socket.pipe(other);
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
    cut() {
      const count = open.size;
      for (const socket of open) socket.destroy();
      return count;
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
