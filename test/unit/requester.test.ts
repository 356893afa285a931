/**
 * The requesting side's shell (requester.ts, pending-request.ts) without a broker: what it
 * writes and yields with the real Directory, failure detector and ack clock, and a stub
 * transport that records what is written. The rules themselves are tested one by one in
 * request-lifecycle.test.ts; this checks that the shell feeds them what happens.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Directory } from '../../src/client/presence/directory.js';
import type { ResolvedOptions } from '../../src/client/options.js';
import { Requester } from '../../src/client/requesting/requester.js';
import type { Transport } from '../../src/client/connection/transport.js';
import type { Step } from '../../src/client/types.js';
import type { Envelope } from '../../src/protocol/envelope.js';
import { NoHandlerError } from '../../src/protocol/errors.js';

const ACTION = 'demo/req';

interface Written {
  topic: string;
  destination: string;
  token: string;
}

function requesting({ settled = true, realtime = false } = {}) {
  const written: Written[] = [];
  const transport = {
    brokerLabel: 'stub',
    laneOf: (wanted: string | undefined) => (wanted === 'realtime' && realtime ? 'realtime' : 'main'),
    subscribe: () => Promise.resolve(),
    // A broker that delivers everything at once: always heard (protocol §4.7's silent-broker row does not apply).
    connection: () => ({ connected: true, heardAt: Infinity, probe: () => Promise.resolve() }),
    send(message: { topic: string; body: string | (() => string); onWritten?: () => void }) {
      const body = JSON.parse(typeof message.body === 'function' ? message.body() : message.body) as { type: string; destination: string; token: string };
      if (body.type === 'command') written.push({ topic: message.topic, destination: body.destination, token: body.token });
      message.onWritten?.();
    },
  } as unknown as Transport;
  const options = { id: 'req', timeout: 5000, ackTimeout: 1000, reconnectGrace: 1000, checkHandlers: true, maxMessageBytes: 1 << 20, logger: pino({ level: 'silent' }) } as unknown as ResolvedOptions;
  const directory = new Directory(0);
  const announce = (id: string) =>
    directory.update(id, { type: 'notification', source: id, destination: '*', payload: { status: 'alive', actions: [ACTION], since: 1, seq: 1, instance: `${id}-1`, acks: true } } as Envelope);
  if (settled) {
    announce('h0');
    directory.ownPresenceBack();
  }
  const requester = new Requester(options, transport, directory);
  const answer = (lane: 'main' | 'realtime', fields: Partial<Envelope>) =>
    requester.onResponse({ v: 1, type: 'response', source: 'h0', destination: 'req', token: written.at(-1)!.token, payload: null, ...fields } as Envelope, lane);
  return { requester, directory, written, announce, answer };
}

/** Lets the promise callbacks and timers of zero ms that are due run. */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

describe('requester', () => {
  it('requester - a request without target while the directory knows no provider yet is not sent to every handler: it waits for one (protocol §4.6)', async () => {
    const { requester, written, announce, answer } = requesting({ settled: false });
    const result = requester.request(ACTION, { n: 1 });
    await turn();
    assert.deepEqual(written.map((w) => w.topic), [], 'nothing sent untargeted');
    announce('h1');
    await turn();
    assert.deepEqual(written.map((w) => [w.topic, w.destination]), [[`${ACTION}/request/h1`, 'h1']]);
    answer('main', { source: 'h1', final: true, code: 0, payload: 'ok' });
    assert.equal(await result, 'ok');
  });

  it('requester - no provider known and the directory settles with none: NoHandlerError, and nothing was sent', async () => {
    const { requester, directory, written } = requesting({ settled: false });
    const result = requester.request(ACTION, {});
    directory.ownPresenceBack(); // settles 0 ms later
    await assert.rejects(result, NoHandlerError);
    assert.deepEqual(written, []);
  });

  it('requester - a call whose answers come on both connections (subscribed on both lanes) yields each step once', async () => {
    const { requester, answer } = requesting({ realtime: true });
    const steps: Step[] = [];
    const iterating = (async () => {
      for await (const step of requester.call(ACTION, {})) steps.push(step);
    })();
    await turn();
    for (const lane of ['main', 'realtime'] as const) answer(lane, { final: false, progress: 0.5, payload: { half: true } });
    for (const lane of ['realtime', 'main'] as const) answer(lane, { final: true, code: 0, payload: 'done' });
    await iterating;
    assert.deepEqual(steps.map((step) => step.kind), ['progress', 'final']);
  });

  it('requester - a real-time request reads its answers on the real-time lane only', async () => {
    const { requester, answer } = requesting({ realtime: true });
    const result = requester.request(ACTION, {}, { priority: 'realtime' });
    await turn();
    answer('main', { final: true, code: 0, payload: 'copy on main' });
    answer('realtime', { final: true, code: 0, payload: 'on its lane' });
    assert.equal(await result, 'on its lane');
  });
});
