/**
 * What the router does on any broker (protocol §11): run against the embedded Aedes broker
 * and against Mosquitto (router-aedes.test.ts, router-mosquitto.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { CancelledError, InvalidMessageError, NotAuthorizedError, RemoteError, RequestEndedError, UnknownTokenError, type Bus, type HistoryPage, type HistoryRow } from '../../src/index.js';
import { startRouter, type MetricsSnapshot, type Router } from '../../src/router/index.js';
import { generateSealingKey, loadSealingKeys, readSealingPrivateKey } from '../../src/index.js';
import { parseHistoryQuery, type KillResult } from '../../src/protocol/history.js';
import { setup, SUITE_TIMEOUT, testLogger, uniqueId, type BrokerKind, type Kit } from '../testkit/index.js';

/** Resolves when `check()` holds, checking now and after each batch the router stores; rejects after `timeout`. */
export function untilRecorded(router: Router, check: () => boolean | Promise<boolean>, timeout = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stop();
      if (error) reject(error as Error);
      else resolve();
    };
    const attempt = () => void Promise.resolve(check()).then((holds) => holds && finish(), finish);
    const timer = setTimeout(() => finish(new Error(`not recorded within ${timeout} ms`)), timeout);
    // Watched before the first check: a batch stored while it reads is checked again.
    const stop = router.recorder.watchSeen(attempt);
    attempt();
  });
}

export async function rowsOf(router: Router, token: string): Promise<HistoryRow[]> {
  return (await router.historyStore.query(parseHistoryQuery({ token, limit: 10_000 }))).rows;
}

