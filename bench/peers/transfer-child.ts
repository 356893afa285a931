/**
 * The processes of the transfer benchmark (bench/scenarios/transfer.ts), one role per process:
 *   send <broker> <agent> <file> <disk> <path>   relais sendPath; prints `DONE <ms>`
 *   raw-recv <broker> <topic> <bytes> <out>      MQTT.js: writes the chunks it gets; prints `READY`, then `DONE <ms since first>`
 *   raw-send <broker> <topic> <file> <chunk>     MQTT.js: publishes the file in chunks at QoS 1, at most 8 not yet acknowledged by
 *                                                the receiver (`<topic>/ack`: the same window as relais send); prints `SENT`
 */
import fs from 'node:fs';
import mqtt from 'mqtt';
import pino from 'pino';
import { connect } from '../../src/index.js';
import { sendPath } from '../../src/agent/transfer-client.js';

const [role, broker, ...rest] = process.argv.slice(2);

if (role === 'send') {
  const [agent, file, disk, filepath] = rest as [string, string, string, string];
  const bus = await connect({ id: `bench-sender-${process.pid}`, broker: broker!, logger: pino({ level: 'silent' }), ephemeral: true });
  await bus.waitForHandler('system/files/put_begin', { target: agent, timeout: 10_000 });
  const started = performance.now();
  await sendPath(bus, agent, file, disk, filepath);
  process.stdout.write(`DONE ${performance.now() - started}\n`);
  await bus.close();
} else if (role === 'raw-recv') {
  const [topic, bytes, out] = rest as [string, string, string];
  const total = Number(bytes);
  const fd = fs.openSync(out, 'w');
  const client = mqtt.connect(broker!, { clientId: `bench-raw-recv-${process.pid}` });
  let received = 0;
  let first = 0;
  client.on('message', (_topic, payload) => {
    if (first === 0) first = performance.now();
    fs.writeSync(fd, payload);
    received += payload.length;
    client.publish(`${topic}/ack`, String(received), { qos: 0 });
    if (received >= total) {
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      process.stdout.write(`DONE ${performance.now() - first}\n`);
      client.end(false, {}, () => process.exit(0));
    }
  });
  client.on('connect', () => client.subscribe(topic!, { qos: 1 }, () => process.stdout.write('READY\n')));
} else if (role === 'raw-send') {
  const [topic, file, chunk] = rest as [string, string, string];
  const chunkBytes = Number(chunk);
  const client = mqtt.connect(broker!, { clientId: `bench-raw-send-${process.pid}` });
  await new Promise((resolve) => client.once('connect', resolve));
  const fd = fs.openSync(file, 'r');
  const size = fs.fstatSync(fd).size;
  // The receiver's acknowledgements open the window, as relais send's chunk answers do.
  let acked = 0;
  let wake: (() => void) | undefined;
  client.on('message', (_topic, payload) => {
    acked = Number(payload.toString());
    wake?.();
  });
  await client.subscribeAsync(`${topic}/ack`, { qos: 0 });
  for (let at = 0; at < size; at += chunkBytes) {
    const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, size - at));
    fs.readSync(fd, buffer, 0, buffer.length, at);
    while (at - acked >= 8 * chunkBytes) await new Promise<void>((resolve) => (wake = resolve));
    void client.publishAsync(topic!, buffer, { qos: 1 });
  }
  while (acked < size) await new Promise<void>((resolve) => (wake = resolve));
  process.stdout.write('SENT\n');
  await client.endAsync();
} else {
  process.stderr.write(`unknown role ${role}\n`);
  process.exit(2);
}
