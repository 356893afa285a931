import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';
import { SEAL_ALGORITHM } from '../../src/protocol/sealing.js';
import { parseHistoryQuery } from '../../src/protocol/history.js';
import { SqliteHistoryStore } from '../../src/router/sqlite-history-store.js';
import { historyStoreContract, row } from './history-store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'relais-history-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const paths = new WeakMap<object, string>();

historyStoreContract('SQLite file, WAL', {
  open(now) {
    files += 1;
    const file = join(dir, `history-${files}.db`);
    const store = new SqliteHistoryStore(file, { now });
    paths.set(store, file);
    return store;
  },
  async reopen(store, now) {
    await store.close();
    const file = paths.get(store)!;
    const again = new SqliteHistoryStore(file, { now });
    paths.set(again, file);
    return again;
  },
  openSecond(first, now) {
    const second = new SqliteHistoryStore(paths.get(first)!, { now });
    paths.set(second, paths.get(first)!);
    return second;
  },
});

it('sqlite - a history written before the raw and via columns opens with them added, empty for its rows', async () => {
  const file = join(dir, 'before-raw.db');
  const old = new Database(file);
  old.exec(`CREATE TABLE history (id INTEGER PRIMARY KEY, token TEXT NOT NULL, kind TEXT NOT NULL, code INTEGER, ctime INTEGER NOT NULL, etime INTEGER NOT NULL,
    action TEXT NOT NULL, source TEXT NOT NULL, target TEXT, progress REAL, priority TEXT, size INTEGER NOT NULL, truncated INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL, digest TEXT NOT NULL)`);
  old.prepare("INSERT INTO history (token, kind, ctime, etime, action, source, size, data, digest) VALUES ('old', 'command', 1, 1, 'demo/echo', 'ui', 2, '{}', 'd')").run();
  old.close();
  const store = new SqliteHistoryStore(file);
  try {
    const before = (await store.query(parseHistoryQuery({ token: 'old' }))).rows[0]!;
    assert.equal('raw' in before || 'via' in before, false);
    await store.append([row({ token: 'new', raw: true, via: 'relais-web' })]);
    const added = (await store.query(parseHistoryQuery({ token: 'new' }))).rows[0]!;
    assert.deepEqual([added.raw, added.via], [true, 'relais-web']);
  } finally {
    await store.close();
  }
});

it('sqlite - a history written before the site column opens with it and the site_sync table, its rows the router\'s own', async () => {
  const file = join(dir, 'before-site.db');
  const old = new Database(file);
  old.exec(`CREATE TABLE history (id INTEGER PRIMARY KEY, token TEXT NOT NULL, kind TEXT NOT NULL, code INTEGER, ctime INTEGER NOT NULL, etime INTEGER NOT NULL,
    action TEXT NOT NULL, source TEXT NOT NULL, target TEXT, progress REAL, priority TEXT, size INTEGER NOT NULL, truncated INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL,
    digest TEXT NOT NULL, raw INTEGER NOT NULL DEFAULT 0, via TEXT)`);
  old.exec('CREATE UNIQUE INDEX history_token_digest ON history (token, digest)');
  old.prepare("INSERT INTO history (token, kind, ctime, etime, action, source, size, data, digest) VALUES ('old', 'command', 1, 1, 'demo/echo', 'ui', 2, '{}', 'd')").run();
  old.close();
  const store = new SqliteHistoryStore(file);
  try {
    assert.equal('site' in (await store.query(parseHistoryQuery({ token: 'old' }))).rows[0]!, false);
    await store.appendFromSite('poller-1', { rows: [row({ token: 'old', digest: 'd' }), row({ token: 'new' })], position: 2, lag: 0 });
    assert.deepEqual((await store.query(parseHistoryQuery({ site: 'poller-1' }))).rows.map((r) => r.token), ['old', 'new']);
    assert.equal(await store.count(), 2);
    assert.equal((await store.siteSyncs())['poller-1']!.position, 2);
  } finally {
    await store.close();
  }
});

it('sqlite - a history written before the seal column opens with it added, its rows not sealed (protocol §11.1)', async () => {
  const file = join(dir, 'before-seal.db');
  const old = new Database(file);
  old.exec(`CREATE TABLE history (id INTEGER PRIMARY KEY, token TEXT NOT NULL, kind TEXT NOT NULL, code INTEGER, ctime INTEGER NOT NULL, etime INTEGER NOT NULL,
    action TEXT NOT NULL, source TEXT NOT NULL, target TEXT, progress REAL, priority TEXT, size INTEGER NOT NULL, truncated INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL,
    digest TEXT NOT NULL, raw INTEGER NOT NULL DEFAULT 0, via TEXT, site TEXT, sha256 TEXT)`);
  old.prepare("INSERT INTO history (token, kind, ctime, etime, action, source, size, data, digest) VALUES ('old', 'command', 1, 1, 'demo/echo', 'ui', 2, '{}', 'd')").run();
  old.close();
  const store = new SqliteHistoryStore(file);
  try {
    assert.equal('seal' in (await store.query(parseHistoryQuery({ token: 'old' }))).rows[0]!, false);
    const seal = { alg: SEAL_ALGORITHM, form: 'bytes' as const, epk: 'ZQ==', nonce: 'bg==', to: [{ kid: '0123456789abcdef', key: 'aw==' }] };
    await store.append([row({ token: 'new', data: 'AAE=', size: 2, sha256: 'a'.repeat(64), seal })]);
    assert.deepEqual((await store.query(parseHistoryQuery({ token: 'new' }))).rows[0]!.seal, seal);
  } finally {
    await store.close();
  }
});

it('sqlite - a page whose rows cannot be written leaves the position where it was (one transaction)', async () => {
  const file = join(dir, 'atomic-site.db');
  const store = new SqliteHistoryStore(file);
  try {
    await store.appendFromSite('poller-1', { rows: [row({ token: 'a' })], position: 1, lag: 0 });
    // A value SQLite cannot bind: the second row fails after the first was inserted, and the whole page goes back.
    const broken = { ...row({ token: 'b' }), data: {} as unknown as string };
    await assert.rejects(store.appendFromSite('poller-1', { rows: [row({ token: 'c' }), broken], position: 3, lag: 0 }));
    assert.equal((await store.siteSyncs())['poller-1']!.position, 1);
    assert.deepEqual((await store.query(parseHistoryQuery({ site: 'poller-1' }))).rows.map((r) => r.token), ['a']);
  } finally {
    await store.close();
  }
});
