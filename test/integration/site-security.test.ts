/**
 * Links with security on (docs/security.md "Sites", protocol §13.2): the other end of a link is
 * a principal with role `site`, on a network connection (a certificate over TLS, a token over
 * TCP) or on the in-process stream `connectInProcess({ identity })` of a link this process
 * dialled. It may speak for ids no client of this broker has and no other site claimed
 * (builtin:site-claim), and does what the default policy's role `site` allows, nothing more; a
 * revocation or a tightened policy reaches it live. A real embedded broker with the default
 * policy, raw MQTT.js clients and a library client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { connect, type Bus } from '../../src/index.js';
import { brokerNoticeTopic } from '../../src/protocol/broker-notice.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { parsePolicy, type Policy } from '../../src/security/policy.js';
import { createCertificateAuthority, issueCertificate } from '../../src/security/pki.js';
import { testLogger, within } from '../testkit/index.js';
import { closed, startSecureBroker, type SecureBroker } from '../testkit/secure-broker.js';

function policyOf(rules: unknown[]): Policy {
  const data = structuredClone(DEFAULT_POLICY_DATA);
  return parsePolicy({ ...data, identities: { ...data.identities, svc: { serves: ['demo/#'] } }, rules });
}
const DEFAULT = policyOf(DEFAULT_POLICY_DATA.rules);
/** The default policy without the rule letting sites carry the agents' actions: what an operator narrowing every link writes. */
const NO_AGENTS_ON_LINKS = policyOf(
  DEFAULT_POLICY_DATA.rules.filter((rule) => {
    const { roles, publish } = rule as { roles?: string[]; publish?: string[] };
    return !(roles?.includes('site') && publish?.some((pattern) => pattern.startsWith('system/')));
  }),
);

const notification = (source: string, extra: Record<string, unknown> = {}) => JSON.stringify({ type: 'notification', source, destination: '*', payload: { n: 1 }, ...extra });
const presence = (source: string) => JSON.stringify({ type: 'presence', source, destination: '*', payload: { status: 'online', actions: ['demo/echo'] } });
const command = (source: string, token: string) => JSON.stringify({ type: 'command', source, destination: '*', token, payload: {} });

