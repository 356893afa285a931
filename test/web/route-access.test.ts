/**
 * No route of the web server can forget to be authorised (docs/http-api.md "Authentication and
 * authorisation"): the server refuses to register a route that does not say what it touches,
 * and every route it serves, walked from what Fastify registered (HEAD ones included), is
 * either open (and answers without an identity), the broker's (`/mqtt`), or acts on the bus for
 * its caller; each of the latter answers 403 to an identity the policy allows nothing, and 401
 * to no identity. A real embedded broker and web server in this process, real sockets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import type { SecuritySettings } from '../../src/security/authorizer.js';
import { defaultPolicy } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { requireDeclaredAccess } from '../../src/web/route-access.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { testLogger } from '../testkit/index.js';
import { http, tempDir } from './web-kit.js';

/**
 * A request for each route that acts on the bus, valid enough to reach the decision (a route
 * added without one here fails the walk: give it one, and it is checked like the others).
 */
const SAMPLES: Record<string, { path: string; body?: unknown; headers?: Record<string, string> }> = {
  'POST /api/actions/*': { path: '/api/actions/demo/echo', body: { n: 1 } },
  'GET /api/history': { path: '/api/history' },
  'GET /api/history/:token': { path: '/api/history/t1' },
  'GET /api/clients': { path: '/api/clients' },
  'GET /api/clients/:id': { path: '/api/clients/svc' },
  'GET /api/events': { path: '/api/events?since=0' },
  'GET /api/events/stream': { path: '/api/events/stream', headers: { accept: 'text/event-stream' } },
  'POST /api/kill/:token': { path: '/api/kill/t1', body: {} },
  'POST /api/core/action/command': { path: '/api/core/action/command', body: [{ command: 'true' }] },
  'POST /api/nodes/:id/core/action/command': { path: '/api/nodes/vm-1/core/action/command', body: [{ command: 'true' }] },
  'GET /api/log/:token': { path: '/api/log/t1' },
  'GET /api/nodes/:id/log/:token': { path: '/api/nodes/vm-1/log/t1' },
  'GET /api/kv': { path: '/api/kv' },
  'GET /api/kv/:bucket/keys': { path: '/api/kv/settings/keys' },
  'GET /api/kv/:bucket/entries/*': { path: '/api/kv/settings/entries/rooms/kitchen' },
  'PUT /api/kv/:bucket/entries/*': { path: '/api/kv/settings/entries/rooms/kitchen', body: { value: 1 } },
  'DELETE /api/kv/:bucket/entries/*': { path: '/api/kv/settings/entries/rooms/kitchen' },
  'GET /api/kv/:bucket/history/*': { path: '/api/kv/settings/history/rooms/kitchen' },
  'GET /api/kv/:bucket/watch': { path: '/api/kv/settings/watch', headers: { accept: 'text/event-stream' } },
};

describe('every route of the web server says what it touches, and is decided on it', { timeout: 60_000 }, () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let web: WebServer;
  let base: string;
  let token: string;

  before(async () => {
    dir = tempDir('route-access');
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    // An identity with no role: the policy lets it publish its presence, and nothing a route acts on.
    token = (await store.add('nobody', [])).token;
    const security: SecuritySettings = { identities: store, policy: defaultPolicy() };
    broker = await startEmbeddedBroker({ port: 0, security, log: () => {} });
    const pageDir = path.join(dir, 'page');
    fs.mkdirSync(pageDir);
    fs.writeFileSync(path.join(pageDir, 'index.html'), '<!doctype html><title>Relais</title>');
    web = await startWebServer({ broker, port: 0, security, pageDir, log: () => {}, logger: testLogger });
    base = web.url.replace(/\/$/, '');
  });
  after(async () => {
    await web?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a route registered without saying what it touches is refused, with the way to say it', () => {
    const app = Fastify();
    const routes = requireDeclaredAccess(app);
    assert.throws(() => app.get('/api/forgotten', async () => 'open to all'), /route GET \/api\/forgotten does not declare what it touches/);
    app.get('/api/declared', { config: { access: { open: 'a test route' } } }, async () => 'ok');
    assert.deepEqual(routes.map(({ method, url }) => `${method} ${url}`), ['GET /api/declared', 'HEAD /api/declared']);
  });

  it('every route is open, the broker\'s, or acts on the bus; each acting one has a sample, and the API\'s routes are all acting ones', () => {
    assert.ok(web.routes.length > 0);
    const unknown: string[] = [];
    for (const { method, url, access } of web.routes) {
      if ('acts' in access) {
        if (!SAMPLES[`${method === 'HEAD' ? 'GET' : method} ${url}`]) unknown.push(`${method} ${url}`);
      } else if ('broker' in access) {
        assert.equal(url, '/mqtt', `only /mqtt is the broker's: ${method} ${url}`);
      } else {
        assert.ok('open' in access && access.open.length > 0, `${method} ${url}`);
        assert.ok(!url.startsWith('/api/') || url === '/api/openapi.json', `an API route open to anyone: ${method} ${url}`);
      }
    }
    assert.deepEqual(unknown, [], 'routes that act on the bus without a sample request in this test');
    const acting = new Set(web.routes.filter(({ access }) => 'acts' in access).map(({ method, url }) => `${method} ${url}`));
    for (const key of Object.keys(SAMPLES)) assert.ok(acting.has(key), `${key} is served and acts on the bus`);
  });

  it('each route that acts on the bus: 401 without an identity, 403 for an identity the policy allows nothing (HEAD too)', async () => {
    for (const { method, url, access } of web.routes) {
      if (!('acts' in access)) continue;
      const sample = SAMPLES[`${method === 'HEAD' ? 'GET' : method} ${url}`]!;
      const send = (headers: Record<string, string>) => http(method, `${base}${sample.path}`, { headers: { ...sample.headers, ...headers }, ...(sample.body !== undefined && { body: sample.body }) });
      assert.equal((await send({})).status, 401, `${method} ${url} without an identity`);
      const denied = await send({ authorization: `Bearer nobody:${token}` });
      assert.equal(denied.status, 403, `${method} ${url} as an identity with no rights: ${denied.text}`);
    }
  });

  it('the open routes answer without an identity', async () => {
    for (const { method, url, access } of web.routes) {
      if (!('open' in access)) continue;
      const concrete = url.replace('*', 'index.html');
      const answer = await http(method, `${base}${concrete}`);
      assert.equal(answer.status, 200, `${method} ${url}: ${answer.text.slice(0, 200)}`);
    }
  });
});
