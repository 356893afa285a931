/**
 * The external interface (docs/security.md "Listeners", "Certificates"): TLS 1.3 only, client
 * certificates from the Relais CA naming the identity, tokens over TLS, and what is refused: an
 * unknown CA, an expired certificate, a revoked identity, a certificate reissued since, TLS 1.2.
 * And the internal interface: the Unix socket is the broker user's alone (mode 0600).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { connect, type Bus } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { IdentityStore } from '../../src/security/identities.js';
import { defaultPolicy } from '../../src/security/default-policy.js';
import { createCertificateAuthority, issueCertificate, type IssuedCertificate, type PemPair } from '../../src/security/pki.js';
import { testLogger, within } from '../testkit/index.js';

describe('TLS listener with client certificates (embedded broker, security on)', { timeout: 60_000 }, () => {
  let dir: string;
  let store: IdentityStore;
  let broker: EmbeddedBroker;
  let ca: PemPair;
  const certs = new Map<string, IssuedCertificate>();
  const logs: string[] = [];
  const logged = new EventEmitter();
  const raws: MqttClient[] = [];
  const buses: Bus[] = [];
  let bobToken: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-tls-'));
    store = new IdentityStore(path.join(dir, 'identities.json'));
    ca = await createCertificateAuthority('Relais test CA');
    const server = await issueCertificate(ca, { commonName: 'broker', usage: 'server', hosts: ['localhost', '127.0.0.1'] });
    const yesterday = new Date(Date.now() - 24 * 3600_000);
    const stranger = await createCertificateAuthority('Another CA');
    const issued: Array<[string, PemPair, Parameters<typeof issueCertificate>[1]]> = [
      ['alice', ca, { commonName: 'alice', usage: 'client' }],
      ['carol', ca, { commonName: 'carol', usage: 'client' }],
      ['dave', ca, { commonName: 'dave', usage: 'client', notBefore: new Date(yesterday.getTime() - 3600_000), notAfter: yesterday }],
      ['erin', stranger, { commonName: 'erin', usage: 'client' }],
    ];
    for (const [name, authority, request] of issued) {
      const cert = await issueCertificate(authority, request);
      certs.set(name, cert);
      await store.addWithCertificate(name, ['client'], { fingerprint: cert.fingerprint, serial: cert.serial, notAfter: cert.notAfter.toISOString() }, false);
    }
    bobToken = (await store.add('bob', ['service'])).token;
    broker = await startEmbeddedBroker({
      port: false,
      tls: { cert: server.cert, key: server.key, ca: ca.cert, port: 0, wsPort: 0 },
      security: { identities: store.file, policy: defaultPolicy({ serves: { bob: ['tls/#'] } }) },
      log: (line) => {
        logs.push(line);
        logged.emit('line', line);
      },
    });
  });
  after(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    await Promise.all(raws.map((client) => client.endAsync(true)));
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const logLine = (pattern: RegExp) =>
    within(
      new Promise<string>((resolve) => {
        const look = (line: string) => {
          if (!pattern.test(line)) return;
          logged.off('line', look);
          resolve(line);
        };
        logged.on('line', look);
        for (const line of logs) look(line);
      }),
      5000,
      `a broker log line matching ${pattern}`,
    );

  /** CONNACK 0 → 'connected'; a refusal → its return code; a closed handshake → 'closed'. */
  function attempt(clientId: string, options: { cert?: IssuedCertificate; username?: string; password?: string; url?: string } = {}): Promise<'connected' | 'closed' | number> {
    const client = mqtt.connect(options.url ?? broker.tlsUrl!, {
      clientId,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ca: ca.cert,
      ...(options.cert && { cert: options.cert.cert, key: options.cert.key }),
      ...(options.username !== undefined && { username: options.username }),
      ...(options.password !== undefined && { password: options.password }),
    });
    raws.push(client);
    return within(
      new Promise((resolve) => {
        client.once('connect', () => resolve('connected'));
        client.once('error', (error: Error & { code?: number | string }) => resolve(typeof error.code === 'number' ? error.code : 'closed'));
        client.once('close', () => resolve('closed'));
      }),
      5000,
      `the outcome of ${clientId}'s CONNECT`,
    );
  }

  it('certificate - a client certificate from the CA is its identity: it calls a handler that connected with a token over TLS', async () => {
    const handler = await connect({ id: 'bob', broker: broker.tlsUrl!, username: 'bob', password: bobToken, tls: { ca: ca.cert }, logger: testLogger });
    buses.push(handler);
    await handler.handle('tls/echo', (payload) => ({ echoed: payload }));
    const alice = certs.get('alice')!;
    const caller = await connect({ id: 'alice', broker: broker.tlsUrl!, tls: { ca: ca.cert, cert: alice.cert, key: alice.key }, logger: testLogger });
    buses.push(caller);
    assert.deepEqual(await caller.request('tls/echo', { n: 1 }, { target: 'bob', timeout: 5000 }), { echoed: { n: 1 } });
    // The tests below connect as bob and alice: a library client of that id would take its id back (it reconnects), closing theirs.
    for (const bus of buses.splice(0)) await bus.close();
  });

  it('certificate - a certificate from an unknown CA is refused at the handshake, and the log names why', async () => {
    assert.equal(await attempt('erin', { cert: certs.get('erin') }), 'closed');
    assert.match(await logLine(/refused the client certificate .*CN "erin"/), /CN "erin": (UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify)/i);
  });

  it('certificate - an expired certificate is refused at the handshake (CERT_HAS_EXPIRED in the log)', async () => {
    assert.equal(await attempt('dave', { cert: certs.get('dave') }), 'closed');
    await logLine(/refused the client certificate .*CN "dave".*(CERT_HAS_EXPIRED|expired)/i);
  });

  it('certificate - a revoked identity is refused at its next CONNECT (return code 5), without a restart', async () => {
    const carol = certs.get('carol')!;
    assert.equal(await attempt('carol', { cert: carol }), 'connected');
    store.revoke('carol');
    assert.equal(await attempt('carol', { cert: carol }), 5);
    await logLine(/refused CONNECT of certificate identity "carol" .*revoked/);
  });

  it('certificate - a certificate the identity no longer holds (reissued since) is refused (4)', async () => {
    const old = certs.get('carol')!;
    const fresh = await issueCertificate(ca, { commonName: 'carol', usage: 'client' });
    await store.addWithCertificate('carol', ['client'], { fingerprint: fresh.fingerprint, serial: fresh.serial, notAfter: fresh.notAfter.toISOString() }, false);
    assert.equal(await attempt('carol', { cert: old }), 4);
    await logLine(/certificate identity "carol" .*certificate not on record/);
    assert.equal(await attempt('carol', { cert: fresh }), 'connected');
  });

  it("certificate - a username other than the certificate's identity, or another's client id, is refused", async () => {
    const alice = certs.get('alice')!;
    assert.equal(await attempt('alice', { cert: alice, username: 'bob', password: bobToken }), 4);
    assert.equal(await attempt('bob', { cert: alice }), 2);
  });

  it('tokens over TLS - no certificate and no token is refused (4); a token is enough', async () => {
    assert.equal(await attempt('bob'), 4);
    assert.equal(await attempt('bob', { username: 'bob', password: bobToken }), 'connected');
  });

  it('wss:// - MQTT over WebSocket over TLS: the same certificates and tokens; no credentials refused (4); a bad certificate refused', async () => {
    const url = broker.wssUrl!.replace('127.0.0.1', 'localhost');
    assert.equal(await attempt('alice', { url, cert: certs.get('alice') }), 'connected');
    assert.equal(await attempt('bob', { url, username: 'bob', password: bobToken }), 'connected');
    assert.equal(await attempt('bob', { url }), 4);
    assert.equal(await attempt('bob', { url, cert: certs.get('alice') }), 2);
    const erinRefusals = () => logs.filter((line) => /refused the client certificate .*CN "erin"/.test(line)).length;
    const before = erinRefusals();
    assert.notEqual(await attempt('erin', { url, cert: certs.get('erin') }), 'connected');
    assert.equal(erinRefusals(), before + 1, 'the wss listener logs the refused certificate');
  });

  it('TLS 1.2 is refused on the external listener, with a log line', async () => {
    const outcome = await within(
      new Promise<string>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port: broker.tlsPort!, ca: ca.cert, servername: 'localhost', maxVersion: 'TLSv1.2' });
        socket.once('secureConnect', () => {
          resolve(`connected with ${socket.getProtocol()}`);
          socket.destroy();
        });
        socket.once('error', (error: Error & { code?: string }) => resolve(error.code ?? error.message));
      }),
      5000,
      'the TLS 1.2 handshake outcome',
    );
    assert.match(outcome, /PROTOCOL_VERSION|VERSION/i);
    await logLine(/refused a TLS handshake .*(UNSUPPORTED_PROTOCOL|VERSION)/i);
  });
});

describe('the internal interface: the Unix socket', { timeout: 30_000 }, () => {
  it("is created with mode 0600 (the broker user's alone), whatever the umask", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-unix-'));
    const previous = process.umask(0o000);
    try {
      const broker = await startEmbeddedBroker({ port: false, unixPath: path.join(dir, 'relais.sock'), log: () => {} });
      try {
        assert.equal(fs.statSync(path.join(dir, 'relais.sock')).mode & 0o777, 0o600);
      } finally {
        await broker.close();
      }
    } finally {
      process.umask(previous);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
