/**
 * The client registry (protocol §11.3) against real brokers: statuses from real processes
 * killed or frozen, the old instance's will never winning over a restart, the start-up
 * lifecycle, the list and detail actions, and coalescing under a burst of connections.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InvalidMessageError, NoHandlerError, RemoteError, type Bus, type ClientDetailPayload, type ClientListPayload } from '../../src/index.js';
import { startRegistry, type Registry } from '../../src/router/registry.js';
import { peerGate, setup, testLogger, uniqueId, waitFor, within, type Kit } from '../testkit/index.js';
import { presenceBody, rawClient, RegistryWatch, startClientProcess, type ClientProcess } from './registry-kit.js';

const NOTIFY_INTERVAL = 100;
const mosquitto = peerGate('mosquitto', 'the registry tests on Mosquitto');

for (const kind of ['aedes', 'mosquitto'] as const) {
  describe(`registry on ${kind}`, { timeout: 120_000, skip: kind === 'mosquitto' && mosquitto.skip }, () => {
    let kit: Kit;
    let registry: Registry;
    let watch: RegistryWatch;
    let asker: Bus;
    const processes: ClientProcess[] = [];
    before(async () => {
      kit = await setup(kind);
      registry = await startRegistry(await kit.connect(uniqueId('router')), { logger: testLogger, notifyInterval: NOTIFY_INTERVAL });
      asker = await kit.connect(uniqueId('asker'));
      watch = await RegistryWatch.start(asker);
    });
    after(async () => {
      for (const { child } of processes) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await registry?.close();
      await kit?.cleanup();
    });
    const start = async (id: string, keepalive = 1) => {
      const started = await startClientProcess(kit.broker.url, id, keepalive);
      processes.push(started);
      return started;
    };

    it('registry - a client killed with SIGKILL is dead within the keep-alive window', async () => {
      const id = uniqueId('killed');
      const { child, pid } = await start(id);
      const alive = await watch.serving(id);
      assert.equal(alive?.pid, pid);
      assert.equal(alive?.version, '1.2.3');
      assert.deepEqual(alive?.actions, ['demo/ping']);
      const killedAt = Date.now();
      child.kill('SIGKILL');
      // The broker must notice within 1.5 × keep-alive (1 s); one more second for the notification.
      const dead = await watch.status(id, 'dead', 2500);
      assert.ok(Date.now() - killedAt <= 2500);
      assert.deepEqual(dead?.actions, []);
      assert.equal(dead?.connectedSince, undefined);
    });

    it('registry - a frozen client (SIGSTOP) is dead within 1.5 × keep-alive, its socket still open', async () => {
      const keepalive = 1;
      // Mosquitto 2.0 checks keep-alives on a 5 s tick (measured: dead after 4.9 s at 1 s, 10.5 s at 4 s).
      const brokerTick = kind === 'mosquitto' ? 5000 : 0;
      const id = uniqueId('frozen');
      const { child } = await start(id, keepalive);
      await watch.serving(id);
      const frozenAt = Date.now();
      child.kill('SIGSTOP');
      await watch.status(id, 'dead', 1.5 * keepalive * 1000 + brokerTick + 1500);
      assert.ok(Date.now() - frozenAt >= keepalive * 1000, 'not before the keep-alive expired: the socket was open');
    });

    it('registry - a client SIGKILLed and restarted at once is alive with its new pid, and not dead after that', async () => {
      const id = uniqueId('restarted');
      const first = await start(id);
      await watch.serving(id);
      first.child.kill('SIGKILL');
      const second = await start(id);
      const alive = await watch.serving(id, second.pid);
      const seenBefore = watch.statuses.get(id)!.length;
      // A marker client announced after it: once the registry shows it, it has read all before.
      const marker = await kit.connect(uniqueId('marker'));
      await watch.status(marker.id, 'alive');
      assert.deepEqual(watch.statuses.get(id)!.slice(seenBefore), [], 'nothing changed after the new instance came up');
      assert.equal(registry.detail(id)?.clients[id]?.status, 'alive');
      assert.equal(registry.detail(id)?.clients[id]?.instance, alive?.instance);
    });

    it('registry - a Last Will of the old instance arriving after the new one announced itself never marks it dead', async () => {
      const id = uniqueId('late-will');
      const oldSince = Date.now() - 60_000;
      const oldPresence = (status: string, seq: number) => presenceBody(id, { host: 'old-host', pid: 1, status, actions: [], realtimeActions: [], since: oldSince, seq, instance: 'old-instance', acks: true });
      // The old instance, on its own connection so that its will fires only when we say.
      const old = await rawClient(kit.broker.url, { clientId: `${id}-old-connection`, will: { topic: `relais/presence/${id}`, payload: Buffer.from(oldPresence('dead', 0)), qos: 1, retain: true } });
      await old.publishAsync(`relais/presence/${id}`, oldPresence('alive', 1), { qos: 1, retain: true });
      await watch.until(id, (detail) => detail?.instance === 'old-instance' && detail.status === 'alive');
      const fresh = await start(id);
      await watch.serving(id, fresh.pid);
      const seenBefore = watch.statuses.get(id)!.length;
      const observer = await rawClient(kit.broker.url, { clientId: uniqueId('observer') });
      const willSeen = new Promise<void>((resolve) => observer.on('message', (_topic, body) => body.toString().includes('"old-instance"') && body.toString().includes('"dead"') && resolve()));
      await observer.subscribeAsync(`relais/presence/${id}`, { qos: 1 });
      old.stream.destroy();
      await within(willSeen, 5000, 'the old instance\'s will at the broker');
      observer.end(true);
      const marker = await kit.connect(uniqueId('marker'));
      await watch.status(marker.id, 'alive');
      assert.deepEqual(watch.statuses.get(id)!.slice(seenBefore), [], 'the late will changed nothing');
      assert.equal(registry.detail(id)?.clients[id]?.status, 'alive');
      assert.equal(registry.detail(id)?.clients[id]?.pid, fresh.pid);
    });

    it('lifecycle - startup manual: starting (never picked as a handler), alive after markReady(), stopped on close', async () => {
      const id = uniqueId('plugin');
      const plugin = await kit.connect(id, { startup: 'manual', info: { version: '0.9' } });
      await plugin.handle('demo/plugin/work', () => 'done');
      const starting = await watch.status(id, 'starting');
      assert.deepEqual(starting?.actions, [], 'a starting client announces no action');
      // On the wire, readers of every version see a valid `alive` serving nothing (protocol §7.1).
      const wire = await rawClient(kit.broker.url, { clientId: uniqueId('wire') });
      const retained = new Promise<Record<string, unknown>>((resolve) => wire.on('message', (_topic, body) => resolve(JSON.parse(body.toString()).payload)));
      await wire.subscribeAsync(`relais/presence/${id}`, { qos: 1 });
      const payload = await within(retained, 5000, 'the retained presence');
      wire.end(true);
      assert.equal(payload.status, 'alive');
      assert.equal(payload.lifecycle, 'starting');
      assert.deepEqual(payload.actions, []);
      // A settled directory does not send to it; a settling one sends, and the plugin leaves the
      // untargeted command to others and refuses the targeted one (protocol §7.2, §7.1).
      await waitFor(() => (asker.directory.get(id)?.lifecycle === 'starting' ? true : undefined), asker.directory, 'change');
      await assert.rejects(asker.request('demo/plugin/work', {}, { timeout: 3000 }), NoHandlerError);
      const settling = await kit.connect(uniqueId('settling'), { checkHandlers: false });
      await assert.rejects(settling.request('demo/plugin/work', {}, { target: id, timeout: 3000 }), (error: Error) => error instanceof NoHandlerError && /is starting/.test(error.message));
      await assert.rejects(settling.request('demo/plugin/work', {}, { target: '*', timeout: 1000 }), /TimeoutError|no final response/);
      assert.equal(plugin.starting, true);
      await plugin.markReady();
      assert.equal(plugin.starting, false);
      const alive = await watch.status(id, 'alive');
      assert.deepEqual(alive?.actions, ['demo/plugin/work']);
      assert.equal(alive?.version, '0.9');
      assert.equal(alive?.connectedSince, starting?.connectedSince, 'still the same connection');
      await asker.waitForHandler('demo/plugin/work', { timeout: 5000 });
      assert.equal(await asker.request('demo/plugin/work', {}, { timeout: 5000 }), 'done');
      await plugin.close();
      await watch.status(id, 'stopped');
      assert.deepEqual(watch.statuses.get(id), ['starting', 'alive', 'stopped']);
    });

    it('registry - list and detail answer every client or one by id; bad input gets a clear error and the registry goes on', async () => {
      const id = uniqueId('listed');
      await kit.connect(id, { info: { version: '2.0', role: 'demo' } });
      await watch.status(id, 'alive');
      const list = await asker.request<ClientListPayload>('relais/clients/list/get', {});
      assert.equal(list.clients[id]?.status, 'alive');
      assert.equal(list.clients[id]?.version, '2.0');
      assert.equal(typeof list.clients[id]?.lastSeen, 'number');
      assert.equal(list.clients[asker.id]?.status, 'alive');
      const all = await asker.request<ClientDetailPayload>('relais/clients/detail/get');
      assert.deepEqual(Object.keys(all.clients).sort(), Object.keys(list.clients).sort());
      const one = await asker.request<ClientDetailPayload>('relais/clients/detail/get', { id });
      assert.deepEqual(Object.keys(one.clients), [id]);
      assert.deepEqual(one.clients[id]?.info, { version: '2.0', role: 'demo' });
      assert.equal(typeof one.clients[id]?.instance, 'string');
      await assert.rejects(asker.request('relais/clients/detail/get', { id: 'nobody-here' }), (error: RemoteError) => error.remoteName === 'UnknownClientError' && /no client "nobody-here"/.test(error.message));
      await assert.rejects(asker.request('relais/clients/detail/get', { id: 5 }), (error: Error) => error instanceof InvalidMessageError && /field 'id'/.test(error.message));
      await assert.rejects(asker.request('relais/clients/detail/get', { id, verbose: true }), (error: Error) => error instanceof InvalidMessageError && /verbose/.test(error.message));
      await assert.rejects(asker.request('relais/clients/list/get', [1, 2]), (error: Error) => error instanceof InvalidMessageError && /list\/get payload/.test(error.message));
      assert.equal((await asker.request<ClientListPayload>('relais/clients/list/get')).clients[id]?.status, 'alive', 'still answering');
    });

    it('registry - a cleared or invalid presence of a known client is unknown; an ephemeral client that leaves is forgotten', async () => {
      const cleared = await kit.connect(uniqueId('cleared'));
      const broken = await kit.connect(uniqueId('broken'));
      const passing = await kit.connect(uniqueId('passing'), { ephemeral: true });
      await Promise.all([cleared.id, broken.id, passing.id].map((id) => watch.status(id, 'alive')));
      await cleared.kill();
      await watch.status(cleared.id, 'dead');
      const raw = await rawClient(kit.broker.url, { clientId: uniqueId('raw') });
      await raw.publishAsync(`relais/presence/${cleared.id}`, '', { qos: 1, retain: true });
      assert.equal((await watch.status(cleared.id, 'unknown'))?.reason, 'presence cleared');
      await broken.kill();
      await raw.publishAsync(`relais/presence/${broken.id}`, presenceBody(broken.id, { status: 'sleeping', since: 1 }), { qos: 1, retain: true });
      assert.match((await watch.status(broken.id, 'unknown'))?.reason ?? '', /invalid presence/);
      raw.end(true);
      await passing.close();
      await watch.until(passing.id, (detail) => detail === null, 5000, `${passing.id} forgotten`);
      assert.equal(registry.detail(passing.id), undefined);
    });

    it('registry - 300 clients connecting at once: few list notifications, detail ones carry only the changed clients, the final list is complete', async () => {
      const prefix = uniqueId('burst');
      const ids = Array.from({ length: 300 }, (_, n) => `${prefix}-${n}`);
      const listsBefore = watch.lists.length;
      const entriesBefore = watch.detailEntries;
      const startedAt = Date.now();
      const clients = await Promise.all(
        ids.map(async (id, n) => {
          const client = await rawClient(kit.broker.url, { clientId: id });
          await client.publishAsync(`relais/presence/${id}`, presenceBody(id, { host: 'burst', pid: n, status: 'alive', actions: [], since: startedAt, seq: 1 }), { qos: 1, retain: true });
          return client;
        }),
      );
      try {
        const complete = () => ids.every((id) => watch.latest.get(id)?.status === 'alive');
        await waitFor(() => (complete() ? true : undefined), watch, 'detail', 20_000);
        const elapsed = Date.now() - startedAt;
        const lists = watch.lists.length - listsBefore;
        // At most one per interval, plus the one at the start of the burst and one in flight.
        assert.ok(lists <= Math.ceil(elapsed / NOTIFY_INTERVAL) + 2 && lists < 60, `${lists} list notifications in ${elapsed} ms`);
        assert.ok(watch.detailEntries - entriesBefore < 2 * ids.length, `${watch.detailEntries - entriesBefore} detail entries for ${ids.length} clients`);
        const list = await asker.request<ClientListPayload>('relais/clients/list/get');
        assert.deepEqual(ids.filter((id) => list.clients[id]?.status !== 'alive'), []);
      } finally {
        await Promise.all(clients.map((client) => client.endAsync(true)));
      }
    });
  });
}
