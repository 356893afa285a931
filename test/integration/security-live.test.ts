/**
 * Live effect (docs/security.md "Live revocation", protocol §11.10): an identity revoked while
 * connected is told why and disconnected within a second on every listener, a certificate
 * identity too; a subscription the policy (or the identity's new roles) no longer allows is
 * dropped, the client told which, and nothing more is delivered on it. As Mosquitto's dynamic
 * security does for a role changed under a connected client. Real sockets, the embedded
 * broker with security on, raw MQTT.js clients.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { brokerNoticeTopic } from '../../src/protocol/broker-notice.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { parsePolicy, type Policy } from '../../src/security/policy.js';
import { createCertificateAuthority, issueCertificate } from '../../src/security/pki.js';
import { within } from '../testkit/index.js';
import { closed, inbox, startSecureBroker, type SecureBroker } from '../testkit/secure-broker.js';

/** The default policy with an application topic, `sensors/<room>`: services publish there, clients read it. */
function policyWith(extra: unknown[]): Policy {
  const data = structuredClone(DEFAULT_POLICY_DATA);
  // The service serves demo/ (relais identity add svc --serves 'demo/#').
  return parsePolicy({ ...data, identities: { ...data.identities, svc: { serves: ['demo/#'] } }, rules: [...data.rules, ...extra] });
}
const SENSORS_PUBLISHED = { name: 'services publish readings', roles: ['service'], publish: ['sensors/+'] };
const SENSORS_READ = { name: 'clients read readings', roles: ['client'], subscribe: ['sensors/+'] };

/** Resolves with the broker's notice to `client` (delivered without subscribing: it is written to that connection only). */
function noticeOf(client: MqttClient, clientId: string, timeout = 5000): Promise<Record<string, unknown>> {
  const topic = brokerNoticeTopic(clientId);
  return within(
    new Promise((resolve) => {
      const look = (received: string, payload: Buffer) => {
        if (received !== topic) return;
        client.off('message', look);
        resolve(JSON.parse(payload.toString()) as Record<string, unknown>);
      };
      client.on('message', look);
    }),
    timeout,
    `a broker notice to ${clientId}`,
  );
}

