import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { AckClock } from '../../src/client/requesting/ack-clock.js';

/** Lets the callbacks of this turn of the event loop run, setImmediate's included. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('ack clock', () => {
  it('ack clock - a request still waiting is written again half-way, then expires at its ack time-out; one answered is left alone', async () => {
    const clock = new AckClock();
    const events: string[] = [];
    const waiting = { ackRetryAt: 0, ackExpireAt: 0, retry: () => events.push('retry'), expire: () => events.push('expire') };
    const answered = { ackRetryAt: 0, ackExpireAt: 0, retry: () => events.push('answered retried'), expire: () => events.push('answered expired') };
    clock.start(waiting, 2000, 0);
    clock.start(answered, 2000, 0);
    clock.stop(answered);
    clock.tick(999);
    assert.deepEqual(events, []);
    clock.tick(1000);
    clock.tick(1500);
    assert.deepEqual(events, ['retry'], 'written again once');
    clock.tick(2000);
    await turn();
    clock.tick(3000);
    await turn();
    assert.deepEqual(events, ['retry', 'expire'], 'expired once');
    clock.tick(4000); // nobody waits: the sweep stops
  });

  it('ack clock - a process that wakes late reads what has arrived before it expires a wait: an answer already in its socket stops it (protocol §4.7)', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const [handlerSide] = (await once(server, 'connection')) as [net.Socket];
    await once(client, 'connect');
    try {
      const clock = new AckClock();
      const events: string[] = [];
      const request = { ackRetryAt: 0, ackExpireAt: 0, retry: () => {}, expire: () => events.push('expired') };
      // The answer, when read, ends the wait, as a response does in the requester.
      client.on('data', () => {
        events.push('answer read');
        clock.stop(request);
      });
      clock.start(request, 20);
      handlerSide.write('accepted'); // in the requester's socket now, unread
      const frozenAt = Date.now();
      while (Date.now() - frozenAt < 100); // frozen past the wait: its sweep is due on waking, before any I/O
      await once(client, 'data');
      await turn();
      assert.deepEqual(events, ['answer read']);
    } finally {
      client.destroy();
      handlerSide.destroy();
      server.close();
    }
  });
});
