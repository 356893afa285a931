/**
 * The embedded broker's journal for the router (protocol §1.3, §11.1 "The journal"): what does
 * not fit is reported to the router with its counts, a QoS 1 PUBACK waits for the router to have
 * stored the message (and for no longer than a second when it does not answer), and nobody but
 * the broker feeds the router.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import mqtt from 'mqtt';
import { encode } from '../../src/protocol/envelope.js';
import { EVENTS_CATEGORY } from '../../src/protocol/events.js';
import { HISTORY_FEED_TOPIC, HISTORY_STORED_TOPIC, storedMessage } from '../../src/protocol/history-feed.js';
import { parseHistoryQuery } from '../../src/protocol/history.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { STALL_MS } from '../../src/broker/router-journal.js';
import { connect } from '../../src/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { testLogger, waitFor, within } from '../testkit/index.js';

const EVENTS_TOPIC = `${EVENTS_CATEGORY}/notification`;

function command(token: string, action = 'test/journal'): { topic: string; body: string } {
  return { topic: `${action}/request`, body: JSON.stringify({ type: 'command', source: 'journal-peer', destination: '*', token, payload: { token } }) };
}

/** Resolves once the broker has published `count` messages on `topic` (its journal has seen them). */
function published(broker: EmbeddedBroker, topic: string, count: number): Promise<void> {
  let seen = 0;
  return within(
    new Promise<void>((resolve) => {
      const onPublish = (packet: { topic: string }) => {
        if (packet.topic !== topic || (seen += 1) < count) return;
        broker.aedes.off('publish', onPublish);
        resolve();
      };
      broker.aedes.on('publish', onPublish);
    }),
    10_000,
    `${count} messages on ${topic} published`,
  );
}

/** A stand-in for the router: connects under its id and keeps what the journal feeds it. */
async function fakeRouter(url: string) {
  const client = await mqtt.connectAsync(url, { clientId: 'relais-router', protocolVersion: 4 });
  const received: Array<{ topic: string; envelope: { payload: Record<string, unknown> } }> = [];
  const waiters = new Set<() => void>();
  client.on('message', (topic, payload) => {
    received.push({ topic, envelope: JSON.parse(payload.toString()) as { payload: Record<string, unknown> } });
    for (const waiter of waiters) waiter();
  });
  const next = (match: (message: (typeof received)[number]) => boolean, what: string) =>
    within(
      new Promise<(typeof received)[number]>((resolve) => {
        const check = () => {
          const found = received.find(match);
          if (!found) return;
          waiters.delete(check);
          resolve(found);
        };
        waiters.add(check);
        check();
      }),
      10_000,
      what,
    );
  return {
    client,
    received,
    nextSync: () => next((message) => message.topic === HISTORY_FEED_TOPIC && typeof message.envelope.payload.sync === 'number', 'a sync from the journal'),
    next,
    answer: (through: number) => client.publishAsync(HISTORY_STORED_TOPIC, encode(storedMessage('relais-router', through)), { qos: 0 }),
  };
}

