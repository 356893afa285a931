/**
 * What a foreign implementer reads in docs/protocol.md, checked with MQTT.js alone (no Relais
 * client code on the test's side) against the embedded broker, a library client and the
 * router: presence fields (§7.1, §9.6), a foreign peer's presence and ephemeral will (§7.4),
 * the registry's `info` (§11.3), and the history's cancel rows (§11.1).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { startRouter, type Router } from '../../src/router/index.js';
import { setup, testLogger, uniqueId, waitFor, type Kit } from '../testkit/index.js';

interface Json {
  [key: string]: unknown;
}

/** A plain MQTT peer that sends commands and reads the answers, as a foreign requester would. */
class RawPeer {
  readonly messages: Array<{ topic: string; body: Json | null; retained: boolean }> = [];
  readonly arrivals = new EventEmitter();
  private counter = 0;

  private constructor(readonly id: string, readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, body: payload.length ? (JSON.parse(payload.toString()) as Json) : null, retained: packet.retain });
      this.arrivals.emit('message');
    });
  }

  static async connect(url: string, id: string, options: mqtt.IClientOptions = {}): Promise<RawPeer> {
    return new RawPeer(id, await mqtt.connectAsync(url, { clientId: id, protocolVersion: 4, ...options }));
  }

  next(match: (message: { topic: string; body: Json | null }) => boolean, timeout = 5000) {
    return waitFor(() => this.messages.find(match), this.arrivals, 'message', timeout);
  }

  /** A command on `<action>/request[/<target>]`, and its final answer. */
  async ask(action: string, payload: unknown, target?: string): Promise<Json> {
    const token = `${this.id}-${++this.counter}`;
    await this.client.subscribeAsync(`${action}/response/${this.id}`, { qos: 1 });
    await this.client.publishAsync(`${action}/request${target ? `/${target}` : ''}`, JSON.stringify({ type: 'command', source: this.id, destination: target ?? '*', token, payload }), { qos: 1 });
    const answer = await this.next(({ topic, body }) => topic === `${action}/response/${this.id}` && body?.token === token && body.final !== false);
    return answer.body!;
  }
}

