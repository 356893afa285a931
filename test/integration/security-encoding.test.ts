/**
 * One encoding for envelopes (protocol §3: UTF-8 JSON without a BOM), the same for every
 * reader: the embedded broker with security on refuses anything else on Relais topics (with
 * the code-4 answer to a command), so that a forged `source` cannot hide behind a BOM or
 * UTF-16 from its check; `decode()` and the page refuse such a payload as an envelope.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decode } from '../../src/protocol/envelope.js';
import { envelopeText } from '../../src/protocol/encoding.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import mqtt from 'mqtt';
import { connect } from '../../src/client/connect.js';
import type { Bus } from '../../src/client/bus.js';
import type { Delivery } from '../../src/client/types.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { parsePolicy } from '../../src/security/policy.js';
import { testLogger, within } from '../testkit/index.js';
import { inbox, startSecureBroker, type SecureBroker } from '../testkit/secure-broker.js';

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const utf16le = (text: string, mark: boolean) => Buffer.concat([mark ? Buffer.from([0xff, 0xfe]) : Buffer.alloc(0), Buffer.from(text, 'utf16le')]);
const utf16be = (text: string) => Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]);

/** Each way a reader that is not strict would still find this JSON, with what the broker must say. */
function disguises(json: string): Array<[string, Buffer, RegExp]> {
  return [
    ['a UTF-8 BOM', Buffer.concat([BOM, Buffer.from(json)]), /UTF-8 byte order mark/],
    ['UTF-16LE with its BOM', utf16le(json, true), /UTF-16 byte order mark/],
    ['UTF-16BE with its BOM', utf16be(json), /UTF-16 byte order mark/],
    ['UTF-16LE without a BOM', utf16le(json, false), /NUL byte/],
    // An overlong '"' (C0 A2), inside a string: a lax decoder could end the string there.
    ['ill-formed UTF-8', Buffer.concat([Buffer.from(`${json.slice(0, -1)},"x":"`), Buffer.from([0xc0, 0xa2]), Buffer.from('"}')]), /not well-formed UTF-8/],
  ];
}

/** The default policy, and application topics `sensors/<room>` anyone may use (to reach the source check there). */
const policyWithSensors = () => {
  const data = structuredClone(DEFAULT_POLICY_DATA);
  // The service serves demo/ (relais identity add svc --serves 'demo/#').
  return parsePolicy({ ...data, identities: { ...data.identities, svc: { serves: ['demo/#'] } }, rules: [...data.rules, { name: 'sensors', publish: ['sensors/+'], subscribe: ['sensors/+'] }] });
};

describe('envelope encoding - the broker refuses what is not UTF-8 JSON without a BOM on Relais topics', { timeout: 60_000 }, () => {
  let secure: SecureBroker;
  before(async () => {
    secure = await startSecureBroker([['alice', ['client']], ['svc', ['service']], ['root', ['admin']], ['olga', ['observer']]], { policy: policyWithSensors() });
  });
  after(() => secure.close());

  it('encoding - a command claiming another source behind a BOM or in UTF-16 is not delivered; its sender gets the code-4 answer with its token', async () => {
    const svc = await secure.raw('svc');
    const received = inbox(svc);
    await svc.subscribeAsync('demo/echo/request', { qos: 1 });
    const alice = await secure.raw('alice');
    const answers = inbox(alice);
    await alice.subscribeAsync('demo/echo/response/alice', { qos: 1 });
    for (let n = 0; n < 5; n++) {
      const token = `forged-${n}`;
      const [how, body, problem] = disguises(`{"type":"command","source":"root","destination":"*","token":"${token}","payload":{}}`)[n]!;
      await alice.publishAsync('demo/echo/request', body, { qos: 1 });
      const answer = await answers.next('demo/echo/response/alice');
      assert.equal(answer.token, token, `${how}: the answer carries the command's token`);
      assert.equal(answer.code, 4, how);
      assert.match((answer.error as { message: string }).message, /builtin:encoding/, how);
      await secure.logged(new RegExp(`denied publish on "demo/echo/request" for identity alice: builtin:encoding \\(it .*${problem.source}`));
    }
    // An honest command after them arrives, and nothing before it did.
    await alice.publishAsync('demo/echo/request', JSON.stringify({ type: 'command', source: 'alice', destination: '*', token: 'honest', payload: {} }), { qos: 1 });
    assert.equal((await received.next('demo/echo/request')).token, 'honest');
    assert.deepEqual(received.seen.map(({ payload }) => payload.toString('latin1')), [], 'nothing refused was delivered');
    assert.equal(secure.broker.denials!.byRule.get('builtin:encoding'), 5);
  });

  it('encoding - a notification on a Relais topic in UTF-16 is refused even with its own source; an empty payload (a cleared presence) passes', async () => {
    const olga = await secure.raw('olga');
    const seen = inbox(olga);
    await olga.subscribeAsync('demo/n/notification', { qos: 1 });
    const alice = await secure.raw('alice');
    await alice.publishAsync('demo/n/notification', utf16le('{"type":"notification","source":"alice","destination":"*","payload":1}', true), { qos: 1 });
    await alice.publishAsync('relais/presence/alice', '', { qos: 1, retain: true });
    await alice.publishAsync('demo/n/notification', JSON.stringify({ type: 'notification', source: 'alice', destination: '*', payload: 'honest' }), { qos: 1 });
    assert.equal((await seen.next('demo/n/notification')).payload, 'honest');
    assert.deepEqual(seen.seen, []);
    assert.ok(!secure.logs.some((line) => line.includes('"relais/presence/alice"')), 'the cleared presence was not refused');
  });

  it('encoding - on an application topic, a BOM or UTF-16 does not hide a forged source from the source check; binary passes', async () => {
    const olga = await secure.raw('olga');
    const seen = inbox(olga);
    await olga.subscribeAsync('sensors/kitchen', { qos: 1 });
    const alice = await secure.raw('alice');
    await alice.publishAsync('sensors/kitchen', Buffer.concat([BOM, Buffer.from('{"type":"notification","source":"svc","destination":"*","payload":"forged"}')]), { qos: 1 });
    await alice.publishAsync('sensors/kitchen', utf16le('{"type":"notification","source":"svc","destination":"*","payload":"forged"}', false), { qos: 1 });
    await alice.publishAsync('sensors/kitchen', Buffer.from([0x00, 0x01, 0x02, 0xff]), { qos: 1 }); // binary, not an envelope: allowed
    await alice.publishAsync('sensors/kitchen', 'honest', { qos: 1 });
    await within(
      new Promise<void>((resolve) => {
        const look = () => (seen.seen.some(({ payload }) => payload.toString() === 'honest') ? resolve() : setTimeout(look, 20));
        look();
      }),
      5000,
      'the honest message',
    );
    assert.deepEqual(seen.seen.map(({ payload }) => payload.toString('hex')), ['000102ff', Buffer.from('honest').toString('hex')]);
    assert.equal(secure.logs.filter((line) => /denied publish on "sensors\/kitchen" for identity alice: builtin:source \(the envelope says "svc"\)/.test(line)).length, 2);
  });
});

