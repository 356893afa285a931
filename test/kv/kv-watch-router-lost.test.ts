/**
 * A kv watch whose router loses its connection (protocol §14.6): the steps it wrote just before
 * may never have left, and nothing would send them again (the router's watch goes on past
 * them), so the watch ends with a retryable error and the client asks again from the last
 * revision it yielded. The router reaches the broker through a proxy that holds what it sends,
 * then cuts it: bytes in flight lost, as on a real network.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bus } from '../../src/index.js';
import { isUpToDate, KV_ACTIONS, type KvUpToDate } from '../../src/protocol/kv.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { storedValueOf } from '../../src/router/kv-store.js';
import type { KvValueEntry, KvWatchEvent } from '../../src/client/kv.js';
import { setup, SUITE_TIMEOUT, testLogger, uniqueId, within, type Kit } from '../testkit/index.js';
import { startTcpProxy, type TcpProxy } from '../testkit/tcp-proxy.js';
import { take } from './kv-contract.js';

const summary = (item: KvWatchEvent) => (isUpToDate(item as never) ? `up-to-date@${(item as KvUpToDate).revision}` : `${(item as KvValueEntry).operation}:${(item as KvValueEntry).key}@${(item as KvValueEntry).revision}`);

describe('kv watch - the router loses its connection', { timeout: SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let dir: string;
  let proxy: TcpProxy;
  let router: Router;
  let watcher: Bus;

  before(async () => {
    kit = await setup('aedes');
    dir = mkdtempSync(join(tmpdir(), 'relais-kv-lost-'));
    proxy = await startTcpProxy(Number(new URL(kit.broker.url).port));
    router = await startRouter({ broker: proxy.url, database: join(dir, 'history.db'), id: uniqueId('router'), logger: testLogger });
    watcher = await kit.connect(uniqueId('watcher'));
    await watcher.waitForHandler(KV_ACTIONS.watch);
  });

  after(async () => {
    await router?.close();
    await kit?.cleanup();
    await proxy?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('kv watch - a step the router wrote as its connection died is not lost: the watch ends, the client asks again from its last revision and gets it', async () => {
    const controller = new AbortController();
    const watch = watcher.kv('lost').watch({ since: 0, signal: controller.signal });
    assert.deepEqual((await take(watch, 1)).map(summary), ['up-to-date@0']);
    await watcher.kv('lost').put('k', 1);
    assert.deepEqual((await take(watch, 1)).map(summary), ['put:k@1']);
    // From here what the router sends stays in the network; a write its watch reads next (as
    // another router sharing the store would make) is sent into it.
    proxy.hold();
    await router.kvStore.write({ bucket: 'lost', key: 'k', operation: 'put', value: storedValueOf(2), author: 'elsewhere', historyDepth: 10, now: Date.now() });
    await within(
      new Promise<void>((resolve) => {
        const check = setInterval(() => proxy.held.includes(`relais/kv/watch/response/${watcher.id}`) && (clearInterval(check), resolve()), 10);
      }),
      10_000,
      "the router's step held in the network",
    );
    assert.equal(proxy.cut(), 2, "the router's connection, both sides");
    // Asked again, the watch catches up and says so, as after any lost connection.
    assert.deepEqual((await take(watch, 2, 30_000)).map(summary), ['put:k@2', 'up-to-date@2']);
    await watcher.kv('lost').put('k', 3);
    assert.deepEqual((await take(watch, 1, 30_000)).map(summary), ['put:k@3'], 'nothing doubled, the watch goes on');
    controller.abort();
  });
});
