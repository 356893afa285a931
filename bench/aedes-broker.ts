/**
 * The embedded Aedes broker alone in its own process, so the benchmark's clients do not
 * share its event loop. Started by bench/lib/brokers.ts; prints one JSON line
 * `{ "url": ..., "pid": ... }` on stdout once listening, and closes when its stdin ends
 * (the parent closed it, or died) or on SIGTERM.
 */
import { startAedes } from '../test/testkit/brokers.js';

const broker = await startAedes();
process.stdout.write(`${JSON.stringify({ url: broker.url, pid: process.pid })}\n`);

let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  // Bounded: a client that never closes must not keep the broker alive.
  const forced = setTimeout(() => process.exit(0), 3000);
  forced.unref();
  void broker.close().finally(() => {
    clearTimeout(forced);
    process.stdin.destroy();
  });
};
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.resume();
