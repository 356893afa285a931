/**
 * Relais through its public API at the library's defaults (acknowledged requests at QoS 0,
 * the real-time lane's second connection, presence), compiled (bench/lib/relais.ts): `handle('bench/echo', p => p)` and, after
 * `waitForHandler`, `request('bench/echo', payload)`. Only the logger is given (quiet).
 */
import pino from 'pino';
import { relais } from '../lib/relais.js';
import { runPeer } from './child.js';

const ACTION = 'bench/echo';
const logger = pino({ name: 'relais-peers', level: process.env.RELAIS_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));

await runPeer({
  async requester({ url, id }) {
    const bus = await relais.connect({ id, broker: url, logger });
    await bus.waitForHandler(ACTION, { timeout: 15_000 });
    return {
      send: (payload) => bus.request(ACTION, payload),
      close: () => bus.close(),
    };
  },
  async handler({ url, id }) {
    const bus = await relais.connect({ id, broker: url, logger });
    let served = 0;
    await bus.handle(ACTION, (payload) => {
      served++;
      return payload;
    });
    return { served: () => served, close: () => bus.close() };
  },
});
