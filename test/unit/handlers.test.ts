/**
 * The serving side (protocol §4.2, §4.4, §4.7, §4.8) without a broker: the checks a command
 * goes through, in the order of the protocol's table, the acknowledgement, duplicates,
 * cancels and the close. The real Handlers; the transport is a stub that records what is sent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Handlers } from '../../src/client/serving/handlers.js';
import type { ResolvedOptions } from '../../src/client/options.js';
import type { Transport } from '../../src/client/connection/transport.js';
import type { HandlerContext } from '../../src/client/types.js';
import { decode, type Envelope } from '../../src/protocol/envelope.js';

const ACTION = 'demo/serve';

interface Sent {
  topic: string;
  qos: 0 | 1;
  text: string;
  envelope: Envelope;
}

function serving({ accepting = true, routers = [] as string[] } = {}) {
  const sent: Sent[] = [];
  const transport = {
    laneOf: () => 'main',
    subscribe: () => Promise.resolve(),
    unsubscribe: () => Promise.resolve(),
    send(message: { topic: string; body: string | (() => string); qos: 0 | 1; onWritten?: () => void }) {
      const text = typeof message.body === 'function' ? message.body() : message.body;
      sent.push({ topic: message.topic, qos: message.qos, text, envelope: JSON.parse(text) as Envelope });
      message.onWritten?.();
    },
  } as unknown as Transport;
  const options = { id: 'svc', maxMessageBytes: 1 << 20, logger: pino({ level: 'silent' }) } as unknown as ResolvedOptions;
  const handlers = new Handlers(options, transport, () => Promise.resolve(), () => accepting, (id) => routers.includes(id));
  /** Delivers a command (an object, encoded, or raw text) as the broker would. */
  const command = (fields: Record<string, unknown> | string, { targeted = false, qos = 1 as 0 | 1, action = ACTION } = {}) => {
    const text = typeof fields === 'string' ? fields : JSON.stringify({ v: 1, type: 'command', source: 'req', destination: targeted ? 'svc' : '*', token: 't1', payload: { n: 1 }, ...fields });
    handlers.onRequest(action, targeted, decode(text), qos);
  };
  const cancel = (fields: Record<string, unknown>) => handlers.onCancel(decode(JSON.stringify({ v: 1, type: 'cancel', source: 'req', destination: 'svc', token: 't1', payload: { reason: 'enough' }, ...fields })));
  return { handlers, sent, command, cancel };
}

