/**
 * What a Python client reads and publishes besides commands, across languages, against a
 * real `relais start`: notifications both ways (protocol §8), the router's registry (§11.3),
 * a request's history and its follow (§11.2), and the event stream resumed without gap or
 * duplicate across a broker restart (§11.8). History and events run with paho 1.6 and 2.x.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { connect, type Bus } from '../../src/index.js';
import type { BusEvent, EventsPage } from '../../src/protocol/events.js';
import { subscribedForNext, testLogger, uniqueId, waitFor, within } from '../testkit/index.js';
import { PAHO_VERSIONS, pythonGate, startPythonPeer, stopPythonPeers, type PeerLine } from '../testkit/python.js';
import { startRelais, type RelaisStart } from '../testkit/cli.js';

interface Row {
  token: string;
  kind: string;
  source: string;
  code?: number | null;
  id: number;
}

type Client = { id: string; status: string; actions?: string[] };

/** `bus.clients()`'s answer as a list, whether it gives the router's map (`{clients: {id: Detail}}`), a map or a list. */
function clientList(answer: unknown): Client[] {
  const clients = (answer as { clients?: unknown }).clients ?? answer;
  if (Array.isArray(clients)) return clients as Client[];
  return Object.entries(clients as Record<string, Omit<Client, 'id'>>).map(([id, detail]) => ({ ...detail, id }));
}

/** `bus.history()`'s answer as rows, whether it gives the page (`{rows, more}`) or its rows. */
function rowsOf(answer: unknown): Row[] {
  return Array.isArray(answer) ? (answer as Row[]) : (answer as { rows: Row[] }).rows;
}

