/**
 * `relais logs relais-router` as a user runs it against `relais start` (protocol §11.4): the
 * router's own lines are kept, not only its library's — the registry starting, clients coming
 * and going, a site link changing — and a short-lived client's comings and goings stay at debug.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLI_SUITE_TIMEOUT, runCli, startCli, startRelais, type RelaisStart } from '../testkit/cli.js';
import { uniqueId } from '../testkit/index.js';

describe('relais logs relais-router', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let relais: RelaisStart;
  let env: Record<string, string>;

  before(async () => {
    relais = await startRelais([], { env: { RELAIS_LOG_LEVEL: 'debug' } });
    env = relais.env;
  });

  after(() => relais?.close());

  it("logs relais-router - the registry's start, a client coming and stopping, a site link going down; a one-shot command, and a standard client's plain MQTT payload, only at debug", async () => {
    const follow = relais.startCli(['logs', 'relais-router', '--follow', '--level', 'debug']);
    // What was logged before the follow began comes first: the registry started with the router.
    await follow.waitFor(/client registry started/);

    const id = uniqueId('svc');
    const server = startCli(['serve', `${id}/echo`, '--id', id, '--', 'cat'], env);
    await server.waitFor(/serving/);
    await follow.waitFor(new RegExp(`registry: client ${id} alive`));
    await server.stop('SIGINT');
    await follow.waitFor(new RegExp(`registry: client ${id} stopped`));

    // A plain MQTT payload, as a standard client (a sensor) publishes: the router's '#' sees it; it is no mistake (protocol §5.2).
    const plain = await runCli(['pub', 'demo/plain', '{"up": true}'], env);
    assert.equal(plain.code, 0, plain.stderr);
    // A link status as a site's end publishes it (protocol §13), seen changing.
    const status = { v: 1, type: 'notification', source: 'lab', destination: '*', payload: { site: 'lab', status: 'down', since: Date.now(), mode: 'push' }, ts: Date.now() };
    const oneShot = uniqueId('oneshot');
    const published = await runCli(['pub', '--id', oneShot, 'relais/sites/lab', JSON.stringify(status)], env);
    assert.equal(published.code, 0, published.stderr);
    await follow.waitFor(/sites: the link to lab is down/);
    // relais pub itself was a short-lived client: forgotten when it left, a debug line.
    await follow.waitFor(new RegExp(`registry: client ${oneShot} forgotten`));

    const shown = await runCli(['logs', 'relais-router', '--lines', '1000'], env);
    assert.equal(shown.code, 0, shown.stderr);
    for (const line of ['client registry started', `registry: client ${id} alive`, `registry: client ${id} stopped`, 'sites: the link to lab is down']) assert.ok(shown.stdout.includes(line), `${line} in:\n${shown.stdout}`);
    assert.ok(!shown.stdout.includes(oneShot), `at the default level (info), no line for a short-lived client:\n${shown.stdout}`);
    // The link status came after the plain payload on the router's one connection: it was read by now.
    assert.ok(!shown.stdout.includes('invalid message on a subscribed topic'), `no warning for a plain MQTT payload:\n${shown.stdout}`);
  });
});
