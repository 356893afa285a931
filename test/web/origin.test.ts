/**
 * DNS rebinding (docs/security.md "The web server and other sites' pages"): with security off,
 * a page of evil.example whose name the attacker re-points to 127.0.0.1 is, to the browser, of
 * the same origin as the server; it sends `Host: evil.example:<port>` and, on a WebSocket or a
 * POST, the matching Origin. The server answers only to loopback names then. Real sockets: raw
 * HTTP requests with the headers a browser would send, and WebSocket upgrades at /mqtt.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, type Bus } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { defaultPolicy } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { testLogger, within } from '../testkit/index.js';
import { tempDir } from './web-kit.js';

interface RawAnswer {
  status: number;
  body: { error?: { code?: string } } | undefined;
}

/** One HTTP request to 127.0.0.1:`port` with exactly these headers (Host included), as a browser would send them. */
function send(port: number, method: string, url: string, headers: Record<string, string>, body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, method, path: url, headers: { ...headers, ...(body !== undefined && { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }) }, setHost: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        let parsed: RawAnswer['body'];
        try {
          parsed = JSON.parse(text) as RawAnswer['body'];
        } catch {
          parsed = undefined;
        }
        resolve({ status: response.statusCode!, body: parsed });
      });
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** A WebSocket upgrade at /mqtt with these Host and Origin headers: 101 (opened) or the refusal's status. */
function upgrade(port: number, host: string, origin: string): Promise<number> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, 'mqtt', { origin, headers: { host } });
  return within(
    new Promise<number>((resolve, reject) => {
      socket.once('open', () => {
        socket.close();
        resolve(101);
      });
      socket.once('unexpected-response', (_request, response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      socket.once('error', reject);
    }),
    10_000,
    `the upgrade with Host ${host}`,
  );
}

describe('web server with security off: only loopback names (DNS rebinding)', { timeout: 60_000 }, () => {
  let broker: EmbeddedBroker;
  let web: WebServer;
  let handler: Bus;
  let port: number;
  const logs: string[] = [];
  const echoed: unknown[] = [];

  before(async () => {
    broker = await startEmbeddedBroker({ port: 0, log: () => {} });
    handler = await connect({ id: 'echo-service', stream: () => broker.connectInProcess(), logger: testLogger });
    await handler.handle('demo/echo', (payload) => {
      echoed.push(payload);
      return payload;
    });
    web = await startWebServer({ broker, port: 0, id: 'relais-web-origin', log: (line) => logs.push(line), logger: testLogger });
    port = web.port;
  });

  after(async () => {
    await web?.close();
    await handler?.close();
    await broker?.close();
  });

  it('loopback names are served: localhost, 127.x.x.x, [::1], with their own Origin', async () => {
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `127.9.8.7:${port}`, `[::1]:${port}`, `LOCALHOST:${port}`]) {
      assert.equal((await send(port, 'GET', '/api/openapi.json', { host })).status, 200, host);
      assert.equal((await send(port, 'GET', '/api/openapi.json', { host, origin: `http://${host}` })).status, 200, `${host} with its Origin`);
    }
  });

  it("a rebound page's request (Host and Origin evil.example) is refused 403 forbidden_host, logged, and sends no command", async () => {
    const host = `evil.example:${port}`;
    const get = await send(port, 'GET', '/api/openapi.json', { host });
    assert.equal(get.status, 403);
    assert.equal(get.body?.error?.code, 'forbidden_host');
    const post = await send(port, 'POST', '/api/actions/demo/echo', { host, origin: `http://${host}` }, '{"from":"evil"}');
    assert.equal(post.status, 403);
    assert.equal(post.body?.error?.code, 'forbidden_host');
    const sameSite = await send(port, 'POST', '/api/actions/demo/echo', { host: `localhost:${port}`, origin: `http://localhost:${port}` }, '{"from":"page"}');
    assert.ok(sameSite.status < 300, `the page's own POST: ${sameSite.status}`);
    assert.ok(!echoed.some((payload) => (payload as { from?: string }).from === 'evil'), 'the command of the rebound page reached the handler');
    assert.ok(logs.includes('refused POST /api/actions/demo/echo: 403 forbidden_host'), logs.join('\n'));
  });

  it('an address that is not loopback is refused too without --insecure', async () => {
    assert.equal((await send(port, 'GET', '/api/openapi.json', { host: `10.1.2.3:${port}` })).status, 403);
  });

  it('the WebSocket upgrade at /mqtt: refused for a rebound page, opened for a loopback name', async () => {
    assert.equal(await upgrade(port, `evil.example:${port}`, `http://evil.example:${port}`), 403);
    assert.equal(await upgrade(port, `localhost:${port}`, `http://localhost:${port}`), 101);
    assert.equal(await upgrade(port, `127.0.0.1:${port}`, `http://evil.example:${port}`), 403, 'a loopback Host with an Origin of another site');
  });
});

describe('web server with security off and --insecure: addresses are served, names still refused', { timeout: 60_000 }, () => {
  let broker: EmbeddedBroker;
  let web: WebServer;

  before(async () => {
    broker = await startEmbeddedBroker({ port: 0, log: () => {} });
    web = await startWebServer({ broker, port: 0, insecure: true, id: 'relais-web-insecure', log: () => {}, logger: testLogger });
  });
  after(async () => {
    await web?.close();
    await broker?.close();
  });

  it('Host 10.1.2.3 (an address the visitor typed) is served; Host evil.example is refused', async () => {
    assert.equal((await send(web.port, 'GET', '/api/openapi.json', { host: `10.1.2.3:${web.port}` })).status, 200);
    assert.equal((await send(web.port, 'GET', '/api/openapi.json', { host: `[fd00::1]:${web.port}` })).status, 200);
    assert.equal((await send(web.port, 'GET', '/api/openapi.json', { host: `evil.example:${web.port}` })).status, 403);
    assert.equal(await upgrade(web.port, `evil.example:${web.port}`, `http://evil.example:${web.port}`), 403);
  });
});

describe('web server with security on: any name (its callers authenticate), Origin still its own', { timeout: 60_000 }, () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let web: WebServer;

  before(async () => {
    dir = tempDir('origin-secure');
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    await store.add('alice', ['client']);
    const security = { identities: store, policy: defaultPolicy() };
    broker = await startEmbeddedBroker({ port: 0, security, log: () => {} });
    web = await startWebServer({ broker, port: 0, security, id: 'relais-web-origin-secure', log: () => {}, logger: testLogger });
  });
  after(async () => {
    await web?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('Host relais.example.org reaches the authentication (401), not a host refusal', async () => {
    const answer = await send(web.port, 'GET', '/api/clients', { host: `relais.example.org:${web.port}` });
    assert.equal(answer.status, 401);
    assert.equal((await send(web.port, 'GET', '/api/clients', { host: `relais.example.org:${web.port}`, origin: 'http://evil.example' })).body?.error?.code, 'forbidden_origin');
  });
});
