import { connect } from './dist/index.js';
import pino from 'pino';
const url = process.argv[2]!;
const logger = pino({ level: 'warn' });
const server = await connect({ id: 'prof-s', broker: url, logger });
const client = await connect({ id: 'prof-c', broker: url, logger });
await server.handle('bench/echo', (p) => p);
await client.waitForHandler('bench/echo');
const payload = { n: 0, text: 'relais benchmark echo payload' };
const end = Date.now() + Number(process.argv[3] ?? 6000);
let done = 0;
const mode = process.argv[4] ?? 'inflight';
if (mode === 'seq') {
  const lat: number[] = [];
  while (Date.now() < end) { const t = process.hrtime.bigint(); await client.request('bench/echo', payload); lat.push(Number(process.hrtime.bigint() - t) / 1e6); done++; }
  lat.sort((a, b) => a - b); console.log('seq p50', lat[Math.floor(lat.length / 2)]!.toFixed(3), 'ms n', done);
} else {
  await Promise.all(Array.from({ length: 100 }, async () => { while (Date.now() < end) { await client.request('bench/echo', payload); done++; } }));
  console.log('req/s', Math.round(done / (Number(process.argv[3] ?? 6000) / 1000)));
}
await client.close(); await server.close();
