/**
 * NATS native request/reply with nats.js against core nats-server: the responder is
 * `nc.subscribe('bench.echo')` answering `m.respond(...)`, the requester `nc.request(...)`
 * (nats.js's default muxed inbox). At-most-once, as core NATS is. Both sides parse the JSON
 * and encode it again, as every other contender's handler does.
 */
import { connect, JSONCodec, type NatsConnection } from 'nats';
import { runPeer } from './child.js';

const SUBJECT = 'bench.echo';
const codec = JSONCodec<unknown>();

function open(url: string, name: string): Promise<NatsConnection> {
  const { host } = new URL(url);
  return connect({ servers: host, name, timeout: 10_000 });
}

await runPeer({
  async requester({ url, id }) {
    const nc = await open(url, id);
    return {
      // nats.js's request time-out defaults to 1 s; give it Relais' 30 s so no contender is cut shorter.
      send: async (payload) => codec.decode((await nc.request(SUBJECT, codec.encode(payload), { timeout: 30_000 })).data),
      close: () => nc.drain(),
    };
  },
  async handler({ url, id }) {
    const nc = await open(url, id);
    let served = 0;
    const subscription = nc.subscribe(SUBJECT);
    void (async () => {
      for await (const message of subscription) {
        served++;
        message.respond(codec.encode(codec.decode(message.data)));
      }
    })();
    await nc.flush(); // the subscription is on the server before the requester starts
    return { served: () => served, close: () => nc.drain() };
  },
});
