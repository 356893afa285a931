/**
 * The attacks of docs/security.md's attack table, measured: what a hostile client costs the
 * embedded broker with security on, and how fast revocation and policy changes act on live
 * connections. The broker runs in its own process (test/fixtures/broker-process.ts) except for
 * the HTTP and live scenarios, which need the web server or the policy function in-process.
 *
 *   node --import tsx bench/security-attacks.ts                       # every scenario (~2 min on 2 cores)
 *   node --import tsx bench/security-attacks.ts --only flood,policy   # flood, basic, identities, policy, preauth, logs, live
 *
 * Prints one markdown table; progress lines go to stderr.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startEmbeddedBroker } from '../src/broker/index.js';
import { DEFAULT_POLICY_DATA, defaultPolicy } from '../src/security/default-policy.js';
import { IdentityStore } from '../src/security/identities.js';
import { parsePolicy, type Policy } from '../src/security/policy.js';
import { startWebServer } from '../src/web/server.js';
import { startBrokerProcess, type BrokerProcess } from '../test/testkit/broker-process.js';
import { log, summarize } from './lib/util.js';

const SCENARIOS = ['flood', 'basic', 'identities', 'policy', 'preauth', 'logs', 'live'] as const;
type Scenario = (typeof SCENARIOS)[number];
const rows: Array<[string, string, string]> = [];
const row = (attack: string, measured: string, scenario: Scenario) => {
  rows.push([attack, measured, `--only ${scenario}`]);
  log(`${attack}: ${measured}`);
};
const ms = (value: number) => `${value.toFixed(value < 10 ? 1 : 0)} ms`;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `relais-attacks-${name}-`));
}

/** A raw CONNECT from `localAddress`; resolves with its CONNACK return code, or 'closed'. */
function rawConnect(port: number, fields: { clientId: string; username?: string; password?: string | Buffer }, localAddress = '127.0.0.1'): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    socket.on('error', () => {});
    let answered = false;
    socket.on('data', (bytes: Buffer) => {
      if (answered || bytes[0] !== 0x20) return;
      answered = true;
      resolve(bytes[3]!);
      socket.destroy();
    });
    socket.once('close', () => answered || resolve('closed'));
    const password = typeof fields.password === 'string' ? Buffer.from(fields.password) : fields.password;
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, keepalive: 30, clean: true, clientId: fields.clientId, ...(fields.username !== undefined && { username: fields.username }), ...(password && { password }) }));
  });
}

async function client(url: string, id: string, token: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId: id, username: id, password: token, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 60_000 });
}

/** Round trips of `alice` to itself on a notification topic while `busy()` runs. */
async function roundTripsDuring(alice: MqttClient, busy: () => Promise<unknown>): Promise<number[]> {
  // QoS 0 both ways: a QoS 1 round trip here waits ~40 ms for a delayed ACK, which would hide the rest.
  await alice.subscribeAsync('bench/ping/notification', { qos: 0 });
  const latencies: number[] = [];
  let running = true;
  const work = busy().finally(() => (running = false));
  while (running) {
    const started = performance.now();
    const arrived = new Promise<void>((resolve) => alice.once('message', () => resolve()));
    alice.publish('bench/ping/notification', '{}', { qos: 0 });
    await arrived;
    latencies.push(performance.now() - started);
  }
  await work;
  return latencies;
}

async function withIdentities(people: Array<[string, string[]]>): Promise<{ dir: string; store: IdentityStore; tokens: Map<string, string> }> {
  const dir = tempDir('ids');
  const store = new IdentityStore(path.join(dir, 'identities.json'));
  const tokens = new Map<string, string>();
  for (const [name, roles] of people) tokens.set(name, (await store.add(name, roles)).token);
  return { dir, store, tokens };
}

