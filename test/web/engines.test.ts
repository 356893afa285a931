/**
 * `npm ci` on Node 20 warns `EBADENGINE cookie@2.0.2 required: { node: '>=22' }`. Relais never
 * loads it: its only user is fastify's `light-my-request`, which fastify loads for
 * `fastify.inject()` alone (fastify.js: "lightMyRequest is dynamically loaded"), and Relais serves
 * real sockets, never injected requests. This test keeps that reason true: the web server,
 * started and answering the HTTP API and the page, has not loaded either module.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { testLogger } from '../testkit/index.js';
import { http } from './web-kit.js';

/** Fastify and its dependencies are CommonJS: what they loaded is in the require cache. */
const loaded = () => Object.keys(createRequire(import.meta.url).cache);

describe('the web server on Node 20', () => {
  let broker: EmbeddedBroker;
  let web: WebServer;

  before(async () => {
    broker = await startEmbeddedBroker({ port: 0, log: () => {} });
    web = await startWebServer({ broker, port: 0, id: 'relais-web-engines', log: () => {}, logger: testLogger });
  });

  after(async () => {
    await web?.close();
    await broker?.close();
  });

  it('serves the API and the page without loading cookie@2 (Node >= 22 only) nor light-my-request, its only user', async () => {
    assert.ok(loaded().some((file) => /node_modules\/fastify\//.test(file)), 'fastify is in the require cache: the check below can see what it loads');
    assert.equal((await http('GET', new URL('api/openapi.json', web.url).href)).status, 200, 'the API answers');
    await http('GET', web.url);
    const unwanted = loaded().filter((file) => /node_modules\/(cookie|light-my-request)\//.test(file));
    assert.deepEqual(unwanted, [], 'modules loaded that need Node 22 or only serve fastify.inject()');
  });
});
