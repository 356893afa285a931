/**
 * Enforcement in the embedded broker (docs/security.md "Identities and
 * enforcement"): identities with tokens at CONNECT, identity binding, the default policy on
 * SUBSCRIBE and PUBLISH, the envelope `source` check, over real sockets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { connect, NotAuthorizedError, type Bus } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { IdentityStore } from '../../src/security/identities.js';
import { defaultPolicy } from '../../src/security/default-policy.js';
import { parsePolicy } from '../../src/security/policy.js';
import { testLogger, within } from '../testkit/index.js';
import { inbox } from '../testkit/secure-broker.js';

describe('security in the embedded broker', { timeout: 60_000 }, () => {
  let dir: string;
  let store: IdentityStore;
  let broker: EmbeddedBroker;
  const logs: string[] = [];
  const tokens = new Map<string, string>();
  const raws: MqttClient[] = [];
  const buses: Bus[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-security-'));
    store = new IdentityStore(path.join(dir, 'identities.json'));
    const people: Array<[string, string[]]> = [
      ['alice', ['client']], ['bob', ['client']], ['carol', ['client']], ['dave', ['client']], ['erin', ['client']], ['svc', ['service']], ['mallory', ['client']],
    ];
    for (const [name, roles] of people) tokens.set(name, (await store.add(name, roles)).token);
    store.revoke('carol');
    broker = await startEmbeddedBroker({ port: 0, security: { identities: store.file, policy: defaultPolicy({ serves: { svc: ['demo/#'] } }) }, log: (line) => logs.push(line) });
  });
  after(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    await Promise.all(raws.map((client) => client.endAsync(true)));
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A raw MQTT 3.1.1 client; resolves once CONNACK 0 comes, rejects with the return code otherwise. */
  async function raw(clientId: string, username?: string, password?: string): Promise<MqttClient> {
    const client = mqtt.connect(broker.url!, { clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...(username !== undefined && { username }), ...(password !== undefined && { password }) });
    raws.push(client);
    await within(
      new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      }),
      5000,
      `CONNACK for ${clientId}`,
    );
    return client;
  }
  async function refusedWith(clientId: string, username?: string, password?: string): Promise<number> {
    const error = await raw(clientId, username, password).then(
      () => assert.fail(`${clientId} was let in`),
      (caught: Error & { code?: number }) => caught,
    );
    return error.code!;
  }

  it('CONNECT - no credentials, an unknown identity or a wrong token get 4; a revoked identity 5; the log names the identity, never the token', async () => {
    const before = broker.denials!.connect;
    assert.equal(await refusedWith('alice'), 4);
    assert.equal(await refusedWith('zed', 'zed', tokens.get('alice')), 4);
    assert.equal(await refusedWith('alice', 'alice', `${tokens.get('alice')}x`), 4);
    assert.equal(await refusedWith('alice', 'alice', tokens.get('bob')), 4);
    assert.equal(await refusedWith('carol', 'carol', tokens.get('carol')), 5);
    assert.equal(broker.denials!.connect - before, 5);
    assert.ok(logs.some((line) => /refused CONNECT of identity "alice" \(client id "alice"\): wrong token/.test(line)), logs.join('\n'));
    assert.ok(logs.some((line) => /refused CONNECT of identity "carol" .*: revoked/.test(line)), logs.join('\n'));
    assert.ok(logs.some((line) => /refused CONNECT of no identity/.test(line)), logs.join('\n'));
    for (const token of tokens.values()) assert.ok(!logs.some((line) => line.includes(token)), 'a token in the log');
  });

  it('CONNECT - revocation applies to the next CONNECT without a restart', async () => {
    const client = await raw('erin', 'erin', tokens.get('erin'));
    await client.endAsync();
    new IdentityStore(store.file).revoke('erin');
    assert.equal(await refusedWith('erin', 'erin', tokens.get('erin')), 5);
  });

  it('identity binding - a client id that is not its identity is refused (2); <identity>~rt is accepted', async () => {
    assert.equal(await refusedWith('bob', 'alice', tokens.get('alice')), 2);
    assert.equal(await refusedWith('alice-2', 'alice', tokens.get('alice')), 2);
    assert.ok(logs.some((line) => /refused CONNECT of identity "alice" \(client id "bob"\): the client id must be the identity/.test(line)), logs.join('\n'));
    const lane = await raw('alice~rt', 'alice', tokens.get('alice'));
    assert.ok(lane.connected);
    await lane.endAsync();
  });

  it('identity binding - a second connection of the same identity takes over the first; the first is closed', async () => {
    const first = await raw('bob', 'bob', tokens.get('bob'));
    const closed = within(new Promise<void>((resolve) => first.once('close', () => resolve())), 5000, 'the first connection to close');
    const second = await raw('bob', 'bob', tokens.get('bob'));
    await closed;
    assert.ok(second.connected);
    await second.endAsync();
  });

  it('SUBSCRIBE - a denied filter gets 0x80 and the connection stays up', async () => {
    const bob = await raw('bob', 'bob', tokens.get('bob'));
    const before = broker.denials!.subscribe;
    // mqtt.js turns a SUBACK holding 0x80 into an error that carries the packet.
    const suback = await bob.subscribeAsync(['#', 'demo/x/response/alice', 'demo/x/response/bob'], { qos: 1 }).then(
      () => assert.fail('every filter was granted'),
      (error: Error & { packet?: { granted: number[] } }) => error.packet,
    );
    assert.deepEqual(suback?.granted, [128, 128, 1]);
    assert.equal(broker.denials!.subscribe - before, 2);
    assert.ok(logs.some((line) => line === 'denied subscribe to "#" for identity bob: builtin:wildcard-subscription'), logs.join('\n'));
    assert.ok(logs.some((line) => line === 'denied subscribe to "demo/x/response/alice" for identity bob: builtin:others-responses'), logs.join('\n'));
    // Still connected and served: its own response topic works.
    const box = inbox(bob);
    const svc = await raw('svc', 'svc', tokens.get('svc'));
    await svc.publishAsync('demo/x/response/bob', JSON.stringify({ type: 'response', source: 'svc', destination: 'bob', token: 't', payload: 1, final: true }), { qos: 1 });
    assert.equal((await box.next('demo/x/response/bob')).source, 'svc');
    assert.ok(bob.connected);
    await svc.endAsync();
    await bob.endAsync();
  });

  it('PUBLISH - a denied message is dropped without disconnecting; a spoofed source is refused the same way', async () => {
    const bob = await raw('bob', 'bob', tokens.get('bob'));
    const box = inbox(bob);
    await bob.subscribeAsync(['demo/x/response/bob', 'demo/n/notification'], { qos: 1 });
    const mallory = await raw('mallory', 'mallory', tokens.get('mallory'));
    const before = { ...broker.denials! };
    // A client may not answer commands (default policy): a forged final response to bob.
    await mallory.publishAsync('demo/x/response/bob', JSON.stringify({ type: 'response', source: 'mallory', destination: 'bob', token: 't', payload: 'forged', final: true }), { qos: 1 });
    // A notification allowed by topic but claiming to come from bob.
    await mallory.publishAsync('demo/n/notification', JSON.stringify({ type: 'notification', source: 'bob', destination: '*', payload: 'spoofed' }), { qos: 1 });
    await mallory.publishAsync('demo/n/notification', `  \n${JSON.stringify({ type: 'notification', source: 'bob', destination: '*', payload: 'spoofed, after white space' })}`, { qos: 1 });
    // Its own name first, then another's: JSON.parse (what receivers use) keeps the last one.
    await mallory.publishAsync('demo/n/notification', '{"type":"notification","source":"mallory","destination":"*","payload":"two sources","source":"bob"}', { qos: 1 });
    await mallory.publishAsync('demo/n/notification', '{"type":"notification","source":"mallory","destination":"*","payload":"escaped key","sour\\u0063e":"bob"}', { qos: 1 });
    // Then an honest one on the same connection: delivered after the others would have been.
    await mallory.publishAsync('demo/n/notification', JSON.stringify({ type: 'notification', source: 'mallory', destination: '*', payload: 'honest' }), { qos: 1 });
    assert.equal((await box.next('demo/n/notification')).payload, 'honest');
    assert.deepEqual(box.seen, [], 'nothing denied was delivered');
    assert.ok(mallory.connected, 'the sender is still connected');
    assert.equal(broker.denials!.publish - before.publish, 5);
    assert.equal(broker.denials!.source - before.source, 4);
    assert.ok(logs.some((line) => line === 'denied publish on "demo/x/response/bob" for identity mallory: default-deny'), logs.join('\n'));
    assert.ok(logs.some((line) => line === 'denied publish on "demo/n/notification" for identity mallory: builtin:source (the envelope says "bob")'), logs.join('\n'));
    await mallory.endAsync();
    await bob.endAsync();
  });

  it('PUBLISH - a denied command gets a code-4 error response instead of its time-out (topic denied, and source spoofed)', async () => {
    const alice = await raw('alice', 'alice', tokens.get('alice'));
    const box = inbox(alice);
    await alice.subscribeAsync(['relais/broker/stats/get/response/alice', 'demo/echo/response/alice'], { qos: 1 });
    // Only admins read the broker's statistics (default policy).
    await alice.publishAsync('relais/broker/stats/get/request', JSON.stringify({ v: 1, type: 'command', source: 'alice', destination: '*', token: 'k1', payload: {}, priority: 'high', deadline: Date.now() + 5000 }), { qos: 1 });
    const refused = await box.next('relais/broker/stats/get/response/alice');
    assert.equal(refused.type, 'response');
    assert.equal(refused.code, 4);
    assert.equal(refused.final, true);
    assert.equal(refused.token, 'k1');
    assert.equal(refused.destination, 'alice');
    assert.equal(refused.priority, 'high');
    assert.equal((refused.error as { name: string }).name, 'NotAuthorizedError');
    assert.match((refused.error as { message: string }).message, /not authorised to publish on relais\/broker\/stats\/get\/request \(builtin:relais-actions\)/);
    // A command claiming another sender: refused, and the real sender (alice) is told.
    await alice.publishAsync('demo/echo/request/svc', JSON.stringify({ v: 1, type: 'command', source: 'bob', destination: 'svc', token: 'e1', payload: {}, priority: 'normal', deadline: Date.now() + 5000 }), { qos: 1 });
    const spoofed = await box.next('demo/echo/response/alice');
    assert.equal(spoofed.code, 4);
    assert.equal(spoofed.token, 'e1');
    assert.equal(spoofed.source, 'svc', 'a targeted command is answered in the name of its target, whom the requester waits for');
    assert.ok(alice.connected);
    await alice.endAsync();
  });

  it("presence - a client cannot say role \"router\" in its presence, so it cannot kill another client's request as a router would", async () => {
    const options = (id: string) => ({ id, broker: broker.url!, username: id, password: tokens.get(id)!, logger: testLogger, realtimeLane: false });
    const svc = await connect(options('svc'));
    buses.push(svc);
    let aborted = false;
    let release!: () => void;
    const started = new Promise<void>((resolve) => {
      void svc.handle('demo/held', (_payload, ctx) => {
        ctx.signal.addEventListener('abort', () => (aborted = true));
        resolve();
        return new Promise((done) => (release = () => done('done')));
      });
    });
    await svc.handle('demo/probe', () => 'probed');
    const bob = await connect(options('bob'));
    buses.push(bob);
    await bob.waitForHandler('demo/held', { timeout: 5000 });
    const running = bob.request('demo/held', {}, { token: 'held-1', timeout: 20_000 });
    await within(started, 5000, 'the handler to start');
    const mallory = await raw('mallory', 'mallory', tokens.get('mallory'));
    const box = inbox(mallory);
    await mallory.subscribeAsync(['relais/presence/mallory', 'demo/probe/response/mallory'], { qos: 1 });
    const presence = (role: string, seq: number) => JSON.stringify({ v: 1, type: 'notification', source: 'mallory', destination: '*', payload: { status: 'alive', actions: [], since: 1, seq, role } });
    await mallory.publishAsync('relais/presence/mallory', presence('router', 1), { qos: 1, retain: true });
    await mallory.publishAsync('relais/presence/mallory', presence('demo', 2), { qos: 1, retain: true });
    // The second (allowed) presence arrives; the first never did.
    assert.equal(((await box.next('relais/presence/mallory')).payload as { role: string }).role, 'demo');
    assert.ok(logs.some((line) => /denied publish on "relais\/presence\/mallory" for identity mallory: builtin:router-role/.test(line)), logs.join('\n'));
    // A cancel relayed "for bob" by a client that is not a router: the handler ignores it. Its
    // answer to a probe sent after it, on the same connection, says the cancel was read.
    await mallory.publishAsync('demo/held/cancel', JSON.stringify({ v: 1, type: 'cancel', source: 'mallory', destination: 'svc', token: 'held-1', payload: { reason: 'forged', requester: 'bob', by: 'mallory' } }), { qos: 1 });
    await mallory.publishAsync('demo/probe/request/svc', JSON.stringify({ v: 1, type: 'command', source: 'mallory', destination: 'svc', token: 'probe-1', payload: {} }), { qos: 1 });
    await box.next('demo/probe/response/mallory');
    assert.equal(aborted, false, 'the handler was aborted by a forged router cancel');
    release();
    assert.equal(await running, 'done');
    // The next test is svc again (one connection per identity).
    await Promise.all([svc.close(), bob.close()]);
  });

  it('a Relais client with a valid identity works end to end under the default policy; a denied request fails fast with NotAuthorizedError', async () => {
    const options = (id: string) => ({ id, broker: broker.url!, username: id, password: tokens.get(id)!, logger: testLogger });
    const svc = await connect(options('svc'));
    buses.push(svc);
    await svc.handle('demo/echo', (payload) => ({ echoed: payload }));
    const dave = await connect(options('dave'));
    buses.push(dave);
    assert.deepEqual(await dave.request('demo/echo', { n: 1 }, { timeout: 5000 }), { echoed: { n: 1 } });
    const started = Date.now();
    await assert.rejects(dave.request('relais/broker/stats/get', {}, { timeout: 20_000, checkHandlers: false }), (error: Error) => error instanceof NotAuthorizedError || (error as { responseCode?: number }).responseCode === 4);
    assert.ok(Date.now() - started < 10_000, 'refused long before the time-out');
  });

  it('a Relais client tells its refusals apart: NotAuthorizedError with the CONNACK code at connect, and for a denied filter, the connection staying up', async () => {
    const options = (id: string, password = tokens.get(id)!) => ({ id, broker: broker.url!, username: id, password, logger: testLogger });
    const refusedWith = (error: unknown) => (error instanceof NotAuthorizedError ? (error.details as { returnCode?: number }).returnCode : `not a NotAuthorizedError: ${String(error)}`);
    assert.equal(await connect(options('dave', 'relais_not-the-token')).then(() => 'connected', refusedWith), 4);
    assert.equal(await connect(options('carol')).then(() => 'connected', refusedWith), 5);
    const dave = await connect(options('dave'));
    buses.push(dave);
    await assert.rejects(dave.subscribe('#'), (error: unknown) => error instanceof NotAuthorizedError && /refused the subscription to #/.test(error.message));
    assert.ok(dave.connected, 'the connection stays up');
  });
});