describe('live revocation - a revoked identity is disconnected on every listener', { timeout: 90_000 }, () => {
  let secure: SecureBroker;
  let tessCertificate: { cert: string; key: string };
  let caCert: string;

  before(async () => {
    const ca = await createCertificateAuthority('Relais live test CA');
    caCert = ca.cert;
    const server = await issueCertificate(ca, { commonName: 'broker', usage: 'server', hosts: ['localhost', '127.0.0.1'] });
    secure = await startSecureBroker(
      [['alice', ['client']], ['bob', ['client']], ['carol', ['client']], ['dave', ['client']], ['erin', ['client']], ['svc', ['service']]],
      { unix: true, broker: { wsPort: 0, tls: { cert: server.cert, key: server.key, ca: ca.cert, port: 0 } } },
    );
    const tess = await issueCertificate(ca, { commonName: 'tess', usage: 'client' });
    tessCertificate = { cert: tess.cert, key: tess.key };
    await secure.store.addWithCertificate('tess', ['client'], { fingerprint: tess.fingerprint, serial: tess.serial, notAfter: tess.notAfter.toISOString() }, false);
  });
  after(() => secure.close());

  it('revoked while connected - told why, then disconnected within a second over TCP, the Unix socket, WebSocket, TLS with a token and TLS with a certificate; its next CONNECT refused (5)', async () => {
    const tls = { url: secure.broker.tlsUrl!, ca: caCert, rejectUnauthorized: true, servername: 'localhost' };
    const connections: Array<[string, MqttClient]> = [
      ['alice', await secure.raw('alice')],
      ['bob', await secure.raw('bob', { url: `mqtt+unix://${secure.broker.unixUrl!.slice('unix://'.length)}` })],
      ['carol', await secure.raw('carol', { url: secure.broker.wsUrl! })],
      ['dave', await secure.raw('dave', tls)],
      ['tess', await secure.raw('tess', { ...tls, username: undefined, password: undefined, ...tessCertificate })],
    ];
    // A bystander of the same role stays connected.
    const erin = await secure.raw('erin');
    const notices = connections.map(([name, client]) => noticeOf(client, name));
    const ends = connections.map(([, client]) => closed(client, 5000));
    const revokedAt = Date.now();
    const cli = new IdentityStore(secure.store.file); // as `relais identity revoke` does, from another process
    for (const [name] of connections) assert.ok(cli.revoke(name));
    await Promise.all(ends);
    const tookMs = Date.now() - revokedAt;
    for (const [i, [name]] of connections.entries()) {
      const notice = await notices[i]!;
      assert.equal(notice.source, 'relais-broker');
      assert.equal(notice.destination, name);
      assert.deepEqual(notice.payload, { notice: 'disconnected', reason: 'revoked' }, name);
      await secure.logged(new RegExp(`^disconnected identity ${name}: revoked$`));
    }
    assert.ok(tookMs < 3000, `the last connection closed ${tookMs} ms after the revocation`);
    assert.ok(erin.connected, 'an identity not revoked stays connected');
    assert.equal(await secure.refusedWith('alice'), 5);
    assert.equal(await secure.refusedWith('tess', { ...tls, username: undefined, password: undefined, ...tessCertificate }), 5);
  });

  it('revoked while connected - a client publishing without pause is cut off: once its connection is gone, nothing more of it arrives', async () => {
    const svc = await secure.raw('svc');
    const heard = inbox(svc);
    await svc.subscribeAsync(['demo/echo/request'], { qos: 1 });
    const cli = new IdentityStore(secure.store.file);
    secure.tokens.set('frank', (await cli.add('frank', ['client'])).token);
    const frank = await secure.raw('frank');
    const end = closed(frank, 5000);
    let sent = 0;
    const command = () => JSON.stringify({ type: 'command', source: 'frank', destination: '*', token: `t${++sent}`, payload: {} });
    const trying = setInterval(() => frank.connected && frank.publish('demo/echo/request', command(), { qos: 0 }), 10);
    try {
      await within(new Promise<void>((resolve) => heard.next('demo/echo/request').then(() => resolve())), 5000, "frank's first command");
      cli.revoke('frank');
      await end;
    } finally {
      clearInterval(trying);
    }
    const fromFrank = () => heard.seen.filter(({ payload }) => payload.includes('"source":"frank"')).length;
    const atClose = fromFrank();
    // An honest command after: once it is in, nothing of frank's can still be on its way.
    await svc.publishAsync('demo/echo/request', JSON.stringify({ type: 'command', source: 'svc', destination: '*', token: 'after', payload: {} }), { qos: 1 });
    await within(
      new Promise<void>((resolve) => {
        const look = () => (heard.seen.some(({ payload }) => payload.includes('"token":"after"')) ? resolve() : setTimeout(look, 10));
        look();
      }),
      5000,
      'the honest command',
    );
    assert.equal(fromFrank(), atClose, 'a command of frank arrived after its connection closed');
    await secure.logged(/^disconnected identity frank: revoked$/);
  });
});

