/**
 * Event resume after N missed events (protocol §11.8): a consumer that was away while N events were
 * stored catches up from its last cursor with bus.events({ since }). Embedded broker and router
 * in this process (the router on the in-memory stream), publisher and consumer over TCP.
 *   npm run build && node --import tsx bench/event-resume.ts [N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventsPage } from '../src/index.js';
import type * as RouterModule from '../src/router/index.js';
import { relais } from './lib/relais.js';

const { connect, startEmbeddedBroker } = relais;
const { startRouter } = (await import(new URL('../dist/router/index.js', import.meta.url).href)) as typeof RouterModule;

const missed = Number(process.argv[2] ?? 10_000);
const dir = mkdtempSync(join(tmpdir(), 'relais-bench-events-'));
const broker = await startEmbeddedBroker({ port: 0 });
const router = await startRouter({ stream: () => broker.connectInProcess(), persistentSession: false, database: join(dir, 'history.db'), maxEvents: missed * 2 });
try {
  const publisher = await connect({ id: 'bench-events-pub', broker: broker.url! });
  const consumer = await connect({ id: 'bench-events-consumer', broker: broker.url! });
  await consumer.waitForHandler('relais/events/get');
  const since = ((await consumer.request('relais/events/get', { limit: 1 })) as EventsPage).latest;
  for (let n = 0; n < missed; n += 1) {
    publisher.notify('bench/events', { n });
    if (n % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
  }
  // Wait until the router has stored them all: its latest cursor, asked again after each push.
  for (;;) {
    const latest = ((await consumer.request('relais/events/get', { limit: 1 })) as EventsPage).latest;
    if (latest >= since + missed) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const started = performance.now();
  let seen = 0;
  for await (const item of consumer.events({ since })) {
    if (item.type === 'notification') seen += 1;
    if (seen === missed) break;
  }
  const ms = performance.now() - started;
  process.stdout.write(`event resume: ${missed} missed events caught up in ${ms.toFixed(0)} ms (${Math.round(missed / (ms / 1000))} events/s), pages of 1000 from relais/events/get\n`);
  await publisher.close();
  await consumer.close();
} finally {
  await router.close();
  await broker.close();
  rmSync(dir, { recursive: true, force: true });
}
