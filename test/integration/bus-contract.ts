/**
 * The behaviour every broker must give Relais: run against the embedded Aedes broker,
 * Mosquitto, one NATS node (bus-aedes.test.ts, bus-mosquitto.test.ts, bus-nats.test.ts) and a
 * NATS cluster with each client on the next node (test/cluster/bus-contract-cluster.test.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, on, once } from 'node:events';
import mqtt from 'mqtt';
import {
  CancelledError,
  HandlerGoneError,
  NoHandlerError,
  NotSentError,
  PayloadTooLargeError,
  RemoteError,
  TimeoutError,
  type Bus,
  type HandlerContext,
  type PresenceInfo,
  type Step,
} from '../../src/index.js';
import { recordingLogger, setup, SUITE_TIMEOUT, uniqueId, waitFor, within, type BrokerKind, type Kit } from '../testkit/index.js';


export interface BusContractOptions {
  skip: string | false;
  name?: string;
  setup?: () => Promise<Kit>;
  /**
   * How many times longer than on one broker the suite waits for what must happen (a handler
   * to appear, an answer, a notification): on a cluster every presence and subscription goes
   * through JetStream, slower on a loaded machine. Late, never wrong: the time-outs that the
   * tests expect to expire are not scaled. Default 1.
   */
  patience?: number;
}

