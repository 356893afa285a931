/**
 * Binary payloads end to end (protocol §3.5) on the embedded Aedes broker and on Mosquitto:
 * bytes in, the same bytes out, through requests, progress, answers, notifications and raw
 * publish; a foreign peer reads and writes the framing with a plain MQTT client; hostile
 * framings get an error back, never a crash.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { z } from 'zod';
import { PayloadTooLargeError, RelaisError, type Step } from '../../src/index.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { parsePolicy } from '../../src/security/policy.js';
import { inbox, startSecureBroker, type SecureBroker } from '../testkit/secure-broker.js';
import { peerGate, recordingLogger, setup, subscribedForNext, SUITE_TIMEOUT, uniqueId, within, type BrokerKind, type Kit } from '../testkit/index.js';

/** What protocol §3.5 tells a foreign peer: the header is the text before the first LF, the body the rest. */
function splitByTheDocumentedRule(bytes: Buffer): { header: Record<string, unknown>; body: Buffer } {
  const lf = bytes.indexOf(0x0a);
  assert.ok(lf > 0, 'a binary message has an LF after its header');
  return { header: JSON.parse(bytes.subarray(0, lf).toString('utf8')) as Record<string, unknown>, body: bytes.subarray(lf + 1) };
}

/** A plain MQTT.js client, as any foreign peer would use. */
async function plainClient(url: string, id: string): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, { clientId: id, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
  return client;
}

function nextMessage(client: mqtt.MqttClient, topic: string, timeout = 10_000): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve) => {
      const listener = (arrived: string, payload: Buffer) => {
        if (arrived !== topic) return;
        client.off('message', listener);
        resolve(payload);
      };
      client.on('message', listener);
    }),
    timeout,
    `a message on ${topic}`,
  );
}

function binaryCommand(fields: Record<string, unknown>, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(JSON.stringify({ v: 1, type: 'command', ...fields })), Buffer.from([0x0a]), body]);
}

