/**
 * Several routers on one store (protocol §11.8): two routers under their own ids record the same
 * bus into ONE database (here one SQLite file, two handles; PostgreSQL the same way). Each row
 * and each event is stored once, with one cursor sequence; either router answers a query, the
 * event stream and the metrics alike; a router killed with SIGKILL while requests flow loses
 * nothing, the other recorded the same messages.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { connect, type Bus, type BusEvent, type EventsPage, type HistoryPage } from '../../src/index.js';
import type { HistoryRowInput } from '../../src/protocol/history.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { recordingLogger, testLogger, within } from '../testkit/index.js';

const ROUTER_PROCESS = fileURLToPath(new URL('./router-process.ts', import.meta.url));
const ACTION = 'shared/echo';

/** Resolves once `router` has seen, in the store, the final of every token (whoever stored it). */
function finalsSeen(router: Router, tokens: readonly string[], what: string): Promise<void> {
  const waiting = new Set(tokens);
  return within(
    new Promise<void>((resolve) => {
      const stop = router.recorder.watchSeen((rows: readonly HistoryRowInput[]) => {
        for (const row of rows) if (row.kind === 'final') waiting.delete(row.token);
        if (waiting.size > 0) return;
        stop();
        resolve();
      });
    }),
    60_000,
    what,
  );
}

/** Every event in the log, read from `router` through the bus, page after page. */
async function allEvents(client: Bus, router: string): Promise<BusEvent[]> {
  const events: BusEvent[] = [];
  for (let since = 0; ; ) {
    const page = (await client.request('relais/events/get', { since, limit: 1000 }, { target: router, timeout: 30_000 })) as EventsPage;
    assert.equal(page.missed, undefined, `no event missed after cursor ${since}`);
    events.push(...page.events);
    if (!page.more) return events;
    since = page.events.at(-1)!.cursor;
  }
}

/** The store holds each request of `tokens` once: one command and one final each, and nothing twice. */
async function assertEachRowOnce(client: Bus, router: string, tokens: readonly string[]): Promise<void> {
  const page = (await client.request('relais/history/get', { action: ACTION, limit: 10_000 }, { target: router, timeout: 30_000 })) as HistoryPage;
  const ofTokens = page.rows.filter((row) => tokens.includes(row.token));
  const kinds = ofTokens.map((row) => `${row.token} ${row.kind}`);
  assert.equal(new Set(kinds).size, kinds.length, 'no row stored twice');
  assert.deepEqual(new Set(kinds), new Set(tokens.flatMap((token) => [`${token} command`, `${token} final`])), 'a command and a final for every request');
}

/** Each request's started and finished event once; cursors one after the other from the first. */
function assertEventsOnce(events: readonly BusEvent[], tokens: readonly string[]): void {
  const cursors = events.map((event) => event.cursor);
  assert.deepEqual(cursors, Array.from({ length: cursors.length }, (_, i) => cursors[0]! + i), 'one cursor sequence, without a gap or a repeat');
  for (const type of ['request.started', 'request.finished']) {
    const ofType = events.filter((event) => event.type === type && tokens.includes(event.data.token as string)).map((event) => event.data.token);
    assert.equal(ofType.length, tokens.length, `${type}: one per request (${ofType.length} for ${tokens.length})`);
    assert.equal(new Set(ofType).size, tokens.length, `${type}: each request once`);
  }
}