describe('live policy - a tightened policy drops what it no longer allows from live subscriptions', { timeout: 60_000 }, () => {
  let secure: SecureBroker;
  let current: Policy;
  const loose = policyWith([SENSORS_PUBLISHED, SENSORS_READ]);
  const tight = policyWith([SENSORS_PUBLISHED]);

  before(async () => {
    current = loose;
    secure = await startSecureBroker([['alice', ['client']], ['svc', ['service']], ['olga', ['observer']]], { policy: () => current });
  });
  after(() => secure.close());

  it('policy tightened - a held subscription now denied is dropped within a second, the client told which and why; the others keep delivering', async () => {
    const alice = await secure.raw('alice');
    const box = inbox(alice);
    await alice.subscribeAsync(['sensors/+', 'demo/n/notification'], { qos: 1 });
    const svc = await secure.raw('svc');
    await svc.publishAsync('sensors/kitchen', JSON.stringify({ type: 'notification', source: 'svc', destination: '*', payload: 'before' }), { qos: 1 });
    assert.equal((await box.next('sensors/kitchen')).payload, 'before');
    const notice = noticeOf(alice, 'alice');
    const changedAt = Date.now();
    current = tight;
    const told = await notice;
    const tookMs = Date.now() - changedAt;
    assert.deepEqual(told.payload, { notice: 'subscriptions-dropped', dropped: [{ filter: 'sensors/+', rule: 'default-deny' }] });
    assert.ok(tookMs < 3000, `told ${tookMs} ms after the change`);
    await secure.logged(/^dropped the subscription to "sensors\/\+" of identity alice: default-deny \(no longer allowed\)$/);
    // A reading after the change is not delivered; a notification sent after it is (same sender, in order).
    await svc.publishAsync('sensors/kitchen', JSON.stringify({ type: 'notification', source: 'svc', destination: '*', payload: 'after' }), { qos: 1 });
    await svc.publishAsync('demo/n/notification', JSON.stringify({ type: 'notification', source: 'svc', destination: '*', payload: 'still' }), { qos: 1 });
    assert.equal((await box.next('demo/n/notification')).payload, 'still');
    assert.deepEqual(box.seen.filter(({ topic }) => topic === 'sensors/kitchen'), [], 'nothing on the dropped subscription');
    assert.ok(alice.connected, 'the connection stays up');
    // Subscribing again is refused now (0x80), as for any denied filter.
    const again = await alice.subscribeAsync('sensors/+', { qos: 1 }).then(
      () => 'granted',
      (error: Error & { packet?: { granted: number[] } }) => error.packet?.granted,
    );
    assert.deepEqual(again, [128]);
    current = loose;
  });

  it('policy replaced and put back between two looks - a subscription made under the passing policy is decided again under the one in force', async () => {
    current = tight;
    const alice = await secure.raw('alice');
    await new Promise((resolve) => setTimeout(resolve, 500)); // the broker has seen the tight policy
    const notice = noticeOf(alice, 'alice');
    current = loose;
    await alice.subscribeAsync('sensors/+', { qos: 1 }); // granted under the loose one...
    current = tight; // ...which is gone again, most likely before the broker looked
    const told = await notice;
    assert.deepEqual(told.payload, { notice: 'subscriptions-dropped', dropped: [{ filter: 'sensors/+', rule: 'default-deny' }] });
    current = loose;
  });

  it('roles changed in the identities file - what the new roles no longer allow is dropped; the connection stays', async () => {
    const alice = await secure.raw('alice');
    await alice.subscribeAsync(['demo/x/response/alice', 'demo/n/notification'], { qos: 1 });
    const notice = noticeOf(alice, 'alice');
    // An operator makes alice an observer, her token unchanged (an edit of the file, then saved).
    const data = JSON.parse(fs.readFileSync(secure.store.file, 'utf8')) as { identities: Array<{ name: string; roles: string[] }> };
    data.identities.find((identity) => identity.name === 'alice')!.roles = ['observer'];
    fs.writeFileSync(`${secure.store.file}.edit`, JSON.stringify(data));
    fs.renameSync(`${secure.store.file}.edit`, secure.store.file);
    const told = await notice;
    assert.deepEqual(told.payload, { notice: 'subscriptions-dropped', dropped: [{ filter: 'demo/x/response/alice', rule: 'default-deny' }] });
    assert.ok(alice.connected);
  });

  it('a broken identities file keeps the identities in force (with a log line): connections stay, a valid token still connects', async () => {
    const svc = await secure.raw('svc');
    fs.writeFileSync(`${secure.store.file}.edit`, '{ "version": 1, "identities": [ { "name": ');
    fs.renameSync(`${secure.store.file}.edit`, secure.store.file);
    await secure.logged(/the identities file changed and is refused; the identities read before stay in force: .*not valid JSON/);
    assert.ok(svc.connected);
    const olga = await secure.raw('olga');
    assert.ok(olga.connected);
  });
});
