/**
 * The router's stores are parameters (protocol §11): given stores (here the memory ones) take
 * the whole history and event stream, outlive the router that used them, and SQLite stays the
 * default for any store not given.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnknownTokenError, type Bus, type EventsPage, type HistoryPage } from '../../src/index.js';
import { parseHistoryQuery } from '../../src/protocol/history.js';
import { MemoryEventLog, MemoryHistoryStore, startRouter, type Router } from '../../src/router/index.js';
import { setup, testLogger, uniqueId, type Kit } from '../testkit/index.js';
import { untilRecorded } from './router-contract.js';

describe('router stores', { timeout: 60_000 }, () => {
  let kit: Kit;
  let dir: string;
  let client: Bus;
  const routers: Router[] = [];
  const start = async (options: Partial<Parameters<typeof startRouter>[0]>) => {
    const router = await startRouter({ broker: kit.broker.url, id: uniqueId('router'), logger: testLogger, ...options });
    routers.push(router);
    await client.waitForHandler('relais/history/get', { target: router.bus.id, timeout: 5000 });
    return router;
  };
  const stop = async (router: Router) => {
    await router.close();
    routers.splice(routers.indexOf(router), 1);
  };

  before(async () => {
    kit = await setup('aedes');
    dir = mkdtempSync(join(tmpdir(), 'relais-router-stores-'));
    const handler = await kit.connect(uniqueId('handler'));
    await handler.handle('test/steps', (_payload: unknown, ctx) => {
      ctx.progress(0.5);
      return { done: true };
    });
    client = await kit.connect(uniqueId('client'));
    await client.waitForHandler('test/steps');
  });
  after(async () => {
    for (const router of routers) await router.close();
    await kit?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores - a router given memory stores records into them, answers from them, and leaves them open for the next router', async () => {
    const historyStore = new MemoryHistoryStore();
    const eventLog = new MemoryEventLog();
    const first = await start({ historyStore, eventLog });
    assert.equal(first.historyStore, historyStore);
    assert.equal(first.eventLog, eventLog);
    const token = uniqueId('remembered');
    await client.request('test/steps', {}, { token });
    await untilRecorded(first, async () => (await historyStore.query(parseHistoryQuery({ token }))).rows.some((row) => row.kind === 'final'));
    const answered = (await client.request('relais/history/get', { token }, { target: first.bus.id })) as HistoryPage;
    assert.deepEqual(answered.rows.map((row) => row.kind), ['command', 'progress', 'final']);
    const events = (await client.request('relais/events/get', {}, { target: first.bus.id })) as EventsPage;
    const finished = events.events.find((event) => event.type === 'request.finished' && event.data.token === token);
    assert.ok(finished, 'the request.finished event is in the given event log');
    assert.deepEqual((await eventLog.page(finished.cursor - 1, 1)).events, [finished]);
    await assert.rejects(client.request('relais/requests/kill', { token: uniqueId('never-sent') }, { target: first.bus.id }), UnknownTokenError);
    await stop(first);

    // The stores are their giver's: still open, and a second router goes on with them.
    assert.equal(await historyStore.count(), 3);
    const second = await start({ historyStore, eventLog });
    const again = (await client.request('relais/history/get', { token }, { target: second.bus.id })) as HistoryPage;
    assert.deepEqual(again.rows, answered.rows);
    const next = uniqueId('next');
    await client.request('test/steps', {}, { token: next });
    await untilRecorded(second, async () => (await historyStore.query(parseHistoryQuery({ token: next }))).rows.length === 3);
    const later = (await client.request('relais/events/get', { since: finished.cursor }, { target: second.bus.id })) as EventsPage;
    assert.ok(later.events.some((event) => event.type === 'request.finished' && event.data.token === next));
    assert.equal(later.missed, undefined);
    await stop(second);
    await historyStore.close();
    await eventLog.close();
  });

  it('stores - a store not given is SQLite in the database directory, and closed with the router', async () => {
    const sub = join(dir, 'mixed');
    const eventLog = new MemoryEventLog();
    const router = await start({ database: join(sub, 'history.db'), eventLog });
    const token = uniqueId('mixed');
    await client.request('test/steps', {}, { token });
    await untilRecorded(router, async () => (await router.historyStore.query(parseHistoryQuery({ token }))).rows.some((row) => row.kind === 'final'));
    assert.deepEqual(readdirSync(sub).filter((name) => name.endsWith('.db')), ['history.db'], 'no events.db: the event log was given');
    await stop(router);
    await assert.rejects(router.historyStore.count(), /not open/, 'the SQLite store the router opened is closed with it');
    assert.equal((await eventLog.page(undefined, 1)).latest > 0, true, 'the given event log is not');
    await eventLog.close();
  });

  it('stores - without a database file, a router missing a store does not start, and says what it needs', async () => {
    await assert.rejects(startRouter({ broker: kit.broker.url, id: uniqueId('router'), logger: testLogger, historyStore: new MemoryHistoryStore() }), /database file, or both a historyStore and an eventLog/);
    assert.equal(existsSync(join(process.cwd(), 'events.db')), false);
  });
});