describe('envelope encoding - every decoder of ours refuses it the same way', { timeout: 30_000 }, () => {
  const forged = '{"type":"notification","source":"admin","destination":"*","payload":1}';

  it('decode() - a BOM, UTF-16 or ill-formed UTF-8 is not an envelope, saying why (protocol §3)', () => {
    for (const [how, bytes, problem] of disguises(forged)) {
      const result = decode(bytes);
      assert.ok(!result.ok, `${how} was decoded`);
      assert.match(result.error.message, /^message is not UTF-8 JSON: it /, how);
      assert.match(result.error.message, problem, how);
    }
    assert.ok(!decode(`\uFEFF${forged}`).ok, 'a decoded string starting with a BOM');
    assert.ok(decode(Buffer.from(forged)).ok);
    assert.ok(decode(Buffer.from(` \n${forged}`)).ok, 'white space before the object is JSON');
    assert.deepEqual(envelopeText(Buffer.from('{"a":"é"}')), { ok: true, text: '{"a":"é"}' });
  });

  it('the library (the page runs it as relais/browser) - a BOM or UTF-16 payload reaches its subscribers as an invalid message with its text, never as an envelope from "admin"', async () => {
    let broker: EmbeddedBroker | undefined;
    let reader: Bus | undefined;
    const publisher = { client: undefined as mqtt.MqttClient | undefined };
    try {
      broker = await startEmbeddedBroker({ port: 0, wsPort: 0, log: () => {} });
      // Over the WebSocket listener, as the page connects.
      reader = await connect({ id: 'page-reader', broker: broker.wsUrl!, logger: testLogger });
      // Resolves once the broker's SUBACK is back.
      const subscription = await reader.subscribe('demo/n/notification', { includeInvalid: true });
      publisher.client = await mqtt.connectAsync(broker.url!, { clientId: 'mallory', protocolVersion: 4, reconnectPeriod: 0 });
      await publisher.client.publishAsync('demo/n/notification', Buffer.concat([BOM, Buffer.from(forged)]), { qos: 1 });
      await publisher.client.publishAsync('demo/n/notification', utf16le(forged, true), { qos: 1 });
      await publisher.client.publishAsync('demo/n/notification', forged.replace('admin', 'mallory'), { qos: 1 });
      const deliveries: Delivery[] = [];
      const three = (async () => {
        for await (const delivery of subscription) if (deliveries.push(delivery) === 3) return;
      })();
      await within(three, 5000, 'three deliveries to the reader');
      assert.ok('invalid' in deliveries[0]!, 'BOM: no envelope');
      assert.ok('invalid' in deliveries[1]!, 'UTF-16: no envelope');
      assert.equal('envelope' in deliveries[2]! ? deliveries[2].envelope.source : undefined, 'mallory', 'the plain one is an envelope');
      assert.ok('text' in deliveries[0]! && deliveries[0].text.startsWith('\uFEFF'), 'the text shows its BOM');
    } finally {
      await reader?.close();
      await publisher.client?.endAsync(true);
      await broker?.close();
    }
  });
});
