/**
 * Saying no must be cheap (docs/security.md "Failed authentications", "Bounded resources"):
 * a flood of wrong tokens does not hold up an honest CONNECT; a large identities file is not
 * read and validated at each CONNECT; a policy of 57,000 rules decides a fresh topic without
 * stalling the broker; a refused CONNECT's log line is short whatever its user name; a
 * CONNECT larger than a few KiB is refused at its header and its memory returns. Real
 * sockets, the embedded broker with security on.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { parsePolicy } from '../../src/security/policy.js';
import { startBrokerProcess } from '../testkit/broker-process.js';
import { waitFor, within } from '../testkit/index.js';
import { startSecureBroker } from '../testkit/secure-broker.js';

/** A raw CONNECT from `localAddress` (a loopback address of its own: another "machine"); resolves with its CONNACK return code, or 'closed'. */
function rawConnect(port: number, fields: { clientId: string; username?: string; password?: string }, localAddress = '127.0.0.1'): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    socket.on('error', () => {});
    let answered = false;
    socket.on('data', (bytes: Buffer) => {
      // CONNACK: 0x20 0x02 <flags> <return code>
      if (!answered && bytes[0] === 0x20 && bytes.length >= 4) {
        answered = true;
        resolve(bytes[3]!);
        socket.destroy();
      }
    });
    socket.once('close', () => answered || resolve('closed'));
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, keepalive: 30, clean: true, clientId: fields.clientId, ...(fields.username !== undefined && { username: fields.username }), ...(fields.password !== undefined && { password: Buffer.from(fields.password) }) }));
  });
}

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((values.length * p) / 100))] ?? NaN;

describe('saying no is cheap - failed authentications', { timeout: 120_000 }, () => {
  it('a legitimate CONNECT waits for a few token checks, not for 400 wrong-token CONNECTs from another address in flight; they are all refused, and logged in a few lines', async () => {
    await using secure = await startSecureBroker([['alice', ['client']], ['bob', ['client']]]);
    const port = secure.broker.port!;
    // The flood: 400 wrong tokens for alice, from 127.0.0.2, all at once.
    const flood = Array.from({ length: 400 }, (_, i) => rawConnect(port, { clientId: 'alice', username: 'alice', password: `wrong-${i}` }, '127.0.0.2'));
    await new Promise((resolve) => setTimeout(resolve, 50)); // let them arrive first
    const started = performance.now();
    const bob = await secure.raw('bob');
    const tookMs = performance.now() - started;
    // What bob waited for: the token checks of the flood done before his (a count, not a time: the machine may be busy).
    const checkedBefore = (secure.broker.denials!.byRule.get('connect:wrong token') ?? 0);
    assert.ok(bob.connected);
    const codes = await within(Promise.all(flood), 60_000, 'every flooding CONNECT answered');
    assert.ok(codes.every((code) => code === 4 || code === 5), `a flooding CONNECT was let in: ${codes.join(' ')}`);
    assert.ok(codes.filter((code) => code === 5).length > 300, 'most were refused without a check (5)');
    assert.ok(checkedBefore < 40, `bob's CONNECT waited for ${checkedBefore} wrong-token checks (${tookMs.toFixed(0)} ms)`);
    const throttledLines = secure.logs.filter((line) => /too many (failures|attempts at once)/.test(line));
    assert.ok(throttledLines.length <= 10, `${throttledLines.length} log lines for the refusals without a check`);
    assert.ok(secure.broker.denials!.connect >= 400);
  });

  it('a refused CONNECT with a 10 KB user name and a 5 KB client id is logged in one short line', async () => {
    await using secure = await startSecureBroker([['alice', ['client']]]);
    const code = await rawConnect(secure.broker.port!, { clientId: 'c'.repeat(5000), username: 'u'.repeat(10_000), password: 'x' });
    assert.equal(code, 4);
    const line = await secure.logged(/^refused CONNECT of identity "u+"…\(10000 characters\) \(client id "c+"…\(5000 characters\)\): unknown identity$/);
    assert.ok(line.length < 400, `a log line of ${line.length} characters`);
  });
});

