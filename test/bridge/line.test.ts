import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setup, subscribedForNext, testLogger, uniqueId, within, type Kit } from '../testkit/index.js';
import type { Bus } from '../../src/index.js';
import { LineBridge } from '../../src/bridge/line/line-bridge.js';
import { connectSocket, listenSocket, type Transport } from '../../src/bridge/line/transports.js';
import { LinePeer } from './line-peer.js';

describe('line bridge (PSEC MVP protocol) over a Unix socket', { timeout: 60_000 }, () => {
  let kit: Kit;
  let dir: string;
  let peerId: string;
  let bridgeBus: Bus;
  let bridge: LineBridge;
  let listener: Transport;
  let peer: LinePeer;
  let gui: Bus;
  let usb: Bus;

  before(async () => {
    kit = await setup('aedes');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bridges-helper-line-'));
    peerId = uniqueId('vm-mvp');
    bridgeBus = await kit.connect(peerId);
    bridge = new LineBridge({ bus: bridgeBus, serves: ['system/disks/list_disks', 'system/misc/benchmark'], notifications: ['system/#'], maxLineBytes: 65_536, logger: testLogger });
    await bridge.start();
    listener = await listenSocket(path.join(dir, 'vm-msg.sock'), bridge, testLogger);
    const socket = net.createConnection(path.join(dir, 'vm-msg.sock'));
    await Promise.all([once(socket, 'connect'), once(bridge, 'attached')]);
    peer = new LinePeer(socket);
    gui = await kit.connect(uniqueId('vm-gui'));
    usb = await kit.connect(uniqueId('sys-usb'));
    await usb.handle('system/disks/list_disks', () => ({ disks: [{ label: 'usb1', id: 'sdb1' }] }));
    await usb.handle('demo/install', async (payload: { name: string }, ctx) => {
      ctx.progress(0.5, { percent: 50 });
      return { installed: payload.name };
    });
  });

  after(async () => {
    await listener?.close();
    await kit?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('notification - an MVP notification is published on its catalogue category or <categorie>/<evenement>, tous becoming *', async () => {
    const catalogue = (await subscribedForNext(gui, 'system/disk/new_file/notification', { timeout: 5000 })).arrived;
    peer.send({ type: 'notification', source: peerId, destination: 'tous', payload: { evenement: 'fichier', data: { disk: 'usb1', filepath: '/a.txt', size_in_bytes: 3 } } });
    const seen = await catalogue;
    assert.equal(seen.envelope.source, peerId);
    assert.equal(seen.envelope.destination, '*');
    assert.deepEqual(seen.envelope.payload, { disk: 'usb1', filepath: '/a.txt', size_in_bytes: 3 });

    const device = (await subscribedForNext(gui, 'device/connect/notification', { timeout: 5000 })).arrived;
    peer.send({ type: 'notification', source: peerId, destination: 'vm-gui', payload: { categorie: 'device', evenement: 'connect', data: { chemin: '/mnt/usb_in' } } });
    assert.deepEqual((await device).envelope.payload, { chemin: '/mnt/usb_in' });
  });

  it('commande - becomes a bus request to its destination; progress and final come back as reponse lines', async () => {
    peer.send({ type: 'commande', source: peerId, destination: usb.id, payload: { commande: 'liste_disques', arguments: {} } });
    const answer = await peer.next((line) => line.type === 'reponse' && line.payload.commande === 'liste_disques');
    assert.deepEqual(answer, { type: 'reponse', source: usb.id, destination: peerId, payload: { commande: 'liste_disques', data: { disks: [{ label: 'usb1', id: 'sdb1' }] } } });

    peer.send({ type: 'commande', source: peerId, destination: 'tous', payload: { commande: 'demo/install', arguments: { name: 'weather' } } });
    const progress = await peer.next((line) => line.payload.commande === 'demo/install');
    const final = await peer.next((line) => line.payload.commande === 'demo/install');
    assert.deepEqual(progress.payload.data, { percent: 50 });
    assert.deepEqual(final.payload.data, { installed: 'weather' });
  });

  it('commande - a bus error comes back as a reponse with erreur (code 3 for an action nobody serves)', async () => {
    peer.send({ type: 'commande', source: peerId, destination: 'tous', payload: { commande: 'demo/nobody', arguments: {} } });
    const answer = await peer.next((line) => line.payload.commande === 'demo/nobody');
    assert.equal(answer.payload.data, null);
    assert.equal(answer.payload.erreur.code, 3);
    assert.equal(answer.payload.erreur.name, 'NoHandlerError');
  });

  it('reponse - finds its token: FIFO per action and requester, whatever order the peer answers in', async () => {
    const other = await kit.connect(uniqueId('vm-other'));
    const fromGui = gui.request('system/disks/list_disks', {}, { target: peerId });
    const guiCommand = await peer.next((line) => line.type === 'commande' && line.source === gui.id);
    const fromOther = other.request('system/disks/list_disks', {}, { target: peerId });
    const otherCommand = await peer.next((line) => line.type === 'commande' && line.source === other.id);
    assert.deepEqual(guiCommand, { type: 'commande', source: gui.id, destination: peerId, payload: { commande: 'liste_disques', arguments: {} } });
    assert.equal(otherCommand.payload.commande, 'liste_disques');
    // Answered in the reverse order: each reponse goes to the requester it names.
    peer.send({ type: 'reponse', source: peerId, destination: other.id, payload: { commande: 'liste_disques', data: { disks: ['for-other'] } } });
    peer.send({ type: 'reponse', source: peerId, destination: gui.id, payload: { commande: 'liste_disques', data: { disks: ['for-gui'] } } });
    assert.deepEqual(await fromOther, { disks: ['for-other'] });
    assert.deepEqual(await fromGui, { disks: ['for-gui'] });
  });

  it('reponse - status "started" is a progress step, the next reponse the final (PSEC benchmark)', async () => {
    const steps: unknown[] = [];
    const done = (async () => {
      for await (const step of gui.call('system/misc/benchmark', { module: 'cpu' }, { target: peerId })) if (step.kind !== 'accepted') steps.push([step.kind, step.payload]);
    })();
    const command = await peer.next((line) => line.type === 'commande' && line.payload.commande === 'start_benchmark');
    assert.deepEqual(command.payload.arguments, { module: 'cpu' });
    peer.send({ type: 'reponse', source: peerId, destination: gui.id, payload: { commande: 'start_benchmark', data: { status: 'started' } } });
    peer.send({ type: 'reponse', source: peerId, destination: gui.id, payload: { commande: 'start_benchmark', data: { status: 'finished' } } });
    await within(done, 5000, 'the benchmark call');
    assert.deepEqual(steps, [['progress', { status: 'started' }], ['final', { status: 'finished' }]]);
  });

  it('reponse - one that answers no outstanding command is skipped and logged', async () => {
    const skipped = once(bridge, 'skipped');
    peer.send({ type: 'reponse', source: peerId, destination: gui.id, payload: { commande: 'liste_disques', data: {} } });
    const [problem] = (await skipped) as [string];
    assert.match(problem, /answers no outstanding command/);
  });

  it('notification - bus notifications under the followed filters are written to the line, tous for *', async () => {
    gui.notify('system/events/error', { module: 'disks', level: 3, description: 'boom' });
    const line = await peer.next((message) => message.type === 'notification');
    assert.deepEqual(line, { type: 'notification', source: gui.id, destination: 'tous', payload: { evenement: 'erreur', data: { module: 'disks', level: 3, description: 'boom' } } });
  });

  it('bad input - malformed, unknown type, oversized, invalid UTF-8 and foreign source lines are skipped; the next good line gets through', async () => {
    const problems: string[] = [];
    const onSkipped = (problem: string) => problems.push(problem);
    bridge.on('skipped', onSkipped);
    const good = (await subscribedForNext(gui, 'device/good/notification', { timeout: 5000 })).arrived;
    peer.sendRaw('{"type": "notification", "source": \n');
    peer.sendRaw(`${JSON.stringify({ type: 'evenement', source: peerId, destination: 'tous', payload: {} })}\n`);
    peer.sendRaw(`${JSON.stringify({ type: 'notification', source: peerId, destination: 'tous', payload: { evenement: 'x', data: 'y'.repeat(70_000) } })}\n`);
    // 200 KiB without a newline, in pieces: skipped as it comes, never held whole.
    for (let i = 0; i < 50; i++) peer.sendRaw(Buffer.alloc(4096, 0x61));
    peer.sendRaw('\n');
    peer.sendRaw(Buffer.concat([Buffer.from('{"type":"notification","source":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]));
    peer.sendRaw(`${JSON.stringify({ type: 'notification', source: 'someone-else', destination: 'tous', payload: { evenement: 'x' } })}\n`);
    peer.sendRaw(Buffer.from([0x00, 0xff, 0xfe, 0x0a]));
    peer.send({ type: 'notification', source: peerId, destination: 'tous', payload: { categorie: 'device', evenement: 'good', data: 1 } });
    assert.equal((await good).envelope.payload, 1);
    bridge.off('skipped', onSkipped);
    assert.equal(problems.length, 7, problems.join('\n'));
    assert.match(problems[0]!, /not JSON/);
    assert.match(problems[1]!, /field 'type'/);
    assert.match(problems[2]!, /over the 65536-byte limit/);
    assert.match(problems[3]!, /line of 204800 bytes is over/);
    assert.match(problems[4]!, /not valid UTF-8/);
    assert.match(problems[5]!, /source 'someone-else'/);
  });

  it('peer gone - a command waiting for its reponse fails with LineDownError, and later ones at once', async () => {
    const pending = gui.request('system/disks/list_disks', {}, { target: peerId });
    await peer.next((line) => line.type === 'commande');
    const detached = once(bridge, 'detached');
    peer.stream.destroy();
    await detached;
    await assert.rejects(pending, (error: Error) => /closed before it answered/.test(error.message));
    await assert.rejects(gui.request('system/disks/list_disks', {}, { target: peerId }), (error: Error) => /is not connected/.test(error.message));
  });
});

describe('line bridge, connect mode', { timeout: 30_000 }, () => {
  it('connects again with back-off after the peer goes away, and after the peer was not there at all', async () => {
    const kit = await setup('aedes');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bridges-helper-line-'));
    const socketPath = path.join(dir, 'peer.sock');
    const peerId = uniqueId('vm-connect');
    const bus = await kit.connect(peerId);
    const watcher = await kit.connect(uniqueId('watcher'));
    const bridge = new LineBridge({ bus, logger: testLogger });
    await bridge.start();
    // Nobody listens yet: the bridge keeps trying.
    const transport = connectSocket(socketPath, bridge, testLogger, { minDelay: 20, maxDelay: 200 });
    const server = net.createServer();
    const accepted: net.Socket[] = [];
    server.on('connection', (socket) => accepted.push(socket));
    try {
      server.listen(socketPath);
      await within(once(server, 'connection'), 5000, 'the bridge connecting once the peer listens');
      await waitAttached(bridge);
      accepted[0]!.destroy();
      await within(once(server, 'connection'), 5000, 'the bridge connecting again after the peer went away');
      await waitAttached(bridge);
      const peer = new LinePeer(accepted[1]!);
      const seen = (await subscribedForNext(watcher, 'device/back/notification', { timeout: 5000 })).arrived;
      peer.send({ type: 'notification', source: peerId, destination: 'tous', payload: { categorie: 'device', evenement: 'back', data: true } });
      assert.equal((await seen).envelope.payload, true);
    } finally {
      await transport.close();
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      await kit.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function waitAttached(bridge: LineBridge): Promise<void> {
  if (!bridge.attached) await within(once(bridge, 'attached'), 5000, 'the bridge attaching');
}
