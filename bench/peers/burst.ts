/**
 * A raw MQTT.js process for the slow-consumer benchmark (bench/scenarios/slow-consumer.ts):
 *
 *   node --import tsx bench/peers/burst.ts subscriber --url URL --id ID   # subscribes to `#`, prints {"peer":"ready"}, reads (until SIGSTOP)
 *   node --import tsx bench/peers/burst.ts publisher --url URL --id ID    # then, per stdin line `{"count":N,"bytes":B}`:
 *                                                                       # N QoS 0 messages of B bytes, then {"peer":"burst","ms":…}
 *
 * It ends when its stdin ends (no child outlives the benchmark).
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { url: { type: 'string' }, id: { type: 'string' } } });
const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);
const client = await mqtt.connectAsync(values.url!, { clientId: values.id!, protocolVersion: 4, reconnectPeriod: 0 });
client.on('error', (error) => say({ peer: 'error', message: error.message }));
process.stdin.on('end', () => void client.endAsync(true).finally(() => process.exit(0)));

if (positionals[0] === 'subscriber') {
  let received = 0;
  client.on('message', () => received++);
  await client.subscribeAsync('#', { qos: 0 });
  say({ peer: 'ready', pid: process.pid });
  process.stdin.resume();
  process.once('SIGTERM', () => {
    say({ peer: 'result', received });
    process.exit(0);
  });
} else {
  say({ peer: 'ready', pid: process.pid });
  createInterface({ input: process.stdin }).on('line', (line) => {
    const { count, bytes } = JSON.parse(line) as { count: number; bytes: number };
    const payload = Buffer.alloc(bytes, 0x62);
    const started = performance.now();
    for (let i = 0; i < count; i++) client.publish('bench/burst/notification', payload, { qos: 0 });
    // QoS 0: written when the socket has taken it; an empty-callback publish waits for that.
    client.publish('bench/burst/notification', Buffer.alloc(0), { qos: 0 }, () => say({ peer: 'burst', ms: performance.now() - started }));
  });
}
