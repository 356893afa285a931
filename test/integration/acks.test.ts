/**
 * Acknowledged requests (protocol §4.7, §4.8), on each broker: a handler acknowledges what
 * it takes unless its answer leaves at once; a requester suspects a handler that does not
 * answer in time and moves the request to another provider, or waits on (late is not gone:
 * only presence says a handler is gone); nothing runs twice; a broker restart does not fail
 * requests whose handler is still working; peers that do not acknowledge work as before.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { describe, it, before, after } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { HandlerGoneError, TimeoutError, type Bus, type ConnectOptions } from '../../src/index.js';
import { peerGate, setup, SUITE_TIMEOUT, uniqueId, waitFor, type BrokerKind, type Kit } from '../testkit/index.js';
import { startHookedAedes, type HookedAedes } from '../testkit/hooked-aedes.js';

/** A raw MQTT client collecting what arrives on `filter`. */
async function spy(url: string, filter: string) {
  const client = await mqtt.connectAsync(url, { clientId: uniqueId('spy'), protocolVersion: 4 });
  const seen: Array<{ topic: string; body: Record<string, unknown>; qos: number }> = [];
  const arrivals = new EventEmitter();
  client.on('message', (topic, payload, packet) => {
    seen.push({ topic, body: JSON.parse(payload.toString() || 'null') as Record<string, unknown>, qos: packet.qos });
    arrivals.emit('message');
  });
  await client.subscribeAsync(filter, { qos: 1 });
  /** Resolves once `count` messages have come. */
  const until = (count: number) => waitFor(() => (seen.length >= count ? true : undefined), arrivals, 'message');
  return { client, seen, until };
}

interface HungHandler {
  id: string;
  client: MqttClient;
  /** Every command it received (copies included), in order. */
  received: Array<{ token: string; acceptBy: number | undefined }>;
  /** Emits `command` for each. */
  events: EventEmitter;
}

/**
 * A peer that announces itself as a library handler that acknowledges (`acks: true`), takes
 * commands and never answers: a process frozen, or a broken peer. With `answerAfter`, it
 * answers the first copy of each command that many ms late, whatever its acceptBy: a handler
 * slower than any deadline it is given. With `forgetful`, it acknowledges each command and then
 * answers a status query (acceptBy 0) as a handler that no longer knows the token does. With
 * `clockAhead`, it refuses every command at once as past its acceptBy, as a handler whose clock
 * is ahead of the requester's does.
 */
async function hungHandler(url: string, action: string, options: { answerAfter?: number; forgetful?: boolean; clockAhead?: boolean } = {}): Promise<HungHandler> {
  const id = uniqueId('hung');
  const presenceTopic = `relais/presence/${id}`;
  const since = Date.now();
  const presence = (status: string, seq: number) => JSON.stringify({ type: 'notification', source: id, destination: '*', payload: { status, actions: status === 'alive' ? [action] : [], since, seq, instance: 'frozen', acks: true } });
  const client = await mqtt.connectAsync(url, { clientId: id, protocolVersion: 4, will: { topic: presenceTopic, payload: Buffer.from(presence('dead', 0)), qos: 1, retain: true } });
  const received: HungHandler['received'] = [];
  const events = new EventEmitter();
  client.on('message', (_topic, payload) => {
    const command = JSON.parse(payload.toString()) as { token: string; source: string; acceptBy?: number; payload: unknown };
    const first = !received.some(({ token }) => token === command.token);
    received.push({ token: command.token, acceptBy: command.acceptBy });
    events.emit('command');
    const answer = (body: object) => client.publish(`${action}/response/${command.source}`, JSON.stringify({ type: 'response', source: id, destination: command.source, token: command.token, ...body }), { qos: 0 });
    if (first && options.answerAfter !== undefined) setTimeout(() => answer({ final: true, payload: { late: command.payload } }), options.answerAfter);
    if (options.clockAhead) answer({ final: true, accepted: false, code: 6, payload: null, error: { name: 'TimeoutError', message: `request ${command.token} reached ${id} 60000 ms after its acceptance deadline; it was not run (if this keeps happening, check that the clocks agree)` } });
    if (options.forgetful) {
      answer(command.acceptBy === 0
        ? { final: true, accepted: false, code: 6, payload: null, error: { name: 'TimeoutError', message: `request ${command.token} is not known here` } }
        : { final: false, accepted: true, payload: null });
    }
  });
  await client.subscribeAsync([`${action}/request`, `${action}/request/${id}`], { qos: 1 });
  await client.publishAsync(presenceTopic, presence('alive', 1), { qos: 1, retain: true });
  return { id, client, received, events };
}

