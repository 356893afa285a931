/**
 * The key-value store over a real broker (protocol §14): the router serving it on its SQLite
 * file, clients using `bus.kv()` and `bus.config()`. Run on Aedes and on Mosquitto
 * (kv-aedes.test.ts, kv-mosquitto.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { InvalidMessageError, type Bus } from '../../src/index.js';
import { ConfigInvalidError, isUpToDate, KeyNotFoundError, KV_ACTIONS, RevisionConflictError, ValueTooLargeError, type KvUpToDate } from '../../src/protocol/kv.js';
import { BusyError, NotSentError, PayloadTooLargeError } from '../../src/protocol/errors.js';
import { MAX_WATCHES_PER_REQUESTER } from '../../src/router/kv-service.js';
import type { KvValueEntry, KvWatchEvent } from '../../src/client/kv.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { storedValueOf } from '../../src/router/kv-store.js';
import { setup, SUITE_TIMEOUT, testLogger, uniqueId, within, type BrokerKind, type Kit } from '../testkit/index.js';

/** Reads `count` items of an iterator, within `timeout`. */
export async function take<T>(iterator: AsyncIterator<T>, count: number, timeout = 10_000): Promise<T[]> {
  const items: T[] = [];
  await within(
    (async () => {
      while (items.length < count) {
        const next = await iterator.next();
        if (next.done) throw new Error(`the iterator ended after ${items.length} items`);
        items.push(next.value);
      }
    })(),
    timeout,
    `${count} items`,
  );
  return items;
}

const summary = (item: KvWatchEvent) => (isUpToDate(item as never) ? `up-to-date@${(item as KvUpToDate).revision}` : `${(item as KvValueEntry).operation}:${(item as KvValueEntry).key}@${(item as KvValueEntry).revision}`);

