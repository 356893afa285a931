/**
 * A client connected with `directory: 'on-demand'` (protocol §7.2) hears only its own presence
 * until something needs the directory: then it follows every presence, and requests, handler
 * choice, "no handler", a handler's death and a kill relayed by the router work as for any client.
 * What it heard shows in its directory: every presence delivered to a client is applied there.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CancelledError, connect, HandlerGoneError, NoHandlerError, type Bus } from '../../src/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { setup, SUITE_TIMEOUT, testLogger, uniqueId, within, type Kit } from '../testkit/index.js';
import { startSecureBroker, type SecureBroker } from '../testkit/secure-broker.js';

describe('directory on demand', { timeout: SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let dir: string;
  let router: Router;
  let handler: Bus;
  const buses: Bus[] = [];
  const onDemand = async (name: string) => {
    const bus = await kit.connect(uniqueId(name), { directory: 'on-demand' });
    buses.push(bus);
    return bus;
  };

  before(async () => {
    kit = await setup('aedes');
    dir = mkdtempSync(join(tmpdir(), 'relais-on-demand-'));
    router = await startRouter({ broker: kit.broker.url, database: join(dir, 'history.db'), id: uniqueId('router'), logger: testLogger });
    handler = await kit.connect(uniqueId('handler'));
    await handler.handle('demand/echo', (payload: unknown) => payload);
  });
  after(async () => {
    for (const bus of buses) await bus.close();
    await router?.close();
    await kit?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('on demand - idle, it hears no presence but its own, even as others come and go', async () => {
    const idle = await onDemand('idle');
    // Presences of other clients while it idles: each would reach a full directory.
    const passing = await kit.connect(uniqueId('passing'));
    await passing.close();
    const watcher = await kit.connect(uniqueId('watcher'));
    await watcher.waitForHandler('demand/echo');
    const listed = idle.clients().map((client) => client.id);
    assert.deepEqual(listed, [idle.id], 'only its own presence was delivered to it');
    await watcher.close();
  });

  it('on demand - the first request waits for the directory and reaches the handler; then an action nobody serves fails with NoHandlerError', async () => {
    const requester = await onDemand('requester');
    assert.deepEqual(await requester.request('demand/echo', { n: 1 }), { n: 1 });
    assert.ok(requester.clients().some((client) => client.id === handler.id), 'the directory now holds the handler');
    await assert.rejects(requester.request('demand/nobody', {}), (error: Error) => error instanceof NoHandlerError && /no connected client serves demand\/nobody/.test(error.message));
  });

  it('on demand - waitForHandler follows the presences: resolves when a handler appears later', async () => {
    const waiter = await onDemand('waiter');
    const action = `${uniqueId('demand')}/late`;
    const waiting = waiter.waitForHandler(action, { timeout: 20_000 });
    const late = await kit.connect(uniqueId('late'));
    buses.push(late);
    await late.handle(action, () => 'late');
    await within(waiting, 20_000, 'waitForHandler of a handler that came later');
    assert.equal(await waiter.request(action, {}), 'late');
  });

  it('on demand - a handler that dies mid-request is noticed from its Last Will (HandlerGoneError)', async () => {
    const requester = await onDemand('requester-gone');
    const mortal = await kit.connect(uniqueId('mortal'), { ackTimeout: 5000 });
    const action = `${uniqueId('demand')}/mortal`;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    await mortal.handle(action, () => {
      started();
      return new Promise(() => {});
    });
    const pending = requester.request(action, {}, { timeout: 60_000 });
    pending.catch(() => {});
    await within(running, 10_000, 'the handler running');
    await mortal.kill();
    await assert.rejects(within(pending, 30_000, 'the request ending'), (error: Error) => error instanceof HandlerGoneError);
  });

  it('on demand - a handler that never needed the directory takes a kill relayed by the router', async () => {
    const worker = await onDemand('worker');
    const action = `${uniqueId('demand')}/long`;
    let aborted!: (why: string) => void;
    const abortedWith = new Promise<string>((resolve) => (aborted = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    await worker.handle(action, (_payload: unknown, ctx) => {
      started();
      return new Promise((_, reject) =>
        ctx.signal.addEventListener('abort', () => {
          aborted(String((ctx.signal.reason as Error).message));
          reject(ctx.signal.reason as Error);
        }),
      );
    });
    const client = await connect({ id: uniqueId('killer'), broker: kit.broker.url, logger: testLogger });
    buses.push(client);
    await client.waitForHandler(action);
    await client.waitForHandler('relais/requests/kill');
    const token = uniqueId('long');
    const pending = client.request(action, {}, { token, timeout: 30_000 });
    pending.catch(() => {});
    await within(running, 10_000, 'the handler running');
    const result = (await client.request('relais/requests/kill', { token, reason: 'enough', wait: 15_000 })) as { killed: boolean; outcome: string };
    assert.deepEqual([result.killed, result.outcome], [true, 'cancelled']);
    assert.match(await within(abortedWith, 10_000, 'the handler aborted'), /enough/);
    await assert.rejects(pending, (error: Error) => error instanceof CancelledError);
  });
});

describe('directory on demand with security on (the default policy)', { timeout: SUITE_TIMEOUT }, () => {
  let secure: SecureBroker;
  before(async () => {
    secure = await startSecureBroker([['alice', ['client']], ['svc', ['service']]]);
  });
  after(() => secure?.close());

  it('on demand - a service and a client each subscribe to their own presence only, which the policy allows, and the client reaches the service', async () => {
    const asIdentity = (id: string) => connect({ id, broker: secure.broker.url!, username: id, password: secure.tokens.get(id)!, logger: testLogger, directory: 'on-demand' });
    const service = await asIdentity('svc');
    const alice = await asIdentity('alice');
    try {
      await service.handle('demo/on-demand', (payload: unknown) => payload);
      assert.deepEqual(alice.clients().map((client) => client.id), ['alice']);
      assert.equal(await alice.request('demo/on-demand', 'hello'), 'hello');
    } finally {
      await alice.close();
      await service.close();
    }
  });
});

