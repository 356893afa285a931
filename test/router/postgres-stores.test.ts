/**
 * The PostgreSQL history and event log against a throw-away PostgreSQL server: the contracts
 * every store passes (two pools on one database for the shared cases), then what only a
 * server brings: it restarts under the store, a password in the URL, two routers creating the
 * tables at once.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parseHistoryQuery } from '../../src/protocol/history.js';
import type { EventLog } from '../../src/router/event-log.js';
import type { HistoryStore } from '../../src/router/history-store.js';
import { openPostgresStores, PostgresStoreError } from '../../src/router/postgres-stores.js';
import { redactStoreUrl } from '../../src/router/store-url.js';
import { recordingLogger, testLogger, within } from '../testkit/index.js';
import { findPostgresBin, freezableWay, postgresGate, startPostgres, type TestPostgres } from '../testkit/postgres.js';
import { eventLogContract } from './event-log-contract.js';
import { historyStoreContract, row } from './history-store-contract.js';

const gate = postgresGate('the PostgreSQL stores');
let server: TestPostgres;
if (gate.run) {
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.close();
  });
}

/** Each store's database, to open another pool on it (a second router) or the same again (a restart). */
const urls = new WeakMap<object, string>();

async function openHistory(url: string, now: () => number): Promise<HistoryStore> {
  const { historyStore, eventLog } = await openPostgresStores(url, { logger: testLogger, now });
  await eventLog.close();
  urls.set(historyStore, url);
  return historyStore;
}

async function openEvents(url: string, now: () => number): Promise<EventLog> {
  const { historyStore, eventLog } = await openPostgresStores(url, { logger: testLogger, now });
  await historyStore.close();
  urls.set(eventLog, url);
  return eventLog;
}

if (gate.run) {
  historyStoreContract('PostgreSQL', {
    open: async (now) => openHistory(await server.createDatabase(), now),
    reopen: async (store, now) => {
      await store.close();
      return openHistory(urls.get(store)!, now);
    },
    openSecond: (first, now) => openHistory(urls.get(first)!, now),
  });

  eventLogContract('PostgreSQL', {
    open: async (now) => openEvents(await server.createDatabase(), now),
    reopen: async (log, now) => {
      await log.close();
      return openEvents(urls.get(log)!, now);
    },
    openSecond: (first, now) => openEvents(urls.get(first)!, now),
  });
}