export function kvContract(kind: BrokerKind, options: { skip: string | false }): void {
  describe(`key-value store on ${kind}`, { skip: options.skip, timeout: SUITE_TIMEOUT }, () => {
    let kit: Kit;
    let dir: string;
    let router: Router;
    let alice: Bus;
    let bob: Bus;
    before(async () => {
      kit = await setup(kind);
      dir = mkdtempSync(join(tmpdir(), 'relais-kv-'));
      router = await startRouter({
        broker: kit.broker.url,
        database: join(dir, 'history.db'),
        id: uniqueId('router'),
        logger: testLogger,
        kv: { buckets: { small: { maxValueBytes: 100 }, shallow: { historyDepth: 2 } } },
      });
      alice = await kit.connect(uniqueId('alice'));
      bob = await kit.connect(uniqueId('bob'));
      await alice.waitForHandler(KV_ACTIONS.put);
      await bob.waitForHandler(KV_ACTIONS.put);
    });
    after(async () => {
      await router?.close();
      await kit?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('kv - put gives revisions per bucket; get reads the value, who wrote it and when; a missing key is KeyNotFoundError', async () => {
      const bucket = alice.kv<{ temp: number }>('rooms');
      const first = await bucket.put('kitchen', { temp: 21 });
      const second = await bucket.put('salon', { temp: 19 });
      assert.equal(second, first + 1);
      const entry = await bob.kv('rooms').get('kitchen');
      assert.deepEqual(entry.value, { temp: 21 });
      assert.equal(entry.revision, first);
      assert.equal(entry.author, alice.id);
      assert.equal(entry.operation, 'put');
      await assert.rejects(bucket.get('garage'), (error: unknown) => error instanceof KeyNotFoundError && error.details.key === 'garage' && error.responseCode === 1);
    });

    it('kv - compare-and-set: a create over a value and an update at a stale revision fail with RevisionConflictError carrying the current revision', async () => {
      const counters = alice.kv<number>('counters');
      const created = await counters.create('visits', 1);
      await assert.rejects(bob.kv<number>('counters').create('visits', 100), (error: unknown) => error instanceof RevisionConflictError && error.details.currentRevision === created);
      const updated = await counters.put('visits', 2, { expectRevision: created });
      await assert.rejects(bob.kv<number>('counters').put('visits', 3, { expectRevision: created }), (error: unknown) => {
        assert.ok(error instanceof RevisionConflictError, String(error));
        assert.equal(error.details.currentRevision, updated);
        assert.equal(error.details.expectedRevision, created);
        return true;
      });
      assert.equal((await counters.get('visits')).value, 2);
    });

    it('kv - bytes go in as a Uint8Array and come back as the same bytes; JSON stays JSON', async () => {
      const bytes = new Uint8Array([0, 1, 2, 10, 255, 0, 13]);
      await alice.kv('files').put('blob', bytes);
      const entry = await bob.kv('files').get('blob');
      assert.equal(entry.bytes, true);
      assert.ok(entry.value instanceof Uint8Array);
      assert.deepEqual([...(entry.value as Uint8Array)], [...bytes]);
      await alice.kv('files').put('text', { $note: 'plain JSON', n: [1, 2] });
      assert.deepEqual((await bob.kv('files').get('text')).value, { $note: 'plain JSON', n: [1, 2] });
    });

    it('kv - delete writes a tombstone: the key leaves get and keys, the history keeps it, deleting again is KeyNotFoundError', async () => {
      const bucket = alice.kv('inventory');
      await bucket.put('item/1', 'one');
      await bucket.put('item/2', 'two');
      await bucket.put('other', 'x');
      const tombstone = await bucket.delete('item/1');
      await assert.rejects(bucket.get('item/1'), KeyNotFoundError);
      assert.deepEqual(await bucket.keys({ prefix: 'item/' }), { keys: ['item/2'], more: false });
      const history = await bucket.history('item/1');
      assert.deepEqual(history.map((e) => [e.operation, e.value]), [['put', 'one'], ['delete', null]]);
      assert.equal(history[1]!.revision, tombstone);
      await assert.rejects(bucket.delete('item/1'), KeyNotFoundError);
      assert.equal((await bucket.get('item/1', { revision: history[0]!.revision })).value, 'one', 'a kept revision is read by number');
    });

    it("kv - a bucket's history depth bounds the revisions kept; its value size limit refuses a larger value with code 7", async () => {
      const shallow = alice.kv<number>('shallow');
      for (let i = 1; i <= 4; i += 1) await shallow.put('k', i);
      assert.deepEqual((await shallow.history('k')).map((e) => e.value), [3, 4]);
      await assert.rejects(alice.kv('small').put('big', 'x'.repeat(200)), (error: unknown) => error instanceof ValueTooLargeError && error instanceof PayloadTooLargeError && error.responseCode === 7 && error.details.max === 100);
      const buckets = (await alice.request(KV_ACTIONS.buckets, {})) as { buckets: Array<{ name: string; maxValueBytes: number; historyDepth: number }> };
      assert.deepEqual(
        buckets.buckets.filter((b) => b.name === 'small' || b.name === 'shallow').map((b) => [b.name, b.historyDepth, b.maxValueBytes]),
        [
          ['shallow', 2, 64 * 1024],
          ['small', 10, 100],
        ],
      );
    });

    it('kv - bad input is code 2 naming the field, and the router goes on', async () => {
      await assert.rejects(alice.request(KV_ACTIONS.put, { bucket: 'no spaces', key: 'k', value: 1 }), (error: unknown) => error instanceof InvalidMessageError && /bucket/.test((error as Error).message));
      await assert.rejects(alice.request(KV_ACTIONS.put, { bucket: 'b', key: 'k', value: { $base64: 'not base64!' } }), (error: unknown) => error instanceof InvalidMessageError && /value/.test((error as Error).message));
      await assert.rejects(alice.request(KV_ACTIONS.get, { bucket: 'b', key: 'k', extra: true }), InvalidMessageError);
      assert.equal(typeof (await alice.kv('b').put('k', 1)), 'number');
    });

    it('kv - a value with a time to live expires: get fails, and watchers see an expire tombstone', async () => {
      const bucket = alice.kv('sessions');
      const controller = new AbortController();
      const watch = bob.kv('sessions').watch({ signal: controller.signal });
      assert.equal(summary((await take(watch, 1))[0]!).startsWith('up-to-date'), true);
      const revision = await bucket.put('s1', { user: 'x' }, { ttl: 1000 });
      const [put, expired] = (await take(watch, 2, 15_000)) as KvValueEntry[];
      assert.equal(put!.revision, revision);
      assert.equal(put!.expires! - put!.updated, 1000);
      assert.equal(expired!.operation, 'expire');
      assert.equal(expired!.key, 's1');
      await assert.rejects(bucket.get('s1'), KeyNotFoundError);
      controller.abort();
    });

    it('kv - watch without since gives the current values, then up-to-date, then live changes of its prefix only, in order', async () => {
      const bucket = alice.kv('lights');
      await bucket.put('floor1/a', 'on');
      await bucket.put('floor2/a', 'on');
      await bucket.put('floor1/b', 'off');
      await bucket.put('floor1/a', 'off');
      const controller = new AbortController();
      const watch = bob.kv('lights').watch({ prefix: 'floor1/', signal: controller.signal });
      const replay = await take(watch, 3);
      assert.deepEqual(replay.map(summary), ['put:floor1/b@3', 'put:floor1/a@4', 'up-to-date@4']);
      await bucket.put('floor2/b', 'on');
      await bucket.delete('floor1/b');
      const live = await take(watch, 1);
      assert.deepEqual(live.map(summary), ['delete:floor1/b@6']);
      controller.abort();
    });

    it('kv - watch since a revision replays every kept change after it, then live', async () => {
      const bucket = alice.kv('doors');
      for (const state of ['open', 'closed', 'open']) await bucket.put('front', state);
      const controller = new AbortController();
      const watch = bob.kv<string>('doors').watch({ since: 1, signal: controller.signal });
      const items = await take(watch, 3);
      assert.deepEqual(items.map(summary), ['put:front@2', 'put:front@3', 'up-to-date@3']);
      await bucket.put('back', 'open');
      assert.deepEqual((await take(watch, 1)).map(summary), ['put:back@4']);
      controller.abort();
    });

    it('kv - a watch goes on across a lost connection: what was written meanwhile comes once, in order, nothing missed or doubled', async () => {
      const bucket = alice.kv('resume');
      await bucket.put('k', 1);
      const controller = new AbortController();
      const watcher = await kit.connect(uniqueId('watcher'));
      const watch = watcher.kv('resume').watch({ since: 0, signal: controller.signal });
      assert.deepEqual((await take(watch, 2)).map(summary), ['put:k@1', 'up-to-date@1']);
      await bucket.put('k', 2);
      assert.deepEqual((await take(watch, 1)).map(summary), ['put:k@2']);
      // The broker goes away: the router's store takes two writes meanwhile (as another router sharing it would).
      await kit.broker.stop();
      await router.kvStore.write({ bucket: 'resume', key: 'k', operation: 'put', value: storedValueOf(3), author: 'offline', historyDepth: 10, now: Date.now() });
      await router.kvStore.write({ bucket: 'resume', key: 'j', operation: 'put', value: storedValueOf(4), author: 'offline', historyDepth: 10, now: Date.now() });
      await kit.broker.start();
      const after = await take(watch, 3, 60_000);
      assert.deepEqual(after.map(summary), ['put:k@3', 'put:j@4', 'up-to-date@4']);
      await within(alice.waitForHandler(KV_ACTIONS.put), 30_000, 'the router back');
      await bucket.put('k', 5);
      assert.deepEqual((await take(watch, 1, 30_000)).map(summary), ['put:k@5']);
      controller.abort();
    });

    it('kv - a watch ends with its client: closing the bus ends the iterator with NotSentError instead of asking again for ever', async () => {
      const watcher = await kit.connect(uniqueId('closing'));
      const watch = watcher.kv('closing').watch();
      assert.deepEqual((await take(watch, 1)).map(summary), ['up-to-date@0']);
      const ended = assert.rejects(watch.next(), (error: unknown) => error instanceof NotSentError);
      await watcher.close();
      await within(ended, 10_000, 'the watch to end with its client');
    });

    it('kv - every change is an event in the one stream: kv.put and kv.delete with bucket, key, revision and author, never the value', async () => {
      const controller = new AbortController();
      const events = bob.events({ since: 0, signal: controller.signal });
      const bucket = alice.kv('evented');
      const revision = await bucket.put('secret', { password: 'hunter2' });
      const deleted = await bucket.delete('secret');
      const seen: Array<{ type: string; data: Record<string, unknown> }> = [];
      await within(
        (async () => {
          for await (const event of events) {
            if ('cursor' in event && event.type.startsWith('kv.') && event.data.bucket === 'evented') seen.push(event);
            if (seen.length === 2) break;
          }
        })(),
        10_000,
        'two kv events',
      );
      controller.abort();
      assert.deepEqual(seen.map((e) => [e.type, e.data.key, e.data.revision, e.data.author, e.data.operation]), [
        ['kv.put', 'secret', revision, alice.id, 'put'],
        ['kv.delete', 'secret', deleted, alice.id, 'delete'],
      ]);
      assert.equal(JSON.stringify(seen).includes('hunter2'), false);
    });

    it('kv - a client that never cancels cannot hold the router: past 64 running watches the next is refused with code 8, and one ending frees a place', async () => {
      const greedy = await kit.connect(uniqueId('greedy'));
      const controllers = Array.from({ length: MAX_WATCHES_PER_REQUESTER }, () => new AbortController());
      const watches = controllers.map((controller) => greedy.kv('crowd').watch({ signal: controller.signal }));
      await Promise.all(watches.map((watch) => take(watch, 1, 30_000)));
      await assert.rejects(take(greedy.kv('crowd').watch(), 1), (error: unknown) => error instanceof BusyError && error.responseCode === 8);
      controllers[0]!.abort();
      await watches[0]!.return(undefined);
      const again = new AbortController();
      await within(
        (async () => {
          // The router hears the cancel a moment later: asked until a place is free.
          for (;;) {
            try {
              await take(greedy.kv('crowd').watch({ signal: again.signal }), 1);
              return;
            } catch (error) {
              if (!(error instanceof BusyError)) throw error;
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          }
        })(),
        15_000,
        'a freed place',
      );
      again.abort();
      for (const controller of controllers) controller.abort();
    });

    it('config - bus.config writes the defaults, announces the schema, refuses an invalid write with code 2 naming the field, and pushes a valid one to the running client', async () => {
      const plugin = await kit.connect(uniqueId('plugin'));
      const schema = z.object({ interval: z.number().int().min(1), host: z.string(), verbose: z.boolean().default(false) });
      const config = await plugin.config(schema, { defaults: { interval: 30, host: 'localhost' } });
      assert.deepEqual(config.value, { interval: 30, host: 'localhost', verbose: false });
      const stored = await bob.kv('config').get(plugin.id);
      assert.deepEqual(stored.value, { interval: 30, host: 'localhost', verbose: false });
      const announced = (await bob.kv<{ schema: { properties: Record<string, unknown> }; hash: string }>('config-schema').get(plugin.id)).value as { schema: { properties: Record<string, unknown> }; hash: string };
      assert.deepEqual(Object.keys(announced.schema.properties).sort(), ['host', 'interval', 'verbose']);
      await assert.rejects(bob.kv('config').put(plugin.id, { interval: 'often', host: 'h' }), (error: unknown) => {
        assert.ok(error instanceof ConfigInvalidError, String(error));
        assert.equal(error.responseCode, 2);
        assert.match(error.message, /interval/);
        assert.deepEqual((error.details as { issues: Array<{ path: unknown[] }> }).issues[0]!.path, ['interval']);
        return true;
      });
      const changes = config.changes();
      await bob.kv('config').put(plugin.id, { interval: 5, host: 'db', verbose: true });
      const [pushed] = await take(changes, 1);
      assert.deepEqual(pushed, { interval: 5, host: 'db', verbose: true });
      assert.deepEqual(config.value, { interval: 5, host: 'db', verbose: true });
      // A restart reads what is stored, not the defaults.
      config.close();
      const again = await plugin.config(schema, { defaults: { interval: 30, host: 'localhost' } });
      assert.deepEqual(again.value, { interval: 5, host: 'db', verbose: true });
      again.close();
    });
  });
}
