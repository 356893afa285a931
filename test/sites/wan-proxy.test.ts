/**
 * The test WAN the site tests dial through (test/testkit/wan-proxy.ts): with latency and
 * jitter, the bytes still arrive in the order they were sent, as on a real TCP connection. A
 * swap corrupts the MQTT stream: the broker drops the link's connection in the middle of a test.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { within } from '../testkit/index.js';
import { startWanProxy } from '../testkit/wan-proxy.js';

test('wan proxy - bytes sent in many small writes arrive in order, with jitter, until the end', async () => {
  const received: Buffer[] = [];
  let ended!: () => void;
  const end = new Promise<void>((resolve) => (ended = resolve));
  const sink = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('end', () => {
      ended();
      socket.end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const wan = await startWanProxy((sink.address() as net.AddressInfo).port, { toTarget: { ms: 20, jitterMs: 10 } });
  try {
    const socket = net.connect(wan.port, '127.0.0.1');
    socket.setNoDelay(true);
    await once(socket, 'connect');
    // A few writes per loop turn, over many turns: chunks due within the same millisecond or a few apart.
    const COUNT = 3000;
    const sent = Buffer.alloc(COUNT * 4);
    for (let n = 0; n < COUNT; n += 3) {
      for (let k = n; k < Math.min(n + 3, COUNT); k++) {
        sent.writeUInt32BE(k, k * 4);
        socket.write(sent.subarray(k * 4, k * 4 + 4));
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    socket.end();
    await within(end, 30_000, 'the end of the stream at the sink');
    const got = Buffer.concat(received);
    const firstSwap = [...Array(COUNT).keys()].find((k) => got.length < k * 4 + 4 || got.readUInt32BE(k * 4) !== k);
    assert.equal(firstSwap, undefined, `byte stream out of order from write ${firstSwap}`);
    assert.equal(got.length, sent.length);
  } finally {
    await wan.close();
    await new Promise<void>((resolve) => sink.close(() => resolve()));
  }
});