function ackContract(kind: BrokerKind, skip: string | false): void {
  describe(`acks on ${kind}`, { skip, timeout: SUITE_TIMEOUT }, () => {
    let kit: Kit;
    const raws: MqttClient[] = [];
    before(async () => {
      kit = await setup(kind);
    });
    after(async () => {
      await Promise.all(raws.map((client) => client.endAsync(true)));
      await kit?.cleanup();
    });

    it('acks - a fast handler answers with one message and no acknowledgement; a slow one is acknowledged at once, then answered', async () => {
      const server = await kit.connect(uniqueId('server'));
      await server.handle('demo/ack/fast', (payload) => payload);
      await server.handle('demo/ack/slow', async (payload) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return payload;
      });
      const client = await kit.connect(uniqueId('client'));
      await client.waitForHandler('demo/ack/slow');
      const watcher = await spy(kit.broker.url, `demo/ack/+/response/${client.id}`);
      raws.push(watcher.client);
      assert.deepEqual(await client.request('demo/ack/fast', { n: 1 }), { n: 1 });
      const steps: string[] = [];
      for await (const step of client.call('demo/ack/slow', { n: 2 })) steps.push(`${step.kind} ${step.source === server.id ? 'server' : step.source}`);
      assert.deepEqual(steps, ['accepted server', 'final server']);
      await watcher.until(3);
      const shape = watcher.seen.map(({ topic, body }) => `${topic.split('/')[2]} final=${body.final} accepted=${body.accepted}`);
      assert.deepEqual(shape, ['fast final=true accepted=undefined', 'slow final=false accepted=true', 'slow final=true accepted=undefined']);
      // Commands and answers between library clients need no PUBACK: the acknowledgement is end to end (protocol §1.3).
      assert.deepEqual(watcher.seen.map(({ qos }) => qos), [0, 0, 0]);
    });

    it('acks - a handler that never answers is suspected, not gone: requests move to another provider; a targeted one is offered again and ends with TimeoutError at its own time-out; it stays in the directory', async () => {
      const hung = await hungHandler(kit.broker.url, 'demo/ack/shared');
      raws.push(hung.client);
      const healthy = await kit.connect(uniqueId('healthy'));
      const runs: number[] = [];
      await healthy.handle('demo/ack/shared', (payload: { n: number }) => {
        runs.push(payload.n);
        return payload.n;
      });
      const client = await kit.connect(uniqueId('client'), { ackTimeout: 300 });
      await waitFor(() => (client.directory.providers('demo/ack/shared').size === 2 ? true : undefined), client.directory, 'change');
      // Without moving on they would wait for their 10 s time-out; the test's is 60 s.
      const answers = await Promise.all(Array.from({ length: 8 }, (_, n) => client.request('demo/ack/shared', { n }, { timeout: 10_000 })));
      assert.deepEqual(answers, [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(runs.sort(), [0, 1, 2, 3, 4, 5, 6, 7], 'each ran once, on the healthy handler');
      assert.ok(hung.received.length > 0, 'some went to the hung handler first');
      const token = uniqueId('targeted');
      await assert.rejects(client.request('demo/ack/shared', {}, { target: hung.id, token, timeout: 2000 }), (error: unknown) => error instanceof TimeoutError && /within 2000 ms/.test(error.message));
      // Each time its wait ended, it was offered the command again with a later acceptBy (protocol §4.7).
      const offers = new Set(hung.received.filter((command) => command.token === token).map((command) => command.acceptBy));
      assert.ok(offers.size >= 2, `offered ${offers.size} time(s)`);
      assert.ok(client.directory.providers('demo/ack/shared').has(hung.id), 'a suspected handler stays in the directory');
      // While it is suspected, requests without a target go to the other provider at once.
      const received = hung.received.length;
      assert.deepEqual(await Promise.all([10, 11, 12].map((n) => client.request('demo/ack/shared', { n }, { timeout: 10_000 }))), [10, 11, 12]);
      assert.equal(hung.received.length, received, 'nothing more was offered to the suspected handler');
    });

    it('acks - a handler slower than its deadline is suspected, and its late answer still ends the request (no HandlerGoneError)', async () => {
      const slow = await hungHandler(kit.broker.url, 'demo/ack/slow-peer', { answerAfter: 900 });
      raws.push(slow.client);
      const client = await kit.connect(uniqueId('client'), { ackTimeout: 150 });
      await client.waitForHandler('demo/ack/slow-peer');
      assert.deepEqual(await client.request('demo/ack/slow-peer', { n: 1 }, { target: slow.id, timeout: 10_000 }), { late: { n: 1 } });
      assert.deepEqual(await client.request('demo/ack/slow-peer', { n: 2 }, { timeout: 10_000 }), { late: { n: 2 } }, 'the only provider, suspected, is waited for');
    });

    it('acks - a handler whose clock is ahead refuses at once: a targeted request fails with its error (code 6), one without target moves to another provider', async () => {
      const ahead = await hungHandler(kit.broker.url, 'demo/ack/clock', { clockAhead: true });
      raws.push(ahead.client);
      const client = await kit.connect(uniqueId('client'), { ackTimeout: 5000 });
      await client.waitForHandler('demo/ack/clock');
      // Its own error, not the requester's time-out ("no final response within 20000 ms").
      await assert.rejects(client.request('demo/ack/clock', {}, { target: ahead.id, timeout: 20_000 }), (error: unknown) => error instanceof TimeoutError && /check that the clocks agree/.test(error.message));
      const other = await kit.connect(uniqueId('other'));
      await other.handle('demo/ack/clock', () => 'from the other');
      await waitFor(() => (client.directory.providers('demo/ack/clock').size === 2 ? true : undefined), client.directory, 'change');
      const answers = await Promise.all(Array.from({ length: 4 }, () => client.request('demo/ack/clock', {}, { timeout: 20_000 })));
      assert.deepEqual(answers, Array(4).fill('from the other'));
    });

    it('acks - a handler that took a request and no longer knows it when asked after a reconnection: HandlerGoneError', async () => {
      const forgetful = await hungHandler(kit.broker.url, 'demo/ack/forgetful', { forgetful: true });
      raws.push(forgetful.client);
      const client = await kit.connect(uniqueId('client'), { reconnectDelay: 20, reconnectMaxDelay: 100 });
      await client.waitForHandler('demo/ack/forgetful');
      const steps = client.call('demo/ack/forgetful', {}, { timeout: 10_000 });
      assert.equal((await steps.next()).value?.kind, 'accepted');
      (client as unknown as { transport: { main: { dropSocket(): void } } }).transport.main.dropSocket();
      await assert.rejects(steps.next(), (error: unknown) => error instanceof HandlerGoneError && /no longer knows the request/.test(error.message));
      assert.ok(forgetful.received.some((command) => command.acceptBy === 0), 'it was asked with a status query');
    });

    it('acks - a targeted request to a handler that never answers ends with HandlerGoneError once its presence says it is gone (its will), not before', async () => {
      const hung = await hungHandler(kit.broker.url, 'demo/ack/will');
      raws.push(hung.client);
      const client = await kit.connect(uniqueId('client'), { ackTimeout: 100, reconnectGrace: 300 });
      await client.waitForHandler('demo/ack/will');
      const token = uniqueId('doomed');
      const outcome = client.request('demo/ack/will', {}, { target: hung.id, token, timeout: 20_000 });
      outcome.catch(() => {});
      // Given up waiting for more than once, and still pending.
      await waitFor(() => (new Set(hung.received.filter((command) => command.token === token).map((command) => command.acceptBy)).size >= 3 ? true : undefined), hung.events, 'command');
      hung.client.stream.destroy(); // its connection lost: the broker publishes its will
      await assert.rejects(outcome, (error: unknown) => error instanceof HandlerGoneError && /lost its connection before taking the request and did not come back within 300 ms/.test(error.message));
      assert.equal(client.directory.get(hung.id)?.status, 'dead');
    });

    it('acks - a peer that does not announce acknowledgement works as before: its commands at QoS 1, no acknowledgement awaited', async () => {
      const id = uniqueId('foreign');
      const foreign = await mqtt.connectAsync(kit.broker.url, { clientId: id, protocolVersion: 4 });
      raws.push(foreign);
      const qos: number[] = [];
      foreign.on('message', (_topic, payload, packet) => {
        qos.push(packet.qos);
        const command = JSON.parse(payload.toString()) as { source: string; token: string };
        setTimeout(() => foreign.publish(`demo/ack/foreign/response/${command.source}`, JSON.stringify({ type: 'response', source: id, destination: command.source, token: command.token, payload: 'late but fine' }), { qos: 1 }), 600);
      });
      await foreign.subscribeAsync([`demo/ack/foreign/request/${id}`], { qos: 1 });
      await foreign.publishAsync(`relais/presence/${id}`, JSON.stringify({ type: 'notification', source: id, destination: '*', payload: { status: 'alive', actions: ['demo/ack/foreign'], since: Date.now(), seq: 1 } }), { qos: 1, retain: true });
      const client = await kit.connect(uniqueId('client'), { ackTimeout: 100 });
      await client.waitForHandler('demo/ack/foreign');
      assert.equal(await client.request('demo/ack/foreign', {}, { timeout: 5000 }), 'late but fine');
      assert.deepEqual(qos, [1]);
      await foreign.publishAsync(`relais/presence/${id}`, '', { qos: 1, retain: true });
    });

    it('acks - a command sent again with its token is not run again: acknowledged while it runs, answered with its result after', async () => {
      let runs = 0;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const server = await kit.connect(uniqueId('server'));
      await server.handle('demo/ack/once', async () => {
        runs += 1;
        await released;
        return { runs };
      });
      const requester = uniqueId('raw-requester');
      const watcher = await spy(kit.broker.url, `demo/ack/once/response/${requester}`);
      raws.push(watcher.client);
      // acceptBy: a requester that asks for acknowledgements (protocol §4.7), as the library does.
      const command = JSON.stringify({ type: 'command', source: requester, destination: server.id, token: 'same-token', payload: {}, deadline: Date.now() + 30_000, acceptBy: Date.now() + 30_000 });
      const publisher = await mqtt.connectAsync(kit.broker.url, { clientId: requester, protocolVersion: 4 });
      raws.push(publisher);
      await publisher.publishAsync(`demo/ack/once/request/${server.id}`, command, { qos: 1 });
      await watcher.until(1);
      await publisher.publishAsync(`demo/ack/once/request/${server.id}`, command, { qos: 1 });
      await watcher.until(2);
      release();
      await watcher.until(3);
      await publisher.publishAsync(`demo/ack/once/request/${server.id}`, command, { qos: 1 });
      await watcher.until(4);
      const shape = watcher.seen.map(({ body }) => (body.final === false ? `accepted=${body.accepted}` : `final ${JSON.stringify(body.payload)}`));
      assert.deepEqual(shape, ['accepted=true', 'accepted=true', 'final {"runs":1}', 'final {"runs":1}']);
      assert.equal(runs, 1);
    });

    it('acks - a plain command (no acceptBy) is not acknowledged: its requester reads the final alone, even when it sends the command again while it runs', async () => {
      let runs = 0;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const server = await kit.connect(uniqueId('server'));
      await server.handle('demo/ack/plain', async () => {
        runs += 1;
        await released;
        return { runs };
      });
      await server.handle('demo/ack/probe', () => 'probed');
      const requester = uniqueId('raw-requester');
      const watcher = await spy(kit.broker.url, `demo/ack/+/response/${requester}`);
      raws.push(watcher.client);
      const command = (action: string, token: string) => JSON.stringify({ type: 'command', source: requester, destination: server.id, token, payload: {} });
      const publisher = await mqtt.connectAsync(kit.broker.url, { clientId: requester, protocolVersion: 4 });
      raws.push(publisher);
      await publisher.publishAsync(`demo/ack/plain/request/${server.id}`, command('demo/ack/plain', 'plain-token'), { qos: 1 });
      await publisher.publishAsync(`demo/ack/plain/request/${server.id}`, command('demo/ack/plain', 'plain-token'), { qos: 1 });
      // The handler reads one connection's messages in order: once the probe is answered, both copies were seen.
      await publisher.publishAsync(`demo/ack/probe/request/${server.id}`, command('demo/ack/probe', 'probe-token'), { qos: 1 });
      await watcher.until(1);
      release();
      await watcher.until(2);
      assert.deepEqual(watcher.seen.map(({ topic, body }) => `${topic.split('/')[2]} final=${body.final}`), ['probe final=true', 'plain final=true']);
      assert.deepEqual(watcher.seen[1]!.body.payload, { runs: 1 });
    });

    it('acks - a command that arrives after its acceptance deadline, or its deadline, is not run; the requester is told (code 6)', async () => {
      let runs = 0;
      const server = await kit.connect(uniqueId('server'));
      await server.handle('demo/ack/late', () => (runs += 1));
      const requester = uniqueId('raw-requester');
      const watcher = await spy(kit.broker.url, `demo/ack/late/response/${requester}`);
      raws.push(watcher.client);
      const publisher = await mqtt.connectAsync(kit.broker.url, { clientId: requester, protocolVersion: 4 });
      raws.push(publisher);
      const send = (token: string, acceptBy: number) =>
        publisher.publishAsync(`demo/ack/late/request/${server.id}`, JSON.stringify({ type: 'command', source: requester, destination: server.id, token, payload: {}, acceptBy }), { qos: 0 });
      await send('late-1', Date.now() - 5000);
      await send('unknown-1', 0);
      await publisher.publishAsync(`demo/ack/late/request/${server.id}`, JSON.stringify({ type: 'command', source: requester, destination: server.id, token: 'expired-1', payload: {}, deadline: Date.now() - 1000 }), { qos: 0 });
      await watcher.until(3);
      const expired = watcher.seen.pop()!.body;
      assert.equal(expired.code, 6);
      assert.match(String((expired.error as { message: string }).message), /request expired-1 arrived after its deadline/);
      for (const { body } of watcher.seen) {
        assert.equal(body.code, 6);
        assert.equal(body.accepted, false);
      }
      assert.match(String((watcher.seen[0]!.body.error as { message: string }).message), /after its acceptance deadline; it was not run/);
      assert.match(String((watcher.seen[1]!.body.error as { message: string }).message), /is not known here/);
      assert.equal(runs, 0);
    });

    it('acks - a requester whose connection drops as the answer leaves gets it once back: it asks again, the handler answers from memory', async () => {
      let runs = 0;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const server = await kit.connect(uniqueId('server'));
      await server.handle('demo/ack/lost-final', async () => {
        runs += 1;
        await released;
        return 'kept for you';
      });
      // Slow to come back, so the answer surely finds nobody subscribed at the broker.
      const client = await kit.connect(uniqueId('client'), { reconnectDelay: 1000, reconnectMaxDelay: 1000 });
      await client.waitForHandler('demo/ack/lost-final');
      const steps = client.call('demo/ack/lost-final', {}, { timeout: 8000 });
      assert.equal((await steps.next()).value?.kind, 'accepted');
      const offline = once(client, 'offline');
      (client as unknown as { transport: { main: { dropSocket(): void } } }).transport.main.dropSocket();
      await offline;
      release();
      const final = (await steps.next()).value;
      assert.equal(final?.kind, 'final');
      assert.equal(final?.kind === 'final' && final.payload, 'kept for you');
      assert.equal(runs, 1);
    });

    it('acks - a broker restart while a handler works does not fail its requests: each ends with its result, each ran once', { timeout: 30_000 }, async () => {
      const fast = { reconnectDelay: 20, reconnectMaxDelay: 300 };
      const runs = new Map<number, number>();
      let started = 0;
      let allStarted!: () => void;
      const everyoneStarted = new Promise<void>((resolve) => (allStarted = resolve));
      const server = await kit.connect(uniqueId('server'), fast);
      await server.handle('demo/ack/restart', async (payload: { n: number }) => {
        runs.set(payload.n, (runs.get(payload.n) ?? 0) + 1);
        if (++started === 10) allStarted();
        await new Promise((resolve) => setTimeout(resolve, 1500));
        return payload.n * 2;
      });
      const client = await kit.connect(uniqueId('client'), fast);
      await client.waitForHandler('demo/ack/restart');
      const results = Promise.allSettled(Array.from({ length: 10 }, (_, n) => client.request('demo/ack/restart', { n }, { timeout: 20_000 })));
      await everyoneStarted;
      const offline = once(client, 'offline');
      await kit.broker.stop();
      await offline;
      await kit.broker.start();
      const outcomes = await results;
      assert.deepEqual(outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : String(outcome.reason))), Array.from({ length: 10 }, (_, n) => n * 2));
      assert.deepEqual([...runs.values()], Array(10).fill(1));
    });
  });
}