export function busContract(kind: BrokerKind, options: BusContractOptions): void {
  /** A wait for something that must happen, scaled by the suite's patience. */
  const wait = (ms: number) => ms * (options.patience ?? 1);
  /** A handler and a requester that already knows about it. */
  async function pair(kit: Kit, action: string, handler: (payload: any, ctx: HandlerContext) => unknown) {
    const server = await kit.connect(uniqueId('server'));
    const client = await kit.connect(uniqueId('client'));
    await server.handle(action, handler);
    await client.waitForHandler(action, { timeout: wait(5000) });
    return { server, client };
  }
  describe(`bus contract on ${options.name ?? kind}`, { skip: options.skip, timeout: wait(SUITE_TIMEOUT) }, () => {
    let kit: Kit;
    before(async () => {
      kit = await (options.setup?.() ?? setup(kind, { observePublishers: kind !== 'nats' }));
    });
    after(async () => {
      await kit?.cleanup();
    });

    it('request - resolves with the handler result, untargeted and targeted; the handler sees who asks, the token and the deadline', async () => {
      const seen: Array<{ by: string; action: string; source: string; token: string; deadline?: number; priority: string }> = [];
      const echo = (by: string) => (payload: unknown, ctx: HandlerContext) => {
        seen.push({ by, action: ctx.action, source: ctx.source, token: ctx.token, ...(ctx.deadline !== undefined && { deadline: ctx.deadline }), priority: ctx.priority });
        return { echo: payload, from: ctx.source };
      };
      // Two providers: a targeted request must run on its target, not on whichever the library would pick.
      const [server, other] = await Promise.all([kit.connect(uniqueId('server')), kit.connect(uniqueId('other'))]);
      await Promise.all([server.handle('demo/echo', echo(server.id)), other.handle('demo/echo', echo(other.id))]);
      const client = await kit.connect(uniqueId('client'));
      await waitFor(() => (client.directory.providers('demo/echo').size === 2 ? true : undefined), client.directory, 'change');
      assert.deepEqual(await client.request('demo/echo', { a: 1 }), { echo: { a: 1 }, from: client.id });
      const before = Date.now();
      assert.deepEqual(await client.request('demo/echo', { b: 2 }, { target: server.id, token: 'echo-2', timeout: 4000, priority: 'high' }), { echo: { b: 2 }, from: client.id });
      assert.deepEqual(await client.request('demo/echo', { c: 3 }, { target: server.id }), { echo: { c: 3 }, from: client.id });
      assert.equal(seen.length, 3);
      assert.deepEqual(seen.map((run) => run.by).slice(1), [server.id, server.id], 'the targeted requests ran on their target');
      assert.deepEqual({ ...seen[1], deadline: undefined }, { by: server.id, action: 'demo/echo', source: client.id, token: 'echo-2', deadline: undefined, priority: 'high' });
      assert.ok(seen[1]!.deadline! >= before + 4000 && seen[1]!.deadline! <= Date.now() + 4000, `deadline ${seen[1]!.deadline} is the caller's time-out from now`);
      assert.notEqual(seen[0]!.token, seen[1]!.token);
    });

    it('request - in flight when the broker dies, it still ends; so does one waiting for its answers\' subscription, never sent', { timeout: wait(20_000) }, async () => {
      let handlerHasIt!: () => void;
      const received = new Promise<void>((resolve) => (handlerHasIt = resolve));
      const { client } = await pair(kit, 'demo/orphaned', (payload: { hang?: boolean }) => {
        if (!payload.hang) return 'ok';
        handlerHasIt();
        return new Promise(() => {});
      });
      assert.equal(await client.request('demo/orphaned', {}), 'ok');
      const inFlight = client.request('demo/orphaned', { hang: true }, { timeout: 1500 }).then(() => 'resolved', (error: unknown) => error);
      await received;
      // A first request to another action, whose response subscription the dying broker never confirms.
      const firstOfItsKind = client.request('demo/never-subscribed', {}, { timeout: 1500, checkHandlers: false }).then(() => 'resolved', (error: unknown) => error);
      await kit.broker.stop();
      try {
        const [late, unsent] = await Promise.all([inFlight, firstOfItsKind]);
        assert.ok(late instanceof TimeoutError, String(late));
        // Its subscription is held until the broker is back (protocol §1.1): the request ends by its time-out.
        assert.ok(unsent instanceof TimeoutError, String(unsent));
      } finally {
        await kit.broker.start();
      }
    });

    it('request - with two handlers, an untargeted request runs on exactly one, taking turns; target * runs on both', async () => {
      const runs: string[] = [];
      let broadcastSeen!: () => void;
      const bothSawBroadcast = new Promise<void>((resolve) => (broadcastSeen = resolve));
      const serve = async () => {
        const server = await kit.connect(uniqueId('server'));
        await server.handle('demo/shared', (payload: { n: number }) => {
          runs.push(`${payload.n} ${server.id}`);
          if (runs.filter((run) => run.startsWith('broadcast ')).length === 2) broadcastSeen();
          return server.id;
        });
        return server;
      };
      const [first, second] = await Promise.all([serve(), serve()]);
      const client = await kit.connect(uniqueId('client'));
      await waitFor(() => (client.directory.providers('demo/shared').size === 2 ? true : undefined), client.directory, 'change');
      const answeredBy: string[] = [];
      for (let n = 0; n < 6; n++) answeredBy.push((await client.request('demo/shared', { n })) as string);
      assert.equal(runs.length, 6, `each request ran once:\n${runs.join('\n')}`);
      assert.deepEqual(answeredBy.sort(), [first.id, first.id, first.id, second.id, second.id, second.id].sort());
      runs.length = 0;
      await client.request('demo/shared', { n: 'broadcast' }, { target: '*' });
      await within(bothSawBroadcast, wait(5000), 'the broadcast on both handlers');
      assert.deepEqual(runs.sort(), [`broadcast ${first.id}`, `broadcast ${second.id}`].sort());
    });

    it('request - the least busy handler gets the next request, so one that hangs (or died unnoticed) is passed over', async () => {
      const stuck = await kit.connect(uniqueId('stuck'));
      await stuck.handle('demo/busy', () => new Promise(() => {}));
      const healthy = await kit.connect(uniqueId('healthy'));
      await healthy.handle('demo/busy', () => 'done');
      const client = await kit.connect(uniqueId('client'));
      await waitFor(() => (client.directory.providers('demo/busy').size === 2 ? true : undefined), client.directory, 'change');
      const hanging = client.request('demo/busy', {}, { target: stuck.id, timeout: 20_000 }).catch((error: unknown) => error);
      for (let n = 0; n < 4; n++) assert.equal(await client.request('demo/busy', { n }, { timeout: wait(5000) }), 'done');
      await client.close();
      assert.ok((await hanging) instanceof NotSentError);
    });

    it('request - a caller-supplied token already pending is refused at once; the first request is unharmed; sent again, it is not run again', async () => {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let runs = 0;
      const { client } = await pair(kit, 'demo/tokens', async (payload: { n: number }) => {
        runs += 1;
        await released;
        return payload.n;
      });
      const first = client.request('demo/tokens', { n: 1 }, { token: 'job-42' });
      await assert.rejects(client.request('demo/tokens', { n: 2 }, { token: 'job-42' }), /token job-42 is already used by a pending request/);
      await assert.rejects(client.request('demo/tokens', { n: 3 }, { token: '' }), /token must be a string of 1 to 256 characters/);
      // Node would fire a timer over 2^31-1 ms at once: refused instead of timing out at once.
      await assert.rejects(client.request('demo/tokens', { n: 5 }, { timeout: 30 * 24 * 3600 * 1000 }), (error: unknown) => error instanceof RangeError && /up to 2147483647/.test(error.message));
      await assert.rejects(client.waitForHandler('demo/absent', { timeout: Infinity }), RangeError);
      release();
      assert.equal(await first, 1);
      // protocol §4.8: a token names one command; sent again, the handler answers what it already sent.
      assert.equal(await client.request('demo/tokens', { n: 4 }, { token: 'job-42' }), 1, 'answered from the handler\'s memory');
      assert.equal(runs, 1, 'the handler ran the token once');
      assert.equal(await client.request('demo/tokens', { n: 6 }, { token: 'job-43' }), 6);
    });

    it('call - yields 20%, 50%, 80% then the final response, in order', async () => {
      const { server, client } = await pair(kit, 'demo/install', async (payload: { name: string }, ctx) => {
        for (const fraction of [0.2, 0.5, 0.8]) ctx.progress(fraction, { step: `installing ${payload.name}` });
        return { installed: payload.name };
      });
      const transcript: string[] = [];
      for await (const step of client.call('demo/install', { name: 'weather' })) {
        if (step.kind === 'accepted') transcript.push(`accepted by ${step.source === server.id ? 'the server' : step.source}`);
        else transcript.push(step.kind === 'progress' ? `progress ${step.progress} ${(step.payload as { step: string }).step}` : `final ${step.code} ${JSON.stringify(step.payload)}`);
      }
      // What came over the wire: a handler whose answers leave in the turn the command arrived
      // in sends no acknowledgement (protocol §4.7), and none is made up.
      assert.deepEqual(transcript, [
        'progress 0.2 installing weather',
        'progress 0.5 installing weather',
        'progress 0.8 installing weather',
        'final 0 {"installed":"weather"}',
      ]);
    });

    it('request - an error thrown by the handler arrives as a typed RemoteError with its code', async () => {
      const { server, client } = await pair(kit, 'demo/fail', () => {
        throw Object.assign(new Error('disk sda is full'), { responseCode: 104, details: { disk: 'sda' } });
      });
      await assert.rejects(client.request('demo/fail', {}), (error: unknown) => {
        assert.ok(error instanceof RemoteError);
        assert.equal(error.responseCode, 104);
        assert.equal(error.message, 'disk sda is full');
        assert.deepEqual(error.details, { disk: 'sda' });
        assert.equal(error.handler, server.id);
        return true;
      });
      // The handler's process lives on and keeps serving.
      await assert.rejects(client.request('demo/fail', {}), RemoteError);
      // A rejected promise is answered the same way as a synchronous throw.
      await server.handle('demo/fail-later', async () => {
        await Promise.resolve();
        throw Object.assign(new Error('disk sdb is full'), { responseCode: 105 });
      });
      await client.waitForHandler('demo/fail-later', { timeout: wait(10_000) }); // its presence reaches the client after handle() resolves
      await assert.rejects(client.request('demo/fail-later', {}), (error: unknown) => {
        assert.ok(error instanceof RemoteError);
        assert.equal(error.responseCode, 105);
        assert.equal(error.message, 'disk sdb is full');
        return true;
      });
    });

    it('request - ends with TimeoutError when the handler never answers, and the handler sees its deadline', async () => {
      const aborted = new EventEmitter();
      const { client } = await pair(kit, 'demo/silent', (_payload, ctx) => {
        ctx.signal.addEventListener('abort', () => aborted.emit(ctx.token, ctx.signal.reason));
        return new Promise(() => {});
      });
      const cancelled = within(once(aborted, 'silent-1'), wait(5000), 'the handler\'s abort');
      const error = await client.request('demo/silent', {}, { timeout: 300, token: 'silent-1' }).then(
        () => assert.fail('resolved without an answer'),
        (failure: unknown) => failure,
      );
      assert.ok(error instanceof TimeoutError);
      assert.match(error.message, /no final response to demo\/silent within 300 ms/);
      // Told by the requester's cancel, or by its own deadline, whichever came first.
      const [reason] = await cancelled;
      assert.ok(reason instanceof CancelledError || reason instanceof TimeoutError, String(reason));
      // A command with a deadline and no requester left to cancel it: the deadline alone stops the handler.
      const expired = within(once(aborted, 'silent-2'), wait(5000), 'the handler\'s abort at its deadline');
      const raw = await mqtt.connectAsync(kit.broker.url, { clientId: uniqueId('raw'), protocolVersion: 4 });
      try {
        const command = { type: 'command', source: uniqueId('gone'), destination: '*', token: 'silent-2', payload: {}, deadline: Date.now() + 300 };
        await raw.publishAsync('demo/silent/request', JSON.stringify(command), { qos: 1 });
        const [atDeadline] = await expired;
        assert.ok(atDeadline instanceof TimeoutError, String(atDeadline));
        assert.match(atDeadline.message, /deadline of request silent-2 passed/);
      } finally {
        await raw.endAsync();
      }
    });

    it('errors - a time-out\'s stack starts where the application awaits, for request and call', async () => {
      await pair(kit, 'demo/mute', () => new Promise(() => {}));
      const client = await kit.connect(uniqueId('client'));
      await client.waitForHandler('demo/mute', { timeout: wait(5000) });
      // The first frame outside Node's own code (its microtask runner may come first).
      const firstFrame = (error: unknown) => ((error as Error).stack ?? '').split('\n').find((line) => /^\s*at /.test(line) && !line.includes('(node:'));
      async function applicationRequest() {
        await client.request('demo/mute', {}, { timeout: 100 });
      }
      async function applicationCall() {
        for await (const step of client.call('demo/mute', {}, { timeout: 100 })) assert.equal(step.kind, 'accepted', `unexpected step ${step.kind}`);
      }
      for (const [name, run] of [['applicationRequest', applicationRequest], ['applicationCall', applicationCall]] as const) {
        const error = await run().then(() => assert.fail(`${name} resolved`), (failure: unknown) => failure);
        assert.ok(error instanceof TimeoutError, String(error));
        assert.match(firstFrame(error) ?? '', new RegExp(`at async ${name} .*bus-contract`), `not the caller's frame:\n${(error as Error).stack}`);
      }
    });

    // The 5 s test time-out against a 30 s request time-out is what proves "fast".
    it('request - fails fast with NoHandlerError when no client serves the action', { timeout: wait(5000) }, async () => {
      const client = await kit.connect(uniqueId('client'));
      if (!client.directory.settled) await once(client.directory, 'settled');
      await assert.rejects(client.request('demo/nobody', {}, { timeout: 30_000 }), (error: unknown) => {
        assert.ok(error instanceof NoHandlerError);
        assert.equal(error.message, 'no connected client serves demo/nobody');
        return true;
      });
      await assert.rejects(client.request('demo/nobody', {}, { target: 'vm-offline' }), /target vm-offline is not connected/);
    });

    it('request - sent before the directory settles, it still ends with NoHandlerError once it has', { timeout: wait(5000) }, async () => {
      const client = await kit.connect(uniqueId('client'), { directorySettle: 300 });
      assert.equal(client.directory.settled, false);
      const settled = once(client.directory, 'settled');
      await assert.rejects(client.request('demo/nobody-yet', {}, { timeout: 30_000 }), NoHandlerError);
      await settled;
    });

    it('request - targeted at a client not there yet, sent while the directory settles: the client connects and serves, and gets it', { timeout: wait(20_000) }, async () => {
      // A long settling: the target comes before it ends, as after a broker restart (protocol §7.2).
      const client = await kit.connect(uniqueId('client'), { directorySettle: wait(5000) });
      const late = uniqueId('late');
      const answered = client.request('demo/late', { n: 1 }, { target: late, timeout: wait(15_000) });
      answered.catch(() => {});
      // The copy just written reached nobody: the target subscribes only now.
      const server = await kit.connect(late);
      await server.handle('demo/late', (payload: unknown) => payload);
      assert.deepEqual(await answered, { n: 1 });
    });

    it('cancel - aborting the caller signal rejects with CancelledError and aborts the handler', async () => {
      let started!: () => void;
      const handlerStarted = new Promise<void>((resolve) => (started = resolve));
      let handlerCancelled!: (reason: unknown) => void;
      const cancelled = new Promise((resolve) => (handlerCancelled = resolve));
      const { client } = await pair(kit, 'demo/long', (_payload, ctx) => {
        ctx.signal.addEventListener('abort', () => handlerCancelled(ctx.signal.reason));
        started();
        return new Promise(() => {});
      });
      const controller = new AbortController();
      const request = client.request('demo/long', {}, { signal: controller.signal, timeout: 10_000 });
      await handlerStarted;
      controller.abort();
      await assert.rejects(request, CancelledError);
      const reason = await cancelled;
      assert.ok(reason instanceof CancelledError);
      assert.match((reason as Error).message, /cancelled by the requester/);
    });

    it('call - stopping the iteration early cancels the handler', async () => {
      let handlerCancelled!: (reason: unknown) => void;
      const cancelled = new Promise((resolve) => (handlerCancelled = resolve));
      const { client } = await pair(kit, 'demo/stream', (_payload, ctx) => {
        ctx.signal.addEventListener('abort', () => handlerCancelled(ctx.signal.reason));
        ctx.progress(0.1, 'first');
        return new Promise(() => {});
      });
      const seen: Step[] = [];
      // A deadline far beyond the test's wait: only the cancel can abort the handler in time.
      for await (const step of client.call('demo/stream', {}, { timeout: 60_000 })) {
        seen.push(step);
        if (step.kind === 'progress') break;
      }
      const reason = await within(cancelled, wait(5000), 'the handler\'s abort');
      assert.ok(reason instanceof CancelledError, String(reason));
      assert.match(reason.message, /consumer stopped reading/);
      // Its progress left in the turn the command arrived in: no acknowledgement after it (protocol §4.7).
      assert.deepEqual(seen.map((step) => step.kind), ['progress']);
    });

    it('request - ends with HandlerGoneError when the handler dies mid-request', async () => {
      let started!: () => void;
      const handlerStarted = new Promise<void>((resolve) => (started = resolve));
      const server = await kit.connect(uniqueId('server'));
      await server.handle('demo/doomed', () => {
        started();
        return new Promise(() => {});
      });
      // A handler whose connection drops gets `reconnectGrace` to come back and answer (protocol §4.7).
      const client = await kit.connect(uniqueId('client'), { reconnectGrace: 300 });
      await client.waitForHandler('demo/doomed', { timeout: wait(5000) });
      const steps = client.call('demo/doomed', {}, { timeout: 20_000 });
      assert.equal((await steps.next()).value?.kind, 'accepted');
      await handlerStarted;
      // Watched before the kill: the will can arrive before kill() resolves.
      const failed = assert.rejects(steps.next(), (error: unknown) => {
        assert.ok(error instanceof HandlerGoneError);
        assert.match(error.message, /lost its connection and did not come back within 300 ms/);
        return true;
      });
      await server.kill();
      await failed;
      assert.equal(client.directory.get(server.id)?.status, 'dead');
    });

    it('presence - a clean close is announced as stopped and the action disappears', async () => {
      const { server, client } = await pair(kit, 'demo/leaving', () => 'ok');
      await server.close();
      await waitFor(() => (client.directory.get(server.id)?.status === 'stopped' ? true : undefined), client.directory, 'change');
      await assert.rejects(client.request('demo/leaving', {}), NoHandlerError);
    });

    it('bad input - malformed and invalid commands get a precise error or a log line, never a crash', async () => {
      const { logger, records } = recordingLogger();
      const server = await kit.connect(uniqueId('server'), { logger });
      await server.handle('demo/strict', () => 'ok');
      const raw = await mqtt.connectAsync(kit.broker.url, { clientId: uniqueId('raw'), protocolVersion: 4 });
      try {
        // Buffered from now on: a response may arrive before publishAsync resolves.
        const inbox = on(raw as unknown as NodeJS.EventEmitter, 'message', { signal: AbortSignal.timeout(wait(10_000)) });
        await raw.subscribeAsync('demo/strict/response/vm-raw', { qos: 1 });
        await raw.publishAsync('demo/strict/request', '{not json', { qos: 1 });
        await raw.publishAsync('demo/strict/request', Buffer.from([0xff, 0xfe, 0x00]), { qos: 1 });
        await raw.publishAsync('demo/strict/request', JSON.stringify({ type: 'command', source: 'vm-raw', destination: '*', token: 'bad-1', payload: {}, priority: 'urgent' }), { qos: 1 });
        const [, body] = (await inbox.next()).value as [string, Buffer];
        const response = JSON.parse(body.toString());
        assert.equal(response.type, 'response');
        assert.equal(response.token, 'bad-1');
        assert.equal(response.code, 2);
        assert.match(response.error.message, /field 'priority'/);
        // The handler still serves.
        await raw.publishAsync('demo/strict/request', JSON.stringify({ type: 'command', source: 'vm-raw', destination: '*', token: 'good-1', payload: {} }), { qos: 1 });
        const [, goodBody] = (await inbox.next()).value as [string, Buffer];
        const good = JSON.parse(goodBody.toString());
        assert.deepEqual([good.token, good.code, good.payload, good.source], ['good-1', 0, 'ok', server.id]);
        // The two that name no sender to answer were logged, with why, before the good one was served.
        const warnings = records().filter((record) => record.level === 40 && record.msg === 'invalid request').map((record) => String(record.err));
        assert.equal(warnings.filter((err) => /not valid JSON/.test(err)).length, 1, warnings.join('\n'));
        assert.equal(warnings.filter((err) => /not UTF-8 JSON: it starts with a UTF-16 byte order mark \(protocol §3\)/.test(err)).length, 1, warnings.join('\n'));
      } finally {
        await raw.endAsync();
      }
    });

    it('bad input - an oversized request is refused with PayloadTooLargeError, by the handler and before sending', async () => {
      const server = await kit.connect(uniqueId('server'), { maxMessageBytes: 4096 });
      const client = await kit.connect(uniqueId('client'));
      await server.handle('demo/small', () => 'ok');
      await client.waitForHandler('demo/small');
      await assert.rejects(client.request('demo/small', { blob: 'x'.repeat(10_000) }), (error: unknown) => {
        assert.ok(error instanceof PayloadTooLargeError, String(error));
        assert.match(error.message, /over the 4096-byte limit/);
        assert.ok(error.cause instanceof RemoteError, 'the refusal came from the handler');
        return true;
      });
      const strict = await kit.connect(uniqueId('strict'), { maxMessageBytes: 4096 });
      await strict.waitForHandler('demo/small');
      await assert.rejects(strict.request('demo/small', { blob: 'x'.repeat(10_000) }), (error: unknown) => {
        assert.ok(error instanceof PayloadTooLargeError, String(error));
        assert.match(error.message, /the request to demo\/small is \d+ bytes, over the 4096-byte limit/);
        assert.equal(error.cause, undefined, 'refused here, not by the handler');
        return true;
      });
      assert.equal(await strict.request('demo/small', { blob: 'small' }), 'ok');
    });

    it('topics - a wildcard, too many levels or a reserved topic fail at once with the reason, nothing is sent and the client stays on the bus', async () => {
      const { client } = await pair(kit, 'demo/steady', () => 'still here');
      let offline = 0;
      client.on('offline', () => (offline += 1));
      const deep = Array.from({ length: 121 }, (_, i) => `l${i}`).join('/');
      assert.throws(() => client.publish('x/+/y', {}), (error: unknown) => error instanceof TypeError && /a topic name has no wildcards/.test(error.message));
      assert.throws(() => client.publish('$SYS/broker/x', {}), /reserved for the broker/);
      assert.throws(() => client.publish(`${deep}/x`, {}), /122 levels; brokers accept at most 100/);
      assert.throws(() => client.notify(deep, {}), /121 levels; at most 98/);
      assert.throws(() => client.log('demo/with space', 'info', 'x'), /spaces or control characters/);
      assert.throws(() => client.notify('demo/big', 'x'.repeat(2 * 1024 * 1024)), PayloadTooLargeError);
      await assert.rejects(client.handle(deep, () => 1), /121 levels/);
      await assert.rejects(client.subscribe(`${deep}/#`), /122 levels/);
      await assert.rejects(client.request(deep, {}), TypeError);
      // Still connected, never dropped, still served.
      assert.equal(await client.request('demo/steady', {}), 'still here');
      assert.equal(client.connected, true);
      assert.equal(offline, 0);
    });

    it('notify - subscribers get notifications through wildcards, as iterator and callback', async () => {
      const publisher = await kit.connect(uniqueId('pub'));
      const listener = await kit.connect(uniqueId('sub'));
      const subscription = await listener.subscribe('system/+/new_file/notification');
      const viaCallback: unknown[] = [];
      let markerSeen!: () => void;
      const marker = new Promise<void>((resolve) => (markerSeen = resolve));
      await listener.subscribe('system/#', (message) => {
        if (message.topic === 'system/end/notification') markerSeen();
        else viaCallback.push(message.envelope.payload);
      });
      publisher.notify('system/disk/new_file', { disk: 'usb0', filepath: '/a.txt', size_in_bytes: 3 });
      const iterator = subscription[Symbol.asyncIterator]();
      const { value } = await within(iterator.next(), wait(5000), 'the notification on system/+/new_file');
      assert.equal(value.topic, 'system/disk/new_file/notification');
      assert.equal(value.envelope.type, 'notification');
      assert.equal(value.envelope.source, publisher.id);
      assert.deepEqual(value.envelope.payload, { disk: 'usb0', filepath: '/a.txt', size_in_bytes: 3 });
      // A marker published after it arrives after every copy of it (one connection keeps order).
      publisher.notify('system/end', {});
      await within(marker, wait(5000), 'the marker notification');
      // The NATS gateway sends one copy per matching subscription of the client, as MQTT allows
      // [MQTT-3.3.5-1], and each reaches every matching subscription (protocol §8.3).
      const copies = kind === 'nats' ? 2 : 1;
      assert.deepEqual(viaCallback, Array(copies).fill({ disk: 'usb0', filepath: '/a.txt', size_in_bytes: 3 }));
      for (let copy = 1; copy < copies; copy++) assert.deepEqual((await iterator.next()).value?.envelope.payload, value.envelope.payload);
      await subscription.unsubscribe();
      assert.deepEqual(await iterator.next(), { value: undefined, done: true });
    });

    it('priority - a realtime command and its response travel on the <id>~rt connections, a normal one on the main ones', { skip: kind === 'nats' && 'the NATS gateway does not say who published' }, async () => {
      const server = await kit.connect(uniqueId('server'));
      const client = await kit.connect(uniqueId('client'));
      await server.handle('demo/alarm', (_payload, ctx) => ({ priority: ctx.priority }), { lane: 'realtime' });
      await client.waitForHandler('demo/alarm');
      assert.deepEqual(client.directory.get(server.id)?.realtimeActions, ['demo/alarm']);
      const seen: string[] = [];
      const onPublish = (clientId: string, topic: string) => {
        if (topic.startsWith('demo/alarm/')) seen.push(`${clientId} ${topic}`);
      };
      kit.broker.publishers!.on('publish', onPublish);
      try {
        assert.deepEqual(await client.request('demo/alarm', {}, { priority: 'realtime' }), { priority: 'realtime' });
        assert.deepEqual(await client.request('demo/alarm', {}, { priority: 'normal' }), { priority: 'normal' });
        await waitFor(() => (seen.length >= 4 ? true : undefined), kit.broker.publishers!, 'publish');
      } finally {
        kit.broker.publishers!.off('publish', onPublish);
      }
      assert.deepEqual(seen, [
        `${client.id}~rt demo/alarm/request/${server.id}`,
        `${server.id}~rt demo/alarm/response/${client.id}`,
        `${client.id} demo/alarm/request/${server.id}`,
        `${server.id} demo/alarm/response/${client.id}`,
      ]);
    });

    it('subscribe - a filter unsubscribed and at once subscribed again keeps delivering (its UNSUBSCRIBE cannot overtake the SUBSCRIBE)', async () => {
      const publisher = await kit.connect(uniqueId('pub'));
      const listener = await kit.connect(uniqueId('sub'));
      const first = await listener.subscribe('resub/topic/notification', () => {});
      void first.unsubscribe(); // not awaited: a stream that reconnects does just this
      const again = await listener.subscribe('resub/topic/notification');
      publisher.notify('resub/topic', { n: 1 });
      const { value } = await within(again[Symbol.asyncIterator]().next(), wait(5000), 'the notification after subscribing again');
      assert.deepEqual(value.envelope.payload, { n: 1 });
      await again.unsubscribe();
    });

    it("subscribe - an application that watches its own response topic and stops does not take the requester's answers away", async () => {
      const { client } = await pair(kit, 'own/answers', (payload: { n: number }) => ({ n: payload.n }));
      assert.deepEqual(await client.request('own/answers', { n: 1 }), { n: 1 });
      const watched: unknown[] = [];
      const watch = await client.subscribe(`own/answers/response/${client.id}`, (message) => watched.push(message.envelope.payload));
      assert.deepEqual(await client.request('own/answers', { n: 2 }), { n: 2 });
      await watch.unsubscribe();
      assert.deepEqual(await client.request('own/answers', { n: 3 }, { timeout: wait(10_000) }), { n: 3 });
      assert.ok(watched.some((payload) => (payload as { n?: number } | null)?.n === 2), JSON.stringify(watched));
    });

    it('priority - a message matching subscriptions on both lanes reaches each subscription once', async () => {
      const publisher = await kit.connect(uniqueId('pub'));
      const listener = await kit.connect(uniqueId('sub'));
      const onMain: string[] = [];
      const onRealtime: string[] = [];
      let markerSeen!: () => void;
      const marker = new Promise<void>((resolve) => (markerSeen = resolve));
      let realtimeSeen!: () => void;
      const realtime = new Promise<void>((resolve) => (realtimeSeen = resolve));
      await listener.subscribe('lanes/#', (message) => {
        onMain.push(message.topic);
        if (message.topic === 'lanes/end/notification') markerSeen();
      });
      await listener.subscribe('lanes/alarm/notification', (message) => {
        onRealtime.push(message.topic);
        realtimeSeen();
      }, { lane: 'realtime' });
      publisher.notify('lanes/alarm', { level: 'critical' }, { priority: 'realtime' });
      await within(realtime, wait(5000), 'the alarm on the real-time lane');
      // The broker fanned the alarm out to both connections when it got it, so on the main
      // connection it comes before this marker, published only after the alarm was seen.
      publisher.notify('lanes/end', {});
      await within(marker, wait(5000), 'the marker notification');
      assert.deepEqual(onRealtime, ['lanes/alarm/notification']);
      assert.deepEqual(onMain, ['lanes/alarm/notification', 'lanes/end/notification']);
    });

    it('offline - messages sent while disconnected are queued and delivered after reconnection', async () => {
      const publisher = await kit.connect(uniqueId('pub'), { reconnectDelay: 50 });
      const listener = await kit.connect(uniqueId('sub'));
      const subscription = await listener.subscribe('demo/offline/notification');
      const iterator = subscription[Symbol.asyncIterator]();
      const offline = once(publisher, 'offline');
      dropConnection(publisher);
      await offline;
      publisher.notify('demo/offline', { sent: 'while offline' });
      await once(publisher, 'online');
      const { value } = await within(iterator.next(), wait(5000), 'the notification sent while offline');
      assert.deepEqual(value.envelope.payload, { sent: 'while offline' });
    });

    it('reconnect - after a broker restart clients come back, resubscribe and serve again; expired messages are never sent late', async () => {
      const received: string[] = [];
      const server = await kit.connect(uniqueId('server'), { reconnectDelay: 20, reconnectMaxDelay: 200 });
      const client = await kit.connect(uniqueId('client'), { reconnectDelay: 20, reconnectMaxDelay: 200 });
      await server.handle('demo/restart', (payload: { n: string }) => {
        received.push(payload.n);
        return payload.n;
      });
      await client.waitForHandler('demo/restart');
      assert.equal(await client.request('demo/restart', { n: 'before' }), 'before');
      const offline = once(client, 'offline');
      await kit.broker.stop();
      await offline;
      // What the client publishes from now on, as the broker sees it (not on NATS, which does not say).
      const published: string[] = [];
      const onPublish = (clientId: string, topic: string) => {
        if (clientId === client.id) published.push(topic);
      };
      kit.broker.publishers?.on('publish', onPublish);
      // Sent while the broker is down with a 200 ms deadline: it must fail locally, never reach the handler.
      await assert.rejects(client.request('demo/restart', { n: 'expired' }, { timeout: 200 }), (error: unknown) => error instanceof TimeoutError || error instanceof NotSentError);
      const back = Promise.all([once(client, 'online'), once(server, 'online')]);
      await kit.broker.start();
      await back;
      if (kit.broker.publishers) {
        // Whatever waited in the offline queue left at the reconnection, before this marker.
        client.notify('demo/restart/marker', {});
        try {
          await waitFor(() => (published.includes('demo/restart/marker/notification') ? true : undefined), kit.broker.publishers, 'publish');
        } finally {
          kit.broker.publishers.off('publish', onPublish);
        }
        assert.deepEqual(published.filter((topic) => topic.startsWith('demo/restart/request')), [], 'the expired command never left the client');
      }
      await client.waitForHandler('demo/restart', { timeout: wait(5000) });
      await waitFor(() => (server.directory.get(server.id)?.status === 'alive' ? true : undefined), server.directory, 'change');
      assert.equal(await client.request('demo/restart', { n: 'after' }, { timeout: wait(5000) }), 'after');
      assert.deepEqual(received, ['before', 'after']);
    });

    it('close - ends pending requests, and ends even when the broker is gone', { timeout: wait(15_000) }, async () => {
      let started!: () => void;
      const handlerStarted = new Promise<void>((resolve) => (started = resolve));
      const { client } = await pair(kit, 'demo/hang', () => {
        started();
        return new Promise(() => {});
      });
      const rejected = assert.rejects(client.request('demo/hang', {}, { timeout: 20_000 }), (error: unknown) => error instanceof NotSentError && /the client closed before the response came/.test(error.message));
      // In flight for real: sent, and running at the handler.
      await within(handlerStarted, wait(5000), 'the handler\'s start');
      await client.close();
      await within(rejected, wait(5000), 'the pending request\'s end');
      await assert.rejects(client.request('demo/hang', {}), /the client is closed/);
      // A broker that hangs keeps the connection open and never acknowledges: MQTT.js's clean end
      // waits for acknowledgements it never sends, and close() used to hang here. That costs two
      // grace periods (4 s) and is the client's own doing, so it is checked on the embedded broker;
      // on the others the broker is gone as after a crash.
      const orphan = await kit.connect(uniqueId('orphan'));
      await orphan.handle('demo/orphan', () => 'ok');
      const hung = kind === 'aedes';
      await (hung ? kit.broker.freeze() : kit.broker.stop());
      try {
        await within(orphan.close(), 10_000, 'close() with the broker gone');
        assert.equal(orphan.connected, false);
      } finally {
        await (hung ? kit.broker.thaw() : kit.broker.start());
      }
    });

    it('presence - a second client with the same id takes it over; the first stops and says why instead of fighting', { timeout: wait(20_000) }, async () => {
      const id = uniqueId('twin');
      const fast = { reconnectDelay: 20, reconnectMaxDelay: 200 };
      const first = await kit.connect(id, fast);
      await first.handle('demo/twin', () => 'first');
      const replaced = once(first, 'replaced');
      const second = await kit.connect(id, fast);
      await second.handle('demo/twin', () => 'second');
      const [other] = (await replaced) as [PresenceInfo];
      // Seen alive, or as its will ('dead') fired when the first one's reconnection knocked it off.
      assert.ok(other.status === 'alive' || other.status === 'dead', other.status);
      assert.equal(other.pid, process.pid);
      await assert.rejects(first.request('demo/twin', {}), /another client connected with the id .* so this one stops/);
      const caller = await kit.connect(uniqueId('caller'));
      // The second one was knocked off once by the first's last reconnection: wait for its own
      // announcement (sent once it has resubscribed), not a stale one of the first.
      await waitFor(() => {
        const presence = caller.directory.get(id);
        return presence?.status === 'alive' && presence.instance === other.instance ? true : undefined;
      }, caller.directory, 'change');
      // On NATS the first one's last reconnection knocked the second off: wait until it is back.
      if (!second.connected) await once(second, 'online');
      for (let n = 0; n < 3; n++) assert.equal(await caller.request('demo/twin', {}, { target: id, timeout: wait(5000) }), 'second');
      assert.equal(second.connected, true);
    });

    it('presence - one will of a later client with our id (a duplicate that crashed) does not stop us, and clients see us again', async () => {
      const survivor = await kit.connect(uniqueId('survivor'));
      await survivor.handle('demo/survivor', () => 'still here');
      const earlyCaller = await kit.connect(uniqueId('early-caller'));
      await earlyCaller.waitForHandler('demo/survivor', { target: survivor.id, timeout: wait(5000) });
      let replaced = false;
      survivor.on('replaced', () => (replaced = true));
      const ghostWill = { v: 1, type: 'notification', source: survivor.id, destination: '*', ts: Date.now(),
        payload: { status: 'dead', actions: [], since: Date.now() + 60_000, seq: 0, instance: 'crashed-duplicate', host: 'elsewhere', pid: 1 } };
      const noticed = waitFor(() => (survivor.directory.get(survivor.id)?.instance === 'crashed-duplicate' ? true : undefined), survivor.directory, 'change');
      const raw = await mqtt.connectAsync(kit.broker.url, { clientId: uniqueId('raw'), protocolVersion: 4 });
      try {
        await raw.publishAsync(`relais/presence/${survivor.id}`, JSON.stringify(ghostWill), { qos: 1, retain: true });
        await noticed;
      } finally {
        await raw.endAsync();
      }
      // The survivor clears the will and announces again: a client that was already running,
      // whose directory took the newer 'dead', finds it alive without any special option.
      await waitFor(() => {
        const presence = earlyCaller.directory.get(survivor.id);
        return presence?.status === 'alive' && presence.instance !== 'crashed-duplicate' ? true : undefined;
      }, earlyCaller.directory, 'change');
      assert.equal(await earlyCaller.request('demo/survivor', {}, { target: survivor.id, timeout: wait(5000) }), 'still here');
      assert.equal(replaced, false);
      assert.equal(survivor.connected, true);
    });

    it('presence - ephemeral clients that share an id settle too (their wills are not empty)', { timeout: wait(20_000) }, async () => {
      const id = uniqueId('ephemeral-twin');
      const fast = { reconnectDelay: 20, reconnectMaxDelay: 200, ephemeral: true };
      const first = await kit.connect(id, fast);
      const replaced = once(first, 'replaced');
      const second = await kit.connect(id, fast);
      await replaced;
      await second.handle('demo/ephemeral-twin', () => 'second');
      const caller = await kit.connect(uniqueId('caller'));
      await caller.waitForHandler('demo/ephemeral-twin', { target: id, timeout: wait(5000) });
      assert.equal(await caller.request('demo/ephemeral-twin', {}, { target: id, timeout: wait(5000) }), 'second');
    });

    it('lifecycle - calls after close fail at once with the reason, and a pending waitForHandler ends', async () => {
      const client = await kit.connect(uniqueId('closing'));
      const waiting = client.waitForHandler('demo/nobody-ever', { timeout: 20_000 }).then(() => 'resolved', (error: unknown) => error);
      await client.close();
      assert.ok((await waiting) instanceof NotSentError);
      await assert.rejects(client.waitForHandler('demo/nobody-ever'), /the client is closed/);
      await assert.rejects(client.handle('demo/late', () => 1), /the client is closed/);
    });

    it('handle - a broker that dies before confirming the subscription does not fail the registration', { timeout: wait(20_000) }, async () => {
      const fast = { reconnectDelay: 20, reconnectMaxDelay: 200 };
      const server = await kit.connect(uniqueId('server'), fast);
      const client = await kit.connect(uniqueId('client'), fast);
      const registering = server.handle('demo/late-suback', () => 'served');
      await kit.broker.stop();
      await kit.broker.start();
      await registering;
      await client.waitForHandler('demo/late-suback', { timeout: wait(5000) });
      assert.equal(await client.request('demo/late-suback', {}, { timeout: wait(5000) }), 'served');
    });

    it('handle - pending when the broker dies and the client then closes, it still settles', { timeout: wait(15_000) }, async () => {
      const server = await kit.connect(uniqueId('server'), { reconnectDelay: 20, reconnectMaxDelay: 200 });
      const registering = server.handle('demo/never-registered', () => 'x').then(
        () => 'registered',
        (error: unknown) => error,
      );
      await kit.broker.stop();
      try {
        await server.close();
        const outcome = await registering;
        assert.ok(outcome === 'registered' || outcome instanceof NotSentError, String(outcome));
      } finally {
        await kit.broker.start();
      }
    });

    it('lifecycle - await using closes the client', async () => {
      let id: string;
      {
        await using bus = await kit.connect(uniqueId('scoped'));
        id = bus.id;
        assert.ok(bus.connected);
      }
      const observer = await kit.connect(uniqueId('observer'));
      await waitFor(() => (observer.directory.get(id)?.status === 'stopped' ? true : undefined), observer.directory, 'change');
    });
  });
}

/** Cuts a client's socket as a network loss would; the client reconnects by itself. */
export function dropConnection(bus: Bus): void {
  (bus as unknown as { transport: { main: { dropSocket(): void } } }).transport.main.dropSocket();
}