function binaryContract(kind: BrokerKind, skip: string | false): void {
  describe(`binary payloads on ${kind}`, { skip, timeout: SUITE_TIMEOUT }, () => {
    let kit: Kit;
    before(async () => {
      kit = await setup(kind);
    });
    after(async () => {
      await kit?.cleanup();
    });

    it('request - bytes go in and the same bytes come back, in progress steps and in the final answer', async () => {
      const action = `test/binary/echo${uniqueId('a').replace(/-/g, '')}`;
      const server = await kit.connect(uniqueId('server'));
      const client = await kit.connect(uniqueId('client'));
      const sent = randomBytes(70_000);
      sent[0] = 0x0a; // an LF in the body changes nothing: only the first one ends the header
      let seen: unknown;
      await server.handle(action, (payload: Buffer, ctx) => {
        seen = payload;
        ctx.progress(0.5, payload.subarray(0, 10));
        return Buffer.concat([payload, Buffer.from('!')]);
      });
      await client.waitForHandler(action, { timeout: 10_000 });
      assert.ok(Buffer.isBuffer(await client.request(action, new Uint8Array(sent))), 'the result is a Buffer');
      assert.ok(Buffer.isBuffer(seen) && (seen as Buffer).equals(sent), 'the handler sees the bytes sent');
      const steps: Step[] = [];
      for await (const step of client.call(action, sent)) steps.push(step);
      const progress = steps.find((step) => step.kind === 'progress');
      assert.ok(progress && Buffer.isBuffer(progress.payload) && progress.payload.equals(sent.subarray(0, 10)), 'the progress step carries its bytes');
      const final = steps.at(-1)!;
      assert.equal(final.kind, 'final');
      assert.ok(Buffer.isBuffer(final.payload) && final.payload.equals(Buffer.concat([sent, Buffer.from('!')])));
      // An empty body is a payload too.
      assert.deepEqual([...(await client.request<Buffer>(action, new Uint8Array(0)))], [0x21]);
    });

    it('notify and publish - a subscriber gets the bytes; raw publish of bytes sends them as they are', async () => {
      const sender = await kit.connect(uniqueId('sender'));
      const listener = await kit.connect(uniqueId('listener'));
      const category = `test/binary/${uniqueId('n').replace(/-/g, '')}`;
      const body = randomBytes(4096);
      const note = await subscribedForNext(listener, `${category}/notification`);
      sender.notify(category, body);
      const received = await note.arrived;
      assert.ok(Buffer.isBuffer(received.envelope.payload) && received.envelope.payload.equals(body));
      assert.equal(received.envelope.type, 'notification');
      const rawTopic = `${category}/raw`;
      const plain = await plainClient(kit.broker.url, uniqueId('plain'));
      try {
        await plain.subscribeAsync(rawTopic);
        const arriving = nextMessage(plain, rawTopic);
        sender.publish(rawTopic, body);
        assert.ok((await arriving).equals(body), 'raw bytes arrive unchanged');
      } finally {
        await plain.endAsync();
      }
    });

    it('foreign peer - a plain MQTT client splits a binary notification by the documented rule, and its own binary command is answered', async () => {
      const sender = await kit.connect(uniqueId('sender'));
      const category = `test/binary/${uniqueId('f').replace(/-/g, '')}`;
      const plainId = uniqueId('plain');
      const plain = await plainClient(kit.broker.url, plainId);
      try {
        await plain.subscribeAsync(`${category}/notification`);
        const arriving = nextMessage(plain, `${category}/notification`);
        const body = Buffer.concat([Buffer.from('\n{"not":"json"}\n'), randomBytes(1000)]);
        sender.notify(category, body);
        const { header, body: readBody } = splitByTheDocumentedRule(await arriving);
        assert.equal(header.body, readBody.length);
        assert.equal(header.type, 'notification');
        assert.equal(header.source, sender.id);
        assert.equal('payload' in header, false);
        assert.ok(readBody.equals(body));

        // The other way: the foreign peer writes a binary command by hand; the answer is binary too.
        const action = `${category}/digest`;
        await sender.handle(action, (payload: Buffer) => Buffer.from(createHash('sha256').update(payload).digest()));
        await plain.subscribeAsync(`${action}/response/${plainId}`);
        const answered = nextMessage(plain, `${action}/response/${plainId}`);
        const data = randomBytes(3000);
        await plain.publishAsync(`${action}/request/${sender.id}`, binaryCommand({ source: plainId, destination: sender.id, token: 'f1', body: data.length }, data), { qos: 1 });
        const answer = splitByTheDocumentedRule(await answered);
        assert.equal(answer.header.token, 'f1');
        assert.equal(answer.header.code, 0);
        assert.ok(answer.body.equals(createHash('sha256').update(data).digest()));
      } finally {
        await plain.endAsync();
      }
    });

    it('hostile framing - a wrong body length, a missing LF and a huge declared body get a code 2 answer and a log line; the handler goes on', async () => {
      const recorder = recordingLogger();
      const server = await kit.connect(uniqueId('server'), { logger: recorder.logger });
      const action = `test/binary/${uniqueId('h').replace(/-/g, '')}`;
      await server.handle(action, (payload: Buffer) => payload.length);
      const plainId = uniqueId('plain');
      const plain = await plainClient(kit.broker.url, plainId);
      const responses = `${action}/response/${plainId}`;
      try {
        await plain.subscribeAsync(responses);
        const ask = async (token: string, bytes: Buffer) => {
          const answered = nextMessage(plain, responses);
          await plain.publishAsync(`${action}/request/${server.id}`, bytes, { qos: 1 });
          const answer = JSON.parse((await answered).toString('utf8')) as { token: string; code: number; error: { message: string } };
          assert.equal(answer.token, token);
          return answer;
        };
        const fields = (token: string, body: number) => ({ source: plainId, destination: server.id, token, body });
        const shorter = await ask('h1', binaryCommand(fields('h1', 10), Buffer.alloc(4)));
        assert.equal(shorter.code, 2);
        assert.match(shorter.error.message, /'body' is 10 bytes, 4 follow/);
        const noLf = await ask('h2', Buffer.from(JSON.stringify({ v: 1, type: 'command', ...fields('h2', 4) })));
        assert.equal(noLf.code, 2);
        assert.match(noLf.error.message, /one LF/);
        const huge = await ask('h3', binaryCommand(fields('h3', 2 ** 52), Buffer.alloc(3)));
        assert.equal(huge.code, 2);
        const negative = await ask('h4', binaryCommand(fields('h4', -1), Buffer.alloc(0)));
        assert.equal(negative.code, 2);
        assert.ok(recorder.lines.some((line) => line.includes('invalid request')), 'a log line says so');
        // Still serving: a good one is answered.
        const good = nextMessage(plain, responses);
        await plain.publishAsync(`${action}/request/${server.id}`, binaryCommand(fields('h5', 3), Buffer.alloc(3)), { qos: 1 });
        assert.equal(JSON.parse((await good).toString('utf8')).payload, 3);
      } finally {
        await plain.endAsync();
      }
    });

    it('JSON-only handler - bytes sent to an action whose input schema wants JSON get a code 2 answer naming the payload', async () => {
      const server = await kit.connect(uniqueId('server'));
      const client = await kit.connect(uniqueId('client'));
      const action = `test/binary/${uniqueId('j').replace(/-/g, '')}`;
      await server.handle(action, (payload: { name: string }) => payload.name, { input: z.object({ name: z.string() }) });
      await client.waitForHandler(action, { timeout: 10_000 });
      const error = await client.request(action, Buffer.from('hello')).catch((problem: unknown) => problem);
      assert.ok(error instanceof RelaisError, String(error));
      assert.equal(error.responseCode, 2);
      assert.match(error.message, /the payload is 5 bytes \(a binary message\), this action takes JSON/);
    });

    it('size limit - header + LF + body counts: bytes over the limit are refused before anything is sent', async () => {
      const client = await kit.connect(uniqueId('client'), { maxMessageBytes: 10_000 });
      assert.throws(() => client.notify('test/binary/big', new Uint8Array(10_000)), PayloadTooLargeError);
      assert.throws(() => client.publish('test/binary/big', new Uint8Array(10_001)), PayloadTooLargeError);
      await assert.rejects(client.request('test/binary/big', new Uint8Array(10_000), { timeout: 2000 }), PayloadTooLargeError);
      client.notify('test/binary/big', new Uint8Array(9_800));
    });
  });
}

