/**
 * The floor: a bare Node TCP round trip, no broker. The handler is an echo server; the
 * requester writes newline-delimited JSON and matches answers in order (one connection, so
 * they come back in order). No-delay on both sides. Both sides parse the JSON, as every other
 * contender's handler does.
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import { runPeer } from './child.js';

await runPeer({
  async requester({ url }) {
    const { hostname, port } = new URL(url);
    const socket = net.connect({ host: hostname, port: Number(port), noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const waiting: Array<(answer: unknown) => void> = [];
    createInterface({ input: socket }).on('line', (line) => waiting.shift()?.(JSON.parse(line)));
    return {
      send: (payload) =>
        new Promise((resolve) => {
          waiting.push(resolve);
          socket.write(`${JSON.stringify(payload)}\n`);
        }),
      close: async () => {
        socket.end();
      },
    };
  },
  async handler() {
    let served = 0;
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ noDelay: true }, (socket) => {
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      createInterface({ input: socket }).on('line', (line) => {
        served++;
        socket.write(`${JSON.stringify(JSON.parse(line))}\n`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    return {
      url: `tcp://127.0.0.1:${port}`,
      served: () => served,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  },
});
