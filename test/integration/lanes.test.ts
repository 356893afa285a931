/**
 * The real-time lane (protocol §6.2) when it is down and the main connection is up: a
 * real-time message takes the main connection; a real-time request, whose answers come on
 * the real-time lane, is sent at once and answered once the lane is back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startHookedAedes, type HookedAedes } from '../testkit/hooked-aedes.js';
import { uniqueId, waitFor } from '../testkit/index.js';

const ACK_TIMEOUT = 300;

describe('lanes', { timeout: 30_000 }, () => {
  let broker: HookedAedes;
  const join = (id: string) => broker.join(id, { ackTimeout: ACK_TIMEOUT });
  before(async () => {
    broker = await startHookedAedes();
  });
  after(async () => {
    await broker?.close();
  });

  it('priority - with the real-time lane down, a realtime notification takes the main connection and a realtime request is answered once the lane is back', async () => {
    const server = await join(uniqueId('server'));
    await server.handle('demo/lane', (_payload, ctx) => ({ priority: ctx.priority }), { lane: 'realtime' });
    const client = await join(uniqueId('client'));
    await client.waitForHandler('demo/lane');
    // Subscribed to its answers on the real-time lane while it is up.
    assert.deepEqual(await client.request('demo/lane', {}, { priority: 'realtime' }), { priority: 'realtime' });
    const listener = await join(uniqueId('listener'));
    const alarms = (await listener.subscribe('demo/lane/alarm/notification'))[Symbol.asyncIterator]();
    const seen: string[] = [];
    broker.publishers.on('publish', (clientId, topic) => {
      if (topic.startsWith('demo/lane/')) seen.push(`${clientId} ${topic}`);
    });
    const lane = `${client.id}~rt`;
    broker.closed.add(lane);
    const laneDown = new Promise<void>((resolve) => client.on('lane', (which, up) => which === 'realtime' && !up && resolve()));
    broker.cut(lane);
    await laneDown;

    client.notify('demo/lane/alarm', { level: 'critical' }, { priority: 'realtime' });
    assert.equal((await alarms.next()).value?.envelope.priority, 'realtime');
    const answer = client.request('demo/lane', {}, { priority: 'realtime', timeout: 10_000 });
    await waitFor(() => (seen.includes(`${client.id} demo/lane/request/${server.id}`) ? true : undefined), broker.publishers, 'publish');
    // The condition under test, not a wait for something: the lane stays down longer than the
    // acknowledgement time-out, and the requester must not take the handler for gone meanwhile.
    await delay(3 * ACK_TIMEOUT);
    broker.closed.delete(lane);
    assert.deepEqual(await answer, { priority: 'realtime' });
    assert.deepEqual(seen.filter((line) => line.startsWith(client.id)).slice(0, 2), [`${client.id} demo/lane/alarm/notification`, `${client.id} demo/lane/request/${server.id}`], 'both left on the main connection');
  });

  it('call - a client that made requests of both priorities on an action yields each step of a call once (its answers come on both connections)', async () => {
    const server = await join(uniqueId('server'));
    await server.handle('demo/steps', async (_payload, ctx) => {
      // Steps apart in time, as a handler at work sends them: each one arrives before the final.
      for (const fraction of [0.25, 0.5, 0.75]) {
        ctx.progress(fraction, { fraction });
        await delay(20);
      }
      return 'done';
    });
    const client = await join(uniqueId('client'));
    await client.waitForHandler('demo/steps');
    // Subscribed to the action's answers on the real-time lane, then on the main one.
    assert.equal(await client.request('demo/steps', {}, { priority: 'realtime' }), 'done');
    for (const priority of ['normal', 'realtime'] as const) {
      const steps: string[] = [];
      for await (const step of client.call('demo/steps', {}, { priority })) steps.push(step.kind === 'progress' ? `progress ${step.progress}` : step.kind);
      assert.deepEqual(steps.filter((step) => step !== 'accepted'), ['progress 0.25', 'progress 0.5', 'progress 0.75', 'final'], `${priority} call`);
    }
  });
});