describe('postgres stores - a server that goes away and comes back', { skip: gate.skip, timeout: 120_000 }, () => {
  it('postgres - while PostgreSQL is down calls reject naming the store, then work again on the same stores once it is back, with no unhandled error', async () => {
    const { logger, records } = recordingLogger();
    const stores = await openPostgresStores(await server.createDatabase(), { logger });
    const unhandled: unknown[] = [];
    const onUnhandled = (error: unknown) => unhandled.push(error);
    process.on('uncaughtException', onUnhandled);
    process.on('unhandledRejection', onUnhandled);
    try {
      await stores.historyStore.append([row({ token: 'before' })]);
      await stores.eventLog.append([{ type: 'notification', data: { n: 1 } }]);
      // Several connections idle in the pool when the server goes: each sees its socket close.
      await Promise.all(Array.from({ length: 4 }, () => stores.historyStore.count()));
      await server.stop();
      await assert.rejects(stores.historyStore.append([row({ token: 'during' })]), (error: Error) => {
        assert.ok(error instanceof PostgresStoreError, `a PostgresStoreError, not ${error.name}: ${error.message}`);
        assert.match(error.message, /PostgreSQL history store: append failed on postgres:\/\/postgres@\/relais_test_\d+\?host=/);
        return true;
      });
      await assert.rejects(stores.eventLog.page(0, 10), /PostgreSQL event log: page failed/);
      await assert.rejects(stores.historyStore.query(parseHistoryQuery({})), /PostgreSQL history store: query failed/);
      await server.start();
      assert.equal((await stores.historyStore.append([row({ token: 'after' })])).length, 1, 'the first append once the server is back works');
      assert.deepEqual((await stores.historyStore.query(parseHistoryQuery({}))).rows.map((stored) => stored.token), ['before', 'after']);
      assert.deepEqual((await stores.eventLog.append([{ type: 'notification', data: { n: 2 } }])).map((stored) => stored.cursor), [2]);
      assert.deepEqual(unhandled, []);
      const warnings = records().filter((record) => record.level === 40);
      assert.equal(warnings.length, 1, `the outage is logged once: ${JSON.stringify(warnings)}`);
    } finally {
      process.off('uncaughtException', onUnhandled);
      process.off('unhandledRejection', onUnhandled);
      await stores.close();
    }
  });

  it('postgres - a router cut off in the middle of an append: its call fails within its time-out naming why, the others append meanwhile (the server ends its transaction), and it appends again once back', async () => {
    const url = await server.createDatabase();
    const way = await freezableWay(server, url);
    const cutOff = await openPostgresStores(way.url, { logger: testLogger, statementTimeoutMs: 1000 });
    const other = await openPostgresStores(url, { logger: testLogger });
    try {
      await cutOff.historyStore.append([row({ token: 'before' })]);
      // The append's transaction holds the history's counter row when its COMMIT is lost.
      const frozen = way.freezeAt('COMMIT');
      const during = cutOff.historyStore.append([row({ token: 'during' })]);
      const failed = assert.rejects(during, (error: Error) => {
        assert.ok(error instanceof PostgresStoreError, `a PostgresStoreError, not ${error.name}: ${error.message}`);
        assert.match(error.message, /PostgreSQL history store: append failed on postgres:\/\/postgres@\/relais_test_\d+\?host=.*: the server did not answer within 6000 ms/);
        return true;
      });
      await within(frozen, 10_000, 'the COMMIT held');
      // Another router's append waits for that lock: the server ends the silent transaction for it.
      assert.equal((await within(other.historyStore.append([row({ token: 'other' })]), 25_000, "the other router's append")).length, 1);
      assert.ok(way.frozen, 'the other router appended while the first was still cut off');
      await within(failed, 20_000, "the cut-off router's call to fail");
      way.thaw();
      assert.equal((await cutOff.historyStore.append([row({ token: 'after' })])).length, 1, 'the next append works');
      assert.deepEqual((await other.historyStore.query(parseHistoryQuery({}))).rows.map((stored) => stored.token), ['before', 'other', 'after']);
    } finally {
      way.thaw();
      await cutOff.close();
      await other.close();
      await way.close();
    }
  });

  it('postgres - connections that died idle in the pool, their close not yet read, do not fail the next call', async () => {
    const url = await server.createDatabase();
    const stores = await openPostgresStores(url, { logger: testLogger });
    try {
      await Promise.all(Array.from({ length: 4 }, () => stores.historyStore.count()));
      // Synchronous: this process reads none of its sockets until the connections are gone, as a
      // router busy elsewhere when PostgreSQL dropped them (a restart, a fail-over).
      execFileSync(path.join(findPostgresBin()!, 'psql'), [url, '-Atc', "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE application_name = 'relais-router'"]);
      assert.equal((await stores.historyStore.append([row({ token: 'next' })])).length, 1);
      assert.equal(await stores.historyStore.count(), 1);
    } finally {
      await stores.close();
    }
  });

  it('postgres - a password in the URL appears in no error and no log line, the URL does, masked', async () => {
    const password = 'hunter2-very-secret';
    const url = await server.createDatabase({ password });
    assert.equal(redactStoreUrl(`${url}&password=${password}&sslmode=disable`).includes(password), false);
    const { logger, lines } = recordingLogger();
    const stores = await openPostgresStores(url, { logger });
    try {
      await server.stop();
      const error = await stores.historyStore.append([row()]).then(
        () => assert.fail('the append should have failed'),
        (failed: Error) => failed,
      );
      assert.match(error.message, /postgres:\/\/postgres:\*\*\*@\//);
      assert.equal(error.message.includes(password), false, error.message);
      assert.equal(JSON.stringify(error).includes(password), false);
      const missing = url.replace(/relais_test_\d+/, 'no_such_database');
      await server.start();
      const refused = await openPostgresStores(missing, { logger }).then(
        () => assert.fail('opening a database that does not exist should fail'),
        (failed: Error) => failed,
      );
      assert.match(refused.message, /no_such_database/);
      assert.equal(refused.message.includes(password), false, refused.message);
      assert.equal(lines.join('').includes(password), false);
    } finally {
      await server.start();
      await stores.close();
    }
  });
});

describe('postgres stores - the tables', { skip: gate.skip, timeout: 120_000 }, () => {
  it('postgres - several routers opening a new database at once all succeed and share the tables', async () => {
    const url = await server.createDatabase();
    const all = await Promise.all(Array.from({ length: 4 }, () => openPostgresStores(url, { logger: testLogger })));
    try {
      await Promise.all(all.map((stores, i) => stores.historyStore.append([row({ token: `router${i}` })])));
      assert.equal(await all[0]!.historyStore.count(), 4);
    } finally {
      await Promise.all(all.map((stores) => stores.close()));
    }
  });

  it('postgres - tables written by a newer Relais are refused, naming both versions', async () => {
    const url = await server.createDatabase();
    await (await openPostgresStores(url, { logger: testLogger })).close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("UPDATE relais_schema SET version = 99 WHERE name = 'relais'");
    await client.end();
    await assert.rejects(openPostgresStores(url, { logger: testLogger }), /version 99, written by a newer Relais; this one reads version 1/);
  });

  it('postgres - a U+0000 or a lone surrogate in a row (which PostgreSQL text cannot hold) is stored as U+FFFD instead of failing the batch, and still recognised as a repeat', async () => {
    const stores = await openPostgresStores(await server.createDatabase(), { logger: testLogger });
    try {
      const odd = row({ token: 'nul\u0000token', source: 'site\u0000x', target: 'lone\ud800', data: '"\u0000"' });
      const [stored] = await within(stores.historyStore.append([odd, row({ token: 'plain' })]), 10_000, 'the append');
      assert.equal(stored!.token, 'nul\uFFFDtoken');
      assert.equal((await stores.historyStore.query(parseHistoryQuery({ token: 'nul\u0000token' }))).rows.length, 1);
      assert.equal((await stores.historyStore.append([odd])).length, 0);
      assert.equal(await stores.historyStore.count(), 2);
    } finally {
      await stores.close();
    }
  });
});
