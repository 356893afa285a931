/**
 * The router's streams (a kv watch, a history follow) when the router loses its connection
 * (protocol §11.2, §14.9): the steps it wrote just before may never have left, and nothing would
 * send them again (the stream goes on past them), so the stream ends with
 * `StreamInterruptedError` and the library asks again after the last item it yielded. The
 * router reaches the broker through a proxy that holds what it sends, then cuts it: bytes in
 * flight lost, as on a real network.
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
import { pythonGate, startPythonPeer, stopPythonPeers, type PeerLine } from '../testkit/python.js';
import { startTcpProxy, type TcpProxy } from '../testkit/tcp-proxy.js';
import { take } from '../kv/kv-contract.js';

const summary = (item: KvWatchEvent) => (isUpToDate(item as never) ? `up-to-date@${(item as KvUpToDate).revision}` : `${(item as KvValueEntry).operation}:${(item as KvValueEntry).key}@${(item as KvValueEntry).revision}`);

describe('router streams - the router loses its connection', { timeout: SUITE_TIMEOUT }, () => {
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

  /** Resolves once the proxy holds a message of the router's on `topic`. */
  const heldOn = (topic: string) =>
    within(
      proxy.whenHeld((held) => held.includes(topic)),
      10_000,
      `the router's message on ${topic} held in the network`,
    );

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
    await heldOn(`relais/kv/watch/response/${watcher.id}`);
    assert.equal(proxy.cut(), 2, "the router's connection, both sides");
    // Asked again, the watch catches up and says so, as after any lost connection.
    assert.deepEqual((await take(watch, 2, 30_000)).map(summary), ['put:k@2', 'up-to-date@2']);
    await watcher.kv('lost').put('k', 3);
    assert.deepEqual((await take(watch, 1, 30_000)).map(summary), ['put:k@3'], 'nothing doubled, the watch goes on');
    controller.abort();
  });

  /** A request whose handler sends progress 1, then progress 2 and its result each when `step()` is called. */
  const steppedRequest = async () => {
    const action = `demo/${uniqueId('followed')}`;
    const handler = await kit.connect(uniqueId('handler'));
    let release: (() => void) | undefined;
    const released = () => new Promise<void>((resolve) => (release = resolve));
    await handler.handle(action, async (_payload, ctx) => {
      ctx.progress(0.1, { step: 1 });
      await released();
      ctx.progress(0.5, { step: 2 });
      await released();
      return { done: true };
    });
    const requester = await kit.connect(uniqueId('requester'));
    const token = `followed-${uniqueId('t')}`;
    const answered = requester.request(action, {}, { token, timeout: 60_000 });
    return { token, answered, step: () => release!() };
  };

  /** A row as the assertions read it: its kind, and a progress row's step. */
  const described = (row: { kind: string; data?: string }) => `${row.kind}${row.kind === 'progress' ? `:${(JSON.parse(row.data ?? '{}') as { step?: number }).step}` : ''}`;

  it('history follow - a row the router sent as its connection died is not lost: the follow asks again after the last row it yielded, nothing doubled', async () => {
    const request = await steppedRequest();
    const follower = await kit.connect(uniqueId('follower'));
    const rows = follower.follow(request.token, { timeout: 60_000 });
    const seen: string[] = [];
    const read = async (until: (kind: string) => boolean) => {
      for (;;) {
        const next = await rows.next();
        if (next.done) throw new Error(`the follow ended after ${seen.join(', ')}`);
        seen.push(described(next.value));
        if (until(next.value.kind)) return;
      }
    };
    await within(read((kind) => kind === 'progress'), 15_000, 'the first progress row');
    proxy.hold();
    request.step();
    await heldOn(`relais/history/follow/response/${follower.id}`);
    assert.equal(proxy.cut(), 2, "the router's connection, both sides");
    await within(read((kind) => kind === 'progress'), 30_000, 'the second progress row');
    request.step();
    assert.deepEqual(await request.answered, { done: true });
    await within(read((kind) => kind === 'final'), 30_000, 'the final row');
    assert.deepEqual(seen.filter((kind) => kind !== 'accepted'), ['command', 'progress:1', 'progress:2', 'final']);
  });

  it('history follow from Python - the same: the follow asks again after the last row it yielded, nothing doubled', { skip: pythonGate('the Python history follow across a lost router connection').skip }, async () => {
    const request = await steppedRequest();
    const reader = await startPythonPeer({ id: uniqueId('py-follower'), broker: kit.broker.url });
    try {
      const follow = reader.start('follow', { token: request.token });
      const progress = (step: number) => (line: PeerLine) => line.event === 'row' && line.sub === follow && described(line.row as { kind: string; data?: string }) === `progress:${step}`;
      await reader.next(progress(1), 'the first progress row');
      proxy.hold();
      request.step();
      await heldOn(`relais/history/follow/response/${reader.id}`);
      assert.equal(proxy.cut(), 2, "the router's connection, both sides");
      await reader.next(progress(2), 'the second progress row');
      request.step();
      assert.deepEqual(await request.answered, { done: true });
      const followed = await reader.reply(follow);
      assert.equal(followed.ok, true, JSON.stringify(followed.error));
      const rows = followed.result as Array<{ kind: string; data?: string }>;
      assert.deepEqual(rows.map(described).filter((kind) => kind !== 'accepted'), ['command', 'progress:1', 'progress:2', 'final']);
    } finally {
      await stopPythonPeers();
    }
  });
});