export function routerContract(kind: BrokerKind, options: { skip: string | false }): void {
  describe(`router on ${kind}`, { skip: options.skip, timeout: SUITE_TIMEOUT }, () => {
    let kit: Kit;
    let dir: string;
    let router: Router;
    let handler: Bus;
    let client: Bus;
    let aborted: Promise<string> | undefined;
    before(async () => {
      kit = await setup(kind);
      dir = mkdtempSync(join(tmpdir(), 'relais-router-'));
      router = await startRouter({ broker: kit.broker.url, database: join(dir, 'history.db'), id: uniqueId('router'), logger: testLogger, maxDataBytes: 1024, metricsEveryMs: 300 });
      handler = await kit.connect(uniqueId('handler'));
      client = await kit.connect(uniqueId('client'));
      await handler.handle('test/steps', async (payload: { fail?: boolean; wait?: number }, ctx) => {
        ctx.progress(0.5, { half: true });
        if (payload.wait) await new Promise((resolve) => setTimeout(resolve, payload.wait));
        if (payload.fail) throw new Error('it failed on purpose');
        return { done: true };
      });
      await handler.handle('test/long', (_payload: unknown, ctx) => {
        aborted = new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(String((ctx.signal.reason as Error)?.message)), { once: true }));
        return aborted.then((why) => {
          throw new Error(`stopped: ${why}`);
        });
      });
      await handler.handle('test/reversed', (payload: Buffer) => Buffer.from(payload).reverse());
      await client.waitForHandler('test/reversed');
      await client.waitForHandler('test/steps');
      await client.waitForHandler('test/long');
      await client.waitForHandler('relais/history/get');
    });
    after(async () => {
      await router?.close();
      await kit?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('router - records a request lifecycle: command, accepted, progress, final, with who sent what to whom', async () => {
      let token = '';
      for await (const step of client.call('test/steps', { wait: 20 })) token = step.token;
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'final'));
      const rows = await rowsOf(router, token);
      // Its progress left in the command's turn and stands for the acknowledgement (protocol §4.7).
      assert.deepEqual(rows.map((row) => row.kind).sort(), ['command', 'final', 'progress']);
      const command = rows.find((row) => row.kind === 'command')!;
      assert.equal(command.source, client.id);
      assert.equal(command.target, handler.id);
      assert.equal(command.action, 'test/steps');
      const final = rows.find((row) => row.kind === 'final')!;
      assert.equal(final.source, handler.id);
      assert.equal(final.target, client.id);
      assert.equal(final.code, 0);
      assert.equal(final.data, '{"done":true}');
      assert.equal(rows.find((row) => row.kind === 'progress')!.progress, 0.5);
    });

    it('router - an error answer is recorded as an error row with its code and message', async () => {
      const token = uniqueId('tok');
      await assert.rejects(client.request('test/steps', { fail: true }, { token }), RemoteError);
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'error'));
      const error = (await rowsOf(router, token)).find((row) => row.kind === 'error')!;
      assert.equal(error.code, 1);
      assert.match(error.data, /it failed on purpose/);
    });

    it('router - get answers over the bus with filters ANDed; a bad query gets code 2 naming the field, and recording goes on', async () => {
      const token = uniqueId('tok');
      await client.request('test/steps', {}, { token });
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'final'));
      const page = (await client.request('relais/history/get', { token, kind: 'final', source: handler.id })) as HistoryPage;
      assert.equal(page.rows.length, 1);
      assert.equal(page.rows[0]!.token, token);
      const none = (await client.request('relais/history/get', { token, source: 'nobody' })) as HistoryPage;
      assert.equal(none.rows.length, 0);
      await assert.rejects(client.request('relais/history/get', { colour: 'red' }), (error: RemoteError) => error.code === 'INVALID_MESSAGE' && /colour/.test(error.message));
      await assert.rejects(client.request('relais/history/get', { limit: 'all' }), /limit/);
      const after = uniqueId('tok');
      await client.request('test/steps', {}, { token: after });
      await untilRecorded(router, async () => (await rowsOf(router, after)).some((row) => row.kind === 'final'));
    });

    it('router - a payload over the cap is stored cut and flagged truncated, with its real size', async () => {
      const token = uniqueId('tok');
      await client.request('test/steps', { blob: 'x'.repeat(5000) }, { token });
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'command'));
      const command = (await rowsOf(router, token)).find((row) => row.kind === 'command')!;
      assert.equal(command.truncated, true);
      assert.ok(command.size > 5000);
      assert.ok(Buffer.byteLength(command.data) <= 1024);
    });

    it('router - a binary command and answer (protocol §3.5) are recorded with their bytes, size and SHA-256; over the cap, cut with the digest of all', async () => {
      const token = uniqueId('tok');
      const small = Buffer.from([0, 10, 255, 0x7b]);
      const answer = await client.request<Buffer>('test/reversed', small, { token });
      assert.deepEqual([...answer], [...small].reverse());
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'final'));
      const rows = await rowsOf(router, token);
      const command = rows.find((row) => row.kind === 'command')!;
      const final = rows.find((row) => row.kind === 'final')!;
      assert.equal(command.sha256, createHash('sha256').update(small).digest('hex'));
      assert.deepEqual(Buffer.from(command.data, 'base64'), small);
      assert.equal(command.size, 4);
      assert.deepEqual(Buffer.from(final.data, 'base64'), Buffer.from(answer));
      const large = randomBytes(5000);
      const bigToken = uniqueId('tok');
      await client.request('test/reversed', large, { token: bigToken });
      await untilRecorded(router, async () => (await rowsOf(router, bigToken)).some((row) => row.kind === 'command'));
      const cut = (await rowsOf(router, bigToken)).find((row) => row.kind === 'command')!;
      assert.equal(cut.truncated, true);
      assert.equal(cut.size, 5000);
      assert.equal(cut.sha256, createHash('sha256').update(large).digest('hex'), 'the digest is of every byte');
      assert.ok(cut.data.length <= 1024);
      assert.deepEqual(Buffer.from(cut.data, 'base64'), large.subarray(0, Buffer.from(cut.data, 'base64').length));
    });

    it('router - a sealed request (protocol §3.6) is recorded as its ciphertext with its seal member, never opened; a sealed notification\'s event names its kids and size only', async () => {
      const dirKeys = mkdtempSync(join(tmpdir(), 'relais-router-sealing-'));
      const keysFile = join(dirKeys, 'sealing-keys.json');
      const sealed: Bus[] = [];
      try {
        const ids = { handler: uniqueId('sealed-handler'), requester: uniqueId('sealed-requester') };
        const made = Object.fromEntries(Object.entries(ids).map(([role, id]) => [role, generateSealingKey(keysFile, id, dirKeys)])) as Record<keyof typeof ids, { kid: string; privateKeyFile: string }>;
        const open = (role: keyof typeof ids) => kit.connect(ids[role], { sealing: { privateKey: readSealingPrivateKey(made[role].privateKeyFile), keys: loadSealingKeys(keysFile) } });
        const sealedHandler = await open('handler');
        const requester = await open('requester');
        sealed.push(sealedHandler, requester);
        const secret = `sealed-secret-${uniqueId('s')}`;
        await sealedHandler.handle('test/sealed', (payload: { secret: string }) => ({ back: payload.secret }), { sealed: 'require' });
        await requester.waitForHandler('test/sealed');
        const token = uniqueId('tok');
        assert.deepEqual(await requester.request('test/sealed', { secret }, { token, seal: true }), { back: secret });
        await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'final'));
        const rows = await rowsOf(router, token);
        for (const kind of ['command', 'final'] as const) {
          const row = rows.find((r) => r.kind === kind)!;
          assert.ok(row.seal, `the ${kind} row is marked sealed`);
          const ciphertext = Buffer.from(row.data, 'base64');
          assert.equal(row.size, ciphertext.length);
          assert.equal(row.sha256, createHash('sha256').update(ciphertext).digest('hex'), 'size and digest are of the ciphertext');
          assert.ok(!ciphertext.includes(secret) && !row.data.includes(secret), `no plaintext in the ${kind} row`);
          assert.equal(row.opened, undefined);
        }
        assert.deepEqual(rows.find((r) => r.kind === 'command')!.seal!.to.map((to) => to.kid).includes(made.handler.kid), true);
        assert.deepEqual(rows.find((r) => r.kind === 'final')!.seal!.to.map((to) => to.kid), [made.requester.kid]);
        // The requester reads its answers through the library, opened; the router's own store still holds ciphertext.
        const page = await requester.history({ token });
        assert.deepEqual(JSON.parse(page.rows.find((r) => r.kind === 'final')!.data), { back: secret });
        const events = await client.subscribe('relais/events/notification');
        const category = `test/sealed-news/${uniqueId('n')}`;
        const seen = (async () => {
          for await (const message of events) {
            const found = (message.envelope.payload as { events: Array<{ type: string; data: Record<string, unknown> }> }).events.find((event) => event.type === 'notification' && event.data.category === category);
            if (found) return found.data;
          }
          return undefined;
        })();
        requester.notify(category, { secret }, { sealFor: [ids.handler] });
        const data = (await Promise.race([seen, new Promise((_, reject) => setTimeout(() => reject(new Error('no event for the sealed notification')), 10_000))])) as Record<string, unknown>;
        await events.unsubscribe();
        assert.equal(data.sealed, true);
        assert.deepEqual(data.kids, [made.handler.kid]);
        assert.equal(typeof data.size, 'number');
        assert.match(String(data.sha256), /^[0-9a-f]{64}$/);
        assert.equal('payload' in data, false);
        assert.ok(!JSON.stringify(data).includes(secret));
      } finally {
        await Promise.all(sealed.map((bus) => bus.close()));
        rmSync(dirKeys, { recursive: true, force: true });
      }
    });

    it('router - put stores a result durably before it answers; a put for a foreign token is refused (code 4)', async () => {
      const token = uniqueId('offline');
      const stored = (await client.request('relais/history/put', { token, action: 'test/offline', code: 0, data: { done: 'offline' } })) as HistoryRow;
      assert.equal(stored.kind, 'put');
      assert.equal(stored.source, client.id);
      // Read the file from another connection: the row is committed, not only in the router's memory.
      const db = new Database(join(dir, 'history.db'), { readonly: true });
      try {
        assert.equal((db.prepare('SELECT count(*) FROM history WHERE token = ? AND kind = ?').pluck().get(token, 'put') as number), 1);
      } finally {
        db.close();
      }
      const stranger = await kit.connect(uniqueId('stranger'));
      await assert.rejects(stranger.request('relais/history/put', { token, code: 1 }), (error: RemoteError) => error.code === new NotAuthorizedError('').code);
      await assert.rejects(client.request('relais/history/put', { token: uniqueId('unknown') }), (error: RemoteError) => error.code === new InvalidMessageError('').code && /action/.test(error.message));
    });

    it('router - follow replays what already happened, then goes on live until the final, nothing lost or doubled', async () => {
      const token = uniqueId('tok');
      const running = client.request('test/steps', { wait: 300 }, { token });
      // Start following once the command and the progress are stored, while the handler still works.
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'progress'));
      const watcher = await kit.connect(uniqueId('watcher'));
      const seen: HistoryRow[] = [];
      for await (const row of watcher.follow(token, { timeout: 5000 })) seen.push(row);
      await running;
      assert.deepEqual(seen.map((row) => row.id), (await rowsOf(router, token)).map((row) => row.id));
      assert.equal(seen.at(-1)!.kind, 'final');
      assert.equal(new Set(seen.map((row) => row.id)).size, seen.length);
    });

    it('router - metrics: each interval publishes per-action requests, errors and latencies; get answers the latest', async () => {
      const snapshots = await client.subscribe('relais/metrics/notification');
      const done = Promise.all(Array.from({ length: 5 }, (_, n) => client.request('test/steps', { fail: n === 0 }).catch(() => 'failed')));
      let requests = 0;
      let errors = 0;
      let latencies = 0;
      const timeout = AbortSignal.timeout(5000);
      for await (const message of snapshots) {
        assert.ok(!timeout.aborted, 'the metrics did not count the 5 requests within 5 s');
        const steps = (message.envelope.payload as MetricsSnapshot).actions['test/steps'];
        requests += steps?.requests ?? 0;
        errors += steps?.errors ?? 0;
        latencies += steps?.latency?.samples ?? 0;
        if (requests >= 5 && latencies >= 5) break;
      }
      await done;
      assert.equal(errors, 1);
      const latest = (await client.request('relais/metrics/get', {})) as MetricsSnapshot;
      assert.ok(latest.until > latest.from);
    });

    it('router - kill: the requester kills its request by token through the router, the handler is aborted, the history says who; others are refused', async () => {
      const token = uniqueId('long');
      const running = client.request('test/long', {}, { token, timeout: 10_000 });
      running.catch(() => {});
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'accepted'));
      const stranger = await kit.connect(uniqueId('stranger'));
      await assert.rejects(stranger.request('relais/requests/kill', { token }), (error: RemoteError) => error.code === new NotAuthorizedError('').code);
      const result = (await client.request('relais/requests/kill', { token, reason: 'no longer needed' })) as KillResult;
      assert.deepEqual([result.killed, result.outcome, result.code, result.handler, result.by], [true, 'cancelled', 5, handler.id, client.id]);
      assert.match(await aborted!, /no longer needed/);
      await assert.rejects(running, (error: Error) => error instanceof CancelledError && /no longer needed/.test(error.message));
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'error'));
      const cancel = (await rowsOf(router, token)).find((row) => row.kind === 'cancel')!;
      assert.equal(cancel.source, router.bus.id);
      assert.equal(JSON.parse(cancel.data).by, client.id);
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'kill'));
      const outcome = (await rowsOf(router, token)).find((row) => row.kind === 'kill')!;
      assert.deepEqual([outcome.source, outcome.code, JSON.parse(outcome.data).outcome], [client.id, 5, 'cancelled']);
      await assert.rejects(client.request('relais/requests/kill', { token }), /already ended/);
    });

    it('router - kill: a handler that ignores the cancel is not reported killed: "unconfirmed" after the wait, then "finished" with its code; the history says so', async () => {
      let release!: () => void;
      const stubborn = await kit.connect(uniqueId('stubborn'));
      await stubborn.handle('test/stubborn', () => new Promise((resolve) => (release = () => resolve('done anyway'))));
      await client.waitForHandler('test/stubborn', { timeout: 5000 });
      const token = uniqueId('stubborn');
      const running = client.request('test/stubborn', {}, { token, timeout: 20_000 });
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'accepted'));
      const unconfirmed = (await client.request('relais/requests/kill', { token, wait: 300 })) as KillResult;
      assert.deepEqual([unconfirmed.killed, unconfirmed.outcome, unconfirmed.handler], [false, 'unconfirmed', stubborn.id]);
      assert.ok(unconfirmed.waitedMs >= 300, `waited ${unconfirmed.waitedMs} ms`);
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'kill'));
      const recorded = (await rowsOf(router, token)).find((row) => row.kind === 'kill')!;
      assert.deepEqual([recorded.code, JSON.parse(recorded.data).outcome], [undefined, 'unconfirmed']);
      // Killed again, it finishes meanwhile: the kill says it ended on its own, with its code.
      const second = client.request('relais/requests/kill', { token, wait: 10_000 }) as Promise<KillResult>;
      await untilRecorded(router, async () => (await rowsOf(router, token)).filter((row) => row.kind === 'cancel').length === 2);
      release();
      assert.equal(await running, 'done anyway');
      const finished = await second;
      assert.deepEqual([finished.killed, finished.outcome, finished.code], [false, 'finished', 0]);
    });

    it('router - kill: an unknown token and a request that has ended are refused with code 2, each as its own error type naming the token', async () => {
      const unknown = uniqueId('never-sent');
      await assert.rejects(client.request('relais/requests/kill', { token: unknown }), (error: Error) => {
        assert.ok(error instanceof UnknownTokenError, `${error.name}: ${error.message}`);
        assert.deepEqual([error.responseCode, error.details], [2, { token: unknown }]);
        return true;
      });
      const token = uniqueId('done');
      await client.request('test/steps', {}, { token });
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'final'));
      await assert.rejects(client.request('relais/requests/kill', { token }), (error: Error) => {
        assert.ok(error instanceof RequestEndedError, `${error.name}: ${error.message}`);
        assert.deepEqual([error.responseCode, error.details], [2, { token, kind: 'final', code: 0 }]);
        return true;
      });
    });

    it('router - kill: a handler that dies after the cancel counts as killed ("handler-gone")', async () => {
      const doomed = await kit.connect(uniqueId('doomed'));
      await doomed.handle('test/doomed', () => new Promise(() => {}));
      await client.waitForHandler('test/doomed', { timeout: 5000 });
      const token = uniqueId('doomed');
      const running = client.request('test/doomed', {}, { token, timeout: 20_000 });
      running.catch(() => {});
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'accepted'));
      const kill = client.request('relais/requests/kill', { token, wait: 20_000 }) as Promise<KillResult>;
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'cancel'));
      await doomed.kill();
      const result = await kill;
      assert.deepEqual([result.killed, result.outcome, result.handler], [true, 'handler-gone', doomed.id]);
    });

    it('router - a requester that went away picks up its result after it restarts, with follow', async () => {
      const id = uniqueId('restarting');
      const token = uniqueId('tok');
      let requester = await kit.connect(id);
      await requester.waitForHandler('test/steps');
      const lost = requester.request('test/steps', { wait: 300 }, { token });
      lost.catch(() => {}); // ends when its requester closes: it does not cancel the handler
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'progress'));
      await requester.close();
      requester = await kit.connect(id);
      const rows: HistoryRow[] = [];
      for await (const row of requester.follow(token, { timeout: 5000 })) rows.push(row);
      assert.equal(rows.at(-1)!.kind, 'final');
      assert.equal(rows.at(-1)!.data, '{"done":true}');
      assert.equal(rows[0]!.kind, 'command');
    });

    it('router - a follow that would replay more than 100,000 stored rows is refused with code 2, and the router goes on', async () => {
      const action = `test/bulk-${uniqueId('a')}`;
      await router.historyStore.append(Array.from({ length: 100_001 }, (_, n) => ({ token: `bulk-${n}`, kind: 'command' as const, action, source: 'bulk', etime: 0, data: 'null', size: 4, truncated: false, digest: `d${n}` })));
      await assert.rejects(client.request('relais/history/follow', { action }, { timeout: 60_000 }), (error: RemoteError) => error.code === new InvalidMessageError('').code && /more than 100000 stored rows/.test(error.message));
      const page = (await client.request('relais/history/get', { action, order: 'newest', limit: 1 })) as HistoryPage;
      assert.equal(page.rows[0]!.token, 'bulk-100000');
    });

    it("router - the router's own actions are not recorded", async () => {
      const token = uniqueId('tok');
      await client.request('relais/history/get', { limit: 1 }, { token });
      await client.request('test/steps', {}, { token: `${token}-next` });
      await untilRecorded(router, async () => (await rowsOf(router, `${token}-next`)).some((row) => row.kind === 'final'));
      assert.deepEqual(await rowsOf(router, token), []);
    });

    it('router - a command from a plain MQTT peer at QoS 1 is recorded, and its redelivery is not recorded twice', async () => {
      const token = uniqueId('foreign');
      const peer = await mqtt.connectAsync(kit.broker.url, { clientId: uniqueId('peer'), protocolVersion: 4 });
      try {
        const message = JSON.stringify({ type: 'command', source: 'peer', destination: '*', token, payload: {} });
        await peer.publishAsync('test/foreign/request', message, { qos: 1 });
        await peer.publishAsync('test/foreign/request', message, { qos: 1, dup: true });
        await untilRecorded(router, async () => (await rowsOf(router, token)).length > 0);
        // A later message proves the repeat was seen and skipped, not still on its way.
        await peer.publishAsync('test/foreign/request', JSON.stringify({ type: 'command', source: 'peer', destination: '*', token: `${token}-2`, payload: {} }), { qos: 1 });
        await untilRecorded(router, async () => (await rowsOf(router, `${token}-2`)).length > 0);
        assert.equal((await rowsOf(router, token)).length, 1);
      } finally {
        await peer.endAsync();
      }
    });
  });
}
