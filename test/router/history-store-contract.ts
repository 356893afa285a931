/**
 * `historyStoreContract()`: what every history store must do (protocol §11.1), run against
 * each implementation (sqlite-history-store.test.ts, memory-stores.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { SEAL_ALGORITHM } from '../../src/protocol/sealing.js';
import { parseHistoryQuery, type HistoryRowInput } from '../../src/protocol/history.js';
import type { HistoryStore } from '../../src/router/history-store.js';

export interface HistoryStoreFactory {
  /** A new empty store; `now` is its clock for ctime. */
  open(now: () => number): HistoryStore | Promise<HistoryStore>;
  /** Closes it and opens the same data again (a restart). */
  reopen?(store: HistoryStore, now: () => number): HistoryStore | Promise<HistoryStore>;
  /**
   * Another store on the same data as `first`, open at the same time (a second router sharing
   * the database: another SQLite handle on the file, another pool on the PostgreSQL database).
   * Given, the contract also runs the shared-store cases. Each store is closed on its own.
   */
  openSecond?(first: HistoryStore, now: () => number): HistoryStore | Promise<HistoryStore>;
}

let seq = 0;
export function row(overrides: Partial<HistoryRowInput> = {}): HistoryRowInput {
  seq += 1;
  return {
    token: 't1',
    kind: 'command',
    action: 'demo/echo',
    source: 'ui',
    etime: 1000,
    data: '{"n":1}',
    size: 7,
    truncated: false,
    digest: `d${seq}`,
    ...overrides,
  };
}