describe('acks - a handler that loses its connection', { timeout: SUITE_TIMEOUT }, () => {
  let broker: HookedAedes;
  const join = (id: string, options: Partial<ConnectOptions> = {}) => broker.join(id, options);
  before(async () => {
    broker = await startHookedAedes();
  });
  after(async () => {
    await broker?.close();
  });

  /** A handler with `count` commands accepted and running, until `release()`. */
  async function busyHandler(action: string, client: Bus, count: number) {
    const runs = new Map<number, number>();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const server = await join(uniqueId('server'));
    await server.handle(action, async (payload: { n: number }) => {
      runs.set(payload.n, (runs.get(payload.n) ?? 0) + 1);
      await released;
      return payload.n * 10;
    });
    await client.waitForHandler(action);
    const calls = Array.from({ length: count }, (_, n) => client.call(action, { n }, { timeout: 15_000 }));
    for (const call of calls) assert.equal((await call.next()).value?.kind, 'accepted');
    const results = Promise.allSettled(calls.map(async (call) => (await call.next()).value));
    return { server, runs, release, results };
  }

  it('acks - its requests wait reconnectGrace for it to come back, even once it is forgotten; they end with their results, each ran once', async () => {
    const client = await join(uniqueId('client'));
    const { server, runs, release, results } = await busyHandler('demo/ack/away', client, 5);
    // As after a broker restart that lost the retained presences: forgotten while it was alive...
    client.publish(`relais/presence/${server.id}`, '', { retain: true });
    await waitFor(() => (client.directory.get(server.id) === undefined ? true : undefined), client.directory, 'change');
    // ...and away: its connection lost, kept out for a while.
    broker.closed.add(server.id);
    broker.cut(server.id);
    await waitFor(() => (client.directory.get(server.id)?.status === 'dead' ? true : undefined), client.directory, 'change');
    release(); // it finishes while away: its answers wait in its outbound queue
    broker.closed.delete(server.id);
    const outcomes = await results;
    assert.deepEqual(outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : String(outcome.reason))).map((step) => (step as { payload?: unknown })?.payload ?? step), [0, 10, 20, 30, 40]);
    assert.deepEqual([...runs.values()], [1, 1, 1, 1, 1]);
  });

  it('acks - one that does not come back within reconnectGrace fails its requests with HandlerGoneError', async () => {
    const client = await join(uniqueId('client'), { reconnectGrace: 300 });
    const { server, release, results } = await busyHandler('demo/ack/gone', client, 2);
    broker.closed.add(server.id);
    broker.cut(server.id);
    const outcomes = await results;
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      assert.ok(outcome.reason instanceof HandlerGoneError);
      assert.match(outcome.reason.message, /lost its connection and did not come back within 300 ms/);
    }
    release();
    await server.close();
  });
});

ackContract('aedes', false);
ackContract('mosquitto', peerGate('mosquitto', 'the acknowledgement contract on Mosquitto').skip);

