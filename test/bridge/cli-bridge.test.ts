import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tty from 'node:tty';
import { peerGate, setup, subscribedForNext, uniqueId, within, type Kit } from '../testkit/index.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli, type RunningCli } from '../testkit/cli.js';
import type { Bus } from '../../src/index.js';
import { parseXpl } from '../../src/bridge/xpl/message.js';
import { fixture } from './xpl-fixtures.js';
import { LinePeer } from './line-peer.js';

const socat = peerGate('socat', 'the serial line bridge test over a pseudo-terminal pair');
const serialport = await import('serialport' as string).then(
  () => true,
  () => false,
);
if (!serialport) console.error('\n!!! SKIPPING the serial forwarding test: the serialport package is not installed (npm install serialport@13.0.0) !!!\n');

describe('relais bridge (CLI)', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let watcher: Bus;
  let dir: string;
  const running: RunningCli[] = [];
  const env = () => ({ RELAIS_BROKER: kit.broker.url, RELAIS_LOG_LEVEL: 'warn' });

  before(async () => {
    kit = await setup('aedes');
    watcher = await kit.connect(uniqueId('watcher'));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bridges-helper-cli-'));
  });

  after(async () => {
    await Promise.all(running.map((child) => child.stop()));
    await kit?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('bridge line --socket --listen - an MVP peer connecting to the socket is on the bus under --id', async () => {
    const socketPath = path.join(dir, 'vm-cli-msg.sock');
    const bridge = startCli(['bridge', 'line', '--socket', socketPath, '--listen', '--id', 'vm-cli'], env());
    running.push(bridge);
    await bridge.waitFor(/line bridge for vm-cli ready/);
    const socket = net.createConnection(socketPath);
    await once(socket, 'connect');
    const { arrived: seen } = await subscribedForNext(watcher, 'device/connect/notification');
    new LinePeer(socket).send({ type: 'notification', source: 'vm-cli', destination: 'tous', payload: { categorie: 'device', evenement: 'connect', data: { chemin: '/mnt/usb_in' } } });
    const message = await seen;
    assert.equal(message.envelope.source, 'vm-cli');
    assert.deepEqual(message.envelope.payload, { chemin: '/mnt/usb_in' });
    socket.destroy();
  });

  it('bridge line - usage mistakes exit 2 with a message', async () => {
    const noId = await runCli(['bridge', 'line', '--socket', path.join(dir, 'x.sock')], env());
    assert.equal(noId.code, 2);
    assert.match(noId.stderr, /--id <peer> is required/);
    const both = await runCli(['bridge', 'line', '--id', 'x', '--socket', 'a', '--serial', 'b'], env());
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exactly one of --socket/);
  });

  it('bridge xpl - a datagram to the announced port becomes a notification; heartbeats reach the xPL port', async () => {
    const hub = dgram.createSocket('udp4');
    const heartbeats: Buffer[] = [];
    hub.on('message', (datagram) => heartbeats.push(datagram));
    hub.bind(0, '127.0.0.1');
    await once(hub, 'listening');
    try {
      const bridge = startCli(['bridge', 'xpl', '--interface', '127.0.0.1', '--broadcast', '127.0.0.1', '--port', String(hub.address().port), '--source', 'relais-bridge.cli'], env());
      running.push(bridge);
      const [, port] = await bridge.waitFor(/listening on udp 127\.0\.0\.1:(\d+)/);
      if (heartbeats.length === 0) await within(once(hub, 'message'), 10_000, 'a heartbeat');
      const heartbeat = parseXpl(heartbeats[0]!);
      assert.ok(heartbeat.ok);
      assert.equal(heartbeat.message.schema, 'hbeat.app');
      assert.equal(Object.fromEntries(heartbeat.message.body).port, port);
      const { arrived: seen } = await subscribedForNext(watcher, 'xpl/sensor/basic/notification');
      hub.send(fixture('sensor-basic-temp.txt'), Number(port), '127.0.0.1');
      assert.equal(((await seen).envelope.payload as { source: string }).source, 'tonyt-1wire.house');
    } finally {
      hub.close();
    }
  });

  it('bridge xpl - with no hub on the xPL port it says standalone mode, hears a message sent to that port, and its presence says standalone', async () => {
    // A free port plays the xPL port: the real 3865 may be taken on this machine.
    const probe = dgram.createSocket('udp4');
    probe.bind(0, '127.0.0.1');
    await once(probe, 'listening');
    const xplPort = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const id = uniqueId('xpl-alone');
    const bridge = startCli(['bridge', 'xpl', '--interface', '127.0.0.1', '--broadcast', '127.0.0.1', '--port', String(xplPort), '--source', 'relais-bridge.alone', '--id', id], env());
    running.push(bridge);
    await bridge.waitFor(/in standalone mode \(no hub holds the xPL port \d+/);
    await watcher.waitForHandler('xpl/send', { target: id, timeout: 10_000 });
    const presence = watcher.clients().find((client) => client.id === id) as { xpl?: { mode: string; xplPort: number } } | undefined;
    assert.equal(presence?.xpl?.mode, 'standalone');
    assert.equal(presence?.xpl?.xplPort, xplPort);
    const { arrived: seen } = await subscribedForNext(watcher, 'xpl/sensor/basic/notification');
    const sender = dgram.createSocket('udp4');
    try {
      sender.send(fixture('sensor-basic-temp.txt'), xplPort, '127.0.0.1');
      assert.equal(((await seen).envelope.payload as { source: string }).source, 'tonyt-1wire.house');
    } finally {
      sender.close();
    }
  });

  describe('bridge line --serial over a pseudo-terminal pair (socat)', { skip: socat.skip }, () => {
    let pair: ChildProcess;
    let bridgeEnd: string;
    let peerEnd: string;

    before(async () => {
      bridgeEnd = path.join(dir, 'pty-bridge');
      peerEnd = path.join(dir, 'pty-peer');
      pair = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${bridgeEnd}`, `pty,raw,echo=0,link=${peerEnd}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      // socat says "starting data transfer loop" once both ends exist.
      let said = '';
      await within(
        new Promise<void>((resolve) => pair.stderr!.on('data', (chunk: Buffer) => (said += chunk) && /starting data transfer loop/.test(said) && resolve())),
        10_000,
        'socat making the pty pair',
      );
    });

    after(() => {
      pair?.kill();
    });

    it('without the serialport package, exits 1 saying so', { skip: serialport ? 'serialport is installed' : false }, async () => {
      const bridge = await runCli(['bridge', 'line', '--serial', bridgeEnd, '--id', 'vm-serial'], env());
      assert.equal(bridge.code, 1);
      assert.match(bridge.stderr, /needs the serialport package/);
    });

    it('forwards the peer\'s lines, skipping garbage, and writes commandes to it', { skip: serialport ? false : 'serialport not installed' }, async () => {
      const bridge = startCli(['bridge', 'line', '--serial', bridgeEnd, '--id', 'vm-serial', '--serves', 'system/disks/list_disks'], env());
      running.push(bridge);
      await bridge.waitFor(/line bridge for vm-serial ready/);
      const fd = fs.openSync(peerEnd, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
      const stream = new tty.ReadStream(fd) as unknown as net.Socket;
      const peer = new LinePeer(stream);
      try {
        await watcher.waitForHandler('system/disks/list_disks', { target: 'vm-serial', timeout: 10_000 });
        const { arrived: seen } = await subscribedForNext(watcher, 'device/serial/notification');
        peer.sendRaw('garbage\n\xff\n');
        peer.send({ type: 'notification', source: 'vm-serial', destination: 'tous', payload: { categorie: 'device', evenement: 'serial', data: 42 } });
        assert.equal((await seen).envelope.payload, 42);
        const answer = watcher.request('system/disks/list_disks', {}, { target: 'vm-serial' });
        await peer.next((line) => line.type === 'commande' && line.payload.commande === 'liste_disques', 10_000);
        peer.send({ type: 'reponse', source: 'vm-serial', destination: watcher.id, payload: { commande: 'liste_disques', data: { disks: [] } } });
        assert.deepEqual(await answer, { disks: [] });
      } finally {
        stream.destroy();
      }
    });
  });
});
