/**
 * The registry's pages (protocol §11.3) on a real `relais start` (broker, router, web server in
 * one process) holding more clients than one answer can carry: thousands of retained presences
 * published by one raw MQTT connection. The pages list every client once, an answer without
 * `limit` fills one message and says `next`, bad paging fields are code 2, and the readers a
 * user has (`relais clients`, GET /api/clients, the Python client's `clients()`) get every client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, InvalidMessageError, type Bus, type ClientDetailPayload, type ClientListPayload } from '../../src/index.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../src/protocol/envelope.js';
import { runCli, startRelais, type RelaisStart } from '../testkit/cli.js';
import { testLogger, uniqueId, within } from '../testkit/index.js';
import { pythonGate, startPythonPeer, stopPythonPeers } from '../testkit/python.js';
import { http, pollUntil } from '../web/web-kit.js';
import { presenceBody, rawClient } from './registry-kit.js';

/** Enough idle clients that the list (~190 bytes an entry here) outgrows 1 MiB, and the details need three pages. */
const IDLE_CLIENTS = 6000;
const idleId = (n: number) => `paged-client-${String(n).padStart(5, '0')}`;

describe('registry pages on relais start', { timeout: 120_000 }, () => {
  let start: RelaisStart;
  let asker: Bus;
  let base: string;
  const env = { RELAIS_LOG_LEVEL: 'error' };

  before(async () => {
    start = await startRelais([], { env });
    base = start.webUrl!.replace(/\/$/, '');
    const publisher = await rawClient(start.url, { clientId: uniqueId('presences') });
    const since = Date.now();
    // QoS 0, not awaited one by one; the QoS 1 publish after them is acknowledged once the broker has them all (one connection keeps order).
    for (let n = 0; n < IDLE_CLIENTS; n += 1) {
      const id = idleId(n);
      publisher.publish(`relais/presence/${id}`, presenceBody(id, { host: 'host-of-a-paged-client.example.internal', pid: 10_000 + n, status: 'alive', actions: [], realtimeActions: [], since, seq: 1, version: '1.2.3' }), { qos: 0, retain: true });
    }
    await publisher.publishAsync('relais/presence/paged-client-last', presenceBody('paged-client-last', { status: 'alive', actions: [], realtimeActions: [], since, seq: 1 }), { qos: 1, retain: true });
    publisher.end(true);
    asker = await connect({ id: uniqueId('pages-asker'), broker: start.url, logger: testLogger });
    await pollUntil(
      () => asker.request<ClientListPayload>('relais/clients/list/get', { limit: 1 }),
      (page) => (page.total ?? 0) > IDLE_CLIENTS,
      `the registry holding the ${IDLE_CLIENTS} presences`,
      30_000,
    );
  });

  after(async () => {
    await stopPythonPeers();
    await asker?.close();
    await start?.close();
  });

  /** Every page from `first`, following `next`: the ids in order of arrival, and the last answer. */
  const readPages = async <T extends ClientListPayload | ClientDetailPayload>(action: string, limit?: number) => {
    const ids: string[] = [];
    const pages: T[] = [];
    let afterId: string | undefined;
    do {
      const page = await asker.request<T>(action, { ...(afterId !== undefined && { after: afterId }), ...(limit !== undefined && { limit }) }, { timeout: 10_000 });
      pages.push(page);
      ids.push(...Object.keys(page.clients));
      if (limit !== undefined) assert.ok(Object.keys(page.clients).length <= limit, `a page of at most ${limit}`);
      afterId = page.next;
      assert.ok(pages.length < 100, 'the pages end');
    } while (afterId !== undefined);
    return { ids, pages };
  };

  const assertEveryClientOnce = (ids: string[], pages: Array<{ total?: number; next?: string; clients: Record<string, unknown> }>) => {
    assert.equal(new Set(ids).size, ids.length, 'no client twice');
    for (let n = 0; n < IDLE_CLIENTS; n += 1) assert.ok(ids.includes(idleId(n)) || assert.fail(`${idleId(n)} missing`));
    assert.ok(ids.includes('paged-client-last') && ids.includes(asker.id), 'the last presence and the asker listed');
    assert.equal(pages.at(-1)!.next, undefined, 'no next on the last page');
    for (const page of pages) assert.equal(page.total, ids.length, 'total: the clients the registry holds');
    // Each page's next is its last id in code-unit order, and the following page starts after it.
    for (const [index, page] of pages.slice(0, -1).entries()) {
      const pageIds = Object.keys(page.clients).sort();
      assert.equal(page.next, pageIds.at(-1));
      assert.ok(Object.keys(pages[index + 1]!.clients).every((id) => id > page.next!), `the page after ${page.next} starts after it`);
    }
  };

  it('pages - list/get with limit: the pages together list every client exactly once, total right, no next at the end', async () => {
    const { ids, pages } = await readPages<ClientListPayload>('relais/clients/list/get', 700);
    assertEveryClientOnce(ids, pages);
    assert.equal(pages.length, Math.ceil(ids.length / 700));
  });

  it('pages - detail/get without limit: as many as fit, then next; every client once', async () => {
    const { ids, pages } = await readPages<ClientDetailPayload>('relais/clients/detail/get');
    assertEveryClientOnce(ids, pages);
    assert.ok(pages.length >= 2, `several pages (${pages.length})`);
    assert.deepEqual(pages[0]!.clients[idleId(0)]?.info, { version: '1.2.3' });
    assert.equal(pages[0]!.clients[idleId(0)]?.version, '1.2.3');
  });

  it('pages - an answer without limit fills one message under the 1 MiB limit and says next, total larger than what it holds', async () => {
    // Raw, to measure the message as the broker carries it.
    const raw = await rawClient(start.url, { clientId: uniqueId('measure') });
    try {
      const responseTopic = `relais/clients/list/get/response/${raw.options.clientId}`;
      await raw.subscribeAsync(responseTopic, { qos: 1 });
      const answered = new Promise<Buffer>((resolve) => raw.on('message', (_topic, body) => resolve(body)));
      const command = { v: 1, type: 'command', source: raw.options.clientId, destination: '*', token: 'page-size', payload: {}, deadline: Date.now() + 10_000 };
      await raw.publishAsync('relais/clients/list/get/request', JSON.stringify(command), { qos: 1 });
      const body = await within(answered, 10_000, 'the list answer');
      const answer = JSON.parse(body.toString()) as { code: number; payload: ClientListPayload };
      assert.equal(answer.code, 0, body.toString().slice(0, 300));
      assert.ok(body.length <= DEFAULT_MAX_MESSAGE_BYTES, `${body.length} bytes, within the limit`);
      assert.ok(body.length >= DEFAULT_MAX_MESSAGE_BYTES - 16 * 1024, `${body.length} bytes: the page is filled, not cut at a guessed count`);
      const held = Object.keys(answer.payload.clients).length;
      assert.ok(answer.payload.next, 'next: more follow');
      assert.ok(answer.payload.total! > held, `total ${answer.payload.total} larger than the ${held} it holds`);
    } finally {
      raw.end(true);
    }
  });

  it('pages - the list notification past one message is the first page: within the limit, with total and next', async () => {
    let resolveListed!: (list: ClientListPayload) => void;
    const listed = new Promise<ClientListPayload>((resolve) => (resolveListed = resolve));
    const subscription = await asker.subscribe('relais/clients/list/notification', (message) => resolveListed(message.envelope.payload as ClientListPayload));
    // A client arriving is a change: the registry publishes its list.
    const arriving = await connect({ id: uniqueId('pages-arriving'), broker: start.url, logger: testLogger, ephemeral: true });
    try {
      const list = await within(listed, 15_000, 'a list notification after a client arrived');
      const held = Object.keys(list.clients).length;
      assert.ok(list.next, `next: more follow (${held} held)`);
      assert.ok(list.total! > IDLE_CLIENTS && list.total! > held, `total ${list.total} larger than the ${held} it holds`);
      assert.equal(list.next, Object.keys(list.clients).sort().at(-1), 'next is its last id');
    } finally {
      await subscription.unsubscribe();
      await arriving.close();
    }
  });

  it('pages - a bad after or limit is code 2 naming the field; after past the last id is an empty last page', async () => {
    const refused = (action: string, payload: unknown, field: string) =>
      assert.rejects(asker.request(action, payload), (error: Error) => error instanceof InvalidMessageError && new RegExp(`field '${field}'`).test(error.message), `${JSON.stringify(payload)} refused naming ${field}`);
    await refused('relais/clients/list/get', { limit: 0 }, 'limit');
    await refused('relais/clients/list/get', { limit: 1001 }, 'limit');
    await refused('relais/clients/list/get', { limit: 2.5 }, 'limit');
    await refused('relais/clients/list/get', { limit: '10' }, 'limit');
    await refused('relais/clients/detail/get', { after: 'not an id' }, 'after');
    await refused('relais/clients/detail/get', { after: 7 }, 'after');
    await refused('relais/clients/detail/get', { id: idleId(1), limit: 5 }, 'id');
    const end = await asker.request<ClientListPayload>('relais/clients/list/get', { after: 'zzzz' });
    assert.deepEqual([Object.keys(end.clients).length, end.next, end.total! > IDLE_CLIENTS], [0, undefined, true]);
    const one = await asker.request<ClientDetailPayload>('relais/clients/detail/get', { id: idleId(3) });
    assert.deepEqual(Object.keys(one.clients), [idleId(3)], 'detail/get with id as before');
  });

  it('pages - relais clients (the CLI) lists every client', async () => {
    const result = await runCli(['clients', '--broker', start.url], env);
    assert.equal(result.code, 0, result.stderr);
    const ids = result.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { id: string }).id);
    assert.equal(new Set(ids).size, ids.length, 'no client twice');
    for (let n = 0; n < IDLE_CLIENTS; n += 1) assert.ok(ids.includes(idleId(n)) || assert.fail(`${idleId(n)} missing from relais clients`));
  });

  it('pages - GET /api/clients: the first page with next and total, ?after= follows it, ?limit= bounds it, bad ones 400', async () => {
    const first = await http('GET', `${base}/api/clients`);
    assert.equal(first.status, 200, first.text);
    assert.ok(first.body.next && first.body.total > Object.keys(first.body.clients).length, 'the first page says next and total');
    const ids = Object.keys(first.body.clients);
    let next: string | undefined = first.body.next;
    while (next !== undefined) {
      const page = await http('GET', `${base}/api/clients?after=${encodeURIComponent(next)}&limit=1000`);
      assert.equal(page.status, 200, page.text);
      assert.ok(Object.keys(page.body.clients).length <= 1000, `a page of at most 1000 (${Object.keys(page.body.clients).length})`);
      ids.push(...Object.keys(page.body.clients));
      assert.ok(page.body.next === undefined || page.body.next > next, `next moves on from ${next}`);
      next = page.body.next;
    }
    assert.equal(new Set(ids).size, ids.length, 'no client twice');
    assert.equal(ids.length, first.body.total);
    for (let n = 0; n < IDLE_CLIENTS; n += 1) assert.ok(ids.includes(idleId(n)) || assert.fail(`${idleId(n)} missing from GET /api/clients`));
    const badLimit = await http('GET', `${base}/api/clients?limit=0`);
    assert.equal(badLimit.status, 400);
    assert.match(badLimit.body.error.message, /limit/);
    const badAfter = await http('GET', `${base}/api/clients?after=${encodeURIComponent('no spaces')}`);
    assert.equal(badAfter.status, 400);
    assert.match(badAfter.body.error.message, /after/);
  });

  it('pages - the Python client\'s clients() reads every page', { skip: pythonGate('the Python registry reader').skip }, async () => {
    const peer = await startPythonPeer({ id: uniqueId('py-pages'), broker: start.url });
    const answer = (await peer.send('clients')) as { revision: number; total: number; clients: Record<string, unknown> };
    const ids = Object.keys(answer.clients);
    assert.equal(ids.length, answer.total, 'as many as the registry holds');
    for (let n = 0; n < IDLE_CLIENTS; n += 1) assert.ok(idleId(n) in answer.clients || assert.fail(`${idleId(n)} missing from clients()`));
    assert.equal(typeof answer.revision, 'number');
  });
});
