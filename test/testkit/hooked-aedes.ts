/**
 * An Aedes broker with hooks, for tests that need a broker to misbehave in a precise way:
 * refuse some topics the way Aedes does for MQTT 3.1.1 (by dropping the connection), keep
 * some client ids out for a while (their CONNECT is refused), cut a client's connection, and
 * say which client id published what. On 127.0.0.1, a free port.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { Aedes } from 'aedes';
import { connect, type Bus, type ConnectOptions } from '../../src/index.js';
import type { PublisherEvents } from './brokers.js';
import { testLogger } from './index.js';

export interface HookedAedes {
  url: string;
  /** CONNECTs seen per client id. */
  connections: Map<string, number>;
  /** Client ids whose CONNECT is refused (return code 5) while they are in it. */
  closed: Set<string>;
  publishers: PublisherEvents;
  /** Emits `disconnect` (clientId) when the broker loses a client. */
  disconnects: EventEmitter<{ disconnect: [clientId: string] }>;
  /** Cuts a client's connection as a network loss would: the broker publishes its will. */
  cut(clientId: string): void;
  /** Connects a quiet client that reconnects fast (closed by `close`). */
  join(id: string, options?: Partial<ConnectOptions>): Promise<Bus>;
  /** Closes the clients joined, then the broker. */
  close(): Promise<void>;
}

/**
 * @param options.refuse topics whose PUBLISH or SUBSCRIBE is refused
 * @param options.noDelay `false` leaves Nagle's algorithm on the accepted sockets, as a plain Aedes does
 */
export async function startHookedAedes(options: { refuse?: (topic: string) => boolean; noDelay?: boolean } = {}): Promise<HookedAedes> {
  const refuse = options.refuse ?? (() => false);
  const closed = new Set<string>();
  const aedes = await Aedes.createBroker({
    authenticate: (client, _user, _password, done) => done(null, !closed.has(client.id)),
    authorizePublish: (_client, packet, done) => done(refuse(packet.topic) ? new Error('not allowed') : null),
    authorizeSubscribe: (_client, sub, done) => done(refuse(sub.topic) ? new Error('not allowed') : null, sub),
  });
  const connections = new Map<string, number>();
  const publishers: PublisherEvents = new EventEmitter();
  const disconnects = new EventEmitter<{ disconnect: [clientId: string] }>();
  aedes.on('client', (client) => connections.set(client.id, (connections.get(client.id) ?? 0) + 1));
  aedes.on('clientDisconnect', (client) => disconnects.emit('disconnect', client.id));
  aedes.on('publish', (packet, client) => client && publishers.emit('publish', client.id, packet.topic));
  const server = net.createServer((socket) => {
    if (options.noDelay !== false) socket.setNoDelay(true);
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const clients: Bus[] = [];
  return {
    url,
    connections,
    closed,
    publishers,
    disconnects,
    cut: (clientId) => (aedes as unknown as { clients: Record<string, { conn: { destroy(): void } }> }).clients[clientId]?.conn.destroy(),
    join: async (id, options = {}) => {
      const bus = await connect({ id, broker: url, logger: testLogger, reconnectDelay: 20, reconnectMaxDelay: 200, ...options });
      clients.push(bus);
      return bus;
    },
    close: async () => {
      await Promise.all(clients.map((bus) => bus.close()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
