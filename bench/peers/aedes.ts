/**
 * An Aedes broker alone in its own process, for the peers benchmark:
 *
 *   node --import tsx bench/peers/aedes.ts embedded   # Relais' embedded broker (src/broker: no-delay sockets)
 *   node --import tsx bench/peers/aedes.ts plain      # aedes as its README starts it: createBroker + net.createServer(aedes.handle)
 *
 * Prints {"peer":"ready","pid":…,"url":"mqtt://127.0.0.1:<port>"} once listening, and
 * closes when its stdin ends (the parent closed it, or died) or on SIGTERM.
 */
import { Aedes } from 'aedes';
import net from 'node:net';
import { startEmbeddedBroker } from '../../src/index.js';
import { encodeLine } from './protocol.js';

const kind = process.argv[2];

async function plain(): Promise<{ url: string; close(): Promise<void> }> {
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle); // no setNoDelay: Nagle stays on, as by default
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function embedded(): Promise<{ url: string; close(): Promise<void> }> {
  const broker = await startEmbeddedBroker({ port: 0 });
  return { url: broker.url!, close: () => broker.close() };
}

if (kind !== 'embedded' && kind !== 'plain') {
  process.stdout.write(encodeLine({ peer: 'error', message: `the argument must be embedded or plain, not ${kind}` }));
  process.exit(2);
}
const broker = kind === 'plain' ? await plain() : await embedded();
process.stdout.write(encodeLine({ peer: 'ready', pid: process.pid, url: broker.url }));

let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  // Bounded: a client that never closes must not keep the broker alive.
  setTimeout(() => process.exit(0), 3000).unref();
  void broker.close().finally(() => process.exit(0));
};
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.resume();
