/**
 * Standalone and hub mode of the xPL bridge (docs/bridges.md, "Standalone and hub mode"), on real
 * UDP sockets on 127.0.0.1. The "xPL port" of each test is a free port, never the real 3865.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { EventEmitter, once } from 'node:events';
import { recordingLogger, setup, uniqueId, waitFor, within, type Kit } from '../testkit/index.js';
import type { Bus, ReceivedMessage } from '../../src/index.js';
import { XplBridge } from '../../src/bridge/xpl/xpl-bridge.js';
import { parseXpl } from '../../src/bridge/xpl/message.js';
import { fixture } from './xpl-fixtures.js';

/** A free UDP port on loopback, to play the xPL port. */
async function freeUdpPort(): Promise<number> {
  const probe = dgram.createSocket('udp4');
  probe.bind(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A temperature reading whose value tells the messages apart. */
function reading(value: string): Buffer {
  return Buffer.from(fixture('sensor-basic-temp.txt').toString().replace('current=21.5', `current=${value}`));
}

function send(socket: dgram.Socket, bytes: Buffer, port: number): Promise<void> {
  return new Promise((resolve, reject) => socket.send(bytes, port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
}

/**
 * A minimal xPL hub sharing the xPL port (SO_REUSEADDR, as the bridge does): it learns the local
 * applications from their hbeat.app (`port`) and forwards every datagram it receives to each.
 */
async function startHub(xplPort: number) {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  const applications = new Set<number>();
  socket.on('message', (datagram) => {
    const parsed = parseXpl(datagram);
    if (!parsed.ok) return;
    if (parsed.message.schema === 'hbeat.app') applications.add(Number(Object.fromEntries(parsed.message.body).port));
    for (const port of applications) socket.send(datagram, port, '127.0.0.1');
  });
  socket.bind(xplPort, '127.0.0.1');
  await once(socket, 'listening');
  return { socket, applications };
}

describe('xPL bridge - standalone and hub mode (UDP on loopback)', { timeout: 60_000 }, () => {
  let kit: Kit;
  let ui: Bus;
  let sender: dgram.Socket;
  const toClose: Array<{ close(): unknown }> = [];

  /** Readings arriving on the bus, by value. */
  async function readings() {
    const seen: ReceivedMessage[] = [];
    const events = new EventEmitter();
    const subscription = await ui.subscribe('xpl/sensor/basic/notification', (message) => {
      seen.push(message);
      events.emit('reading');
    });
    toClose.push({ close: () => subscription.unsubscribe() });
    const valueOf = (message: ReceivedMessage) => Object.fromEntries((message.envelope.payload as { body: Array<[string, string]> }).body).current;
    return {
      count: (value: string) => seen.filter((message) => valueOf(message) === value).length,
      /** Resolves once `count` readings of `value` have arrived. */
      arrived: (value: string, count = 1) => waitFor(() => (seen.filter((message) => valueOf(message) === value).length >= count ? true : undefined), events, 'reading', 10_000),
    };
  }

  async function startBridge(xplPort: number, source: string) {
    const recorded = recordingLogger();
    const bus = await kit.connect(uniqueId('xpl-bridge'));
    const bridge = new XplBridge({ source, bindAddress: '127.0.0.1', listenPort: 0, sendAddress: '127.0.0.1', sendPort: xplPort, searchHeartbeatMs: 200, logger: recorded.logger });
    toClose.push(bridge);
    await bridge.start(bus);
    return { bridge, recorded, bus };
  }

  before(async () => {
    kit = await setup('aedes');
    ui = await kit.connect(uniqueId('ui'));
    sender = dgram.createSocket('udp4');
    sender.bind(0, '127.0.0.1');
    await once(sender, 'listening');
  });

  afterEach(async () => {
    for (const item of toClose.splice(0).reverse()) await item.close();
  });

  after(async () => {
    sender?.close();
    await kit?.cleanup();
  });

  it('standalone - with no hub on the xPL port, the bridge takes it: a message sent to that port becomes a notification, and the mode says standalone', async () => {
    const xplPort = await freeUdpPort();
    const seen = await readings();
    const { bridge, recorded } = await startBridge(xplPort, 'relais-bridge.alone');
    assert.equal(bridge.mode, 'standalone');
    assert.deepEqual(bridge.status, { mode: 'standalone', port: bridge.port, xplPort, hubConfirmed: false });
    assert.ok(recorded.lines.some((line) => /xPL standalone mode: no hub holds the xPL port/.test(line)), recorded.lines.join(''));
    await send(sender, reading('17.5'), xplPort);
    await seen.arrived('17.5');
    assert.equal(seen.count('17.5'), 1);
    // Its own heartbeats, heard on the xPL port (sent before the reading, to the same socket), are not a hub.
    assert.equal(bridge.mode, 'standalone');
    assert.equal(bridge.hubConfirmed, false);
  });

  it('hub appearing - a hub sharing the xPL port forwards the bridge its heartbeat: it moves to hub mode, gives the port back, and hears each message once', async () => {
    const xplPort = await freeUdpPort();
    const seen = await readings();
    const { bridge, recorded, bus } = await startBridge(xplPort, 'relais-bridge.takeover');
    assert.equal(bridge.mode, 'standalone');
    const moved = once(bridge, 'mode');
    // A broadcast on the port reaches every socket bound to it: the bridge hears it on the xPL
    // port, and the hub starting right then hears it too and forwards it to the bridge's own port.
    await send(sender, reading('18.5'), xplPort);
    const hub = await startHub(xplPort);
    toClose.push(hub.socket);
    await send(hub.socket, reading('18.5'), bridge.port);
    const [mode] = await within(moved, 10_000, 'the move to hub mode');
    assert.equal(mode, 'hub');
    assert.deepEqual(bridge.status, { mode: 'hub', port: bridge.port, xplPort, hubConfirmed: true });
    assert.ok(hub.applications.has(bridge.port));
    // Its presence says so too: a directory does not keep showing the standalone mode.
    await waitFor(() => ((ui.directory.get(bus.id)?.xpl as { mode?: string } | undefined)?.mode === 'hub' ? true : undefined), ui.directory, 'change', 10_000);
    assert.ok(recorded.lines.some((line) => /xPL hub mode: a hub forwards to port \d+; the bridge gave the xPL port \d+ back/.test(line)), recorded.lines.join(''));
    // In hub mode, a message sent to the xPL port reaches the bridge through the hub.
    await send(sender, reading('19.5'), xplPort);
    await seen.arrived('19.5');
    await seen.arrived('18.5');
    assert.equal(seen.count('18.5'), 1, 'the copy the hub forwarded of a broadcast already heard is dropped');
    assert.equal(seen.count('19.5'), 1);
    // Repeats on one way are messages, not copies: the same reading twice through the hub, twice on the bus.
    await send(sender, reading('20.5'), xplPort);
    await send(sender, reading('20.5'), xplPort);
    await seen.arrived('20.5', 2);
    assert.equal(seen.count('20.5'), 2);
  });
});