describe('a foreign peer reads and writes what docs/protocol.md says', { timeout: 60_000 }, () => {
  let kit: Kit;
  let dir: string;
  let router: Router;
  const peers: RawPeer[] = [];
  const peer = async (id: string, options?: mqtt.IClientOptions) => {
    const made = await RawPeer.connect(kit.broker.url, id, options);
    peers.push(made);
    return made;
  };
  before(async () => {
    kit = await setup('aedes');
    dir = mkdtempSync(join(tmpdir(), 'relais-foreign-'));
    router = await startRouter({ broker: kit.broker.url, database: join(dir, 'history.db'), logger: testLogger });
  });
  after(async () => {
    await Promise.all(peers.map((made) => made.client.endAsync()));
    await router?.close();
    await kit?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('§7.1/§9.6 - a library client presence carries status, actions, realtimeActions, targetedActions, since, seq (1 for the first alive, ephemeral or not), instance and acks', async () => {
    const watcher = await peer(uniqueId('watcher'));
    await watcher.client.subscribeAsync('relais/presence/+', { qos: 1 });
    for (const ephemeral of [false, true]) {
      const id = uniqueId(ephemeral ? 'eph' : 'plain');
      const client = await kit.connect(id, { ephemeral });
      const { body } = await watcher.next(({ topic, body }) => topic === `relais/presence/${id}` && (body?.payload as Json | undefined)?.status === 'alive');
      const presence = body!.payload as Json;
      assert.deepEqual(
        Object.keys(presence).filter((key) => ['status', 'actions', 'realtimeActions', 'targetedActions', 'since', 'seq', 'instance', 'acks'].includes(key)).sort(),
        ['acks', 'actions', 'instance', 'realtimeActions', 'seq', 'since', 'status', 'targetedActions'],
      );
      assert.equal(presence.seq, 1, `the first alive of ${ephemeral ? 'an ephemeral' : 'a'} client`);
      assert.deepEqual(presence.targetedActions, ['relais/logs/get', 'relais/contracts/get']);
      assert.equal(presence.ephemeral, ephemeral ? true : undefined);
      await client.close();
    }
  });

  it('§7.4/§11.3 - the smallest presence makes a foreign handler chosen; its top-level extra fields are the registry\'s info; its ephemeral will makes it forgotten', async () => {
    const id = uniqueId('py-handler');
    const since = Date.now();
    const will = JSON.stringify({ type: 'notification', source: id, destination: '*', payload: { status: 'dead', actions: [], since, seq: 0, ephemeral: true } });
    const handler = await peer(id, { will: { topic: `relais/presence/${id}`, payload: Buffer.from(will), qos: 1, retain: true } });
    await handler.client.subscribeAsync([`demo/py/request`, `demo/py/request/${id}`], { qos: 1 });
    handler.client.on('message', (topic, payload) => {
      if (!topic.startsWith('demo/py/request')) return;
      const command = JSON.parse(payload.toString()) as { source: string; token: string };
      void handler.client.publishAsync(`demo/py/response/${command.source}`, JSON.stringify({ type: 'response', source: id, destination: command.source, token: command.token, payload: { from: 'python' } }), { qos: 1 });
    });
    const presence = { status: 'alive', actions: ['demo/py'], since, seq: 1, language: 'python', info: { nested: true } };
    await handler.client.publishAsync(`relais/presence/${id}`, JSON.stringify({ type: 'notification', source: id, destination: '*', payload: presence }), { qos: 1, retain: true });

    const library = await kit.connect(uniqueId('library-requester'));
    await library.waitForHandler('demo/py', { timeout: 5000 });
    assert.deepEqual(await library.request('demo/py', {}), { from: 'python' });

    const asker = await peer(uniqueId('asker'));
    const detail = (await asker.ask('relais/clients/detail/get', { id })).payload as { clients: Record<string, { status: string; info: Json }> };
    assert.equal(detail.clients[id]!.status, 'alive');
    assert.deepEqual(detail.clients[id]!.info, { language: 'python', info: { nested: true } });

    // The registry says so in its detail notification (`null`: forgotten), then its answers agree.
    await asker.client.subscribeAsync('relais/clients/detail/notification', { qos: 1 });
    handler.client.stream.destroy(); // lost without DISCONNECT: the broker publishes the will
    await asker.next(({ topic, body }) => topic === 'relais/clients/detail/notification' && ((body?.payload as { clients?: Json } | undefined)?.clients ?? {})[id] === null);
    const answer = await asker.ask('relais/clients/detail/get', { id });
    assert.equal((answer.error as Json | undefined)?.name, 'UnknownClientError');
  });

  it('§11.1 - a cancel row names its target: the handler the cancel was addressed to', async () => {
    const handler = await kit.connect(uniqueId('cancelled-handler'));
    await handler.handle('demo/cancel-me', (_payload, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))));
    const requester = await peer(uniqueId('raw-canceller'));
    const token = uniqueId('tok');
    await requester.client.subscribeAsync(`demo/cancel-me/response/${requester.id}`, { qos: 1 });
    await requester.client.publishAsync(`demo/cancel-me/request/${handler.id}`, JSON.stringify({ type: 'command', source: requester.id, destination: handler.id, token, payload: {} }), { qos: 1 });
    await requester.client.publishAsync('demo/cancel-me/cancel', JSON.stringify({ type: 'cancel', source: requester.id, destination: handler.id, token, payload: { reason: 'no' } }), { qos: 1 });
    await requester.next(({ body }) => body?.token === token && body.final === true);
    // The router records each row in a batch: follow replays the token's rows and ends with its error.
    const followed = await requester.ask('relais/history/follow', { token });
    assert.equal((followed.payload as { kind: string }).kind, 'error');
    const rows = ((await requester.ask('relais/history/get', { token })).payload as { rows: Array<{ kind: string; target?: string }> }).rows;
    assert.equal(rows.find((row) => row.kind === 'cancel')?.target, handler.id);
  });
});
