import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { PortStream } from '../../src/broker/port-stream.js';

describe('port stream (the router thread link of relais start)', () => {
  it('port stream - bytes cross in order; a side that does not take them in makes writes wait past 8 MiB, then they go on', async () => {
    const { port1, port2 } = new MessageChannel();
    const writer = new PortStream(port1);
    let reader: PortStream | undefined;
    try {
      const chunk = Buffer.alloc(1024 * 1024, 7);
      let written = 0;
      for (let i = 0; i < 16; i += 1) writer.write(chunk, () => (written += 1));
      // Nobody reads port2 yet: let the writer send what it may, then count.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(written <= 9, `writes waited for the reader (${written} of 16 done)`);
      reader = new PortStream(port2);
      let received = 0;
      const all = once(reader, 'all');
      reader.on('data', (data: Buffer) => {
        received += data.length;
        if (received === 16 * chunk.length) reader!.emit('all');
      });
      await all;
      assert.equal(written, 16);
    } finally {
      // Open ports keep the process alive: a failing run must still end.
      writer.destroy();
      reader?.destroy();
      port2.close();
    }
  });
});