/** Lets the microtasks and ticks of the current turn run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('handlers - the checks of a command, in order (protocol §4.2)', () => {
  it('handlers - an invalid envelope whose source is readable gets an error response code 2; one without is only logged', async () => {
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, () => 'never');
    command('{"v":1,"type":"command","source":"req","destination":"*","token":"t9","priority":"urgent","payload":{}}');
    command('not json at all');
    assert.equal(sent.length, 1);
    assert.deepEqual([sent[0]!.topic, sent[0]!.envelope.code, sent[0]!.envelope.token], [`${ACTION}/response/req`, 2, 't9']);
  });

  it('handlers - a message that is not a command, or an untargeted one for another destination, is ignored; the handler does not run', async () => {
    const { handlers, sent, command } = serving();
    let runs = 0;
    await handlers.handle(ACTION, () => runs++);
    command({ type: 'notification' });
    command({ destination: 'someone-else' });
    assert.deepEqual([sent.length, runs], [0, 0]);
    command({ destination: 'svc' });
    assert.equal(runs, 1);
  });

  it('handlers - a source that is not a valid client id is refused with no response (nowhere to send it)', async () => {
    const { handlers, sent, command } = serving();
    let runs = 0;
    await handlers.handle(ACTION, () => runs++);
    command({ source: 'a/b' });
    command({ source: 'x+' });
    assert.deepEqual([sent.length, runs], [0, 0]);
  });

  it('handlers - a command without token is answered with a token of its own', async () => {
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, () => 'ok');
    command({ token: undefined });
    assert.match(String(sent[0]!.envelope.token), /^[A-Za-z0-9_-]{16}$/);
  });

  it('handlers - a targeted command for an action not served gets code 3; a starting client serves nothing yet', async () => {
    {
      const { sent, command } = serving();
      command({}, { targeted: true, action: 'demo/other' });
      assert.deepEqual([sent[0]!.envelope.code, sent[0]!.envelope.error?.message], [3, 'svc does not serve demo/other']);
    }
    {
      const { handlers, sent, command } = serving({ accepting: false });
      await handlers.handle(ACTION, () => 'ok');
      command({}, { targeted: true });
      assert.deepEqual([sent[0]!.envelope.code, sent[0]!.envelope.error?.message], [3, `svc does not serve ${ACTION} yet: it is starting`]);
    }
  });

  it('handlers - a command past its deadline gets code 6 and does not run', async () => {
    const { handlers, sent, command } = serving();
    let runs = 0;
    await handlers.handle(ACTION, () => runs++);
    command({ deadline: Date.now() - 1 });
    assert.deepEqual([sent[0]!.envelope.code, runs], [6, 0]);
    assert.match(sent[0]!.envelope.error!.message, /arrived after its deadline/);
  });

  it('handlers - a command past its acceptBy gets code 6 with accepted: false and does not run; acceptBy 0 asks about a token not known here (protocol §4.7)', async () => {
    const { handlers, sent, command } = serving();
    let runs = 0;
    await handlers.handle(ACTION, () => runs++);
    command({ acceptBy: Date.now() - 50 });
    command({ token: 't2', acceptBy: 0 });
    assert.equal(runs, 0);
    assert.deepEqual(sent.map((s) => [s.envelope.code, s.envelope.accepted, s.envelope.final]), [[6, false, true], [6, false, true]]);
    assert.match(sent[0]!.envelope.error!.message, /after its acceptance deadline; it was not run/);
    assert.match(sent[1]!.envelope.error!.message, /is not known here/);
  });

  it('handlers - answers go to <action>/response/<source> at the QoS the command came with (protocol §1.3)', async () => {
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, (payload: { n: number }) => payload.n + 1);
    command({}, { qos: 0 });
    command({ token: 't2' }, { qos: 1 });
    assert.deepEqual(sent.map((s) => [s.topic, s.qos, s.envelope.payload]), [[`${ACTION}/response/req`, 0, 2], [`${ACTION}/response/req`, 1, 2]]);
  });

  it('handlers - an untargeted command for a built-in action served only when targeted is ignored (protocol §11.4)', () => {
    const { handlers, sent, command } = serving();
    handlers.serveTargeted('relais/logs/get', () => 'lines');
    command({}, { action: 'relais/logs/get' });
    assert.equal(sent.length, 0);
    command({}, { action: 'relais/logs/get', targeted: true });
    assert.equal(sent[0]!.envelope.payload, 'lines');
  });
});

describe('handlers - acknowledgement, duplicates, cancel (protocol §4.4, §4.7, §4.8)', () => {
  it('handlers - a handler that answers in the turn the command came in is answered without acknowledgement', async () => {
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, async () => 'quick');
    command({ acceptBy: Date.now() + 1000 });
    await turn();
    assert.deepEqual(sent.map((s) => [s.envelope.final, s.envelope.payload]), [[true, 'quick']]);
  });

  it('handlers - a slower handler is acknowledged when the requester waits for it (acceptBy), never otherwise', async () => {
    const finish: Array<() => void> = [];
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, () => new Promise<string>((resolve) => finish.push(() => resolve('slow'))));
    command({ acceptBy: Date.now() + 1000 });
    command({ token: 't2' });
    await turn();
    assert.deepEqual(sent.map((s) => [s.envelope.token, s.envelope.accepted, s.envelope.final]), [['t1', true, false]]);
    for (const done of finish) done();
    await turn();
    assert.deepEqual(sent.slice(1).map((s) => [s.envelope.token, s.envelope.final, s.envelope.payload]), [['t1', true, 'slow'], ['t2', true, 'slow']]);
  });

  it('handlers - a progress step in the first turn stands for the acknowledgement', async () => {
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, (_payload: unknown, ctx: HandlerContext) => {
      ctx.progress(0.1);
      return new Promise(() => {});
    });
    command({ acceptBy: Date.now() + 1000 });
    await turn();
    assert.deepEqual(sent.map((s) => [s.envelope.final, s.envelope.accepted, s.envelope.progress]), [[false, undefined, 0.1]]);
  });

  it('handlers - the same command while it runs: an acknowledgement with the last progress when it asks (acceptBy), nothing otherwise; it does not run twice', async () => {
    let runs = 0;
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, (_payload: unknown, ctx: HandlerContext) => {
      runs += 1;
      ctx.progress(0.4);
      return new Promise(() => {});
    });
    command({});
    command({}); // a QoS 1 copy
    command({ acceptBy: Date.now() + 1000 });
    assert.equal(runs, 1);
    assert.deepEqual(sent.map((s) => [s.envelope.accepted, s.envelope.progress]), [[undefined, 0.4], [true, 0.4]]);
  });

  it('handlers - the same command after it finished is answered with the very text of its final; it does not run twice', async () => {
    let runs = 0;
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, () => ({ run: ++runs }));
    command({ acceptBy: Date.now() + 1000 });
    command({ acceptBy: 0 }); // a status query after a lost connection
    assert.equal(runs, 1);
    assert.equal(sent.length, 2);
    assert.equal(sent[1]!.text, sent[0]!.text);
  });

  it('handlers - a handler that throws answers an error with its code; the process carries on', async () => {
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, () => {
      throw Object.assign(new Error('busy here'), { responseCode: 8 });
    });
    command({});
    assert.deepEqual([sent[0]!.envelope.code, sent[0]!.envelope.error?.message], [8, 'busy here']);
  });

  it('handlers - a result that is not JSON becomes an error answer instead of nothing', async () => {
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, () => ({ big: 1n }));
    command({});
    assert.equal(sent.length, 1);
    assert.ok((sent[0]!.envelope.code ?? 0) >= 1);
  });

  it('handlers - a cancel from the requester aborts ctx.signal; a handler that then throws answers code 5', async () => {
    const { handlers, sent, command, cancel } = serving();
    let reason: unknown;
    await handlers.handle(ACTION, (_payload: unknown, ctx: HandlerContext) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject((reason = ctx.signal.reason)))));
    command({});
    cancel({ source: 'someone-else' }); // not its requester: ignored
    await turn();
    assert.equal(reason, undefined);
    cancel({});
    await turn();
    assert.match(String((reason as unknown as Error).message), /request t1 cancelled: enough/);
    assert.deepEqual([sent.at(-1)!.envelope.code, sent.at(-1)!.envelope.final], [5, true]);
  });

  it('handlers - a cancel relayed by a router for the requester aborts it; the same from a client that is not a router does not (protocol §11.5)', async () => {
    const { handlers, command, cancel } = serving({ routers: ['relais-router'] });
    const signals: AbortSignal[] = [];
    await handlers.handle(ACTION, (_payload: unknown, ctx: HandlerContext) => {
      signals.push(ctx.signal);
      return new Promise(() => {});
    });
    command({});
    command({ token: 't2' });
    cancel({ source: 'mallory', payload: { reason: 'kill', requester: 'req' } });
    assert.equal(signals[0]!.aborted, false);
    cancel({ source: 'relais-router', token: 't2', payload: { reason: 'kill', requester: 'req' } });
    assert.deepEqual(signals.map((s) => s.aborted), [false, true]);
  });

  it('handlers - closing aborts every running handler, answered code 5 "the serving client is closing"', async () => {
    const { handlers, sent, command } = serving();
    await handlers.handle(ACTION, (_payload: unknown, ctx: HandlerContext) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped')))));
    command({});
    handlers.abortAll();
    await turn();
    assert.deepEqual([sent.at(-1)!.envelope.code, sent.at(-1)!.envelope.error?.message], [5, 'the serving client is closing']);
  });
});
