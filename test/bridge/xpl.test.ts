import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { setup, testLogger, uniqueId, within, type Kit } from '../testkit/index.js';
import type { Bus, ReceivedMessage } from '../../src/index.js';
import { XplBridge, XPL_DISCOVERED_CATEGORY } from '../../src/bridge/xpl/xpl-bridge.js';
import { parseXpl } from '../../src/bridge/xpl/message.js';
import { fixture, fixtureNames } from './xpl-fixtures.js';

/** Collects what arrives on `filter` and waits for what a test expects. */
async function collect(bus: Bus, filter: string) {
  const messages: ReceivedMessage[] = [];
  const waiters = new Set<() => void>();
  const subscription = await bus.subscribe(filter, (message) => {
    messages.push(message);
    for (const waiter of waiters) waiter();
  });
  return {
    messages,
    subscription,
    /** Resolves once `count` messages matching `match` have arrived. */
    async until(match: (message: ReceivedMessage) => boolean, count = 1, timeout = 5000): Promise<ReceivedMessage[]> {
      let check!: () => void;
      const done = new Promise<ReceivedMessage[]>((resolve) => {
        check = () => {
          const found = messages.filter(match);
          if (found.length >= count) resolve(found);
        };
      });
      waiters.add(check);
      check();
      try {
        return await within(done, timeout, `${count} message(s) on ${filter}`);
      } finally {
        waiters.delete(check);
      }
    },
  };
}

