/**
 * The key-value store over HTTP (docs/http-api.md "Key-value store", protocol §14) with security
 * on, as each role of the default policy: no identity 401; an identity the policy's kv rules do
 * not let read or write a key 403; allowed 200. Compare-and-set over HTTP (409 with the current
 * revision), bytes as {"$base64"}, and the watch as Server-Sent Events resumed by revision. A
 * real embedded broker, router and web server in this process, real sockets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { defaultPolicy } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { testLogger } from '../testkit/index.js';
import { http, openStream, tempDir } from './web-kit.js';

describe('key-value routes with security on, per role', { timeout: 90_000 }, () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let router: Router;
  let web: WebServer;
  let base: string;
  const tokens = new Map<string, string>();
  const logs: string[] = [];
  const as = (name: string) => ({ authorization: `Bearer ${name}:${tokens.get(name)}` });
  const entry = (bucket: string, key: string) => `${base}/api/kv/${bucket}/entries/${key}`;

  before(async () => {
    dir = tempDir('kv');
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    for (const [name, roles] of [['root', ['admin']], ['svc', ['service']], ['alice', ['client']], ['olga', ['observer']]] as const) tokens.set(name, (await store.add(name, [...roles])).token);
    const security = { identities: store, policy: defaultPolicy() };
    broker = await startEmbeddedBroker({ port: 0, security, log: (line) => logs.push(line) });
    // As relais start --secure runs it: the router decides for the identity the API names (onBehalfOf).
    const access = { identities: path.join(dir, 'identities.json'), delegates: ['relais-web'] };
    router = await startRouter({ stream: () => broker.connectInProcess(), database: path.join(dir, 'history.db'), access, logger: testLogger });
    web = await startWebServer({ broker, port: 0, security, log: (line) => logs.push(line), logger: testLogger });
    base = web.url.replace(/\/$/, '');
    const seeded = await http('PUT', entry('settings', 'theme'), { body: { value: { dark: true } }, headers: as('root') });
    assert.equal(seeded.status, 200, seeded.text);
  });

  after(async () => {
    await web?.close();
    await router?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('no identity: 401 on every kv route', async () => {
    for (const [method, url] of [['GET', `${base}/api/kv`], ['GET', `${base}/api/kv/settings/keys`], ['GET', entry('settings', 'theme')], ['PUT', entry('settings', 'theme')], ['DELETE', entry('settings', 'theme')], ['GET', `${base}/api/kv/settings/history/theme`]] as const) {
      const answer = await http(method, url, method === 'PUT' ? { body: { value: 1 } } : {});
      assert.equal(answer.status, 401, `${method} ${url}: ${answer.text}`);
    }
  });

  it('admin: writes any bucket and any client\'s configuration, reads them back with revision and author', async () => {
    const put = await http('PUT', entry('config', 'alice'), { body: { value: { level: 2 } }, headers: as('root') });
    assert.equal(put.status, 200, put.text);
    const got = await http('GET', entry('config', 'alice'), { headers: as('root') });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual([got.body.value, got.body.revision, got.body.author, got.body.operation], [{ level: 2 }, put.body.revision, 'root', 'put']);
    assert.equal((await http('GET', `${base}/api/kv`, { headers: as('root') })).status, 200);
  });

  it('client: reads and writes its own configuration, reads shared buckets; another\'s configuration and shared writes are 403', async () => {
    const own = await http('PUT', entry('config', 'alice'), { body: { value: { level: 3 } }, headers: as('alice') });
    assert.equal(own.status, 200, own.text);
    assert.equal((await http('GET', entry('config', 'alice'), { headers: as('alice') })).body.author, 'alice');
    const shared = await http('GET', entry('settings', 'theme'), { headers: as('alice') });
    assert.equal(shared.status, 200, shared.text);
    assert.deepEqual(shared.body.value, { dark: true });
    const other = await http('GET', entry('config', 'svc'), { headers: as('alice') });
    assert.equal(other.status, 403, other.text);
    assert.equal(other.body.error.code, 'forbidden');
    const write = await http('PUT', entry('settings', 'theme'), { body: { value: { dark: false } }, headers: as('alice') });
    assert.equal(write.status, 403, write.text);
    assert.deepEqual((await http('GET', entry('settings', 'theme'), { headers: as('root') })).body.value, { dark: true }, 'the refused write changed nothing');
  });

  it('service: its own configuration like a client; shared buckets read-only', async () => {
    assert.equal((await http('PUT', entry('config', 'svc'), { body: { value: { workers: 4 } }, headers: as('svc') })).status, 200);
    assert.equal((await http('GET', entry('settings', 'theme'), { headers: as('svc') })).status, 200);
    assert.equal((await http('DELETE', entry('settings', 'theme'), { headers: as('svc') })).status, 403);
  });

  it('observer: reads shared buckets, their keys and history; every write 403; configurations 403', async () => {
    assert.equal((await http('GET', entry('settings', 'theme'), { headers: as('olga') })).status, 200);
    const keys = await http('GET', `${base}/api/kv/settings/keys`, { headers: as('olga') });
    assert.equal(keys.status, 200, keys.text);
    assert.ok(keys.body.keys.includes('theme'));
    assert.equal((await http('GET', `${base}/api/kv/settings/history/theme`, { headers: as('olga') })).status, 200);
    assert.equal((await http('PUT', entry('settings', 'theme'), { body: { value: 1 }, headers: as('olga') })).status, 403);
    assert.equal((await http('DELETE', entry('settings', 'theme'), { headers: as('olga') })).status, 403);
    assert.equal((await http('GET', entry('config', 'alice'), { headers: as('olga') })).status, 403);
  });

  it('compare-and-set: 409 revision_conflict with the current revision in details; 0 creates only; a stale delete 409 too', async () => {
    const first = await http('PUT', entry('settings', 'cas/a'), { body: { value: 1 }, headers: as('root') });
    const second = await http('PUT', entry('settings', 'cas/a'), { body: { value: 2, expectRevision: first.body.revision }, headers: as('root') });
    assert.equal(second.status, 200, second.text);
    const stale = await http('PUT', entry('settings', 'cas/a'), { body: { value: 3, expectRevision: first.body.revision }, headers: as('root') });
    assert.equal(stale.status, 409, stale.text);
    assert.equal(stale.body.error.code, 'revision_conflict');
    assert.deepEqual([stale.body.error.details.expectedRevision, stale.body.error.details.currentRevision], [first.body.revision, second.body.revision]);
    assert.equal((await http('PUT', entry('settings', 'cas/a'), { body: { value: 0, expectRevision: 0 }, headers: as('root') })).status, 409);
    assert.equal((await http('DELETE', `${entry('settings', 'cas/a')}?expectRevision=${first.body.revision}`, { headers: as('root') })).status, 409);
    const deleted = await http('DELETE', `${entry('settings', 'cas/a')}?expectRevision=${second.body.revision}`, { headers: as('root') });
    assert.equal(deleted.status, 200, deleted.text);
    const gone = await http('GET', entry('settings', 'cas/a'), { headers: as('root') });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'key_not_found');
    const history = await http('GET', `${base}/api/kv/settings/history/cas/a`, { headers: as('root') });
    assert.deepEqual(history.body.entries.map((e: { operation: string }) => e.operation), ['put', 'put', 'delete']);
  });

  it('bytes travel as {"$base64"} and come back the same, marked bytes', async () => {
    const bytes = Buffer.from([0, 1, 2, 0x0a, 0xff, 0xfe]);
    assert.equal((await http('PUT', entry('files', 'raw.bin'), { body: { value: { $base64: bytes.toString('base64') } }, headers: as('root') })).status, 200);
    const got = await http('GET', entry('files', 'raw.bin'), { headers: as('root') });
    assert.equal(got.body.bytes, true);
    assert.ok(Buffer.from(got.body.value.$base64, 'base64').equals(bytes));
  });

  it('a value over the bucket\'s limit: 413 value_too_large with its size and the limit, nothing written', async () => {
    const big = await http('PUT', entry('settings', 'big'), { body: { value: 'x'.repeat(70 * 1024) }, headers: as('root') });
    assert.equal(big.status, 413, big.text);
    assert.equal(big.body.error.code, 'value_too_large');
    assert.equal(big.body.error.details.max, 64 * 1024);
    assert.equal((await http('GET', entry('settings', 'big'), { headers: as('root') })).status, 404);
  });

  it('bad input: 400 naming the field (a bucket name, a body without value, a bad revision)', async () => {
    const name = await http('GET', `${base}/api/kv/no%20spaces/keys`, { headers: as('root') });
    assert.equal(name.status, 400, name.text);
    assert.match(name.body.error.message, /^path\.bucket: /);
    const body = await http('PUT', entry('settings', 'x'), { body: { expectRevision: 1 }, headers: as('root') });
    assert.equal(body.status, 400);
    assert.match(body.body.error.message, /^body\.value: /);
    const revision = await http('GET', `${entry('settings', 'theme')}?revision=abc`, { headers: as('root') });
    assert.equal(revision.status, 400);
  });

  it('watch: the current values, "uptodate", then live changes with id = revision; Last-Event-ID resumes after it, without a duplicate', async () => {
    const live = await openStream(`${base}/api/kv/watched/watch`, as('olga'));
    let seen: number;
    try {
      assert.equal(live.response.status, 200);
      await live.until((messages) => messages.some((m) => m.event === 'uptodate'));
      const put = await http('PUT', entry('watched', 'k1'), { body: { value: 'one' }, headers: as('root') });
      await live.until((messages) => messages.some((m) => m.id === String(put.body.revision)));
      const message = live.messages.find((m) => m.id === String(put.body.revision))!;
      assert.deepEqual([message.data.key, message.data.value, message.data.operation], ['k1', 'one', 'put']);
      seen = put.body.revision;
    } finally {
      await live.close();
    }
    const later = await http('PUT', entry('watched', 'k2'), { body: { value: 'two' }, headers: as('root') });
    const resumed = await openStream(`${base}/api/kv/watched/watch`, { ...as('olga'), 'last-event-id': String(seen) });
    try {
      await resumed.until((messages) => messages.some((m) => m.id === String(later.body.revision)));
      assert.deepEqual(resumed.messages.filter((m) => m.id !== undefined).map((m) => m.data.key), ['k2']);
    } finally {
      await resumed.close();
    }
    assert.equal((await http('GET', `${base}/api/kv/watched/watch`, { headers: { accept: 'text/event-stream' } })).status, 401);
  });

  it("watch: a client watching the config bucket gets its own configuration, not another's (the router judges the caller, not the API)", async () => {
    assert.equal((await http('PUT', entry('config', 'svc'), { body: { value: { secret: 'x' } }, headers: as('root') })).status, 200);
    assert.equal((await http('PUT', entry('config', 'alice'), { body: { value: { mine: true } }, headers: as('root') })).status, 200);
    const stream = await openStream(`${base}/api/kv/config/watch`, as('alice'));
    try {
      await stream.until((messages) => messages.some((m) => m.event === 'uptodate'));
      assert.deepEqual(stream.messages.filter((m) => m.id !== undefined).map((m) => m.data.key), ['alice']);
    } finally {
      await stream.close();
    }
  });

  it('the OpenAPI document describes the kv routes, PUT and DELETE included', async () => {
    const doc = (await http('GET', `${base}/api/openapi.json`)).body;
    const paths = doc.paths['/api/kv/{bucket}/entries/{key}'];
    assert.deepEqual(Object.keys(paths).sort(), ['delete', 'get', 'put']);
    assert.ok(paths.put.responses['409']);
    assert.ok(doc.paths['/api/kv/{bucket}/watch'].get);
  });
});
