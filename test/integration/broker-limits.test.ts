/**
 * The embedded broker's bounded resources (docs/security.md "Bounded resources (broker)"),
 * against the broker in its own process (its memory is read from /proc/<pid>/status) over real
 * sockets: packets claiming huge lengths, a socket that never sends CONNECT, a first packet
 * that is not CONNECT, keep-alive 0 (accepted) and an operator's keep-alive limit, and a `#` subscriber that stops reading during a burst.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connect, type Bus } from '../../src/index.js';
import { BROKER_LIMITS, MAX_REMAINING_LENGTH } from '../../src/broker/index.js';
import { startBrokerProcess, type BrokerProcess } from '../testkit/broker-process.js';
import { testLogger, uniqueId, waitFor } from '../testkit/index.js';

const ATTACKERS = 1000;
/** Attackers sent before the baseline is read: V8's young generation grows to its working size (~45 MB) under any load, whatever its size. */
const WARM_UP = 100;

/** Resident memory of a process, in bytes (`field`: VmRSS now, VmHWM its peak so far). */
function memory(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
}

const connectPacket = (clientId: string, keepalive = 30) => mqttPacket.generate({ cmd: 'connect', clientId, keepalive, protocolVersion: 4, clean: true });

/** A raw TCP connection to the broker that reports when it is closed. */
function rawSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', () => {}); // writes after the broker closed it: expected
    socket.once('error', reject);
  });
}