describe('xPL bridge over UDP on loopback', { timeout: 60_000 }, () => {
  let kit: Kit;
  let bridge: XplBridge;
  let hub: dgram.Socket;
  let sender: dgram.Socket;
  let ui: Bus;
  const hubReceived: Buffer[] = [];
  const toBridge = (bytes: Buffer | string) => new Promise<void>((resolve, reject) => sender.send(bytes, bridge.port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));

  before(async () => {
    kit = await setup('aedes');
    // The "hub" (or the network) where the bridge broadcasts: a socket on a free loopback port.
    hub = dgram.createSocket('udp4');
    hub.on('message', (datagram) => hubReceived.push(datagram));
    hub.bind(0, '127.0.0.1');
    await once(hub, 'listening');
    sender = dgram.createSocket('udp4');
    const bus = await kit.connect(uniqueId('xpl-bridge'));
    bridge = new XplBridge({ source: 'relais-bridge.test', bindAddress: '127.0.0.1', listenPort: 0, sendAddress: '127.0.0.1', sendPort: hub.address().port, searchHeartbeatMs: 200, logger: testLogger });
    await bridge.start(bus);
    ui = await kit.connect(uniqueId('ui'));
  });

  after(async () => {
    await bridge?.close();
    hub?.close();
    sender?.close();
    await kit?.cleanup();
  });

  it('heartbeat - hbeat.app announces the listening port and remote-ip; a hub echoing it is detected', async () => {
    const heartbeat = await waitForDatagram(hubReceived, hub, (message) => message.schema === 'hbeat.app');
    assert.equal(heartbeat.type, 'xpl-stat');
    assert.equal(heartbeat.source, 'relais-bridge.test');
    assert.equal(heartbeat.target, '*');
    assert.deepEqual(Object.fromEntries(heartbeat.body).port, String(bridge.port));
    assert.deepEqual(Object.fromEntries(heartbeat.body)['remote-ip'], '127.0.0.1');
    assert.equal(bridge.hubConfirmed, false);
    // The "hub" holds the xPL port alone: the bridge could not take it.
    assert.equal(bridge.mode, 'hub');
    // A hub forwards every message to the applications it knows, the sender's own heartbeat included.
    const found = once(bridge, 'hub');
    hub.send(fixture('hbeat-app.txt').toString().replace(/acme-lamp\.livingroom/g, 'relais-bridge.test'), bridge.port, '127.0.0.1');
    await within(found, 5000, 'hub detection');
    assert.equal(bridge.hubConfirmed, true);
  });

  it('incoming - every message of the corpus becomes a notification on xpl/<class>/<type>, body order and repeats kept', async () => {
    const seen = await collect(ui, 'xpl/+/+/notification');
    const files = fixtureNames();
    for (const name of files) await toBridge(fixture(name));
    // Discovery events (xpl/device/discovered) come on the same filter.
    const xplMessages = await seen.until((message) => !message.topic.startsWith('xpl/device/discovered/'), files.length);
    // Keyed by topic and source: two messages of the corpus are x10.basic.
    const byTopic = new Map(xplMessages.map((message) => [`${message.topic} ${(message.envelope.payload as { source: string }).source}`, message.envelope.payload as Record<string, unknown>]));
    assert.equal(byTopic.size, files.length);
    assert.deepEqual(byTopic.get('xpl/x10/basic/notification xpl-xplhal.myhouse'), {
      type: 'xpl-cmnd',
      hop: 1,
      source: 'xpl-xplhal.myhouse',
      target: 'acme-cm12.server',
      schema: 'x10.basic',
      body: [['command', 'dim'], ['device', 'a1'], ['level', '75']],
      from: byTopic.get('xpl/x10/basic/notification xpl-xplhal.myhouse')!.from,
    });
    assert.deepEqual(byTopic.get('xpl/osd/basic/notification slimdev-slimserv.kitchen')!.body, [['command', 'write'], ['text', 'first line'], ['text', 'second line'], ['delay', '10']]);
    assert.ok(byTopic.has('xpl/hbeat/_request/notification xpl-xplhal.myhouse'));
    assert.ok(byTopic.has('xpl/_log/basic/notification xpl-logger.office'));
    await seen.subscription.unsubscribe();
  });

  it('discovery - one "device discovered" notification per new application and addressed device, never twice', async () => {
    const discovered = await collect(ui, `${XPL_DISCOVERED_CATEGORY}/notification`);
    const trig = fixture('x10-basic-trig.txt').toString().replace('acme-cm12.server', 'acme-cm12.upstairs');
    await toBridge(trig);
    await toBridge(trig);
    await toBridge(trig.replace('b3,b4', 'c7'));
    const all = await discovered.until(() => true, 4);
    assert.deepEqual(
      all.map((message) => message.envelope.payload as Record<string, string>).map(({ technology, address, type, reference }) => [technology, address, type, reference]),
      [
        ['xpl', 'acme-cm12.upstairs', 'application', 'acme-cm12'],
        ['x10', 'b3', 'basic', 'acme-cm12'],
        ['x10', 'b4', 'basic', 'acme-cm12'],
        ['x10', 'c7', 'basic', 'acme-cm12'],
      ],
    );
    await discovered.subscription.unsubscribe();
  });

  it('bad input - random bytes, truncated, oversize and invalid UTF-8 datagrams are skipped; the good one after them gets through', async () => {
    const problems: string[] = [];
    const onSkipped = (problem: string) => problems.push(problem);
    bridge.on('skipped', onSkipped);
    const sensors = await collect(ui, 'xpl/sensor/basic/notification');
    const good = fixture('sensor-basic-temp.txt');
    await toBridge(randomBytes(300));
    await toBridge(good.subarray(0, good.indexOf('current')));
    await toBridge(Buffer.concat([good, Buffer.alloc(2000, 0x61)]));
    await toBridge(Buffer.from('xpl-trig\n{\nhop=1\nsource=a-b.c\ntarget=*\n}\nx.y\n{\nk=\xff\xfe\n}\n', 'latin1'));
    await toBridge(Buffer.alloc(0));
    await toBridge(good);
    const [arrived] = await sensors.until(() => true);
    assert.deepEqual((arrived!.envelope.payload as { body: unknown }).body, [['device', '28.3fa2b5000000'], ['type', 'temp'], ['current', '21.5'], ['units', 'c']]);
    bridge.off('skipped', onSkipped);
    assert.equal(problems.length, 5, problems.join('\n'));
    assert.match(problems[1]!, /truncated/);
    assert.match(problems[2]!, /over the 1500-byte limit/);
    assert.match(problems[3]!, /not valid UTF-8/);
    await sensors.subscription.unsubscribe();
  });

  it('xpl/send - a bus command emits an xPL message that parses back to the same message', async () => {
    const body = [['command', 'dim'], ['device', 'a1'], ['level', '75'], ['device', 'a2']];
    const answer = await ui.request<{ sent: string }>('xpl/send', { type: 'xpl-cmnd', target: 'acme-cm12.server', schema: 'x10.basic', body });
    const datagram = await waitForDatagram(hubReceived, hub, (message) => message.schema === 'x10.basic');
    assert.deepEqual(datagram, { type: 'xpl-cmnd', hop: 1, source: 'relais-bridge.test', target: 'acme-cm12.server', schema: 'x10.basic', body });
    const parsedBack = parseXpl(Buffer.from(answer.sent));
    assert.ok(parsedBack.ok);
    assert.deepEqual(parsedBack.message, datagram);
  });

  it('xpl/send - a message the specification does not allow is refused with code 2, naming why', async () => {
    await assert.rejects(ui.request('xpl/send', { schema: 'x10.basic', body: { ['k'.repeat(17)]: 'v' } }), (error: Error & { responseCode?: number }) => {
      assert.equal(error.responseCode, 2);
      assert.match(error.message, /body key/);
      return true;
    });
  });
});

/** The next datagram the hub socket received (already or later) whose parsed message matches. */
async function waitForDatagram(received: Buffer[], socket: dgram.Socket, match: (message: ReturnType<typeof parsedOk>) => boolean, timeout = 5000) {
  const deadline = AbortSignal.timeout(timeout);
  for (;;) {
    const index = received.findIndex((datagram) => {
      const result = parseXpl(datagram);
      return result.ok && match(result.message);
    });
    if (index >= 0) return parsedOk(received.splice(index, 1)[0]!);
    await once(socket, 'message', { signal: deadline });
  }
}

function parsedOk(datagram: Buffer) {
  const result = parseXpl(datagram);
  if (!result.ok) throw new Error(result.problem);
  return result.message;
}