describe('binary payloads on the embedded broker with security on', { timeout: SUITE_TIMEOUT }, () => {
  let secure: SecureBroker;
  before(async () => {
    secure = await startSecureBroker([['alice', ['client']], ['root', ['admin']], ['svc', ['service']], ['olga', ['observer']]], { policy: parsePolicy({ ...structuredClone(DEFAULT_POLICY_DATA), rules: [...DEFAULT_POLICY_DATA.rules, { name: 'files', publish: ['files/+/notification'], subscribe: ['files/+/notification'] }] }) });
  });
  after(() => secure?.close());

  it('broker checks - a binary message is checked by its header: any body bytes pass, a header claiming another source is refused', async () => {
    const root = await secure.raw('root');
    const alice = await secure.raw('alice');
    try {
      await root.subscribeAsync('files/+/notification', { qos: 1 });
      const seen = inbox(root);
      const header = (source: string, body: Buffer) => Buffer.from(`${JSON.stringify({ v: 1, type: 'notification', source, destination: '*', body: body.length })}\n`);
      // Not UTF-8, NULs, and a "source" of someone else inside the body: none of it is the envelope's.
      const body = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0xc0]), Buffer.from('"source":"root"')]);
      await alice.publishAsync('files/a/notification', Buffer.concat([header('alice', body), body]), { qos: 1 });
      const arrived = await within(new Promise<Buffer>((resolve) => root.on('message', (topic, payload) => topic === 'files/a/notification' && resolve(payload))), 10_000, 'the binary notification');
      assert.ok(splitByTheDocumentedRule(arrived).body.equals(body));
      await alice.publishAsync('files/b/notification', Buffer.concat([header('root', body), body]), { qos: 1 });
      await secure.logged(/denied publish on "files\/b\/notification" for identity alice: builtin:source \(the envelope says "root"\)/);
      assert.equal(seen.seen.some((message) => message.topic === 'files/b/notification'), false);
    } finally {
      await Promise.all([root.endAsync(), alice.endAsync()]);
    }
  });
});