function closed(socket: net.Socket, timeout: number): Promise<number> {
  const started = Date.now();
  if (socket.destroyed) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeout} ms`)), timeout);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

/** The packets a raw socket receives, awaited one command at a time. */
function readPackets(socket: net.Socket): { next(cmd: string, timeout?: number): Promise<mqttPacket.Packet> } {
  const parser = mqttPacket.parser();
  const seen: mqttPacket.Packet[] = [];
  const events = new (class extends EventEmitter {})();
  parser.on('packet', (packet) => {
    seen.push(packet);
    events.emit('packet');
  });
  socket.on('data', (chunk) => parser.parse(chunk));
  return {
    next: (cmd, timeout = 5000) =>
      waitFor(() => {
        const at = seen.findIndex((packet) => packet.cmd === cmd);
        return at < 0 ? undefined : seen.splice(at, 1)[0];
      }, events, 'packet', timeout),
  };
}

function waitForLog(broker: BrokerProcess, pattern: RegExp, timeout: number): Promise<string> {
  return waitFor(() => broker.logs.find((line) => pattern.test(line)), broker.events, 'log', timeout);
}

/** Sequential requests from `requester` to `echo/<tag>` until `stop` is set; their latencies, and the failures. */
async function keepAsking(requester: Bus, action: string, stop: { done: boolean }) {
  const latencies: number[] = [];
  const failures: string[] = [];
  for (let i = 0; !stop.done; i++) {
    const started = performance.now();
    try {
      assert.equal(await requester.request(action, { i }, { timeout: 3000 }), i);
      latencies.push(performance.now() - started);
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  return { latencies, failures };
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
};

describe('embedded broker limits', { timeout: 120_000 }, () => {
  let broker: BrokerProcess;
  let handler: Bus;
  let requester: Bus;
  const action = `limits/echo-${process.pid}`;

  before(async () => {
    broker = await startBrokerProcess({ limits: {} });
    handler = await connect({ id: uniqueId('limits-handler'), broker: broker.url, logger: testLogger });
    requester = await connect({ id: uniqueId('limits-requester'), broker: broker.url, logger: testLogger });
    await handler.handle(action, (payload) => (payload as { i: number }).i);
    assert.equal(await requester.request(action, { i: -1 }, { timeout: 5000 }), -1);
  });
  after(async () => {
    await Promise.allSettled([handler?.close(), requester?.close()]);
    await broker?.stop();
  });

  it(`${ATTACKERS} sockets claiming 256 MB packets are closed at their header, broker memory grows < 64 MB, a healthy client keeps answering`, async (t) => {
    const pid = broker.child.pid!;
    const idle = memory(pid, 'VmRSS');
    const stop = { done: false };
    const asking = keepAsking(requester, action, stop);
    const header = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]); // PUBLISH QoS 0, remaining length 268,435,455
    const body = Buffer.alloc(64 * 1024, 0x61); // what a fast sender pushes after it: what Aedes would buffer
    const closeTimes: number[] = [];
    const trickles: NodeJS.Timeout[] = [];
    const attack = async (n: number) => {
      const socket = await rawSocket(broker.port);
      const whenClosed = closed(socket, 20_000);
      socket.write(Buffer.concat([connectPacket(`attacker-${n}`), header]));
      socket.write(body);
      const trickle = setInterval(() => socket.destroyed || socket.write(body.subarray(0, 64)), 100);
      trickles.push(trickle);
      closeTimes.push(await whenClosed.finally(() => clearInterval(trickle)));
    };
    let before = idle;
    try {
      for (let batch = 0; batch < WARM_UP + ATTACKERS; batch += 50) {
        if (batch === WARM_UP) before = Math.max(memory(pid, 'VmHWM'), idle);
        await Promise.all(Array.from({ length: 50 }, (_, i) => attack(batch + i)));
      }
    } finally {
      for (const trickle of trickles) clearInterval(trickle);
      stop.done = true;
    }
    const { latencies, failures } = await asking;
    const growth = memory(pid, 'VmHWM') - before;
    t.diagnostic(`RSS idle ${(idle / 2 ** 20).toFixed(1)} MB, after ${WARM_UP} warm-up attackers ${(before / 2 ** 20).toFixed(1)} MB, peak growth ${(growth / 2 ** 20).toFixed(1)} MB; close after header: p50 ${percentile(closeTimes, 50)} ms, max ${Math.max(...closeTimes)} ms; healthy requests ${latencies.length}, p99 ${percentile(latencies, 99).toFixed(1)} ms`);
    assert.equal(closeTimes.length, WARM_UP + ATTACKERS);
    assert.ok(Math.max(...closeTimes) < 5000, `every attacker closed within 5 s (slowest ${Math.max(...closeTimes)} ms)`);
    assert.ok(growth < 64 * 2 ** 20, `broker peak RSS grew ${(growth / 2 ** 20).toFixed(1)} MB`);
    assert.deepEqual(failures, []);
    assert.ok(latencies.length > 0);
    const line = await waitForLog(broker, /closed client attacker-\d+ \(127\.0\.0\.1:\d+\): a packet of type 3 claims 268435455 bytes/, 5000);
    // The header comes with the CONNECT, before the CONNACK: the smaller limit of a connection not yet authenticated.
    assert.ok(line.includes(`before authentication, over the limit of ${BROKER_LIMITS.maxConnectBytes} (maxConnectBytes)`), line);
    assert.equal(MAX_REMAINING_LENGTH, 268_435_455);
  });

  it('a socket that never sends CONNECT is closed after the CONNECT time-out', async () => {
    const socket = await rawSocket(broker.port);
    const took = await closed(socket, BROKER_LIMITS.connectTimeoutMs + 3000);
    assert.ok(took >= BROKER_LIMITS.connectTimeoutMs - 100, `closed after ${took} ms`);
    await waitForLog(broker, /sent no CONNECT within 5000 ms/, 2000);
  });

  it('a first packet that is not CONNECT closes the connection at once, with a log line', async () => {
    const socket = await rawSocket(broker.port);
    socket.write(mqttPacket.generate({ cmd: 'publish', topic: 'x/notification', payload: 'hi', qos: 0, retain: false, dup: false }));
    assert.ok((await closed(socket, 2000)) < 2000);
    await waitForLog(broker, /closed connection 127\.0\.0\.1:\d+ \(no CONNECT yet\): its first packet is of type 3, not CONNECT/, 2000);
  });

  it('a CONNECT with keep-alive 0 is accepted (MQTT 3.1.1 §3.1.2.10: keep-alive off), and the connection is served', async () => {
    const socket = await rawSocket(broker.port);
    const packets = readPackets(socket);
    socket.write(connectPacket(uniqueId('no-keepalive'), 0));
    assert.equal(((await packets.next('connack')) as mqttPacket.IConnackPacket).returnCode, 0);
    socket.write(mqttPacket.generate({ cmd: 'pingreq' }));
    await packets.next('pingresp');
    socket.destroy();
  });

  it('a zero-length client id: assigned one with clean session 1, refused with return code 2 with clean session 0 [MQTT-3.1.3-8]', async () => {
    for (const [clean, code] of [[true, 0], [false, 2]] as const) {
      const socket = await rawSocket(broker.port);
      const packets = readPackets(socket);
      // mqtt-packet will not write this CONNECT: clear the clean-session bit of its flags byte
      // (after the 2-byte fixed header, "\0\4MQTT" and the protocol level) by hand.
      const packet = mqttPacket.generate({ cmd: 'connect', clientId: '', keepalive: 30, protocolVersion: 4, clean: true });
      if (!clean) packet[9] = packet[9]! & ~0x02;
      socket.write(packet);
      assert.equal(((await packets.next('connack')) as mqttPacket.IConnackPacket).returnCode, code, `clean session ${clean}`);
      socket.destroy();
    }
    await waitForLog(broker, /zero-length client id and clean session 0/, 2000);
  });

  it('with --max-keepalive, keep-alive 0 and a keep-alive over the limit are refused with return code 2 (never a code outside 0-5), and logged', async () => {
    const limited = await startBrokerProcess({ limits: { maxKeepaliveSeconds: 60 } });
    try {
      for (const keepalive of [0, 61]) {
        const socket = await rawSocket(limited.port);
        const packets = readPackets(socket);
        socket.write(connectPacket(uniqueId('keepalive'), keepalive));
        assert.equal(((await packets.next('connack')) as mqttPacket.IConnackPacket).returnCode, 2);
        await closed(socket, 2000);
      }
      await waitForLog(limited, /keep-alive 0 \(never pings\), the limit is 1 to 60 s \(maxKeepaliveSeconds\)/, 2000);
      await waitForLog(limited, /keep-alive 61 s, the limit is 1 to 60 s/, 2000);
      const socket = await rawSocket(limited.port);
      const packets = readPackets(socket);
      socket.write(connectPacket(uniqueId('keepalive'), 60));
      assert.equal(((await packets.next('connack')) as mqttPacket.IConnackPacket).returnCode, 0);
      socket.destroy();
    } finally {
      await limited.stop();
    }
  });

  it('a # subscriber that stops reading during a burst is cut off; requests of healthy clients never time out', async (t) => {
    const frozenId = uniqueId('frozen');
    const frozen = await rawSocket(broker.port);
    const subacked = new Promise<void>((resolve) => {
      const parser = mqttPacket.parser();
      parser.on('packet', (packet) => packet.cmd === 'suback' && resolve());
      frozen.on('data', (chunk) => parser.parse(chunk));
    });
    frozen.write(connectPacket(frozenId));
    frozen.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] }));
    await subacked;
    frozen.pause(); // reads nothing more: the kernel buffers fill, then the broker's (a paused socket sees no close either)

    const stop = { done: false };
    const asking = keepAsking(requester, action, stop);
    const started = Date.now();
    let line: string;
    try {
      // 400 x 64 KB: more than loopback's kernel buffers hold (~10 MB here), so the broker's fill.
      const publisher = await mqtt.connectAsync(broker.url, { clientId: uniqueId('burst'), reconnectPeriod: 0 });
      const payload = Buffer.alloc(64 * 1024, 0x62);
      for (let i = 0; i < 400; i++) publisher.publish('limits/burst', payload, { qos: 0 });
      await publisher.endAsync();
      line = await waitForLog(broker, new RegExp(`cut off slow consumer client ${frozenId} \\(127\\.0\\.0\\.1:\\d+\\)`), BROKER_LIMITS.stallMs + 5000);
      // Keep asking a while after the cut: the broker must be serving everyone normally.
      await new Promise((resolve) => setTimeout(resolve, 500));
    } finally {
      stop.done = true;
      frozen.destroy();
    }
    const cutAfter = Date.now() - started;
    const { latencies, failures } = await asking;
    t.diagnostic(`frozen subscriber cut off (${line}) within ${cutAfter} ms; healthy requests ${latencies.length}, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`);
    assert.deepEqual(failures, []);
    // Without the slow-consumer policy every delivery waited for the frozen reader: ~58 s (Aedes's
    // drain time-out). The bound leaves a busy machine room and still tells that apart.
    assert.ok(Math.max(...latencies) < 10_000, `slowest healthy request ${Math.max(...latencies).toFixed(0)} ms`);
    assert.match(line, /bytes (not read for 2000 ms|wait to be sent)/);
  });
});
