/**
 * The testkit's WAN proxy (test/testkit/wan-proxy.ts), which the sites tests and the sites
 * benchmark put between a site and its central: with jitter, bytes still arrive in order.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { startWanProxy, type WanProxy } from '../testkit/wan-proxy.js';

describe('testkit - WAN proxy', () => {
  let server: net.Server | undefined;
  let proxy: WanProxy | undefined;
  after(async () => {
    await proxy?.close();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  });

  it('with 50 ± 10 ms of jitter, 4 MiB written in 16 KiB chunks arrive as sent, in order', async () => {
    const total = 4 * 1024 * 1024;
    const sent = Buffer.alloc(total);
    for (let i = 0; i < total; i += 4) sent.writeUInt32BE(i / 4, i);
    const chunks: Buffer[] = [];
    let length = 0;
    const all = new Promise<void>((resolve) => {
      server = net.createServer((socket) =>
        socket.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          length += chunk.length;
          if (length >= total) resolve();
        }),
      );
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    proxy = await startWanProxy((server!.address() as net.AddressInfo).port, { toTarget: { ms: 50, jitterMs: 10 } });
    const client = net.connect(proxy.port, '127.0.0.1');
    // Chunks a millisecond or less apart: their delays overlap, as a sync's pages do on a link.
    for (let i = 0; i < total; i += 16_384) {
      client.write(sent.subarray(i, i + 16_384));
      await new Promise((resolve) => setTimeout(resolve, i % 32_768 === 0 ? 0 : 1));
    }
    await all;
    client.destroy();
    const received = Buffer.concat(chunks);
    const firstDifference = received.findIndex((byte, i) => byte !== sent[i]);
    assert.equal(firstDifference, -1, `bytes out of order from byte ${firstDifference}`);
    assert.equal(received.length, total);
  });
});
