/**
 * Two routers sharing one PostgreSQL store (protocol §14, §11.8): both serve the key-value store,
 * the library sends each request to either. Writes through both take one revision sequence, a
 * compare-and-set holds across them, and a watch served by one sees what the other wrote, once
 * and in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { connect, type Bus } from '../../src/index.js';
import { KV_ACTIONS, kvErrorOf, RevisionConflictError, type KvWatchStep } from '../../src/protocol/kv.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { testLogger } from '../testkit/index.js';
import { postgresGate, startPostgres, type TestPostgres } from '../testkit/postgres.js';
import { take } from './kv-contract.js';

const gate = postgresGate('the key-value store on a shared PostgreSQL store');

describe('key-value store: two routers on one PostgreSQL store', { skip: gate.skip, timeout: 120_000 }, () => {
  let server: TestPostgres;
  let broker: EmbeddedBroker;
  const routers: Router[] = [];
  let writer: Bus;
  let watcher: Bus;
  before(async () => {
    server = await startPostgres();
    const store = await server.createDatabase();
    broker = await startEmbeddedBroker({ port: 0, log: () => {} });
    for (const id of ['router-a', 'router-b']) routers.push(await startRouter({ stream: () => broker.connectInProcess(), store, id, logger: testLogger }));
    writer = await connect({ id: 'writer', broker: broker.url!, logger: testLogger, realtimeLane: false });
    watcher = await connect({ id: 'watcher', broker: broker.url!, logger: testLogger, realtimeLane: false });
    for (const id of ['router-a', 'router-b']) {
      await writer.waitForHandler(KV_ACTIONS.put, { target: id });
      await watcher.waitForHandler(KV_ACTIONS.watch, { target: id });
    }
  });
  after(async () => {
    await Promise.all([writer?.close(), watcher?.close()]);
    await Promise.all(routers.map((router) => router.close()));
    await broker?.close();
    await server?.close();
  });

  it('shared postgres - writes through either router take one sequence; a watch on router A sees router B\'s writes once, in order; one create wins', async () => {
    const controller = new AbortController();
    // The watch is router-a's; every write goes through router-b: router-a sees them through the store only.
    const steps = watcher.call(KV_ACTIONS.watch, { bucket: 'shared', since: 0 }, { target: 'router-a', signal: controller.signal, timeout: 60_000 });
    const changes = (async function* () {
      for await (const step of steps) if (step.kind === 'progress') yield* (step.payload as KvWatchStep).changes;
    })();
    const revisions: number[] = [];
    for (let i = 1; i <= 10; i += 1) {
      const answer = (await writer.request(KV_ACTIONS.put, { bucket: 'shared', key: `k${i % 3}`, value: i }, { target: 'router-b' })) as { revision: number };
      revisions.push(answer.revision);
    }
    assert.deepEqual(revisions, Array.from({ length: 10 }, (_, i) => i + 1));
    const seen = await take(changes, 10, 30_000);
    assert.deepEqual(seen.map((entry) => [entry.revision, entry.value]), revisions.map((revision) => [revision, revision]), 'every write, in order, once');
    controller.abort();
    await changes.return(undefined);
    // Both routers try to create one key: one wins, the other answers the conflict.
    const results = await Promise.allSettled(
      ['router-a', 'router-b'].map((target) => writer.request(KV_ACTIONS.put, { bucket: 'shared', key: 'once', value: target, expectRevision: 0 }, { target }).catch((error: unknown) => Promise.reject(kvErrorOf(error)))),
    );
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
    assert.ok(results.some((result) => result.status === 'rejected' && result.reason instanceof RevisionConflictError));
  });
});
