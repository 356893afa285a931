/**
 * The history and the event stream when their disk is full (protocol §11.1, §11.8): what the
 * store refused is stored once the disk has room, even when nothing new arrives; nothing is
 * lost while fewer than the router's bound wait; past it, the loss is reported exactly (a
 * `history.gap` event `by: store` with the counts by kind; event cursors left unused, which
 * every consumer is told it missed). The disk is a real one: the router's data folder on a
 * small tmpfs filled to ENOSPC, the soak's own mechanism (soak/history-disk.ts). Mounting needs
 * root: without it these tests are skipped, loudly (and fail under RELAIS_REQUIRE_PEERS=1, as CI
 * runs them).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { prepareHistoryDisk, type HistoryDisk } from '../../soak/history-disk.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { connect, type Bus, type BusEvent } from '../../src/index.js';
import { parseHistoryQuery } from '../../src/protocol/history.js';
import { MAX_UNSTORED_EVENTS } from '../../src/router/event-stream.js';
import { MAX_UNSTORED } from '../../src/router/recorder.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { recordingLogger, SUITE_TIMEOUT, testLogger } from '../testkit/index.js';

const command = (token: string) => JSON.stringify({ type: 'command', source: 'disk-peer', destination: '*', token, payload: { token } });
const note = (seq: number) => JSON.stringify({ type: 'notification', source: 'disk-peer', destination: '*', payload: { seq } });

/** Polls `check` every 50 ms until it returns something, for at most `timeout` ms. */
async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeout: number, what: string): Promise<T> {
  for (const giveUp = Date.now() + timeout; ; ) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > giveUp) throw new Error(`not within ${timeout} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Reads the event stream from `since` with the library's resuming feed until `until` holds of what came. */
async function readEvents(bus: Bus, since: number, until: (items: Array<BusEvent | { type: 'gap'; missed: number; after: number }>) => boolean, timeout: number) {
  const items: Array<BusEvent | { type: 'gap'; missed: number; after: number }> = [];
  const stop = AbortSignal.timeout(timeout);
  for await (const item of bus.events({ since, signal: stop })) {
    items.push(item as BusEvent);
    if (until(items)) break;
  }
  return items;
}

const skipReason = process.getuid?.() !== 0 ? 'a tmpfs needs root' : undefined;
if (skipReason && process.env.RELAIS_REQUIRE_PEERS === '1') throw new Error(`the disk-full tests need root for their tmpfs (RELAIS_REQUIRE_PEERS=1): ${skipReason}`);
if (skipReason) process.stderr.write(`!!! history-disk-full tests SKIPPED: ${skipReason} !!!\n`);

describe('the history and the event stream on a full disk', { timeout: SUITE_TIMEOUT, skip: skipReason }, () => {
  let root: string;
  let broker: EmbeddedBroker;
  let peer: mqtt.MqttClient;
  let reader: Bus;
  const disks: HistoryDisk[] = [];

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-disk-full-'));
    broker = await startEmbeddedBroker({ port: 0 });
    peer = await mqtt.connectAsync(broker.url!, { clientId: 'disk-peer', protocolVersion: 4 });
    reader = await connect({ id: 'disk-reader', broker: broker.url!, logger: testLogger });
  });

  after(async () => {
    await reader?.close();
    await peer?.endAsync();
    await broker?.close();
    for (const disk of disks) {
      disk.free();
      disk.close();
    }
    fs.rmSync(root, { recursive: true, force: true });
  });

  /**
   * A router with its data on a fresh 8 MiB tmpfs; `id` other than relais-router: no journal feeds
   * it (as on Mosquitto). Its session is clean: what these tests check is the store, and a
   * persistent session of a router on the embedded broker over TCP loses its connection twice as
   * it starts and then, in most runs here, never gets some later messages (the first QoS 1 one
   * and the last QoS 0 ones of a burst) — a finding of its own, not this one.
   */
  async function routerOnSmallDisk(name: string, id?: string): Promise<{ router: Router; disk: HistoryDisk; log: ReturnType<typeof recordingLogger> }> {
    const disk = prepareHistoryDisk(path.join(root, name), 8);
    disks.push(disk);
    assert.equal(disk.skipReason, undefined, disk.skipReason);
    const log = recordingLogger();
    const router = await startRouter({ broker: broker.url!, database: path.join(disk.dir, 'history.db'), logger: log.logger, metricsEveryMs: 3_600_000, persistentSession: false, ...(id && { id }) });
    await reader.waitForHandler('relais/events/get', { target: router.bus.id, timeout: 30_000 });
    return { router, disk, log };
  }

  const latestCursor = async () => ((await reader.request('relais/events/get', { limit: 1 }, { timeout: 30_000 })) as { latest: number }).latest;

  it('history - rows and events a full disk refused are stored once it has room, with nothing new arriving', async () => {
    // No journal for this router id (as on Mosquitto): nothing but the router's own retry can store them.
    const { router, disk, log } = await routerOnSmallDisk('refused-then-stored', 'retry-router');
    try {
      const before = await latestCursor();
      assert.ok(disk.fill() > 0);
      // The notifications first: once the router holds the 200 commands, it has had them (one connection keeps its order).
      for (let i = 0; i < 20; i += 1) peer.publish('disk/notes/notification', note(i), { qos: 0 });
      for (let i = 0; i < 200; i += 1) peer.publish('disk/full/request', command(`full-${i}`), { qos: i % 2 === 0 ? 1 : 0 });
      await eventually(() => (router.recorder.waiting === 200 ? true : undefined), 30_000, 'the 200 commands waiting in the router');
      assert.ok(log.lines.some((line) => /history: rows could not be stored/.test(line)), 'the router says the store refused rows');
      assert.ok(log.lines.some((line) => /events could not be stored/.test(line)), 'the router says the store refused events');
      assert.equal((await router.historyStore.query(parseHistoryQuery({ action: 'disk/full', limit: 1000 }))).rows.length, 0, 'none stored while the disk is full');
      // A put cannot jump the queue: refused while rows wait, with the reason.
      await assert.rejects(reader.request('relais/history/put', { token: 'put-while-full', action: 'disk/put', data: 1 }, { target: router.bus.id, timeout: 30_000 }), /the history's store refuses to write \(200 rows wait for it\)/);
      disk.free();
      // Nothing more is published: the router's own retry stores them.
      const rows = await eventually(
        async () => {
          const page = await router.historyStore.query(parseHistoryQuery({ action: 'disk/full', limit: 1000 }));
          return page.rows.length === 200 ? page.rows : undefined;
        },
        30_000,
        'the 200 commands in the history',
      );
      assert.deepEqual(rows.map((row) => row.token).sort(), Array.from({ length: 200 }, (_, i) => `full-${i}`).sort());
      // The events waited too: each notification once, in order, every cursor one more than the last.
      const items = await readEvents(reader, before, (got) => got.filter((item) => item.type === 'notification').length >= 20, 30_000);
      assert.ok(items.every((item) => item.type !== 'gap'), 'no gap');
      const cursors = items.map((item) => (item as BusEvent).cursor);
      assert.deepEqual(cursors, Array.from({ length: cursors.length }, (_, i) => before + 1 + i), 'each cursor once, in order');
      const seqs = items.filter((item) => item.type === 'notification').map((item) => ((item as BusEvent).data.payload as { seq: number }).seq);
      assert.deepEqual(seqs, Array.from({ length: 20 }, (_, i) => i));
      assert.equal(router.recorder.failed, 0);
      // Once stored, a put comes after them.
      await reader.request('relais/history/put', { token: 'put-after', action: 'disk/put', data: 2 }, { target: router.bus.id, timeout: 30_000 });
      const put = (await router.historyStore.query(parseHistoryQuery({ token: 'put-after', limit: 1 }))).rows[0]!;
      assert.ok(rows.every((row) => row.id < put.id), 'the put after the rows that waited');
    } finally {
      await router.close();
    }
  });

  it("history - on the embedded broker, the journal is told once the rows that waited are stored, and keeps nothing more for the router", async () => {
    const { router, disk } = await routerOnSmallDisk('journal-told');
    try {
      disk.fill();
      for (let i = 0; i < 100; i += 1) peer.publish('disk/journal/request', command(`journal-${i}`), { qos: 1 });
      // (The journal also feeds this router what earlier tests' routers, under other ids, were sent.)
      await eventually(() => (router.recorder.waiting >= 100 ? true : undefined), 30_000, 'the 100 commands waiting in the router');
      assert.ok(broker.routerJournal!.counts().kept >= 100, 'the journal keeps them meanwhile');
      disk.free();
      await eventually(async () => ((await router.historyStore.query(parseHistoryQuery({ action: 'disk/journal', limit: 1000 }))).rows.length === 100 ? true : undefined), 30_000, 'the 100 commands in the history');
      await eventually(() => (broker.routerJournal!.counts().kept === 0 ? true : undefined), 30_000, 'the journal told the rows are stored');
    } finally {
      await router.close();
    }
  });

  it(`history - past ${MAX_UNSTORED} rows waiting, the newest are given up and reported exactly as a history.gap event (by: store)`, async () => {
    // No journal for this router id: every row comes straight to it, as on Mosquitto.
    const { router, disk, log } = await routerOnSmallDisk('past-the-bound', 'store-bound-router');
    try {
      disk.fill();
      const extra = 37;
      const total = MAX_UNSTORED + extra;
      for (let i = 0; i < total; i += 1) peer.publish('disk/bound/request', command(`bound-${i}`), { qos: 0 });
      await eventually(() => (router.recorder.waiting + router.recorder.failed === total ? true : undefined), 60_000, `all ${total} rows seen by the router`);
      assert.ok(log.lines.some((line) => /history: rows could not be stored and 10000 already wait: the newest are given up/.test(line)), 'the router says it gave rows up');
      disk.free();
      const stored = await eventually(
        async () => ((await router.historyStore.count()) === MAX_UNSTORED ? (await router.historyStore.query(parseHistoryQuery({ action: 'disk/bound', limit: MAX_UNSTORED }))).rows : undefined),
        60_000,
        `${MAX_UNSTORED} rows stored`,
      );
      // The oldest waited and are stored; the newest were given up.
      assert.deepEqual(new Set(stored.map((row) => row.token)), new Set(Array.from({ length: MAX_UNSTORED }, (_, i) => `bound-${i}`)));
      const replayed = (await reader.request('relais/events/get', { limit: 50 }, { timeout: 30_000 })) as { events: BusEvent[] };
      const gaps = replayed.events.filter((event) => event.type === 'history.gap' && event.data.by === 'store');
      assert.equal(gaps.length, 1, 'one history.gap event by the store');
      const reported = gaps[0]!.data;
      assert.deepEqual({ missed: reported.missed, commands: reported.commands, responses: reported.responses, cancels: reported.cancels }, { missed: extra, commands: extra, responses: 0, cancels: 0 });
      assert.ok((reported.from as number) <= (reported.to as number));
      assert.equal(router.recorder.failed, extra);
    } finally {
      await router.close();
    }
  });

  it(`events - past ${MAX_UNSTORED_EVENTS} events waiting, the oldest are given up and every consumer is told exactly how many it missed`, async () => {
    const { router, disk, log } = await routerOnSmallDisk('events-past-the-bound');
    try {
      const before = await latestCursor();
      disk.fill();
      const extra = 25;
      const total = MAX_UNSTORED_EVENTS + extra;
      for (let i = 0; i < total; i += 1) peer.publish('disk/many/notification', note(i), { qos: 0 });
      await eventually(() => log.lines.find((line) => /events could not be stored and 10000 already wait: the oldest are given up/.test(line)), 60_000, 'events given up');
      disk.free();
      const items = await readEvents(reader, before, (got) => got.some((item) => item.type === 'notification' && ((item as BusEvent).data.payload as { seq: number }).seq === total - 1), 60_000);
      const gaps = items.filter((item) => item.type === 'gap') as Array<{ missed: number; after: number }>;
      assert.equal(gaps.length, 1, 'one gap');
      const [gap] = gaps;
      assert.equal(items[0], gap, 'the gap first: the oldest events were given up');
      assert.equal(gap!.after, before);
      // The consumer is told exactly the cursors it cannot have: every other one comes once, in order, after them.
      const events = items.slice(1) as BusEvent[];
      assert.deepEqual(events.map((event) => event.cursor), Array.from({ length: events.length }, (_, i) => before + gap!.missed + 1 + i));
      const replay = (await reader.request('relais/events/get', { since: before, limit: 10 }, { timeout: 30_000 })) as { events: BusEvent[]; missed?: number };
      assert.equal(replay.missed, gap!.missed, 'the router no longer has those cursors, and says so to every consumer');
      // The newest notifications waited and are stored; those given up are the oldest (with whatever other event came among them).
      const seqs = events.filter((event) => event.type === 'notification').map((event) => (event.data.payload as { seq: number }).seq);
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => total - seqs.length + i));
      const notesGivenUp = total - seqs.length;
      assert.ok(notesGivenUp >= extra && notesGivenUp <= gap!.missed, `${notesGivenUp} notifications given up, ${gap!.missed} events missed`);
      assert.ok(gap!.missed - notesGivenUp <= 5, `only the router's own few events besides: ${gap!.missed - notesGivenUp}`);
    } finally {
      await router.close();
    }
  });
});