describe('Python client: notifications, registry, history, events', { skip: pythonGate('the cross-language feed tests').skip, timeout: 300_000 }, () => {
  let relais: RelaisStart;
  let ts: Bus;
  before(async () => {
    relais = await startRelais(['--no-web']);
    ts = await connect({ id: uniqueId('ts'), broker: relais.url, logger: testLogger, reconnectDelay: 50, reconnectMaxDelay: 500 });
    await ts.waitForHandler('relais/events/get', { timeout: 15_000 });
  });
  after(async () => {
    await stopPythonPeers();
    await ts?.close();
    await relais?.close();
  });

  it('notify - a Python notification reaches a TypeScript subscriber through a wildcard, with its source; a TypeScript one reaches a Python subscriber', async () => {
    const peer = await startPythonPeer({ id: uniqueId('py-sensor'), broker: relais.url });
    const { arrived } = await subscribedForNext(ts, 'py/sensors/+/notification');
    await peer.send('notify', { category: 'py/sensors/temp', payload: { c: 21.5, unit: '°C' } });
    const message = await arrived;
    assert.equal(message.topic, 'py/sensors/temp/notification');
    assert.deepEqual(message.envelope.payload, { c: 21.5, unit: '°C' });
    assert.equal(message.envelope.source, peer.id);
    assert.equal(message.envelope.type, 'notification');

    const subscription = peer.start('subscribe', { filter: 'ts/sensors/#' });
    await peer.next((line) => line.event === 'subscribed' && line.sub === subscription, 'the subscription in place');
    ts.notify('ts/sensors/door', { open: true });
    const got = await peer.next((line) => line.event === 'message' && line.sub === subscription, 'the notification on the Python side');
    assert.equal(got.topic, 'ts/sensors/door/notification');
    assert.deepEqual(got.payload, { open: true });
    assert.equal(got.source, ts.id);
    await peer.send('cancel', { target: subscription });
  });

  it('registry - a Python client reads the router\'s client list, where it and the TypeScript client are alive', async () => {
    const id = uniqueId('py-registry');
    // The router publishes each change of its registry (protocol §11.3): once it lists the
    // peer's action, the peer's own question must see it too.
    const listed = new EventEmitter();
    let seenServing = false;
    const watch = await ts.subscribe('relais/clients/detail/notification', (message) => {
      const detail = (message.envelope.payload as { clients: Record<string, { actions?: string[] } | null> }).clients[id];
      if (detail?.actions?.includes('py/registered')) {
        seenServing = true;
        listed.emit('listed');
      }
    });
    try {
      const peer = await startPythonPeer({ id, broker: relais.url });
      await peer.send('serve', { action: 'py/registered', behaviour: 'echo' });
      await waitFor(() => (seenServing ? true : undefined), listed, 'listed', 15_000);
      const clients = clientList(await peer.send('clients'));
      const mine = clients.find((client) => client.id === id);
      assert.ok(mine, `the registry lists ${id}: ${JSON.stringify(clients)}`);
      assert.equal(mine.status, 'alive');
      assert.equal(clients.find((client) => client.id === ts.id)?.status, 'alive');
    } finally {
      await watch.unsubscribe();
    }
  });

  for (const version of PAHO_VERSIONS) {
    describe(`paho ${version}.x`, { skip: pythonGate(`the cross-language history and event tests with paho ${version}.x`, version).skip }, () => {
      it(`history (paho ${version}) - a Python client follows a running request to its end and reads its rows`, async () => {
        const action = `py${version}/held`;
        const handler = await startPythonPeer({ id: uniqueId(`py${version}-held`), broker: relais.url }, version);
        await handler.send('serve', { action, behaviour: 'gate', args: { name: 'held' } });
        await ts.waitForHandler(action, { target: handler.id, timeout: 15_000 });
        const reader = await startPythonPeer({ id: uniqueId(`py${version}-reader`), broker: relais.url }, version);
        const token = uniqueId('followed');
        const pending = ts.request(action, { n: 1 }, { token, timeout: 30_000 });
        await handler.next((line) => line.event === 'started' && line.token === token, 'the handler start');
        const follow = reader.start('follow', { token });
        await reader.next((line) => line.event === 'row' && line.sub === follow && (line.row as Row).kind === 'command', 'the command row');
        await handler.send('open_gate', { name: 'held' });
        await pending;
        const followed = await reader.reply(follow);
        assert.equal(followed.ok, true, JSON.stringify(followed.error));
        const rows = followed.result as Row[];
        assert.ok(rows.every((row) => row.token === token));
        const kinds = rows.map((row) => row.kind);
        assert.equal(kinds[0], 'command');
        assert.equal(kinds.at(-1), 'final', `ends with the final row: ${kinds.join(', ')}`);
        assert.equal(rows.at(-1)!.source, handler.id);
        assert.equal(rows.at(-1)!.code, 0);
        assert.deepEqual(rows.map((row) => row.id), [...rows.map((row) => row.id)].sort((a, b) => a - b), 'in order');
        assert.equal(new Set(rows.map((row) => row.id)).size, rows.length, 'each row once');
        // Stored once it has been followed to its end: the history holds the same rows.
        const stored = rowsOf(await reader.send('history', { query: { token } }));
        assert.deepEqual(stored.map((row) => row.id), rows.map((row) => row.id));
        assert.deepEqual(stored.map((row) => row.kind), kinds);
      });

      it(`events (paho ${version}) - a Python consumer resumes across a broker restart with exactly the events it missed, in order, none twice`, { timeout: 120_000 }, async () => {
        const consumer = await startPythonPeer({ id: uniqueId(`py${version}-events`), broker: relais.url }, version);
        const start = ((await ts.request('relais/events/get', { limit: 1 }, { timeout: 15_000 })) as EventsPage).latest;
        const feed = consumer.start('events', { since: start });
        const items = () => consumer.seen((line) => line.event === 'bus-event' && line.sub === feed).map((line) => line.item as BusEvent | { type: 'gap' });
        const notified = () => items().filter((item): item is BusEvent => item.type === 'notification' && (item as BusEvent).data.category === `py${version}/ev`).map((item) => (item.data.payload as { n: number }).n);
        const seenUpTo = (n: number) => (line: PeerLine) => line.event === 'bus-event' && line.sub === feed && notified().includes(n);
        for (let n = 0; n < 3; n += 1) ts.notify(`py${version}/ev`, { n });
        await consumer.next(seenUpTo(2), 'the first notifications, live');
        // Its own warning is an event too (protocol §11.8: logs at warn and above).
        await consumer.send('log', { category: `py${version}/ev`, level: 'warn', message: 'disk almost full' });
        await consumer.next((line) => line.event === 'bus-event' && line.sub === feed && (line.item as BusEvent).type === 'log' && (line.item as BusEvent).data.source === consumer.id, 'its own warning as an event');

        // Frozen while the broker restarts and events happen: it cannot have them live, only
        // by resuming from its cursor once it finds its connection gone and comes back.
        consumer.signal('SIGSTOP');
        try {
          const offline = within(once(ts, 'offline'), 30_000, 'the TypeScript client losing the broker');
          const online = within(once(ts, 'online'), 60_000, 'the TypeScript client back');
          const restarted = relais.restart();
          await offline;
          await restarted;
          await online;
          // The router answers again: it records what is published from now on.
          await ts.request('relais/events/get', { limit: 1 }, { timeout: 15_000 });
          for (let n = 3; n < 8; n += 1) ts.notify(`py${version}/ev`, { n });
          await ts.request('relais/events/get', { limit: 1 }, { timeout: 15_000 });
        } finally {
          consumer.signal('SIGCONT');
        }
        await consumer.next(seenUpTo(7), 'the notifications sent while it was away', 60_000);
        ts.notify(`py${version}/ev`, { n: 8 });
        await consumer.next(seenUpTo(8), 'a live notification after the resume', 30_000);

        assert.deepEqual(notified(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert.ok(items().every((item) => item.type !== 'gap'), 'no gap: nothing was removed');
        const cursors = items().map((item) => (item as BusEvent).cursor);
        assert.deepEqual(cursors, Array.from({ length: cursors.length }, (_, i) => start + 1 + i), 'every cursor from its start, in order, none twice, none left out');
        // The same events the router stored, field for field.
        const stored = ((await ts.request('relais/events/get', { since: start, limit: cursors.length }, { timeout: 15_000 })) as EventsPage).events;
        assert.deepEqual(items(), stored);
        await consumer.send('cancel', { target: feed });
      });
    });
  }
});