async function flood(): Promise<void> {
  const { dir, store, tokens } = await withIdentities([['alice', ['client']], ['bob', ['client']]]);
  const broker = await startBrokerProcess({ identities: store.file });
  try {
    const quiet = performance.now();
    await (await client(broker.url, 'bob', tokens.get('bob')!)).endAsync();
    const alone = performance.now() - quiet;
    const attempts = Array.from({ length: 400 }, (_, i) => rawConnect(broker.port, { clientId: 'alice', username: 'alice', password: `wrong-${i}` }, '127.0.0.2'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await (await client(broker.url, 'bob', tokens.get('bob')!)).endAsync();
    const during = performance.now() - started;
    const codes = await Promise.all(attempts);
    const refusedAtOnce = codes.filter((code) => code === 5).length;
    row('400 parallel wrong-token CONNECTs (another address), then a legitimate CONNECT', `legitimate CONNECT ${ms(during)} (alone: ${ms(alone)}); ${refusedAtOnce} of 400 refused without a check (5), ${codes.filter((code) => code === 4).length} checked (4), none let in; ${broker.logs.filter((line) => /too many/.test(line)).length} log lines for the refusals without a check`, 'flood');
  } finally {
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function basic(): Promise<void> {
  const { dir, store, tokens } = await withIdentities([['victim', ['client']]]);
  const security = { identities: store, policy: defaultPolicy() };
  const broker = await startEmbeddedBroker({ port: 0, security, log: () => {} });
  const web = await startWebServer({ broker, port: 0, security, log: () => {} });
  try {
    const url = `${web.url}api/clients`;
    const basicAuth = (secret: string) => ({ authorization: `Basic ${Buffer.from(`victim:${secret}`).toString('base64')}` });
    await fetch(url, { headers: basicAuth(tokens.get('victim')!) });
    const statuses: number[] = [];
    const started = performance.now();
    for (let i = 0; i < 600; i++) statuses.push((await fetch(url, { headers: basicAuth(`guess-${i}`) })).status);
    const seconds = (performance.now() - started) / 1000;
    const checked = statuses.filter((status) => status === 401).length;
    const rightful = performance.now();
    const owner = (await fetch(url, { headers: basicAuth(tokens.get('victim')!) })).status;
    row('600 Basic-auth guesses at one identity, one after another', `${checked} checked (401) in ${seconds.toFixed(1)} s (${(checked / seconds).toFixed(1)} checked guesses/s), ${statuses.filter((status) => status === 429).length} refused at once (429, Retry-After); the owner's proved token: ${owner === 401 || owner === 429 ? 'refused' : 'served'} in ${ms(performance.now() - rightful)}`, 'basic');
  } finally {
    await web.close();
    await broker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function identities(): Promise<void> {
  const { dir, store, tokens } = await withIdentities([['alice', ['client']], ['svc', ['service']]]);
  const data = JSON.parse(fs.readFileSync(store.file, 'utf8')) as { identities: Array<Record<string, unknown>> };
  const template = data.identities.find((identity) => identity.name === 'svc')!;
  for (let i = 0; data.identities.length < 20_000; i++) data.identities.push({ ...template, name: `member-${i}` });
  fs.writeFileSync(store.file, JSON.stringify(data, null, 2));
  const size = fs.statSync(store.file).size;
  const broker = await startBrokerProcess({ identities: store.file });
  try {
    const alice = await client(broker.url, 'alice', tokens.get('alice')!);
    const quiet = summarize(await roundTripsDuring(alice, () => new Promise((resolve) => setTimeout(resolve, 2000))));
    let n = 0;
    const knocking = summarize(
      await roundTripsDuring(alice, () =>
        Promise.all(Array.from({ length: 4 }, async (_, k) => {
          // Each from its own address: the per-address back-off would otherwise stop them early.
          for (let i = 0; i < 25; i++) await rawConnect(broker.port, { clientId: `nobody-${n++}`, username: `nobody-${k}-${i}`, password: 'x' }, `127.0.${k + 3}.${i + 1}`);
        })),
      ),
    );
    await alice.endAsync();
    row(`100 unknown-identity CONNECTs (4 at a time) with ${data.identities.length} identities (${mb(size)})`, `a healthy client's round trip p50 ${ms(quiet.p50)} alone, ${ms(knocking.p50)} during (max ${ms(knocking.max)})`, 'identities');
  } finally {
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function policy(): Promise<void> {
  const { dir, store, tokens } = await withIdentities([['alice', ['client']], ['mallory', ['client']]]);
  const data = structuredClone(DEFAULT_POLICY_DATA);
  const rules: unknown[] = [...data.rules];
  for (let i = 0; rules.length < 57_009; i++) rules.push({ roles: ['client'], publish: [`\${path}/zone-${i}/\${path}/reading`], subscribe: [`zone-${i}/+/notification`] });
  const policyFile = path.join(dir, 'policy.json');
  fs.writeFileSync(policyFile, JSON.stringify({ ...data, rules }));
  const broker = await startBrokerProcess({ identities: store.file, policy: policyFile });
  try {
    const alice = await client(broker.url, 'alice', tokens.get('alice')!);
    const mallory = await client(broker.url, 'mallory', tokens.get('mallory')!);
    let firstMs = 0;
    let totalMs = 0;
    const latencies = await roundTripsDuring(alice, async () => {
      const started = performance.now();
      for (let i = 0; i < 1000; i++) {
        await mallory.publishAsync(`fresh/${i}/nowhere`, '{}', { qos: 1 });
        if (i === 0) firstMs = performance.now() - started;
      }
      totalMs = performance.now() - started;
    });
    const healthy = summarize(latencies);
    await Promise.all([alice.endAsync(), mallory.endAsync()]);
    row(`1,000 publishes on fresh denied topics under ${rules.length} rules (${mb(fs.statSync(policyFile).size)})`, `${ms(totalMs)} in all (the first, which built the index: ${ms(firstMs)}); a healthy client's round trip p50 ${ms(healthy.p50)}, max ${ms(healthy.max)}`, 'policy');
  } finally {
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A CONNECT whose fixed header claims `length` bytes, followed by them (its fields can hold at
 * most 64 KiB each: the rest is filler, which a parser buffers until the whole packet is in).
 */
function bigConnect(length: number): Buffer {
  const header = [0x10];
  for (let left = length; ; ) {
    const digit = left % 128;
    left = Math.floor(left / 128);
    header.push(left > 0 ? digit | 0x80 : digit);
    if (left === 0) break;
  }
  return Buffer.concat([Buffer.from(header), Buffer.alloc(length, 0x61)]);
}

function memory(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

async function preauth(): Promise<void> {
  const { dir, store } = await withIdentities([['alice', ['client']]]);
  const broker: BrokerProcess = await startBrokerProcess({ identities: store.file }, { exposeGc: true });
  try {
    const baseline = await broker.gc();
    // Sampled during the attack: the process's high-water mark may be its start's.
    let peak = memory(broker.child.pid!, 'VmRSS');
    const sampler = setInterval(() => (peak = Math.max(peak, memory(broker.child.pid!, 'VmRSS'))), 10);
    const packet = bigConnect(1_100_000);
    const started = performance.now();
    await Promise.all(Array.from({ length: 300 }, () => new Promise<void>((resolve) => {
      const socket = net.connect(broker.port, '127.0.0.1');
      socket.on('error', () => {});
      socket.once('close', () => resolve());
      socket.once('connect', () => socket.write(packet));
    })));
    const tookMs = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 200)); // what the broker still does once they are gone
    clearInterval(sampler);
    const after = await broker.gc();
    const signed = (bytes: number) => `${bytes >= 0 ? '+' : '-'}${mb(Math.abs(bytes))}`;
    row('300 sockets each sending a 1.1 MB CONNECT', `all closed in ${ms(tookMs)} (at the header: ${broker.logs.filter((line) => /before authentication/.test(line)).length}); broker RSS peak ${signed(peak - baseline.rss)}, after they left and a GC ${signed(after.rss - baseline.rss)} (heap ${signed(after.heapUsed - baseline.heapUsed)})`, 'preauth');
  } finally {
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function logs(): Promise<void> {
  const { dir, store } = await withIdentities([['alice', ['client']]]);
  const lines: string[] = [];
  const broker = await startEmbeddedBroker({ port: 0, security: { identities: store, policy: defaultPolicy() }, log: (line) => lines.push(line) });
  try {
    await rawConnect(broker.port!, { clientId: 'c'.repeat(5000), username: 'u'.repeat(10_000), password: 'x' });
    await rawConnect(broker.port!, { clientId: 'c'.repeat(65_000), username: 'u'.repeat(65_000), password: 'x' });
    const bytes = lines.map((line) => Buffer.byteLength(line));
    row('a refused CONNECT with a 10 KB user name and a 5 KB client id; one with 64 KB of each', `log line ${bytes[0]} bytes; ${bytes[1]} bytes (refused at its header, over maxConnectBytes)`, 'logs');
  } finally {
    await broker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function live(): Promise<void> {
  const people: Array<[string, string[]]> = Array.from({ length: 20 }, (_, i) => [`user-${i}`, ['client']]);
  const { dir, store, tokens } = await withIdentities([...people, ['svc', ['service']]]);
  const extra = { roles: ['client'], subscribe: ['sensors/+'] };
  const loose: Policy = parsePolicy({ ...structuredClone(DEFAULT_POLICY_DATA), rules: [...structuredClone(DEFAULT_POLICY_DATA).rules, extra] });
  const tight = defaultPolicy();
  let current = loose;
  const broker = await startEmbeddedBroker({ port: 0, security: { identities: store, policy: () => current }, log: () => {} });
  try {
    const revocations: number[] = [];
    const drops: number[] = [];
    for (const [name] of people) {
      const connection = await client(broker.url!, name, tokens.get(name)!);
      await connection.subscribeAsync('sensors/+', { qos: 1 });
      // The policy tightened: the time until the client is told its subscription is dropped.
      const told = new Promise<number>((resolve) => connection.on('message', (topic) => topic.startsWith('relais/broker/notice/') && resolve(performance.now())));
      const changed = performance.now();
      current = tight;
      drops.push((await told) - changed);
      current = loose;
      // Revoked by another store object (as `relais identity revoke`): the time until its connection is closed.
      const closed = new Promise<number>((resolve) => connection.once('close', () => resolve(performance.now())));
      const revoked = performance.now();
      new IdentityStore(store.file).revoke(name);
      revocations.push((await closed) - revoked);
    }
    const revocation = summarize(revocations);
    const drop = summarize(drops);
    row(`an identity revoked while connected (${revocations.length} times)`, `connection closed after p50 ${ms(revocation.p50)}, max ${ms(revocation.max)}`, 'live');
    row(`a policy tightened under a held subscription (${drops.length} times; the policy function looked at every 200 ms)`, `subscription dropped and the client told after p50 ${ms(drop.p50)}, max ${ms(drop.max)}`, 'live');
  } finally {
    await broker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const { values } = parseArgs({ options: { only: { type: 'string' } } });
const chosen = (values.only?.split(',') ?? [...SCENARIOS]) as Scenario[];
const runs: Record<Scenario, () => Promise<void>> = { flood, basic, identities, policy, preauth, logs, live };
for (const scenario of chosen) {
  if (!runs[scenario]) throw new Error(`unknown scenario ${scenario}; known: ${SCENARIOS.join(', ')}`);
  log(`security attacks: ${scenario}`);
  await runs[scenario]();
}
process.stdout.write(`| attack | measured | command (node --import tsx bench/security-attacks.ts …) |\n|---|---|---|\n${rows.map((cells) => `| ${cells.join(' | ')} |`).join('\n')}\n`);
process.stdout.write(`\n${os.cpus().length} CPUs, Node ${process.version}, load average ${os.loadavg().map((load) => load.toFixed(1)).join(' ')}\n`);