describe('security in the embedded broker - a new policy applies to connections already open', { timeout: 30_000 }, () => {
  it('a topic denied, then allowed once the policy function returns a new policy (cached decisions dropped)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-security-reload-'));
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    const token = (await store.add('zoe', ['client'])).token;
    const strict = parsePolicy({ version: 1, roles: { client: {} }, rules: [{ publish: ['other/thing'] }] });
    let current = strict;
    const broker = await startEmbeddedBroker({ port: 0, security: { identities: store, policy: () => current }, log: () => {} });
    const zoe = await mqtt.connectAsync(broker.url!, { clientId: 'zoe', username: 'zoe', password: token, protocolVersion: 4, reconnectPeriod: 0 });
    try {
      await zoe.publishAsync('demo/n/notification', 'x', { qos: 1 });
      assert.equal(broker.denials!.publish, 1);
      current = parsePolicy({ version: 1, roles: { client: {} }, rules: [{ publish: ['demo/#'] }] });
      await zoe.publishAsync('demo/n/notification', 'x', { qos: 1 });
      assert.equal(broker.denials!.publish, 1, 'the new policy allows it');
      current = strict;
      await zoe.publishAsync('demo/n/notification', 'x', { qos: 1 });
      assert.equal(broker.denials!.publish, 2, 'and the old one denies it again');
    } finally {
      await zoe.endAsync(true);
      await broker.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('security in the embedded broker - connections handed in from outside (serveConnection)', { timeout: 30_000 }, () => {
  it('serveConnection - a stream from outside is untrusted: no credentials refused (4) and logged, a token accepted', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-serve-connection-'));
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    const token = (await store.add('ann', ['client'])).token;
    const logs: string[] = [];
    const broker = await startEmbeddedBroker({ port: false, security: { identities: store.file, policy: defaultPolicy() }, log: (line) => logs.push(line) });
    // Another server of this process (as the web server's /mqtt) hands its sockets to the broker.
    const server = net.createServer((socket) => broker.serveConnection(socket, `handed-in ${socket.remotePort}`));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const outcome = (options: mqtt.IClientOptions) =>
      within(
        new Promise<number | 'connected'>((resolve) => {
          const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, ...options });
          client.once('connect', () => void client.endAsync().then(() => resolve('connected')));
          client.once('error', (error: Error & { code?: number }) => void client.endAsync(true).then(() => resolve(error.code ?? -1)));
        }),
        5000,
        'a CONNACK',
      );
    try {
      assert.equal(await outcome({ clientId: 'ann' }), 4);
      assert.ok(logs.some((line) => /refused CONNECT of no identity \(no username\) \(client id "ann"\)/.test(line)), logs.join('\n'));
      assert.equal(await outcome({ clientId: 'ann', username: 'ann', password: token }), 'connected');
    } finally {
      await broker.close();
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