describe('the router journal of the embedded broker', { timeout: 60_000 }, () => {
  it('journal - full while the router is away: the router records what fit and a history.gap event with how many it missed, by kind', async () => {
    const broker = await startEmbeddedBroker({ port: 0, routerJournal: { maxMessages: 50, fromStart: true } });
    const dir = mkdtempSync(join(tmpdir(), 'relais-journal-gap-'));
    const peer = await mqtt.connectAsync(broker.url!, { clientId: 'journal-peer', protocolVersion: 4 });
    const observer = await connect({ id: 'journal-observer', broker: broker.url!, logger: testLogger });
    let router: Router | undefined;
    try {
      // 60 commands, 40 responses, 20 cancels, in that order: the first 50 fit.
      const messages = [
        ...Array.from({ length: 60 }, (_, i) => command(`gap-${i}`)),
        ...Array.from({ length: 40 }, (_, i) => ({ topic: 'test/journal/response/journal-peer', body: JSON.stringify({ type: 'response', source: 'journal-handler', destination: 'journal-peer', token: `gap-${i}`, final: true, code: 0, payload: {} }) })),
        ...Array.from({ length: 20 }, (_, i) => ({ topic: 'test/journal/cancel', body: JSON.stringify({ type: 'cancel', source: 'journal-peer', destination: '*', token: `gap-${i}`, payload: {} }) })),
      ];
      const all = published(broker, 'test/journal/cancel', 20);
      for (const { topic, body } of messages) await peer.publishAsync(topic, body, { qos: 0 });
      await all;
      assert.deepEqual({ kept: broker.routerJournal!.counts().kept, missed: broker.routerJournal!.counts().missed }, { kept: 50, missed: 70 });

      // The journal feeds the router from its CONNACK on, before the router's own presence comes
      // back to it: by the time it is started, the gap is in its event stream.
      router = await startRouter({ broker: broker.url!, database: join(dir, 'history.db'), logger: testLogger });
      await observer.waitForHandler('relais/events/get', { timeout: 10_000 });
      const replayed = (await observer.request('relais/events/get', { since: 0 })) as { events: Array<{ type: string; data: Record<string, unknown> }> };
      const gaps = replayed.events.filter((event) => event.type === 'history.gap');
      assert.equal(gaps.length, 1, 'one history.gap event');
      const gap = gaps[0]!.data;
      assert.equal(gap.by, 'broker');
      assert.deepEqual({ missed: gap.missed, commands: gap.commands, responses: gap.responses, cancels: gap.cancels }, { missed: 70, commands: 10, responses: 40, cancels: 20 });
      assert.ok((gap.from as number) <= (gap.to as number));

      // What fit was stored before the gap was reported: the 50 oldest, in order.
      const rows = (await router.historyStore.query(parseHistoryQuery({ action: 'test/journal', limit: 1000 }))).rows;
      assert.deepEqual(rows.map((row) => `${row.kind} ${row.token}`), Array.from({ length: 50 }, (_, i) => `command gap-${i}`));
    } finally {
      await observer.close();
      await router?.close();
      await peer.endAsync();
      await broker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('journal - a QoS 1 command is acknowledged once the router has stored it, and after a second at most when the router does not answer', async () => {
    const broker = await startEmbeddedBroker({ port: 0 });
    const router = await fakeRouter(broker.url!);
    const peer = await mqtt.connectAsync(broker.url!, { clientId: 'journal-peer', protocolVersion: 4 });
    try {
      let acknowledgedAt: number | undefined;
      const first = command('hold-1');
      const acknowledged = peer.publishAsync(first.topic, first.body, { qos: 1 }).then(() => (acknowledgedAt = Date.now()));
      const fed = await router.next((message) => message.topic === first.topic, 'the command fed to the router');
      assert.equal(fed.envelope.payload.token, 'hold-1');
      const sync = await router.nextSync();
      // The broker waits for the router's answer (less than STALL_MS after the sync left).
      await new Promise((resolve) => setTimeout(resolve, STALL_MS / 2));
      assert.equal(acknowledgedAt, undefined, 'no PUBACK before the router said it stored the command');
      const answeredAt = Date.now();
      await router.answer(sync.envelope.payload.sync as number);
      await within(acknowledged, 10_000, 'the PUBACK after the answer');
      assert.ok(acknowledgedAt! >= answeredAt);

      // A router that never answers holds a PUBACK for STALL_MS, not longer.
      const second = command('hold-2');
      const sentAt = Date.now();
      await within(peer.publishAsync(second.topic, second.body, { qos: 1 }), 10_000, 'the PUBACK of a command the router does not answer');
      assert.ok(Date.now() - sentAt >= STALL_MS * 0.9, 'held while the router might still answer');
      assert.ok(broker.routerJournal!.counts().acknowledgedUnstored >= 1);
      assert.equal(broker.routerJournal!.counts().kept, 1, 'still kept for the router');
    } finally {
      await peer.endAsync();
      await router.client.endAsync();
      await broker.close();
    }
  });

  it('journal - nobody but the broker feeds the router: a sync published by a client does not reach it', async () => {
    const broker = await startEmbeddedBroker({ port: 0 });
    const router = await fakeRouter(broker.url!);
    await router.client.subscribeAsync('#', { qos: 1 });
    const forger = await mqtt.connectAsync(broker.url!, { clientId: 'journal-forger', protocolVersion: 4 });
    try {
      await forger.publishAsync(HISTORY_FEED_TOPIC, JSON.stringify({ type: 'notification', source: 'relais-broker', destination: 'relais-router', payload: { sync: 999_999 } }), { qos: 0 });
      const after = command('after-the-forgery');
      await forger.publishAsync(after.topic, after.body, { qos: 0 });
      await router.next((message) => message.topic === after.topic, 'the command after the forged sync');
      await router.nextSync();
      // Published before the command by the same client: forwarded, it would have come first.
      assert.ok(!router.received.some((message) => message.topic === HISTORY_FEED_TOPIC && message.envelope.payload.sync === 999_999), 'the forged sync did not reach the router');
    } finally {
      await forger.endAsync();
      await router.client.endAsync();
      await broker.close();
    }
  });

  it('journal - the router is not sent its own event pushes back (it makes no event of them), other subscribers are', async () => {
    const broker = await startEmbeddedBroker({ port: 0 });
    const router = await fakeRouter(broker.url!);
    await router.client.subscribeAsync('#', { qos: 1 });
    const screen = await mqtt.connectAsync(broker.url!, { clientId: 'journal-screen', protocolVersion: 4 });
    let pushed = false;
    screen.on('message', (topic) => (pushed ||= topic === EVENTS_TOPIC));
    await screen.subscribeAsync(EVENTS_TOPIC, { qos: 1 });
    try {
      const events = encode({ type: 'notification', source: 'relais-router', destination: '*', payload: { events: [] } });
      await router.client.publishAsync(EVENTS_TOPIC, events, { qos: 1 });
      const after = command('after-the-push');
      await router.client.publishAsync(after.topic, after.body, { qos: 0 });
      await router.next((message) => message.topic === after.topic, 'the command after the push');
      await waitFor(() => pushed || undefined, screen as unknown as NodeJS.EventEmitter, 'message', 10_000);
      // Published before the command on the same connection: forwarded, it would have come first.
      assert.ok(!router.received.some((message) => message.topic === EVENTS_TOPIC), 'the push did not come back to the router');
    } finally {
      await screen.endAsync();
      await router.client.endAsync();
      await broker.close();
    }
  });
});