describe('binary commands per role of the default policy (embedded broker, security on)', { timeout: SUITE_TIMEOUT }, () => {
  let secure: SecureBroker;
  before(async () => {
    const data = structuredClone(DEFAULT_POLICY_DATA);
    secure = await startSecureBroker([['alice', ['client']], ['root', ['admin']], ['svc', ['service']], ['olga', ['observer']]], { policy: parsePolicy({ ...data, identities: { ...data.identities, svc: { serves: ['demo/#'] } } }) });
  });
  after(() => secure?.close());

  it('roles - client and admin reach the service with bytes; the observer is refused (a log line, nothing delivered); a client calling a restricted action gets the code-4 answer with the token of its header', async () => {
    const svc = await secure.raw('svc');
    const received = inbox(svc);
    await svc.subscribeAsync('demo/blob/request', { qos: 1 });
    const body = Buffer.from([0x0a, 0x00, 0xff, 0x22]);
    const command = (source: string, token: string) => Buffer.concat([Buffer.from(JSON.stringify({ v: 1, type: 'command', source, destination: '*', token, body: body.length })), Buffer.from([0x0a]), body]);
    const clients: mqtt.MqttClient[] = [svc];
    try {
      for (const identity of ['alice', 'root']) {
        const client = await secure.raw(identity);
        clients.push(client);
        await client.publishAsync('demo/blob/request', command(identity, `${identity}-1`), { qos: 1 });
        const arrived = await within(
          new Promise<Buffer>((resolve) => {
            const look = () => {
              const found = received.seen.find((message) => message.payload.includes(`"${identity}-1"`));
              if (found) resolve(found.payload);
              else setTimeout(look, 20);
            };
            look();
          }),
          10_000,
          `${identity}'s binary command at the service`,
        );
        assert.ok(splitByTheDocumentedRule(arrived).body.equals(body));
      }
      const olga = await secure.raw('olga');
      clients.push(olga);
      await olga.publishAsync('demo/blob/request', command('olga', 'olga-1'), { qos: 1 });
      await secure.logged(/denied publish on "demo\/blob\/request" for identity olga/);
      // The agents' actions are restricted to admin and agent-user: alice's bytes are refused and answered.
      const alice = clients[1]!;
      const answers = inbox(alice);
      await alice.subscribeAsync('system/disks/list_disks/response/alice', { qos: 1 });
      await alice.publishAsync('system/disks/list_disks/request', command('alice', 'alice-2'), { qos: 1 });
      const denial = await answers.next('system/disks/list_disks/response/alice', 10_000);
      assert.equal(denial.code, 4);
      assert.equal(denial.token, 'alice-2', 'the token is read from the binary header');
      assert.equal(received.seen.some((message) => message.payload.includes('"olga-1"')), false);
    } finally {
      await Promise.all(clients.map((client) => client.endAsync()));
    }
  });
});

binaryContract('aedes', false);
binaryContract('mosquitto', peerGate('mosquitto', 'binary payloads on Mosquitto').skip);
