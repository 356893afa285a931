/**
 * What every key-value store does (src/router/kv-store.ts, protocol §14): run on the memory,
 * SQLite and PostgreSQL stores by their own test files.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RevisionConflictError, type KvEntry } from '../../src/protocol/kv.js';
import { storedValueOf, type KvStore, type KvWrite } from '../../src/router/kv-store.js';

export interface KvStoreFactory {
  open(): Promise<KvStore> | KvStore;
  /** The same data again (a restart), when the store keeps any. */
  reopen?(store: KvStore): Promise<KvStore>;
  /** A second handle on the same data (a second router), when the store can be shared. */
  openSecond?(first: KvStore): Promise<KvStore>;
}

const T0 = 1_800_000_000_000;

export function put(bucket: string, key: string, value: unknown, extra: Partial<KvWrite> = {}): KvWrite {
  return { bucket, key, operation: 'put', value: storedValueOf(value), author: 'alice', historyDepth: 5, now: T0, ...extra };
}

export function del(bucket: string, key: string, extra: Partial<KvWrite> = {}): KvWrite {
  return { bucket, key, operation: 'delete', author: 'alice', historyDepth: 5, now: T0, ...extra };
}

export function kvStoreContract(name: string, factory: KvStoreFactory): void {
  describe(`key-value store contract: ${name}`, () => {
    const opened: KvStore[] = [];
    const open = async () => {
      const store = await factory.open();
      opened.push(store);
      return store;
    };
    after(async () => {
      await Promise.all(opened.map((store) => store.close().catch(() => {})));
    });

    it('gives each bucket its own revision sequence, from 1, and reads back what was written', async () => {
      const store = await open();
      assert.equal((await store.write(put('a', 'k1', { x: 1 }))).revision, 1);
      assert.equal((await store.write(put('a', 'k2', 'two'))).revision, 2);
      assert.equal((await store.write(put('b', 'k1', null))).revision, 1);
      const entry = await store.entry('a', 'k1');
      assert.deepEqual(pick(entry!), { bucket: 'a', key: 'k1', value: { x: 1 }, revision: 1, operation: 'put', author: 'alice' });
      assert.equal((await store.entry('b', 'k1'))!.value, null);
      assert.equal(await store.revision('a'), 2);
      assert.equal(await store.revision('nothing'), 0);
      assert.equal(await store.entry('a', 'missing'), undefined);
    });

    it('keeps bytes as bytes and answers them as { $base64 } with bytes: true', async () => {
      const store = await open();
      const bytes = new Uint8Array([0, 1, 2, 255, 10, 0]);
      await store.write(put('bin', 'blob', { $base64: Buffer.from(bytes).toString('base64') }));
      const entry = (await store.entry('bin', 'blob'))!;
      assert.equal(entry.bytes, true);
      assert.deepEqual(entry.value, { $base64: Buffer.from(bytes).toString('base64') });
    });

    it('compare-and-set: 0 creates only, N updates only at N, and a conflict carries the current revision', async () => {
      const store = await open();
      assert.equal((await store.write(put('cas', 'k', 1, { expectRevision: 0 }))).revision, 1);
      await assert.rejects(store.write(put('cas', 'k', 2, { expectRevision: 0 })), (error: unknown) => error instanceof RevisionConflictError && error.details.currentRevision === 1 && error.details.expectedRevision === 0);
      assert.equal((await store.write(put('cas', 'k', 2, { expectRevision: 1 }))).revision, 2);
      await assert.rejects(store.write(put('cas', 'k', 3, { expectRevision: 1 })), (error: unknown) => error instanceof RevisionConflictError && error.details.currentRevision === 2);
      // A refused write takes no revision and changes nothing.
      assert.equal(await store.revision('cas'), 2);
      assert.equal((await store.entry('cas', 'k'))!.value, 2);
      // A deleted key can be created again with 0, or updated at its tombstone's revision.
      assert.equal((await store.write(del('cas', 'k', { expectRevision: 2 }))).revision, 3);
      assert.equal((await store.write(put('cas', 'k', 4, { expectRevision: 0 }))).revision, 4);
      await assert.rejects(store.write(put('cas', 'other', 1, { expectRevision: 7 })), (error: unknown) => error instanceof RevisionConflictError && error.details.currentRevision === 0);
    });

    it('a delete is a tombstone revision: the key reads as a tombstone, leaves the keys, stays in the history', async () => {
      const store = await open();
      await store.write(put('t', 'k', 'v'));
      const tombstone = await store.write(del('t', 'k', { author: 'bob' }));
      assert.equal(tombstone.revision, 2);
      const entry = (await store.entry('t', 'k'))!;
      assert.equal(entry.operation, 'delete');
      assert.equal(entry.value, null);
      assert.equal(entry.author, 'bob');
      assert.deepEqual((await store.keys('t', { limit: 10, now: T0 })).keys, []);
      assert.deepEqual((await store.history('t', 'k', 10)).map((e) => e.operation), ['put', 'delete']);
    });

    it('keeps historyDepth revisions per key, and never gives a revision twice even once pruned', async () => {
      const store = await open();
      for (let i = 1; i <= 6; i += 1) await store.write(put('h', 'k', i, { historyDepth: 3, now: T0 + i }));
      const history = await store.history('h', 'k', 64);
      assert.deepEqual(history.map((e) => [e.revision, e.value]), [[4, 4], [5, 5], [6, 6]]);
      assert.equal(history[2]!.created, T0 + 1, 'created stays the first write of the key');
      assert.equal(history[2]!.updated, T0 + 6);
      assert.equal(await store.entry('h', 'k', 2), undefined, 'a pruned revision is not found');
      assert.equal((await store.entry('h', 'k', 5))!.value, 5);
      await store.write(del('h', 'k', { historyDepth: 1 }));
      assert.deepEqual((await store.history('h', 'k', 64)).map((e) => e.revision), [7]);
      assert.equal((await store.write(put('h', 'k', 'again', { historyDepth: 1, now: T0 + 100 }))).revision, 8);
      assert.equal((await store.entry('h', 'k'))!.created, T0 + 100, 'created again after a delete');
    });

    it('lists live keys in order, by prefix, in pages', async () => {
      const store = await open();
      for (const key of ['b/2', 'a/1', 'b/1', 'b/3', 'c', 'b/10']) await store.write(put('ls', key, key));
      await store.write(del('ls', 'b/3'));
      assert.deepEqual(await store.keys('ls', { limit: 100, now: T0 }), { keys: ['a/1', 'b/1', 'b/10', 'b/2', 'c'], more: false });
      assert.deepEqual(await store.keys('ls', { prefix: 'b/', limit: 2, now: T0 }), { keys: ['b/1', 'b/10'], more: true });
      assert.deepEqual(await store.keys('ls', { prefix: 'b/', after: 'b/10', limit: 2, now: T0 }), { keys: ['b/2'], more: false });
      assert.deepEqual(await store.keys('ls', { prefix: 'b/1', limit: 10, now: T0 }), { keys: ['b/1', 'b/10'], more: false });
      assert.deepEqual(await store.keys('none', { limit: 10, now: T0 }), { keys: [], more: false });
    });

    it('a value with a time to live reads as expired once its time is past, and is listed for the sweep', async () => {
      const store = await open();
      const entry = await store.write(put('ttl', 'k', 'v', { ttl: 5000 }));
      assert.equal(entry.expires, T0 + 5000);
      assert.equal(entry.ttl, 5000);
      await store.write(put('ttl', 'keep', 'v'));
      assert.deepEqual((await store.keys('ttl', { limit: 10, now: T0 + 4999 })).keys, ['k', 'keep']);
      assert.deepEqual((await store.keys('ttl', { limit: 10, now: T0 + 5000 })).keys, ['keep']);
      assert.deepEqual((await store.expired(T0 + 4999, 10)).map((e) => e.key), []);
      assert.deepEqual((await store.expired(T0 + 5000, 10)).map((e) => [e.bucket, e.key]), [['ttl', 'k']]);
      // Expired: a create (expectRevision 0) succeeds.
      assert.equal((await store.write(put('ttl', 'k', 'new', { expectRevision: 0, now: T0 + 6000 }))).revision, 3);
      assert.deepEqual(await store.expired(T0 + 6000, 10), []);
    });

    it('changes after a revision, by prefix, in revision order; and the current entries up to a revision', async () => {
      const store = await open();
      await store.write(put('w', 'x/1', 1)); // 1
      await store.write(put('w', 'y/1', 1)); // 2
      await store.write(put('w', 'x/2', 2)); // 3
      await store.write(put('w', 'x/1', 11)); // 4
      await store.write(del('w', 'x/2')); // 5
      assert.deepEqual((await store.changes('w', { after: 0, limit: 100 })).map((e) => e.revision), [1, 2, 3, 4, 5]);
      assert.deepEqual((await store.changes('w', { after: 2, prefix: 'x/', limit: 100 })).map((e) => e.revision), [3, 4, 5]);
      assert.deepEqual((await store.changes('w', { after: 0, prefix: 'x/', limit: 2 })).map((e) => e.revision), [1, 3]);
      const current = await store.changes('w', { after: 0, limit: 100, current: { through: 5, now: T0 } });
      assert.deepEqual(current.map((e) => [e.key, e.revision]), [['y/1', 2], ['x/1', 4]]);
      assert.deepEqual((await store.changes('w', { after: 0, limit: 100, current: { through: 3, now: T0 } })).map((e) => e.revision), [2], 'a key whose current entry is newer than through is left to the changes');
    });

    it('lists buckets with their revision and live keys', async () => {
      const store = await open();
      await store.write(put('bk1', 'a', 1));
      await store.write(put('bk1', 'b', 1));
      await store.write(del('bk1', 'b'));
      await store.write(put('bk2', 'a', 1));
      const buckets = (await store.buckets(T0)).filter((b) => b.name.startsWith('bk'));
      assert.deepEqual(buckets, [
        { name: 'bk1', revision: 3, keys: 1 },
        { name: 'bk2', revision: 1, keys: 1 },
      ]);
    });

    if (factory.reopen) {
      it('keeps entries and the revision sequence across a restart', async () => {
        let store = await open();
        for (let i = 0; i < 3; i += 1) await store.write(put('r', 'k', i, { historyDepth: 1 }));
        store = await factory.reopen!(store);
        opened.push(store);
        assert.equal((await store.entry('r', 'k'))!.value, 2);
        assert.equal((await store.write(put('r', 'k', 3, { historyDepth: 1 }))).revision, 4);
      });
    }

    if (factory.openSecond) {
      it('two handles writing one bucket at once never take one revision, and compare-and-set holds across them', async () => {
        const first = await open();
        const second = await factory.openSecond!(first);
        opened.push(second);
        const writes = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? first : second).write(put('shared', `k${i % 5}`, i)));
        const revisions = (await Promise.all(writes)).map((e) => e.revision).sort((a, b) => a - b);
        assert.deepEqual(revisions, Array.from({ length: 40 }, (_, i) => i + 1));
        // Both try to create one key: exactly one wins.
        const results = await Promise.allSettled([first.write(put('shared', 'once', 'a', { expectRevision: 0 })), second.write(put('shared', 'once', 'b', { expectRevision: 0 }))]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        assert.ok(results.some((r) => r.status === 'rejected' && r.reason instanceof RevisionConflictError));
      });
    }
  });
}

function pick(entry: KvEntry): Partial<KvEntry> {
  const { bucket, key, value, revision, operation, author } = entry;
  return { bucket, key, value, revision, operation, author };
}
