/**
 * The web server under security (docs/http-api.md "Authentication"): the HTTP API checks the
 * identities and the policy the broker checks, although it reaches the bus through a trusted
 * in-process connection; `/mqtt` is an untrusted broker connection; pages of other sites are
 * refused. A real embedded broker, router and web server in this process, real sockets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { connect, type Bus } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { defaultPolicy } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { startWebServer, WebStartError, type WebServer } from '../../src/web/server.js';
import { testLogger, within } from '../testkit/index.js';
import { http, openStream, pollUntil, tempDir } from './web-kit.js';

describe('web server with security on', { timeout: 60_000 }, () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let router: Router;
  let web: WebServer;
  let handler: Bus;
  let base: string;
  const tokens = new Map<string, string>();
  const logs: string[] = [];
  const bearer = (name: string, token = tokens.get(name)!) => ({ authorization: `Bearer ${name}:${token}` });

  before(async () => {
    dir = tempDir('security');
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    for (const [name, roles] of [['alice', ['client']], ['olga', ['observer']], ['root', ['admin']]] as const) tokens.set(name, (await store.add(name, [...roles])).token);
    const security = { identities: store, policy: defaultPolicy() };
    broker = await startEmbeddedBroker({ port: 0, security, log: (line) => logs.push(line) });
    router = await startRouter({ stream: () => broker.connectInProcess(), database: path.join(dir, 'history.db'), logger: testLogger });
    handler = await connect({ id: 'echo-service', stream: () => broker.connectInProcess(), logger: testLogger });
    await handler.handle('demo/echo', (payload) => payload);
    web = await startWebServer({ broker, port: 0, security, log: (line) => logs.push(line), logger: testLogger });
    base = web.url.replace(/\/$/, '');
  });

  after(async () => {
    await web?.close();
    await handler?.close();
    await router?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('no token: 401 with WWW-Authenticate; a wrong token or an unknown identity: 401, logged without the token', async () => {
    const none = await http('POST', `${base}/api/actions/demo/echo`, { body: {} });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'unauthorized');
    assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
    const wrong = await http('POST', `${base}/api/actions/demo/echo`, { body: {}, headers: bearer('alice', 'not-the-token') });
    assert.equal(wrong.status, 401);
    assert.equal((await http('GET', `${base}/api/history`, { headers: bearer('nobody', 'x') })).status, 401);
    assert.equal((await http('GET', `${base}/api/log/t1`)).body.error, 'http_error_401');
    assert.ok(logs.some((line) => /refused POST \/api\/actions\/demo\/echo for identity "alice": wrong token/.test(line)), logs.join('\n'));
    assert.ok(!logs.some((line) => line.includes('not-the-token')));
  });

  it('an identity the policy denies the action: 403; allowed: 202 (Bearer or Basic)', async () => {
    const denied = await http('POST', `${base}/api/actions/demo/echo`, { body: { a: 1 }, headers: bearer('olga') });
    assert.equal(denied.status, 403, denied.text);
    assert.equal(denied.body.error.code, 'forbidden');
    assert.match(denied.body.error.message, /olga may not publish on demo\/echo\/request/);
    const allowed = await http('POST', `${base}/api/actions/demo/echo`, { body: { a: 1 }, headers: bearer('alice') });
    assert.equal(allowed.status, 202, allowed.text);
    const basic = await http('POST', `${base}/api/actions/demo/echo`, { body: { a: 2 }, headers: { authorization: `Basic ${Buffer.from(`alice:${tokens.get('alice')}`).toString('base64')}` } });
    assert.equal(basic.status, 202, basic.text);
    // An observer may ask the history (docs/security.md "History privacy"), not write to it.
    assert.equal((await http('GET', `${base}/api/history`, { headers: bearer('olga') })).status, 200);
    assert.equal((await http('GET', `${base}/api/history`, { headers: bearer('alice') })).status, 200);
    assert.equal((await http('POST', `${base}/api/actions/relais/history/put`, { body: { token: 't1', action: 'demo/echo' }, headers: bearer('olga') })).status, 403);
  });

  it('event stream: an observer reads it live and resumes it from the router; without an identity: 401', async () => {
    const live = await openStream(`${base}/api/events/stream`, bearer('olga'));
    try {
      assert.equal(live.response.status, 200);
      handler.notify('test/observed', { n: 1 });
      await live.until((messages) => messages.some((m) => m.data.type === 'notification' && m.data.data.category === 'test/observed'));
    } finally {
      await live.close();
    }
    assert.equal((await http('GET', `${base}/api/events?since=0`, { headers: bearer('olga') })).status, 200);
    assert.equal((await http('GET', `${base}/api/events/stream`)).status, 401);
    const resumed = await openStream(`${base}/api/events/stream`, { ...bearer('olga'), 'last-event-id': '0' });
    try {
      await resumed.until((messages) => messages.some((m) => Number(m.id) === 1));
    } finally {
      await resumed.close();
    }
  });

  it("kill: the requester's own request, or an admin; anyone else 403", async () => {
    await handler.handle('demo/wait', (_payload, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))));
    // The API must have seen the handler's presence (a remembered token makes the POST quicker than that).
    await web.bus.waitForHandler('demo/wait', { timeout: 5000 });
    const sent = await http('POST', `${base}/api/actions/demo/wait`, { body: {}, headers: bearer('alice') });
    assert.equal(sent.status, 202, sent.text);
    assert.equal((await http('POST', `${base}/api/kill/${sent.body.token}`, { headers: bearer('olga') })).status, 403);
    // Kill looks the token up in the history: wait until the router has recorded the command.
    await pollUntil(() => http('GET', `${base}/api/history/${sent.body.token}`, { headers: bearer('alice') }), (answer) => answer.status === 200 && answer.body.rows?.length > 0, 'the command in the history');
    const own = await http('POST', `${base}/api/kill/${sent.body.token}`, { headers: bearer('alice') });
    assert.equal(own.status, 200, own.text);
  });

  it('/mqtt: MQTT.js over WebSocket without credentials is refused, with a token it works', async () => {
    const url = `${base.replace(/^http/, 'ws')}/mqtt`;
    const anonymous = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000 });
    const refused = await within(new Promise<Error>((resolve) => anonymous.once('error', resolve)), 5000, 'the refusal');
    assert.match(refused.message, /Not authorized|Bad username or password/);
    anonymous.end(true);
    const alice = mqtt.connect(url, { clientId: 'alice', username: 'alice', password: tokens.get('alice'), reconnectPeriod: 0 });
    await within(new Promise<void>((resolve, reject) => alice.once('connect', () => resolve()).once('error', reject)), 5000, 'the CONNACK');
    await alice.subscribeAsync('relais/presence/+');
    const presence = await within(new Promise<string>((resolve) => alice.once('message', (topic) => resolve(topic))), 5000, 'a presence');
    assert.match(presence, /^relais\/presence\//);
    await alice.endAsync();
  });

  it("a page of another site is refused (Origin not this server's): HTTP 403 and no WebSocket upgrade", async () => {
    const post = await http('POST', `${base}/api/actions/demo/echo`, { body: {}, headers: { ...bearer('alice'), origin: 'http://evil.example' } });
    assert.equal(post.status, 403);
    assert.equal(post.body.error.code, 'forbidden_origin');
    const sameSite = await http('GET', `${base}/api/history?limit=1`, { headers: { ...bearer('alice'), origin: base } });
    assert.equal(sameSite.status, 200);
    const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/mqtt`, 'mqtt', { origin: 'http://evil.example' });
    const status = await within(new Promise<number>((resolve, reject) => socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0)).once('open', () => reject(new Error('upgraded')))), 5000, 'the refusal');
    assert.equal(status, 403);
  });

  it('refuses to listen beyond loopback without security unless insecure', async () => {
    const started = startWebServer({ broker, host: '0.0.0.0', port: 0, id: 'relais-web-exposed', logger: testLogger });
    started.then((server) => server.close(), () => {}); // closed at once should it start
    await assert.rejects(started, (error: Error) => error instanceof WebStartError && /without security/.test(error.message));
  });

  it('serves the built page from its folder (the package dist/page holds no server module), and 503 when it is not built', async () => {
    const pageDir = path.join(dir, 'page');
    fs.mkdirSync(path.join(pageDir, 'assets'), { recursive: true });
    fs.writeFileSync(path.join(pageDir, 'index.html'), '<!doctype html><title>Relais</title>');
    fs.writeFileSync(path.join(pageDir, 'assets', 'index-abc.js'), 'console.log(1)');
    const open = await startWebServer({ broker, port: 0, pageDir, insecure: true, id: 'relais-web-page', logger: testLogger });
    try {
      const url = open.url.replace(/\/$/, '');
      const page = await http('GET', `${url}/`);
      assert.equal(page.status, 200);
      assert.match(page.text, /<title>Relais<\/title>/);
      assert.equal((await http('GET', `${url}/assets/index-abc.js`)).text, 'console.log(1)');
    } finally {
      await open.close();
    }
    // The package's own build (npm run build): the page, and none of the server's modules.
    const built = await startWebServer({ broker, port: 0, insecure: true, id: 'relais-web-built', logger: testLogger });
    try {
      const url = built.url.replace(/\/$/, '');
      assert.match((await http('GET', `${url}/`)).text, /<!doctype html>/i);
      for (const module of ['server.js', 'web/server.js', 'auth.js', '../web/server.js']) assert.equal((await http('GET', `${url}/${module}`)).status, 404, module);
    } finally {
      await built.close();
    }
    const missing = await startWebServer({ broker, port: 0, pageDir: path.join(dir, 'absent'), id: 'relais-web-none', logger: testLogger });
    try {
      const answer = await http('GET', missing.url);
      assert.equal(answer.status, 503);
      assert.equal(answer.text, 'the web page is not built: run npm run build\n');
    } finally {
      await missing.close();
    }
  });
});
