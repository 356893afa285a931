/**
 * The broker's denial reply as docs/protocol.md §5.3 writes it, seen by MQTT clients that are not
 * the Relais library: each exchange of the section's transcript is run as written (the same
 * topics and command) against the embedded broker with security on and the default policy, by
 * mosquitto_pub/mosquitto_sub, by MQTT.js used directly, and by Debian's python3-paho-mqtt; each
 * must receive exactly the documented line (`ts` aside), acknowledged and still connected.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { denialReply } from '../../src/protocol/broker-denial.js';
import { findBinary, peerGate } from '../testkit/index.js';
import { inbox, startSecureBroker, type SecureBroker } from '../testkit/secure-broker.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PYTHON = '/usr/bin/python3';
const PAHO_FIXTURE = path.join(ROOT, 'test/fixtures/paho-denial.py');

interface Exchange {
  /** What mosquitto_sub subscribes to, the topic and command mosquitto_pub sends, and the line documented. */
  responses: string;
  topic: string;
  command: string;
  line: string;
}

/** The exchanges of docs/protocol.md §5.3, as written there. */
function documentedExchanges(): Exchange[] {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/protocol.md'), 'utf8');
  const section = doc.slice(doc.indexOf('### §5.3'), doc.indexOf('## §6'));
  const exchanges: Exchange[] = [];
  const pattern = /```sh\nmosquitto_sub [^\n]*-t '([^']+)' &\nmosquitto_pub [^\n]*-t (\S+) \\\n\s+-m '([^']+)'\n```\n```\n([^\n]+)\n```/g;
  for (const match of section.matchAll(pattern)) exchanges.push({ responses: match[1]!, topic: match[2]!, command: match[3]!, line: match[4]! });
  assert.ok(exchanges.length >= 2, `docs/protocol.md §5.3 shows ${exchanges.length} exchanges in the expected form`);
  return exchanges;
}

/** A `mosquitto_sub -v` line with its `ts` made 0: the one field that differs between runs. */
const withoutTs = (line: string) => line.replace(/"ts":\d+/, '"ts":0');

const paho = fs.existsSync(PYTHON) && fs.existsSync('/usr/lib/python3/dist-packages/paho');
const mosquittoGate = peerGate('mosquitto_pub', 'the denial reply with mosquitto_pub/mosquitto_sub');

describe("the broker's denial reply (protocol §5.3) as a foreign client sees it", { timeout: 90_000 }, () => {
  const exchanges = documentedExchanges();
  let secure: SecureBroker;
  let port: string;
  before(async () => {
    secure = await startSecureBroker([['alice', ['client']]]);
    port = new URL(secure.broker.url!).port;
  });
  after(async () => {
    await secure?.close();
  });

  it('the transcript is what src/protocol/broker-denial.ts builds (one definition)', () => {
    for (const { topic, command, line } of exchanges) {
      const envelope = JSON.parse(command) as Record<string, unknown>;
      const [responseTopic, body] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)];
      const rule = (JSON.parse(body) as { error: { details: { rule: string } } }).error.details.rule;
      const reply = denialReply(topic, envelope, 'alice', rule)!;
      assert.equal(withoutTs(`${reply.topic} ${JSON.stringify(reply.message)}`), withoutTs(line));
      assert.equal(responseTopic, reply.topic);
    }
  });

  it('MQTT.js alone: the documented reply, the PUBLISH acknowledged, the connection kept', async () => {
    const alice = await secure.raw('alice');
    const box = inbox(alice);
    for (const { responses, topic, command, line } of exchanges) {
      await alice.subscribeAsync(responses, { qos: 1 });
      await alice.publishAsync(topic, command, { qos: 1 }); // resolves on the PUBACK
      const reply = await box.next(responses);
      assert.equal(withoutTs(`${responses} ${JSON.stringify(reply)}`), withoutTs(line));
    }
    assert.ok(alice.connected);
  });

  it('mosquitto_pub and mosquitto_sub: the documented line', { skip: mosquittoGate.skip }, async () => {
    for (const { responses, topic, command, line } of exchanges) {
      const token = secure.tokens.get('alice')!;
      // stdbuf: mosquitto_sub block-buffers a piped stdout, which would hide its SUBACK line (-d).
      const sub = spawn('stdbuf', ['-oL', findBinary('mosquitto_sub')!, '-h', '127.0.0.1', '-p', port, '-v', '-d', '-i', 'alice~rt', '-u', 'alice', '-P', token, '-t', responses, '-C', '1', '-W', '15'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      const subscribed = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`mosquitto_sub did not subscribe: ${output}`)), 15_000);
        sub.stdout.on('data', (chunk: Buffer) => {
          output += chunk;
          if (/received SUBACK/.test(output)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const ended = new Promise<void>((resolve) => sub.on('close', () => resolve()));
      await subscribed;
      const published = await new Promise<number | null>((resolve) => {
        const pub = spawn(findBinary('mosquitto_pub')!, ['-h', '127.0.0.1', '-p', port, '-q', '1', '-i', 'alice', '-u', 'alice', '-P', token, '-t', topic, '-m', command], { stdio: 'ignore' });
        pub.on('close', resolve);
      });
      assert.equal(published, 0, 'mosquitto_pub: connected, published, acknowledged');
      await ended;
      const received = output.split('\n').filter((text) => text.startsWith(`${responses} `));
      assert.deepEqual(received.map(withoutTs), [withoutTs(line)], output);
    }
  });

  it("Debian's python3-paho-mqtt: the documented reply, acknowledged, still connected", { skip: paho ? false : 'python3-paho-mqtt is not installed for /usr/bin/python3' }, async () => {
    for (const { responses, topic, command, line } of exchanges) {
      const stdout = await new Promise<string>((resolve, reject) =>
        execFile(PYTHON, [PAHO_FIXTURE, '127.0.0.1', port, 'alice', secure.tokens.get('alice')!, topic, responses, command], { timeout: 45_000 }, (error, out, err) => (error ? reject(new Error(`${error.message}\n${out}${err}`)) : resolve(out))),
      );
      const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { suback: number[]; puback: boolean; connected: boolean; topic?: string; payload?: string };
      assert.deepEqual(result.suback, [1]);
      assert.equal(result.puback, true);
      assert.equal(result.connected, true);
      assert.equal(withoutTs(`${result.topic} ${result.payload}`), withoutTs(line));
    }
  });
});
