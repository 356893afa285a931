/** The soak's faulty proxy, against a real echo server: each fault does what it says, and healing ends it. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, afterEach, before, test } from 'node:test';
import { startFaultyProxy, type FaultyProxy } from '../../soak/tcp-proxy.js';

let echo: net.Server;
let echoPort: number;
/** Closed after each test, failed or not: a failing assertion must not leave a socket holding the file open. */
const opened: Array<{ close(): unknown }> = [];

before(async () => {
  echo = net.createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoPort = (echo.address() as net.AddressInfo).port;
});
afterEach(async () => {
  for (const thing of opened.splice(0)) await thing.close();
});
after(() => new Promise<void>((resolve) => echo.close(() => resolve())));

async function proxyTo(port: number): Promise<FaultyProxy> {
  const proxy = await startFaultyProxy('link', port);
  opened.push(proxy);
  return proxy;
}

async function client(proxy: FaultyProxy): Promise<{ socket: net.Socket; received: () => Buffer; until: (bytes: number, timeout?: number) => Promise<Buffer> }> {
  const socket = net.connect(proxy.port, '127.0.0.1');
  opened.push({ close: () => socket.destroy() });
  await once(socket, 'connect');
  let data = Buffer.alloc(0);
  const waiters = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    for (const wake of waiters) wake();
  });
  return {
    socket,
    received: () => data,
    until: (bytes, timeout = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${data.length} of ${bytes} bytes within ${timeout} ms`)), timeout);
        const check = () => {
          if (data.length < bytes) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(data);
        };
        waiters.add(check);
        check();
      }),
  };
}

test('proxy - latency with jitter delays each way and keeps the order of the bytes', async () => {
  const proxy = await proxyTo(echoPort);
  const peer = await client(proxy);
  proxy.setLatency({ latencyMs: 60, jitterMs: 20 });
  const started = Date.now();
  const sent = Buffer.from(Array.from({ length: 200 }, (_, i) => `${i};`).join(''));
  for (let i = 0; i < sent.length; i += 7) peer.socket.write(sent.subarray(i, i + 7));
  assert.ok((await peer.until(sent.length)).equals(sent));
  assert.ok(Date.now() - started >= 2 * 40, 'a round trip takes at least twice the smallest one-way delay');
  proxy.heal();
});

test('proxy - a stall holds everything until it ends; a slow read lets through about its rate', async () => {
  const proxy = await proxyTo(echoPort);
  const peer = await client(proxy);
  proxy.setStall(true);
  peer.socket.write('held');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(peer.received().length, 0);
  proxy.setStall(false);
  assert.equal((await peer.until(4)).toString(), 'held');

  proxy.setSlowRead({ bytesPerSecond: 20_000 });
  const started = Date.now();
  peer.socket.write(Buffer.alloc(30_000, 1));
  await peer.until(4 + 30_000, 20_000);
  assert.ok(Date.now() - started >= 1000, `30 kB at 20 kB/s took ${Date.now() - started} ms`);
});

test('proxy - a cut closes the connections; a partition refuses new ones until it heals', async () => {
  const proxy = await proxyTo(echoPort);
  const peer = await client(proxy);
  const closed = once(peer.socket, 'close');
  assert.equal(proxy.cut(), 1);
  await closed;
  proxy.refuse = true;
  const refused = net.connect(proxy.port, '127.0.0.1');
  refused.on('error', () => {});
  opened.push({ close: () => refused.destroy() });
  await once(refused, 'close');
  proxy.heal();
  const again = await client(proxy);
  again.socket.write('back');
  assert.equal((await again.until(4)).toString(), 'back');
});