describe('two routers on one store', { timeout: 180_000 }, () => {
  let dir: string;
  let database: string;
  let broker: EmbeddedBroker;
  let first: Router;
  let second: Router;
  let handler: Bus;
  let client: Bus;
  const children: ChildProcess[] = [];
  /** By router: the registries whose detail notification naming the handler alive it received. */
  const handlerDetails = new Map<string, Set<string>>();
  let bothDetailsReceived: Promise<void>;

  const start = (id: string) => startRouter({ id, broker: broker.url!, database, persistentSession: false, metricsEveryMs: 3_600_000, logger: testLogger });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'relais-shared-store-'));
    database = join(dir, 'history.db');
    broker = await startEmbeddedBroker({ port: 0 });
    first = await start('relais-router-1');
    second = await start('relais-router-2');
    // Each router's registry publishes the handler's arrival; each router receives both.
    const received = await Promise.all(
      [first, second].map(async (router) => {
        const from = new Set<string>();
        handlerDetails.set(router.bus.id, from);
        let resolve!: () => void;
        const both = new Promise<void>((done) => (resolve = done));
        await router.bus.subscribe('relais/clients/detail/notification', (message) => {
          const detail = (message.envelope.payload as { clients?: Record<string, { status?: string } | null> }).clients?.['shared-handler'];
          if (detail?.status === 'alive') from.add(message.envelope.source);
          if (from.size === 2) resolve();
        });
        return { both }; // not the promise itself: an async function would wait for it
      }),
    );
    bothDetailsReceived = within(Promise.all(received.map(({ both }) => both)).then(() => undefined), 30_000, "both routers receiving both registries' news of the handler");
    handler = await connect({ id: 'shared-handler', broker: broker.url!, logger: testLogger });
    await handler.handle(ACTION, (payload) => payload);
    client = await connect({ id: 'shared-client', broker: broker.url!, logger: testLogger });
    await client.waitForHandler(ACTION);
    for (const router of ['relais-router-1', 'relais-router-2']) await client.waitForHandler('relais/events/get', { target: router, timeout: 30_000 });
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await client?.close();
    await handler?.close();
    await first?.close();
    await second?.close();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shared - each row and event once, one cursor sequence, the same answers and metrics from either router', async () => {
    const tokens: string[] = [];
    const requests = Array.from({ length: 20 }, async (_, n) => {
      const token = `shared-${n}`;
      tokens.push(token);
      await client.request(ACTION, { n }, { token });
    });
    const seenByBoth = Promise.all([finalsSeen(first, Array.from({ length: 20 }, (_, n) => `shared-${n}`), 'router 1 saw every final stored'), finalsSeen(second, Array.from({ length: 20 }, (_, n) => `shared-${n}`), 'router 2 saw every final stored')]);
    await Promise.all(requests);
    for (let n = 0; n < 5; n += 1) client.notify('shared/notes', { n });
    await seenByBoth;

    await assertEachRowOnce(client, 'relais-router-1', tokens);
    const fromFirst = (await client.request('relais/history/get', { action: ACTION, limit: 100 }, { target: 'relais-router-1' })) as HistoryPage;
    const fromSecond = (await client.request('relais/history/get', { action: ACTION, limit: 100 }, { target: 'relais-router-2' })) as HistoryPage;
    assert.deepEqual(fromSecond, fromFirst, 'either router answers the same rows');

    // The notifications are events once each, though both routers saw them.
    const notes = async () => (await allEvents(client, 'relais-router-2')).filter((event) => event.type === 'notification' && event.data.category === 'shared/notes');
    await within(
      (async () => {
        while ((await notes()).length < 5) await new Promise((resolve) => setTimeout(resolve, 50));
      })(),
      30_000,
      'the 5 notifications in the event log',
    );
    // Both routers had both notifications of the handler's arrival before this read (which stores what each holds first).
    await bothDetailsReceived;
    await allEvents(client, 'relais-router-2');
    const events = await allEvents(client, 'relais-router-1');
    assert.deepEqual(await allEvents(client, 'relais-router-2'), events, 'either router answers the same events');
    assertEventsOnce(events, tokens);
    assert.deepEqual(events.filter((event) => event.type === 'notification' && event.data.category === 'shared/notes').map((event) => (event.data.payload as { n: number }).n).sort(), [0, 1, 2, 3, 4], 'each notification once');
    const handlerAlive = events.filter((event) => event.type === 'client' && event.data.id === 'shared-handler' && event.data.status === 'alive');
    assert.equal(handlerAlive.length, 1, "the handler's arrival once, though both registries published it");

    // Each router counts what it saw, not only the rows it stored first.
    const [one, two] = [first.metrics.roll(), second.metrics.roll()];
    const figures = (snapshot: typeof one) => ({ ...snapshot.actions[ACTION], rate: undefined, latency: undefined, rows: snapshot.rows });
    assert.deepEqual(figures(two), figures(one), 'the same metrics from either router');
    assert.deepEqual([one.actions[ACTION]?.requests, one.actions[ACTION]?.completed, one.actions[ACTION]?.errors], [20, 20, 0]);
  });

  it('shared - a router killed with SIGKILL while requests flow loses no row and no event: the other recorded the same messages', async () => {
    // A third router in its own process, on the same database: it is the one killed.
    const child = spawn(process.execPath, ['--import', 'tsx', ROUTER_PROCESS, broker.url!, 'relais-router-3', database], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
    await within(
      new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => String(chunk).includes('READY') && resolve());
        child.once('exit', (code) => reject(new Error(`the router process exited (${code}) before it was ready: ${output}`)));
      }),
      60_000,
      'the third router ready',
    );
    await client.waitForHandler('relais/events/get', { target: 'relais-router-3', timeout: 30_000 });
    // Only the killed one and another: the first leaves cleanly.
    await first.close();

    const tokens = Array.from({ length: 150 }, (_, n) => `flow-${n}`);
    const seen = finalsSeen(second, tokens, 'the surviving router saw every final stored');
    let sent = 0;
    let killed: Promise<unknown> | undefined;
    const worker = async () => {
      while (sent < tokens.length) {
        const token = tokens[sent++]!;
        await client.request(ACTION, { token }, { token });
        if (sent === 60 && !killed) {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGKILL');
          killed = exited;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await killed;
    assert.equal(child.signalCode, 'SIGKILL', 'the third router was killed mid-flow');
    await seen;

    await assertEachRowOnce(client, 'relais-router-2', tokens);
    const events = await allEvents(client, 'relais-router-2');
    assertEventsOnce(events, tokens);
  });
});

describe('a shared store URL', () => {
  it('shared - a store that cannot be opened stops the router with an error naming its URL with the password masked', async () => {
    const logs = recordingLogger();
    const url = 'postgres://relais:s3cr%40et@127.0.0.1:1/relais';
    const failed = await startRouter({ id: 'relais-router-nowhere', broker: 'mqtt://127.0.0.1:1', store: url, logger: logs.logger }).then(
      () => assert.fail('the router started'),
      (error: Error) => error,
    );
    assert.match(failed.message, /postgres:\/\/relais:\*\*\*@127\.0\.0\.1:1\/relais/);
    assert.doesNotMatch(`${failed.message}\n${logs.lines.join('\n')}`, /s3cr/);
    await assert.rejects(startRouter({ broker: 'mqtt://127.0.0.1:1', store: 'mysql://u:s3cret@host/db', logger: logs.logger }), (error: Error) => /not a postgres:\/\/ URL/.test(error.message) && !error.message.includes('s3cret'));
  });
});