describe('sites with security on: who a link may speak for, and what the role site may do', { timeout: 120_000 }, () => {
  let secure: SecureBroker;
  let current: Policy = DEFAULT;
  let tls: IClientOptions & { url: string };
  /** Sees everything delivered on the bus (admin, '#'). */
  let witness: MqttClient;
  const seen: Array<{ topic: string; text: string }> = [];
  const seenListeners = new Set<() => void>();
  const inProcess: MqttClient[] = [];
  let library: Bus | undefined;

  /** A raw MQTT.js client on a link's in-process stream, as the link logic opens it. */
  const linkStream = async (identity: string, clientId = identity): Promise<MqttClient> => {
    const client = new mqtt.MqttClient(() => secure.broker.connectInProcess({ identity }) as never, { clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 });
    inProcess.push(client);
    await within(
      new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error(`${clientId}: closed before CONNACK`)));
      }),
      10_000,
      `CONNACK for the link ${identity}`,
    );
    return client;
  };
  /** Resolves once the witness saw a message on `topic` whose text includes `marker`. */
  const delivered = (topic: string, marker: string, timeout = 5000) =>
    within(
      new Promise<void>((resolve) => {
        const look = () => {
          if (!seen.some((message) => message.topic === topic && message.text.includes(marker))) return;
          seenListeners.delete(look);
          resolve();
        };
        seenListeners.add(look);
        look();
      }),
      timeout,
      `${marker} on ${topic}`,
    );
  /** Publishes the (refused) message, then a marker the same client may publish: once the marker is in, the refused one would be too. */
  const refusedThenMarker = async (client: MqttClient, topic: string, payload: string, markerSource: string, markerClient = client) => {
    const marker = `marker-${Math.random().toString(36).slice(2)}`;
    await client.publishAsync(topic, payload, { qos: 1 });
    await markerClient.publishAsync('demo/marker/notification', notification(markerSource, { marker }), { qos: 1 });
    await delivered('demo/marker/notification', marker);
  };
  const deliveredCount = (topic: string, text: string) => seen.filter((message) => message.topic === topic && message.text.includes(text)).length;
  const claimDenials = () => secure.broker.denials!.byRule.get('builtin:site-claim') ?? 0;

  before(async () => {
    const ca = await createCertificateAuthority('Relais site test CA');
    const server = await issueCertificate(ca, { commonName: 'broker', usage: 'server', hosts: ['localhost', '127.0.0.1'] });
    secure = await startSecureBroker(
      [['alice', ['client']], ['bob', ['client']], ['olga', ['observer']], ['svc', ['service']], ['root', ['admin']], ['poller-2', ['site']], ['poller-3', ['site']], ['gone-site', ['site']]],
      { policy: () => current, broker: { tls: { cert: server.cert, key: server.key, ca: ca.cert, port: 0 } } },
    );
    // poller-1's certificate, as `relais identity add poller-1 --cert --role site` issues it.
    const poller1 = await issueCertificate(ca, { commonName: 'poller-1', usage: 'client' });
    await secure.store.addWithCertificate('poller-1', ['site'], { fingerprint: poller1.fingerprint, serial: poller1.serial, notAfter: poller1.notAfter.toISOString() }, false);
    tls = { url: secure.broker.tlsUrl!, ca: ca.cert, rejectUnauthorized: true, servername: 'localhost', cert: poller1.cert, key: poller1.key, username: undefined, password: undefined };
    witness = await secure.raw('root');
    witness.on('message', (topic, payload) => {
      seen.push({ topic, text: payload.toString() });
      for (const look of [...seenListeners]) look();
    });
    await witness.subscribeAsync('#', { qos: 1 });
  });
  after(async () => {
    await library?.close();
    await Promise.all(inProcess.map((client) => client.endAsync(true)));
    await secure.close();
  });

  it('a site over TLS (certificate) and a link in process (no entry in the identities) speak for free ids: the first use claims them', async () => {
    const poller1 = await secure.raw('poller-1', tls);
    await poller1.publishAsync('relais/presence/agent-p1', presence('agent-p1'), { qos: 1, retain: true });
    await poller1.publishAsync('demo/ping/notification', notification('agent-p1', { marker: 'p1-speaks' }), { qos: 1 });
    await poller1.publishAsync('relais/sites/poller-1', notification('poller-1', { marker: 'p1-status' }), { qos: 1, retain: true });
    await delivered('relais/presence/agent-p1', '"source":"agent-p1"');
    await delivered('demo/ping/notification', 'p1-speaks');
    await delivered('relais/sites/poller-1', 'p1-status');
    // At a site, the central's end of a push link: admitted as `central`, which the identities do not list.
    const central = await linkStream('central');
    await central.publishAsync('demo/ping/notification', notification('carol-at-central', { marker: 'central-speaks' }), { qos: 1 });
    await central.publishAsync('relais/presence/site:central', presence('site:central'), { qos: 1, retain: true });
    await delivered('demo/ping/notification', 'central-speaks');
    await delivered('relais/presence/site:central', '"source":"site:central"');
    // Its real-time lane is the same identity.
    const lane = await linkStream('central', 'central~rt');
    await lane.publishAsync('demo/ping/notification', notification('carol-at-central', { marker: 'lane-speaks' }), { qos: 1 });
    await delivered('demo/ping/notification', 'lane-speaks');
  });

  it("a link's in-process stream must use its identity as client id", async () => {
    await assert.rejects(linkStream('central', 'alice'), /Identifier rejected|client id|closed before CONNACK/);
    await secure.logged(/refused CONNECT of link identity "central" \(client id "alice"\): the client id must be the identity, central~<session> or either.s ~rt/);
  });

  it('refused for an id connected to this broker, for one whose presence a client here published, for one another site claimed, for relais-router and site:<other> - logged once per id, counted, dropped', async () => {
    const poller1 = await secure.raw('poller-1', tls);
    const poller2 = await secure.raw('poller-2');
    const central = await linkStream('central');
    const alice = await secure.raw('alice');
    // bob publishes his retained presence and leaves: his id stays this broker's.
    const bob = await secure.raw('bob');
    await bob.publishAsync('relais/presence/bob', presence('bob'), { qos: 1, retain: true });
    await bob.endAsync();
    await poller2.publishAsync('relais/presence/agent-p2', presence('agent-p2'), { qos: 1, retain: true });
    await delivered('relais/presence/agent-p2', '"source":"agent-p2"');
    const before = claimDenials();
    const cases: Array<[MqttClient, string, string, string, RegExp]> = [
      [poller1, 'poller-1', 'demo/ping/notification', notification('alice', { marker: 'as-alice' }), /denied publish on "demo\/ping\/notification" for identity poller-1: builtin:site-claim \("alice" is a client of this broker\)/],
      [central, 'central', 'demo/ping/notification', notification('alice', { marker: 'as-alice-2' }), /for identity central: builtin:site-claim \("alice" is a client of this broker\)/],
      [poller1, 'poller-1', 'relais/presence/bob', presence('bob'), /builtin:site-claim \("bob" is a client of this broker: it published its presence here\)/],
      [central, 'central', 'demo/ping/notification', notification('bob', { marker: 'as-bob' }), /for identity central: builtin:site-claim \("bob" is a client of this broker: it published its presence here\)/],
      [central, 'central', 'demo/ping/notification', notification('relais-router', { marker: 'as-router' }), /for identity central: builtin:site-claim \("relais-router" is a client of this process/],
      // No source to check: the presence's own id is, so a site cannot clear the presence of a client here.
      [poller2, 'poller-2', 'relais/presence/alice', '', /for identity poller-2: builtin:site-claim \("alice" is a client of this broker\)/],
      [poller1, 'poller-1', 'demo/ping/notification', notification('agent-p2', { marker: 'as-agent-p2' }), /for identity poller-1: builtin:site-claim \("agent-p2" is a client of site poller-2\)/],
      [central, 'central', 'relais/presence/agent-p2', presence('agent-p2'), /for identity central: builtin:site-claim \("agent-p2" is a client of site poller-2\)/],
      [poller1, 'poller-1', 'relais/presence/relais-router', presence('relais-router'), /builtin:site-claim \("relais-router" is a client of this process, never carried by a link\)/],
      [poller1, 'poller-1', 'demo/ping/notification', notification('site:poller-2', { marker: 'as-site-p2' }), /builtin:site-claim \("site:poller-2" is the router of site poller-2, not of poller-1\)/],
      [central, 'central', 'demo/ping/notification', notification('poller-2', { marker: 'as-poller-2' }), /builtin:site-claim \("poller-2" is a client of this broker\)/],
    ];
    for (const [client, identity, topic, payload, line] of cases) {
      const presenceBefore = deliveredCount(topic, '');
      await refusedThenMarker(client, topic, payload, identity);
      await secure.logged(line);
      if (topic.startsWith('relais/presence/')) assert.equal(deliveredCount(topic, ''), presenceBefore, `a refused presence on ${topic} was delivered`);
    }
    for (const marker of ['as-alice', 'as-alice-2', 'as-bob', 'as-router', 'as-agent-p2', 'as-site-p2', 'as-poller-2']) assert.equal(deliveredCount('demo/ping/notification', marker), 0, `${marker} was delivered`);
    assert.equal(claimDenials() - before, cases.length, 'each refusal is counted under builtin:site-claim');
    // A link repeats what it carries: the same refusal is logged once.
    await refusedThenMarker(poller1, 'demo/ping/notification', notification('alice'), 'poller-1');
    assert.equal(secure.logs.filter((logged) => logged.includes('for identity poller-1: builtin:site-claim ("alice" is a client of this broker)')).length, 1);
    assert.equal(claimDenials() - before, cases.length + 1);
    assert.ok(alice.connected && poller1.connected && central.connected, 'a refused publish keeps the connection');
    // poller-2 clears agent-p2's presence: the claim ends, and poller-1 may have agent-p2 now.
    await poller2.publishAsync('relais/presence/agent-p2', '', { qos: 1, retain: true });
    await poller1.publishAsync('demo/ping/notification', notification('agent-p2', { marker: 'p1-now-agent-p2' }), { qos: 1 });
    await delivered('demo/ping/notification', 'p1-now-agent-p2');
    // ...and poller-2 is refused it in turn.
    await refusedThenMarker(poller2, 'demo/ping/notification', notification('agent-p2', { marker: 'p2-again' }), 'poller-2');
    assert.equal(deliveredCount('demo/ping/notification', 'p2-again'), 0);
  });

  it("a site's command refused for its claim gets the broker's denial reply on its own response topic", async () => {
    const poller2 = await secure.raw('poller-2');
    await poller2.subscribeAsync('demo/echo/response/+', { qos: 1 });
    const reply = new Promise<Record<string, unknown>>((resolve) => poller2.on('message', (topic, payload) => topic === 'demo/echo/response/poller-2' && resolve(JSON.parse(payload.toString()) as Record<string, unknown>)));
    await poller2.publishAsync('demo/echo/request', command('alice', 'claim-refused'), { qos: 1 });
    const answer = await within(reply, 5000, 'the denial reply');
    assert.equal(answer.token, 'claim-refused');
    assert.equal(answer.code, 4);
    assert.match(JSON.stringify(answer), /builtin:site-claim/);
  });

  it('the role site may carry commands, responses and the relais/sites topics of its own name, and nothing beyond: no relais/history/stored, no $SYS/#, no #, no other site\'s status', async () => {
    const poller1 = await secure.raw('poller-1', tls);
    const central = await linkStream('central');
    for (const site of [poller1, central]) {
      // mqtt.js turns a SUBACK holding 0x80 into an error that carries the packet.
      const granted = await site.subscribeAsync(['demo/echo/request/+', 'demo/echo/response/+', 'relais/sites/#', 'relais/presence/+', 'system/disks/list/request/+', '$SYS/#', '#', 'demo/echo/response/#', 'relais/history/stored'], { qos: 1 }).then(
        () => assert.fail('every filter was granted'),
        (error: Error & { packet?: { granted: number[] } }) => error.packet?.granted,
      );
      assert.deepEqual(granted, [1, 1, 1, 1, 1, 128, 128, 128, 128]);
    }
    // Commands and responses for ids it speaks for go through.
    await poller1.publishAsync('demo/echo/request/svc', command('agent-p1', 'p1-cmd'), { qos: 1 });
    await delivered('demo/echo/request/svc', 'p1-cmd');
    await central.publishAsync('demo/echo/response/alice', JSON.stringify({ type: 'response', source: 'carol-at-central', destination: 'alice', token: 'r1', final: true, payload: 'ok' }), { qos: 1 });
    await delivered('demo/echo/response/alice', '"token":"r1"');
    const denied: Array<[string, string]> = [
      ['relais/history/stored', notification('poller-1')],
      ['relais/sites/poller-2', notification('poller-1', { marker: 'other-status' })],
      ['relais/sites/poller-2/clients', notification('poller-1', { marker: 'other-roster' })],
    ];
    const before = secure.broker.denials!.publish;
    for (const [topic, payload] of denied) await refusedThenMarker(poller1, topic, payload, 'poller-1');
    assert.equal(secure.broker.denials!.publish - before, denied.length);
    for (const [topic] of denied) assert.equal(seen.filter((message) => message.topic === topic).length, 0, `${topic} was delivered`);
    await secure.logged(/denied publish on "relais\/history\/stored" for identity poller-1: default-deny/);
  });

  it('a client, an observer and a service still cannot speak for others', async () => {
    for (const [identity, topic] of [
      ['alice', 'demo/ping/notification'],
      ['svc', 'demo/ping/notification'],
      ['olga', 'relais/presence/olga'],
    ] as const) {
      const client = await secure.raw(identity);
      // An observer may publish no notification: its marker goes through the witness (its messages are not ordered with olga's, so olga's refusal is awaited in the log first).
      if (identity === 'olga') {
        await client.publishAsync(topic, notification('agent-free', { marker: 'olga-as-other' }), { qos: 1 });
        await refusedThenMarker(witness, 'demo/marker/notification', notification('root'), 'root');
      } else {
        await refusedThenMarker(client, topic, notification('agent-free', { marker: `${identity}-as-other` }), identity);
      }
      await secure.logged(new RegExp(`for identity ${identity}: builtin:source \\(the envelope says "agent-free"\\)`));
      assert.equal(deliveredCount(topic, `${identity}-as-other`), 0);
    }
    const alice = await secure.raw('alice');
    await refusedThenMarker(alice, 'relais/presence/agent-free', presence('agent-free'), 'alice');
    await secure.logged(/denied publish on "relais\/presence\/agent-free" for identity alice: builtin:others-presence/);
  });

  it("every identity reads relais/sites/#: the links' statuses and rosters, not the answers of relais/sites/get to others", async () => {
    const alice = await secure.raw('alice');
    const bob = await secure.raw('bob');
    const olga = await secure.raw('olga');
    const heard = new Map<string, string[]>([['alice', []], ['bob', []], ['olga', []]]);
    for (const [name, client] of [['alice', alice], ['bob', bob], ['olga', olga]] as const) client.on('message', (topic) => heard.get(name)!.push(topic));
    for (const client of [alice, olga]) assert.deepEqual((await client.subscribeAsync('relais/sites/#', { qos: 1 })).map(({ qos }) => qos), [1]);
    assert.deepEqual((await bob.subscribeAsync(['relais/sites/#', 'relais/sites/get/response/bob'], { qos: 1 })).map(({ qos }) => qos), [1, 1]);
    // The router (in process, trusted) answers bob, and a link's status changes.
    const router = new mqtt.MqttClient(() => secure.broker.connectInProcess() as never, { clientId: 'relais-router', protocolVersion: 4, reconnectPeriod: 0 });
    inProcess.push(router);
    await within(new Promise((resolve) => router.once('connect', resolve)), 5000, 'the router connects');
    await router.publishAsync('relais/sites/get/response/bob', JSON.stringify({ type: 'response', source: 'relais-router', destination: 'bob', token: 's1', final: true, payload: {} }), { qos: 1 });
    await router.publishAsync('relais/sites/get/request/relais-router', command('bob', 's1'), { qos: 1 });
    await router.publishAsync('relais/sites/poller-9', notification('relais-router', { marker: 'status-9' }), { qos: 1 });
    await router.publishAsync('relais/sites/poller-9/clients', notification('relais-router', { marker: 'roster-9' }), { qos: 1 });
    const until = (name: string, topic: string) => within(new Promise<void>((resolve) => { const look = () => (heard.get(name)!.includes(topic) ? resolve() : setTimeout(look, 10)); look(); }), 5000, `${name} reads ${topic}`);
    for (const name of ['alice', 'bob', 'olga']) {
      await until(name, 'relais/sites/poller-9');
      await until(name, 'relais/sites/poller-9/clients');
    }
    await until('bob', 'relais/sites/get/response/bob');
    // The roster came after the answer and the request, on the same connection: they would be in.
    for (const name of ['alice', 'olga']) {
      assert.ok(!heard.get(name)!.includes('relais/sites/get/response/bob'), `${name} read bob's answer`);
      assert.ok(!heard.get(name)!.includes('relais/sites/get/request/relais-router'), `${name} read a request to the router`);
    }
    assert.equal(heard.get('bob')!.filter((topic) => topic === 'relais/sites/get/response/bob').length, 1);
  });

  it('a library client works on a link stream: admitted as its identity, it publishes as itself', async () => {
    library = await connect({ id: 'poller-3', stream: () => secure.broker.connectInProcess({ identity: 'poller-3' }), realtimeLane: false, logger: testLogger });
    await library.notify('demo/lib', { from: 'library' });
    await delivered('demo/lib/notification', '"source":"poller-3"');
  });

  it('revoking a site identity: its network connection is cut, its link stream too, and a new link stream is refused at CONNECT', async () => {
    const poller2 = await secure.raw('poller-2');
    const link = await linkStream('poller-3');
    const ends = [closed(poller2, 5000), closed(link, 5000)];
    const cli = new IdentityStore(secure.store.file); // as `relais identity revoke` does
    assert.ok(cli.revoke('poller-2'));
    assert.ok(cli.revoke('poller-3'));
    await Promise.all(ends);
    await secure.logged(/^disconnected identity poller-2: revoked$/);
    await secure.logged(/^disconnected identity poller-3: revoked$/);
    assert.equal(await secure.refusedWith('poller-2'), 5);
    await assert.rejects(linkStream('poller-3'), /Not authorized|closed before CONNACK/);
    await secure.logged(/refused CONNECT of link identity "poller-3" \(client id "poller-3"\): revoked/);
  });

  it('tightening the policy of the role site reaches a live link: its subscription to the agents\' actions is dropped, its next such command refused and answered to its requester', async () => {
    const central = await linkStream('central');
    const notices: Array<Record<string, unknown>> = [];
    central.on('message', (topic, payload) => topic === brokerNoticeTopic('central') && notices.push(JSON.parse(payload.toString()) as Record<string, unknown>));
    assert.deepEqual((await central.subscribeAsync('system/disks/list/request/+', { qos: 1 })).map(({ qos }) => qos), [1]);
    await central.publishAsync('system/disks/list/request/vm-1', command('carol-at-central', 'before-tightening'), { qos: 1 });
    await delivered('system/disks/list/request/vm-1', 'before-tightening');
    current = NO_AGENTS_ON_LINKS;
    try {
      await within(new Promise<void>((resolve) => { const look = () => (notices.length > 0 ? resolve() : setTimeout(look, 20)); look(); }), 5000, 'the notice of dropped subscriptions');
      assert.equal(notices[0]!.payload && (notices[0]!.payload as { notice: string }).notice, 'subscriptions-dropped');
      await refusedThenMarker(central, 'system/disks/list/request/vm-1', command('carol-at-central', 'after-tightening'), 'central');
      assert.equal(deliveredCount('system/disks/list/request/vm-1', 'after-tightening'), 0);
      // The denial reply goes to the requester the link carried (protocol §5.3), for the link to carry back.
      await delivered('system/disks/list/response/carol-at-central', '"token":"after-tightening"');
      await secure.logged(/denied publish on "system\/disks\/list\/request\/vm-1" for identity central: /);
    } finally {
      current = DEFAULT;
    }
  });
});
