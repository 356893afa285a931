/**
 * The one event stream (protocol §11.8): a consumer that loses its connection resumes from its
 * last cursor with exactly the events it missed, in order, none twice; past retention it is
 * told how many it missed.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bus, BusEvent, EventCatchUp, EventGap, EventsPage } from '../../src/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { setup, testLogger, uniqueId, waitFor, type Kit } from '../testkit/index.js';

/** A TCP relay to the broker that the test can cut, as a lost network would. */
async function cuttableLink(brokerUrl: string) {
  const { hostname, port } = new URL(brokerUrl);
  const sockets = new Set<net.Socket>();
  let down = false;
  const server = net.createServer((client) => {
    if (down) return client.destroy();
    const upstream = net.connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket)).on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut() {
      down = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      down = false;
    },
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      this.cut();
      return closed;
    },
  };
}

/** Collects what `bus.events()` yields, with an event per item. */
function collect(bus: Bus, since?: number) {
  const items: Array<BusEvent | EventGap> = [];
  const catchUps: EventCatchUp[] = [];
  const emitter = new EventEmitter();
  const controller = new AbortController();
  const done = (async () => {
    for await (const item of bus.events({ ...(since !== undefined && { since }), signal: controller.signal, onCatchUp: (catchUp) => catchUps.push(catchUp) })) {
      items.push(item);
      emitter.emit('item');
    }
  })();
  const notified = () => items.filter((item): item is BusEvent => item.type === 'notification' && (item.data.category as string) === 'test/ev').map((item) => (item.data.payload as { n: number }).n);
  return { items, catchUps, emitter, notified, stop: () => (controller.abort(), done) };
}

/** Resolves once the router has stored events up to `cursor`: its latest, asked after each pushed batch. */
async function untilEvents(bus: Bus, cursor: number): Promise<void> {
  const pushed = await bus.subscribe('relais/events/notification');
  try {
    for (;;) {
      if (((await bus.request('relais/events/get', { limit: 1 })) as EventsPage).latest >= cursor) return;
      await pushed[Symbol.asyncIterator]().next();
    }
  } finally {
    await pushed.unsubscribe();
  }
}

describe('event stream', { timeout: 60_000 }, () => {
  let kit: Kit;
  let dir: string;
  let router: Router;
  before(async () => {
    kit = await setup('aedes');
    dir = mkdtempSync(join(tmpdir(), 'relais-events-'));
    router = await startRouter({ broker: kit.broker.url, database: join(dir, 'history.db'), id: uniqueId('router'), logger: testLogger, maxEvents: 40 });
  });
  after(async () => {
    await router?.close();
    await kit?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('events - a consumer cut off resumes with exactly the events it missed, in order, none twice', async () => {
    const link = await cuttableLink(kit.broker.url);
    const publisher = await kit.connect(uniqueId('publisher'));
    const watcher = await kit.connect(uniqueId('watcher'));
    const consumer = await kit.connect(uniqueId('consumer'), { broker: link.url, reconnectDelay: 50, reconnectMaxDelay: 200 });
    await consumer.waitForHandler('relais/events/get');
    const start = ((await consumer.request('relais/events/get', { limit: 1 })) as EventsPage).latest;
    const seen = collect(consumer, start);
    const reference = collect(watcher, start);
    try {
      for (let n = 0; n < 5; n += 1) publisher.notify('test/ev', { n });
      await waitFor(() => (seen.notified().length === 5 ? true : undefined), seen.emitter, 'item');

      const offline = once(consumer, 'offline');
      link.cut();
      await offline;
      for (let n = 5; n < 25; n += 1) publisher.notify('test/ev', { n });
      await waitFor(() => (reference.notified().includes(24) ? true : undefined), reference.emitter, 'item');
      assert.ok(!seen.notified().includes(5), 'nothing reached the consumer while it was cut off');

      link.restore();
      await waitFor(() => (seen.notified().includes(24) ? true : undefined), seen.emitter, 'item', 10_000);
      publisher.notify('test/ev', { n: 25 });
      await waitFor(() => (seen.notified().includes(25) ? true : undefined), seen.emitter, 'item');
      await waitFor(() => (reference.notified().includes(25) ? true : undefined), reference.emitter, 'item');

      assert.deepEqual(seen.notified(), Array.from({ length: 26 }, (_, n) => n));
      const cursors = (items: Array<BusEvent | EventGap>) => items.filter((item): item is BusEvent => item.type !== 'gap').map((item) => item.cursor);
      const mine = cursors(seen.items);
      assert.deepEqual(mine, [...mine].sort((a, b) => a - b), 'in cursor order');
      assert.equal(new Set(mine).size, mine.length, 'none twice');
      // Every event the router published from the consumer's first to its last, none left out.
      const theirs = cursors(reference.items).filter((cursor) => cursor >= mine[0]! && cursor <= mine.at(-1)!);
      assert.deepEqual(mine, theirs);
      assert.ok(seen.items.every((item) => item.type !== 'gap'));
      // What a view says ("resumed from cursor C: N new events, no gap"): the start, then the reconnection's catch-up.
      assert.deepEqual({ ...seen.catchUps[0], events: undefined }, { reason: 'start', after: start, events: undefined, missed: 0 });
      const back = seen.catchUps.find((catchUp) => catchUp.reason === 'reconnection');
      assert.ok(back, `a catch-up after the reconnection: ${JSON.stringify(seen.catchUps)}`);
      assert.equal(back.missed, 0);
      assert.ok(back.events >= 20, `the 20 notifications published while cut off came with it (${back.events} events)`);
    } finally {
      await seen.stop();
      await reference.stop();
      await link.close();
    }
  });

  it('events - a consumer resuming past retention is told how many it missed, then gets the rest', async () => {
    const publisher = await kit.connect(uniqueId('publisher'));
    const reader = await kit.connect(uniqueId('reader'));
    await reader.waitForHandler('relais/events/get');
    const start = ((await reader.request('relais/events/get', { limit: 1 })) as EventsPage).latest;
    for (let n = 0; n < 100; n += 1) publisher.notify('test/ev', { n, gap: true });
    // Once the router has all 100, retention (40 kept) removes the older ones.
    await untilEvents(reader, start + 100);
    assert.ok((await router.prune()).events >= 60);
    const resumed = collect(reader, start);
    try {
      await waitFor(() => (resumed.items.some((item) => item.type !== 'gap') ? true : undefined), resumed.emitter, 'item');
      const gap = resumed.items[0] as EventGap;
      assert.equal(gap.type, 'gap');
      assert.equal(gap.after, start);
      const first = resumed.items[1] as BusEvent;
      assert.equal(first.cursor, start + gap.missed + 1, 'the gap counts exactly the events removed');
      assert.ok(gap.missed >= 60, `at least 60 of the 100 are past retention (missed ${gap.missed})`);
      await waitFor(() => (resumed.catchUps.length > 0 ? true : undefined), resumed.emitter, 'item');
      const [caughtUp] = resumed.catchUps;
      assert.deepEqual({ ...caughtUp, events: undefined }, { reason: 'start', after: start, events: undefined, missed: gap.missed });
      assert.ok(caughtUp!.events >= 100 - gap.missed, `the events kept after the gap were counted (${caughtUp!.events})`);
    } finally {
      await resumed.stop();
    }
  });
});
