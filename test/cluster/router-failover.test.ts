/**
 * Routers that fail over (docs/deploy.md "A cluster"): two `relais router` processes, each on
 * its own node of a 3-node NATS cluster, record into one PostgreSQL history. Killing one with
 * SIGKILL mid-flood loses no row and leaves no hole in the event cursors; PostgreSQL restarted
 * mid-flood delays the rows, never loses them. Everything is a real process: nats-server,
 * PostgreSQL, the `relais router` CLI.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../src/index.js';
import type { Bus } from '../../src/client/bus.js';
import { HISTORY_ACTIONS, type HistoryPage, type HistoryRow } from '../../src/protocol/history.js';
import { EVENTS_ACTION, type BusEvent, type EventsPage } from '../../src/protocol/events.js';
import { CLI_SUITE_TIMEOUT, startCli, type RunningCli } from '../testkit/cli.js';
import { peerGate, testLogger, uniqueId } from '../testkit/index.js';
import { startNatsCluster, type NatsCluster } from '../testkit/nats-cluster.js';
import { postgresGate, startPostgres, type TestPostgres } from '../testkit/postgres.js';

const gate = peerGate('nats-server', 'routers failing over on a NATS cluster');
const pgGate = postgresGate('routers failing over on a NATS cluster with PostgreSQL');
const FLOOD = 240;
const IN_FLIGHT = 8;
const ACTION = 'demo/failover/echo';

describe('routers on a NATS cluster sharing one PostgreSQL history', { skip: gate.skip || pgGate.skip, timeout: CLI_SUITE_TIMEOUT }, () => {
  let cluster: NatsCluster;
  let postgres: TestPostgres;
  let dataDir: string;
  const routers: RunningCli[] = [];
  const clients: Bus[] = [];

  /** The cluster's URLs starting with node `first`: a client starts there and moves to the others. */

  const startRouter = async (index: number): Promise<RunningCli> => {
    const router = startCli(['router', '--broker', cluster.brokersFrom(index), '--id', `relais-router-${index}`, '--store', postgres.url, '--data-dir', path.join(dataDir, `router-${index}`)]);
    routers.push(router);
    await router.waitFor(/router recording the history to/, 120_000);
    return router;
  };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-router-failover-'));
    [cluster, postgres] = await Promise.all([startNatsCluster({ nodes: 3 }), startPostgres()]);
    await Promise.all([startRouter(0), startRouter(1)]);
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await Promise.all(routers.map((router) => router.stop('SIGKILL')));
    await Promise.allSettled([cluster?.close(), postgres?.close()]);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const client = async (prefix: string, node: number): Promise<Bus> => {
    const bus = await connect({ id: uniqueId(prefix), broker: cluster.brokersFrom(node), logger: testLogger });
    clients.push(bus);
    return bus;
  };

  /** Sends `count` requests, IN_FLIGHT at a time; `midway` runs once half of them have ended. Every one must end with its result. */
  const flood = async (requester: Bus, count: number, midway: () => Promise<void>): Promise<string[]> => {
    const tokens: string[] = [];
    let next = 0;
    let ended = 0;
    let fault: Promise<void> | undefined;
    const worker = async () => {
      while (next < count) {
        const n = next++;
        const token = uniqueId(`t${n}`);
        tokens.push(token);
        const result = await requester.request(ACTION, { n }, { token, timeout: 30_000 });
        assert.deepEqual(result, { n }, `request ${n} ended with its own result`);
        ended += 1;
        if (ended === count / 2) fault = midway();
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    await fault;
    return tokens;
  };

  /** Every row of the history with one of `tokens`, read the way any client reads it, from whichever router answers. */
  const rowsOf = async (reader: Bus, tokens: readonly string[]): Promise<HistoryRow[]> => {
    const wanted = new Set(tokens);
    const rows: HistoryRow[] = [];
    let afterId = 0;
    for (;;) {
      const page = (await reader.request(HISTORY_ACTIONS.get, { action: ACTION, afterId, order: 'oldest', limit: 1000 }, { timeout: 30_000 })) as HistoryPage;
      rows.push(...page.rows.filter((row) => wanted.has(row.token)));
      if (page.rows.length === 0 || !page.more) return rows;
      afterId = page.rows.at(-1)!.id;
    }
  };

  /** Waits until each token has its command and final row (the routers may still be writing), then checks each is there exactly once. */
  const assertHistoryComplete = async (reader: Bus, tokens: readonly string[]) => {
    const deadline = Date.now() + 60_000;
    let rows: HistoryRow[];
    for (;;) {
      rows = await rowsOf(reader, tokens);
      const finals = new Set(rows.filter((row) => row.kind === 'final').map((row) => row.token));
      if (finals.size === tokens.length || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 500)); // the routers' batches: polled with a deadline, asserted after
    }
    for (const kind of ['command', 'final'] as const) {
      const counts = new Map<string, number>();
      for (const row of rows.filter((row) => row.kind === kind)) counts.set(row.token, (counts.get(row.token) ?? 0) + 1);
      const missing = tokens.filter((token) => !counts.has(token));
      const doubled = [...counts].filter(([, count]) => count > 1);
      assert.deepEqual(missing, [], `every request has its ${kind} row`);
      assert.deepEqual(doubled, [], `no ${kind} row is stored twice`);
    }
  };

  /** Reads the whole event stream from cursor 0: the cursors must follow each other with no hole nor repeat. */
  const assertEventsGapless = async (reader: Bus, tokens: readonly string[]) => {
    const events: BusEvent[] = [];
    let since = 0;
    for (;;) {
      const page = (await reader.request(EVENTS_ACTION, { since, limit: 1000 }, { timeout: 30_000 })) as EventsPage;
      assert.equal(page.missed, undefined, `no event missed after cursor ${since}`);
      events.push(...page.events);
      if (page.events.length === 0 || !page.more) break;
      since = page.events.at(-1)!.cursor;
    }
    events.forEach((event, index) => assert.equal(event.cursor, index + 1, 'the cursors follow each other'));
    const finished = events.filter((event) => event.type === 'request.finished' && tokens.includes(String(event.data.token)));
    assert.equal(finished.length, tokens.length, 'each request finished once in the event stream');
  };

  test('a router killed with SIGKILL mid-flood: the other keeps recording, the history is complete, the event cursors have no gap', async () => {
    const handler = await client('handler', 2);
    await handler.handle(ACTION, (payload) => payload);
    const requester = await client('requester', 0);
    await requester.waitForHandler(ACTION, { timeout: 30_000 });
    const tokens = await flood(requester, FLOOD, async () => {
      await routers[0]!.stop('SIGKILL');
    });
    await assertHistoryComplete(requester, tokens);
    await assertEventsGapless(requester, tokens);
  });

  test('PostgreSQL restarted mid-flood: the routers keep the rows and store them once it is back', async () => {
    await startRouter(0); // the router killed above comes back and records beside the other
    const handler = await client('handler', 1);
    await handler.handle(ACTION, (payload) => payload);
    const requester = await client('requester', 2);
    await requester.waitForHandler(ACTION, { timeout: 30_000 });
    const tokens = await flood(requester, FLOOD, async () => {
      await postgres.stop();
      await postgres.start();
    });
    await assertHistoryComplete(requester, tokens);
    await assertEventsGapless(requester, tokens);
  });
});