describe('saying no is cheap - large identities files and policies', { timeout: 180_000 }, () => {
  it('20,000 identities: the file is read and validated once, not at each CONNECT of an unknown identity; the healthy client is served meanwhile', async () => {
    await using secure = await startSecureBroker([['alice', ['client']], ['svc', ['service']]], { security: { authentication: { addressFailures: 10_000, identityFailures: 10_000 } } });
    // Grow the file to 20,000 identities (copies of svc's record under other names: ~5 MB).
    const data = JSON.parse(fs.readFileSync(secure.store.file, 'utf8')) as { version: 1; identities: Array<Record<string, unknown>> };
    const template = data.identities.find((identity) => identity.name === 'svc')!;
    for (let i = 0; data.identities.length < 20_000; i++) data.identities.push({ ...template, name: `member-${i}` });
    fs.writeFileSync(`${secure.store.file}.new`, JSON.stringify(data, null, 2));
    fs.renameSync(`${secure.store.file}.new`, secure.store.file);
    const size = fs.statSync(secure.store.file).size;
    assert.ok(size > 4_000_000, `the file is ${size} bytes`);
    const alice = await secure.raw('alice'); // the new file is read here
    await alice.subscribeAsync('demo/ping/notification', { qos: 1 });
    // Count the reads of the file from now on (the store reads it with fs.readFileSync).
    let reads = 0;
    const readFileSync = fs.readFileSync;
    fs.readFileSync = ((file: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
      if (file === secure.store.file) reads++;
      return (readFileSync as (...args: unknown[]) => unknown)(file, ...rest);
    }) as typeof fs.readFileSync;
    const latencies: number[] = [];
    try {
      const knocks = await Promise.all(Array.from({ length: 4 }, async (_, k) => {
        const codes: Array<number | 'closed'> = [];
        for (let i = 0; i < 10; i++) codes.push(await rawConnect(secure.broker.port!, { clientId: `nobody-${k}-${i}`, username: `nobody-${k}-${i}`, password: 'x' }));
        return codes;
      }).concat([
        (async () => {
          // The healthy client's round trips to itself meanwhile.
          for (let i = 0; i < 10; i++) {
            const started = performance.now();
            const arrived = new Promise<void>((resolve) => alice.once('message', () => resolve()));
            await alice.publishAsync('demo/ping/notification', '{}', { qos: 1 });
            await within(arrived, 10_000, 'a round trip');
            latencies.push(performance.now() - started);
          }
          return [];
        })(),
      ]));
      assert.deepEqual(knocks.flat().filter((code) => code !== 4), [], 'every unknown identity refused with 4');
    } finally {
      fs.readFileSync = readFileSync;
    }
    assert.equal(reads, 0, `the identities file was read ${reads} times for 40 CONNECTs`);
    assert.equal(latencies.length, 10);
  });

  it('a policy of 57,009 rules: 1,000 publishes on fresh denied topics are decided without stalling the broker, and a healthy client is answered meanwhile', async () => {
    // Rules every client's decision must consider: by scanning, ~66 ms for each denied topic.
    const data = structuredClone(DEFAULT_POLICY_DATA);
    const rules: unknown[] = [...data.rules];
    for (let i = 0; rules.length < 57_009; i++) rules.push({ roles: ['client'], publish: [`\${path}/zone-${i}/\${path}/reading`], subscribe: [`zone-${i}/+/notification`] });
    const big = parsePolicy({ ...data, rules });
    await using secure = await startSecureBroker([['alice', ['client']], ['mallory', ['client']]], { policy: big });
    const alice = await secure.raw('alice');
    await alice.subscribeAsync('demo/ping/notification', { qos: 1 });
    const roundTrip = async () => {
      const arrived = new Promise<void>((resolve) => alice.once('message', () => resolve()));
      await alice.publishAsync('demo/ping/notification', '{}', { qos: 1 });
      await within(arrived, 30_000, 'a round trip');
    };
    await roundTrip(); // the policy's index is built at its first decision
    const mallory = await secure.raw('mallory');
    const started = performance.now();
    let flooding = true;
    const flood = (async () => {
      for (let i = 0; i < 1000; i++) await mallory.publishAsync(`fresh/${i}/nowhere`, '{}', { qos: 1 });
    })().finally(() => (flooding = false));
    let answered = 0;
    while (flooding) {
      await roundTrip();
      answered++;
    }
    await flood;
    const tookMs = performance.now() - started;
    // By scanning every rule this took over a minute; by the index, a second or so (a busy machine: a few).
    assert.ok(tookMs < 20_000, `1,000 denied publishes took ${tookMs.toFixed(0)} ms`);
    assert.ok(answered > 0);
    assert.ok((secure.broker.denials!.byRule.get('default-deny') ?? 0) >= 1000);
  });
});

describe('saying no is cheap - what is buffered before authentication', { timeout: 120_000 }, () => {
  it('300 sockets each sending a 1.1 MB CONNECT are closed at its header; the broker holds no more memory after they leave', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-preauth-'));
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    await store.add('alice', ['client']);
    const broker = await startBrokerProcess({ identities: store.file }, { exposeGc: true });
    try {
      const baseline = await broker.gc();
      // A fixed header claiming 1.1 MB, then the 1.1 MB (a CONNECT's fields hold 64 KiB each at most: the rest is filler a parser buffers).
      const connectHeader = Buffer.concat([Buffer.from([0x10, 0xe0, 0x91, 0x43]), Buffer.alloc(1_100_000, 0x61)]);
      const closings = Array.from({ length: 300 }, () =>
        new Promise<number>((resolve) => {
          const socket = net.connect(broker.port, '127.0.0.1');
          socket.on('error', () => {});
          const started = Date.now();
          socket.once('close', () => resolve(Date.now() - started));
          socket.once('connect', () => socket.write(connectHeader));
        }),
      );
      const times = await within(Promise.all(closings), 60_000, 'every socket closed');
      await waitFor(() => broker.logs.find((line) => /claims 1100000 bytes before authentication, over the limit of 16384 \(maxConnectBytes\)/.test(line)), broker.events, 'log', 5000);
      const refusedAtHeader = broker.logs.filter((line) => /before authentication, over the limit of 16384/.test(line)).length;
      assert.equal(refusedAtHeader, 300, 'each refused at its header');
      assert.ok(!broker.logs.some((line) => /refused CONNECT/.test(line)), 'none was parsed to be authenticated');
      const after = await broker.gc();
      assert.ok(after.heapUsed - baseline.heapUsed < 16 * 1024 * 1024, `heap ${((after.heapUsed - baseline.heapUsed) / 1048576).toFixed(1)} MB over its baseline`);
      assert.ok(after.rss - baseline.rss < 96 * 1024 * 1024, `RSS ${((after.rss - baseline.rss) / 1048576).toFixed(1)} MB over its baseline`);
      assert.ok(percentile(times, 50) < 5000);
    } finally {
      await broker.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