export function historyStoreContract(name: string, factory: HistoryStoreFactory): void {
  describe(`history store contract (${name})`, () => {
    const clock = { now: 10_000 };
    const open = () => factory.open(() => clock.now);

    it('history - a lifecycle comes back in order with every field', async () => {
      const store = await open();
      try {
        const appended = await store.append([
          row({ kind: 'command', target: 'svc', priority: 'high' }),
          row({ kind: 'accepted', source: 'svc', target: 'ui', code: undefined }),
          row({ kind: 'progress', source: 'svc', target: 'ui', progress: 0.5 }),
          row({ kind: 'final', source: 'svc', target: 'ui', code: 0, data: '{"ok":true}', size: 11 }),
        ]);
        const page = await store.query(parseHistoryQuery({ token: 't1' }));
        assert.deepEqual((await store.query(parseHistoryQuery({ token: 't1', kind: 'final' }))).rows, [appended.at(-1)], 'append returns the rows as stored');
        assert.deepEqual(page.rows.map((r) => r.kind), ['command', 'accepted', 'progress', 'final']);
        assert.equal(page.more, false);
        const [command, , progress, final] = page.rows;
        assert.equal(command!.target, 'svc');
        assert.equal(command!.priority, 'high');
        assert.equal(command!.ctime, 10_000);
        assert.equal(command!.etime, 1000);
        assert.equal(progress!.progress, 0.5);
        assert.equal(final!.code, 0);
        assert.equal(final!.data, '{"ok":true}');
        assert.ok(page.rows.every((r, i) => i === 0 || r.id > page.rows[i - 1]!.id), 'ids increase');
      } finally {
        await store.close();
      }
    });

    it('history - a binary row keeps its bytes (Base64), size and SHA-256, and reads back marked so (protocol §11.1)', async () => {
      const store = await open();
      try {
        const bytes = Buffer.from([0, 10, 255, 1, 2, 3]);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        const [stored] = await store.append([row({ token: 'bin1', data: bytes.toString('base64'), size: bytes.length, sha256 }), row({ token: 'bin1', kind: 'final', source: 'svc' })]);
        assert.equal(stored!.sha256, sha256);
        const page = await store.query(parseHistoryQuery({ token: 'bin1' }));
        assert.equal(page.rows[0]!.sha256, sha256);
        assert.deepEqual(Buffer.from(page.rows[0]!.data, 'base64'), bytes);
        assert.equal(page.rows[0]!.size, 6);
        assert.equal('sha256' in page.rows[1]!, false, 'a JSON row carries no sha256');
        assert.deepEqual(page.rows[0], stored, 'append returns the row as stored');
      } finally {
        await store.close();
      }
    });

    it('history - a sealed row keeps its seal member and ciphertext, reads back marked so, also when pulled from a site (protocol §3.6, §11.1)', async () => {
      const store = await open();
      try {
        const ciphertext = Buffer.from('not the plaintext, 16-byte tag..');
        const sha256 = createHash('sha256').update(ciphertext).digest('hex');
        const seal = {
          alg: SEAL_ALGORITHM,
          form: 'json' as const,
          epk: Buffer.alloc(32, 1).toString('base64'),
          nonce: Buffer.alloc(12, 2).toString('base64'),
          to: [{ kid: '0123456789abcdef', key: Buffer.alloc(48, 3).toString('base64') }, { kid: 'fedcba9876543210', key: Buffer.alloc(48, 4).toString('base64') }],
        };
        const sealed = { data: ciphertext.toString('base64'), size: ciphertext.length, sha256, seal };
        const [stored] = await store.append([row({ token: 'seal1', ...sealed }), row({ token: 'seal1', kind: 'final', source: 'svc' })]);
        assert.deepEqual(stored!.seal, seal);
        const page = await store.query(parseHistoryQuery({ token: 'seal1' }));
        assert.deepEqual(page.rows[0], stored, 'append returns the row as stored');
        assert.deepEqual(page.rows[0]!.seal, seal);
        assert.deepEqual(Object.keys(page.rows[0]!.seal!), ['alg', 'form', 'epk', 'nonce', 'to'], 'the members in their wire order');
        assert.deepEqual(Buffer.from(page.rows[0]!.data, 'base64'), ciphertext);
        assert.equal('seal' in page.rows[1]!, false, 'a row not sealed carries no seal');
        await store.appendFromSite('poller-1', { rows: [row({ token: 'seal2', ...sealed })], position: 1, lag: 0 });
        assert.deepEqual((await store.query(parseHistoryQuery({ token: 'seal2' }))).rows[0]!.seal, seal, 'a row pulled from a site stays sealed');
      } finally {
        await store.close();
      }
    });

    it('history - the same message twice (same token and digest) is stored once', async () => {
      const store = await open();
      try {
        const once = row({ digest: 'same' });
        assert.equal((await store.append([once, once])).length, 1);
        assert.equal((await store.append([once])).length, 0);
        assert.equal(await store.count(), 1);
        // The same digest under another token is another message.
        assert.equal((await store.append([{ ...once, token: 't2' }])).length, 1);
      } finally {
        await store.close();
      }
    });

    it('history - filters combine with AND (token, action, source, target, kind, code, times)', async () => {
      const store = await open();
      try {
        await store.append([
          row({ token: 'a', action: 'x/one', source: 'ui', code: 0, kind: 'final', etime: 100 }),
          row({ token: 'b', action: 'x/one', source: 'cli', code: 1, kind: 'final', etime: 200 }),
          row({ token: 'c', action: 'x/two', source: 'ui', code: 1, kind: 'final', etime: 300 }),
          row({ token: 'd', action: 'x/two', source: 'ui', target: 'h1', kind: 'command', etime: 400 }),
        ]);
        const tokens = async (query: object) => (await store.query(parseHistoryQuery(query))).rows.map((r) => r.token);
        assert.deepEqual(await tokens({ action: 'x/one' }), ['a', 'b']);
        assert.deepEqual(await tokens({ action: 'x/two', code: 1 }), ['c']);
        assert.deepEqual(await tokens({ source: 'ui', kind: 'final' }), ['a', 'c']);
        assert.deepEqual(await tokens({ target: 'h1' }), ['d']);
        assert.deepEqual(await tokens({ etimeFrom: 200, etimeTo: 400 }), ['b', 'c']);
        assert.deepEqual(await tokens({ code: 0, source: 'cli' }), []);
      } finally {
        await store.close();
      }
    });

    it('history - pages forward with afterId and backward with newest first', async () => {
      const store = await open();
      try {
        await store.append(Array.from({ length: 25 }, (_, i) => row({ token: `p${i}` })));
        const first = await store.query(parseHistoryQuery({ limit: 10 }));
        assert.equal(first.rows.length, 10);
        assert.equal(first.more, true);
        const second = await store.query(parseHistoryQuery({ limit: 10, afterId: first.rows.at(-1)!.id }));
        const third = await store.query(parseHistoryQuery({ limit: 10, afterId: second.rows.at(-1)!.id }));
        assert.equal(third.rows.length, 5);
        assert.equal(third.more, false);
        const all = [...first.rows, ...second.rows, ...third.rows].map((r) => r.token);
        assert.deepEqual(all, Array.from({ length: 25 }, (_, i) => `p${i}`));
        const newest = await store.query(parseHistoryQuery({ limit: 3, order: 'newest' }));
        assert.deepEqual(newest.rows.map((r) => r.token), ['p24', 'p23', 'p22']);
        const before = await store.query(parseHistoryQuery({ limit: 2, order: 'newest', beforeId: newest.rows.at(-1)!.id }));
        assert.deepEqual(before.rows.map((r) => r.token), ['p21', 'p20']);
      } finally {
        await store.close();
      }
    });

    it('history - a scope gives the rows of the tokens its party sent, handled, or opened with a put; with a token filter too (protocol §11.2)', async () => {
      const store = await open();
      try {
        await store.append([
          row({ token: 'a1', source: 'alice', target: 'svc' }),
          row({ token: 'a1', kind: 'final', source: 'svc', target: 'alice', code: 0 }),
          row({ token: 'b1', source: 'bob', target: 'svc' }),
          row({ token: 'b1', kind: 'final', source: 'svc', target: 'bob', code: 0 }),
          row({ token: 'b2', source: 'bob' }),
          row({ token: 'p1', kind: 'put', source: 'carol', code: 0 }),
        ]);
        const tokens = async (party: string, query: Record<string, unknown> = {}) => [...new Set((await store.query(parseHistoryQuery({ limit: 100, ...query }), { party })).rows.map((r) => r.token))];
        assert.deepEqual(await tokens('alice'), ['a1']);
        assert.deepEqual(await tokens('bob'), ['b1', 'b2']);
        assert.deepEqual(await tokens('svc'), ['a1', 'b1'], 'the handler: what it was sent or answered');
        assert.deepEqual(await tokens('carol'), ['p1']);
        assert.deepEqual(await tokens('alice', { token: 'b1' }), []);
        assert.deepEqual(await tokens('alice', { source: 'bob' }), []);
        assert.equal((await store.query(parseHistoryQuery({ token: 'b1' }), { party: 'bob' })).rows.length, 2, 'every row of a token of its own, the handler\'s final too');
        assert.deepEqual(await tokens('*'), [], 'a target of * is nobody');
        assert.equal((await store.query(parseHistoryQuery({ limit: 100 }))).rows.length, 6, 'no scope: every row');
      } finally {
        await store.close();
      }
    });

    it("history - an identity's scope holds the rows of each of its sessions <identity>~<session>, and of nobody else's (protocol §2.1, §11.2)", async () => {
      const store = await open();
      try {
        await store.append([
          row({ token: 's1', source: 'alice~tab1', target: 'svc' }),
          row({ token: 's1', kind: 'final', source: 'svc', target: 'alice~tab1', code: 0 }),
          row({ token: 's2', source: 'alice~cli-42-x', target: 'svc~b' }),
          row({ token: 's3', source: 'alice' }),
          row({ token: 'n1', source: 'alice2~tab1' }),
          row({ token: 'n2', source: 'alicex' }),
          row({ token: 'n3', source: 'ALICE~tab1' }),
          row({ token: 'n4', source: 'bob', target: 'svc~alice' }),
        ]);
        const tokens = async (party: string, query: Record<string, unknown> = {}) => [...new Set((await store.query(parseHistoryQuery({ limit: 100, ...query }), { party })).rows.map((r) => r.token))].sort();
        assert.deepEqual(await tokens('alice'), ['s1', 's2', 's3'], 'its own rows and its sessions\', not alice2\'s, alicex\'s or ALICE\'s');
        assert.deepEqual(await tokens('alice', { token: 's2' }), ['s2'], 'with a token filter too');
        assert.deepEqual(await tokens('alice', { token: 'n1' }), []);
        assert.deepEqual(await tokens('svc'), ['n4', 's1', 's2'], 'a handler session svc~b is svc');
        assert.equal((await store.query(parseHistoryQuery({ token: 's1' }), { party: 'alice' })).rows.length, 2, "the handler's final to a session too");
      } finally {
        await store.close();
      }
    });

    it('history - store time and id bounds combine with a token filter, in either order', async () => {
      const store = await open();
      try {
        for (const [i, now] of [1000, 2000, 3000, 4000].entries()) {
          clock.now = now;
          await store.append([row({ token: 'b', digest: `b${i}` }), row({ token: `other${i}` })]);
        }
        const ids = (await store.query(parseHistoryQuery({ token: 'b' }))).rows.map((r) => r.id);
        const ctimes = async (query: object) => (await store.query(parseHistoryQuery({ token: 'b', ...query }))).rows.map((r) => r.ctime);
        assert.deepEqual(await ctimes({ ctimeFrom: 2000, ctimeTo: 4000 }), [2000, 3000]);
        assert.deepEqual(await ctimes({ afterId: ids[0], beforeId: ids[3] }), [2000, 3000]);
        assert.deepEqual(await ctimes({ beforeId: ids[3], order: 'newest', limit: 2 }), [3000, 2000]);
        const page = await store.query(parseHistoryQuery({ token: 'b', afterId: ids[1], order: 'newest', limit: 1 }));
        assert.deepEqual([page.rows.map((r) => r.ctime), page.more], [[4000], true]);
      } finally {
        await store.close();
        clock.now = 10_000;
      }
    });

    it('history - what retention removed is gone from every query, scopes included, and the same message stored again is new', async () => {
      const store = await open();
      try {
        clock.now = 1000;
        // alice asked svc for t1 long ago; only svc's late answer is recent.
        const old = row({ token: 't1', source: 'alice', target: 'svc', digest: 'old' });
        await store.append([old, row({ token: 'gone', source: 'alice', digest: 'gone' })]);
        clock.now = 100_000;
        await store.append([row({ token: 't1', kind: 'final', source: 'svc', code: 0, digest: 'late' })]);
        assert.equal(await store.prune({ maxAgeMs: 50_000, maxRows: 100 }, 100_000, 100), 2);
        assert.deepEqual((await store.query(parseHistoryQuery({ source: 'alice' }))).rows, []);
        assert.deepEqual((await store.query(parseHistoryQuery({ limit: 100 }), { party: 'alice' })).rows, [], 'alice is no longer a party to t1');
        assert.deepEqual((await store.query(parseHistoryQuery({ token: 't1' }), { party: 'alice' })).rows, []);
        assert.equal((await store.query(parseHistoryQuery({ token: 't1' }), { party: 'svc' })).rows.length, 1);
        assert.equal((await store.append([old])).length, 1, 'stored again: nothing of it was left');
        assert.equal((await store.query(parseHistoryQuery({ token: 't1' }), { party: 'alice' })).rows.length, 2);
        assert.equal(await store.count(), 2);
      } finally {
        await store.close();
        clock.now = 10_000;
      }
    });

    it('history - the raw flag comes back when set, absent otherwise (protocol §11.1)', async () => {
      const store = await open();
      try {
        await store.append([row({ token: 'r1', raw: true, truncated: true, data: '{"v":1,"type":"command"', size: 200_000 }), row({ token: 'r2' })]);
        assert.equal((await store.query(parseHistoryQuery({ token: 'r1' }))).rows[0]!.raw, true);
        assert.equal('raw' in (await store.query(parseHistoryQuery({ token: 'r2' }))).rows[0]!, false);
      } finally {
        await store.close();
      }
    });

    it('history - rows of a site carry it, the site filter finds them, and a row already recorded live is not stored twice (protocol §13.5)', async () => {
      const store = await open();
      try {
        const crossed = row({ token: 'x1', source: 'ui', target: 'agent-p1', digest: 'agent-p1:crossed' });
        const [live] = await store.append([crossed, row({ token: 'own', digest: 'own' })]);
        const pulled = [crossed, row({ token: 'x2', source: 'agent-p1', digest: 'local-1' }), row({ token: 'x2', kind: 'final', source: 'agent-p1', digest: 'local-2' })];
        const added = await store.appendFromSite('poller-1', { rows: pulled, position: 3, positionCtime: 5000, lag: 0 });
        assert.deepEqual(added.map((r) => [r.token, r.site]), [['x2', 'poller-1'], ['x2', 'poller-1']], 'the row recorded live is not stored again');
        assert.equal(await store.count(), 4);
        assert.equal((await store.appendFromSite('poller-1', { rows: pulled, position: 3, lag: 0 })).length, 0, 'the same page twice: nothing new');
        assert.equal(await store.count(), 4);
        const ofSite = (await store.query(parseHistoryQuery({ site: 'poller-1', limit: 100 }))).rows;
        assert.deepEqual(ofSite.map((r) => r.token), ['x1', 'x2', 'x2'], 'the live row now says the site holds it too, under its own id');
        assert.equal(ofSite[0]!.id, live!.id);
        assert.equal('site' in (await store.query(parseHistoryQuery({ token: 'own' }))).rows[0]!, false, "the router's own rows have no site");
        assert.deepEqual((await store.query(parseHistoryQuery({ site: 'poller-2' }))).rows, []);
      } finally {
        await store.close();
      }
    });

    it('history - digests: true gives each row the digest it is identified by, and only then', async () => {
      const store = await open();
      try {
        await store.append([row({ token: 'd1', digest: 'svc:abc' })]);
        assert.equal((await store.query(parseHistoryQuery({ token: 'd1', digests: true }))).rows[0]!.digest, 'svc:abc');
        assert.equal('digest' in (await store.query(parseHistoryQuery({ token: 'd1' }))).rows[0]!, false);
      } finally {
        await store.close();
      }
    });

    it("history - a site's position is stored with its page, and the outcome of each sync beside it (protocol §13.5)", async () => {
      const store = await open();
      try {
        assert.deepEqual(await store.siteSyncs(), {});
        await store.appendFromSite('poller-1', { rows: [row({ token: 's1' })], position: 41, positionCtime: 7000, lag: 9 });
        await store.recordSiteSync('poller-1', { at: 12_000, outcome: 'timeout', rows: 1, ms: 60_000 });
        await store.recordSiteSync('poller-2', { at: 13_000, outcome: 'failed', rows: 0, ms: 5, error: 'no handler' });
        assert.deepEqual(await store.siteSyncs(), {
          'poller-1': { position: 41, positionCtime: 7000, lag: 9, lastSync: { at: 12_000, outcome: 'timeout', rows: 1, ms: 60_000 } },
          'poller-2': { position: 0, lastSync: { at: 13_000, outcome: 'failed', rows: 0, ms: 5, error: 'no handler' } },
        });
        await store.appendFromSite('poller-1', { rows: [], position: 50, positionCtime: 8000, lag: 0 });
        await store.recordSiteSync('poller-1', { at: 14_000, outcome: 'done', rows: 0, ms: 3 }, 0);
        assert.deepEqual((await store.siteSyncs())['poller-1'], { position: 50, positionCtime: 8000, lag: 0, lastSync: { at: 14_000, outcome: 'done', rows: 0, ms: 3 } });
      } finally {
        await store.close();
      }
    });

    it('history - a bad query is refused naming the field', async () => {
      assert.throws(() => parseHistoryQuery({ colour: 'red' }), /colour/);
      assert.throws(() => parseHistoryQuery({ limit: 1e9 }), /limit/);
      assert.throws(() => parseHistoryQuery({ code: 'zero' }), /code/);
      assert.throws(() => parseHistoryQuery({ order: 'random' }), /order/);
    });

    it('history - retention prunes by age, then by count, in batches, and recording goes on', async () => {
      const store = await open();
      try {
        clock.now = 1_000;
        await store.append(Array.from({ length: 30 }, (_, i) => row({ token: `old${i}` })));
        clock.now = 100_000;
        await store.append(Array.from({ length: 30 }, (_, i) => row({ token: `new${i}` })));
        const retention = { maxAgeMs: 50_000, maxRows: 20 };
        // Small batches: each call removes at most 8; the oldest go first.
        assert.equal(await store.prune(retention, 100_000, 8), 8);
        assert.equal((await store.query(parseHistoryQuery({ limit: 1 }))).rows[0]!.token, 'old8');
        await store.append([row({ token: 'meanwhile' })]);
        let removed = 8;
        for (let n = await store.prune(retention, 100_000, 8); n > 0; n = await store.prune(retention, 100_000, 8)) removed += n;
        assert.equal(removed, 30 + 11, 'the old rows by age, then the surplus over 20 by count');
        assert.equal(await store.count(), 20);
        assert.equal((await store.query(parseHistoryQuery({ order: 'newest', limit: 1 }))).rows[0]!.token, 'meanwhile');
      } finally {
        await store.close();
        clock.now = 10_000;
      }
    });

    if (factory.openSecond) {
      const openSecond = factory.openSecond;

      it('history - two stores on one database appending the same rows at once store each once, ids growing without a gap', async () => {
        const first = await open();
        const second = await openSecond(first, () => clock.now);
        try {
          // Batches that overlap: each row is offered by both stores, and by two batches of each.
          const rows = Array.from({ length: 60 }, (_, i) => row({ token: `shared${i % 7}` }));
          const batches = Array.from({ length: 12 }, (_, i) => rows.slice(i * 5, i * 5 + 10));
          const appended = (await Promise.all(batches.flatMap((batch, i) => (i % 2 === 0 ? [first.append(batch), second.append(batch)] : [second.append(batch), first.append(batch)])))).flat();
          const keys = appended.map((stored) => `${stored.token}/${stored.id}`);
          assert.equal(appended.length, 60, 'each row returned by exactly one append');
          assert.equal(new Set(keys).size, 60);
          assert.equal(await first.count(), 60);
          assert.equal(await second.count(), 60);
          const seen = (await second.query(parseHistoryQuery({ limit: 100, digests: true }))).rows;
          assert.deepEqual(seen.map((stored) => stored.digest).sort(), rows.map((input) => input.digest).sort(), 'each row stored once');
          const ids = seen.map((stored) => stored.id);
          assert.deepEqual(ids, Array.from({ length: 60 }, (_, i) => ids[0]! + i), 'ids in order, without a gap or a repeat');
          assert.deepEqual([...appended].sort((a, b) => a.id - b.id), (await first.query(parseHistoryQuery({ limit: 100 }))).rows, 'append returns the rows as stored');
        } finally {
          await second.close();
          await first.close();
        }
      });

      it('history - a reader paging with afterId while two stores append never skips a row', async () => {
        const first = await open();
        const second = await openSecond(first, () => clock.now);
        try {
          const rows = Array.from({ length: 80 }, (_, i) => row({ token: `follow${i}` }));
          let writing = true;
          const writers = Promise.all(
            [first, second].map(async (store, n) => {
              for (let i = n; i < 40; i += 2) await store.append(rows.slice(i * 2, i * 2 + 2));
            }),
          ).finally(() => {
            writing = false;
          });
          const followed: string[] = [];
          let afterId = 0;
          for (;;) {
            const done = !writing;
            const page = (await first.query(parseHistoryQuery({ limit: 7, ...(afterId > 0 && { afterId }) }))).rows;
            followed.push(...page.map((stored) => stored.token));
            afterId = page.at(-1)?.id ?? afterId;
            if (page.length === 0 && done) break;
          }
          await writers;
          assert.equal(followed.length, 80, 'every row seen once');
          assert.deepEqual([...followed].sort(), rows.map((input) => input.token).sort());
        } finally {
          await second.close();
          await first.close();
        }
      });
    }

    if (factory.reopen) {
      const reopen = factory.reopen;
      it('history - rows survive closing and opening the store again, and ids keep increasing', async () => {
        let store = await open();
        await store.append([row({ token: 'keep', digest: 'k1' })]);
        const before = (await store.query(parseHistoryQuery({}))).rows[0]!;
        store = await reopen(store, () => clock.now);
        try {
          assert.deepEqual((await store.query(parseHistoryQuery({ token: 'keep' }))).rows, [before]);
          assert.equal((await store.append([row({ token: 'keep', digest: 'k1' })])).length, 0, 'still recognised as a repeat');
          await store.append([row({ token: 'next' })]);
          assert.ok((await store.query(parseHistoryQuery({ token: 'next' }))).rows[0]!.id > before.id);
        } finally {
          await store.close();
        }
      });

      it("history - a site's rows and position survive closing and opening the store again", async () => {
        let store = await open();
        await store.appendFromSite('poller-1', { rows: [row({ token: 'kept', digest: 'kept' })], position: 12, positionCtime: 3000, lag: 4 });
        store = await reopen(store, () => clock.now);
        try {
          assert.deepEqual(await store.siteSyncs(), { 'poller-1': { position: 12, positionCtime: 3000, lag: 4 } });
          assert.equal((await store.query(parseHistoryQuery({ site: 'poller-1' }))).rows[0]!.token, 'kept');
        } finally {
          await store.close();
        }
      });
    }
  });
}
