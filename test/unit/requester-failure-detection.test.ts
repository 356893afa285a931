/**
 * The requesting side under any schedule of answers, silences and presences (protocol §4.7,
 * §7.3), on mocked time: a request never fails with HandlerGoneError unless a presence said
 * its handler was gone, and every request ends. The real Requester, Directory, failure
 * detector and ack clock; only the transport is a stub that records what is written.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { Directory } from '../../src/client/presence/directory.js';
import type { ResolvedOptions } from '../../src/client/options.js';
import { Requester } from '../../src/client/requesting/requester.js';
import type { Transport } from '../../src/client/connection/transport.js';
import type { Envelope } from '../../src/protocol/envelope.js';
import { HandlerGoneError } from '../../src/protocol/errors.js';

const ACTION = 'demo/fd';
const HANDLERS = ['h0', 'h1'] as const;
const ACK_TIMEOUT = 100;
const GRACE = 400;
const TIMEOUT = 4000;

type Presence = 'dead' | 'stopped' | 'alive-again' | 'restarted' | 'cleared';
type Step =
  | { kind: 'wait'; ms: number }
  | { kind: 'answer'; from: 0 | 1; answer: 'ack' | 'progress' | 'final' | 'refusal' }
  | { kind: 'presence'; who: 0 | 1; what: Presence };

const waits = fc.integer({ min: 0, max: 1500 }).map((ms): Step => ({ kind: 'wait', ms }));
const answers = fc.record({ kind: fc.constant('answer' as const), from: fc.constantFrom(0 as const, 1 as const), answer: fc.constantFrom('ack' as const, 'progress' as const, 'final' as const, 'refusal' as const) });
const presences = fc.record({ kind: fc.constant('presence' as const), who: fc.constantFrom(0 as const, 1 as const), what: fc.constantFrom<Presence>('dead', 'stopped', 'alive-again', 'restarted', 'cleared') });

/** A requester on mocked time, two handlers that acknowledge, and the means to play a schedule. */
function world(providers: 1 | 2) {
  const written: Array<{ topic: string; token?: string; acceptBy?: number }> = [];
  const transport = {
    brokerLabel: 'stub',
    laneOf: () => 'main',
    subscribe: () => Promise.resolve(),
    // A broker that delivers everything at once: always heard (protocol §4.7's silent-broker row does not apply).
    connection: () => ({ connected: true, heardAt: Infinity, probe: () => Promise.resolve() }),
    send(message: { topic: string; body: string | (() => string); onWritten?: () => void }) {
      const body = JSON.parse(typeof message.body === 'function' ? message.body() : message.body) as { token?: string; acceptBy?: number };
      written.push({ topic: message.topic, ...(body.token !== undefined && { token: body.token }), ...(body.acceptBy !== undefined && { acceptBy: body.acceptBy }) });
      message.onWritten?.();
    },
  } as unknown as Transport;
  const options = { id: 'req', timeout: TIMEOUT, ackTimeout: ACK_TIMEOUT, reconnectGrace: GRACE, checkHandlers: true, maxMessageBytes: 1 << 20, logger: pino({ level: 'silent' }) } as unknown as ResolvedOptions;
  const directory = new Directory(0);
  const known = HANDLERS.slice(0, providers).map((id) => ({ id, since: 1, seq: 1, instance: `${id}-1` }));
  const announce = (handler: (typeof known)[number], status: 'alive' | 'stopped' | 'dead') =>
    directory.update(handler.id, { type: 'notification', source: handler.id, destination: '*', payload: { status, actions: status === 'alive' ? [ACTION] : [], since: handler.since, seq: status === 'dead' ? 0 : handler.seq, instance: handler.instance, acks: true } } as Envelope);
  for (const handler of known) announce(handler, 'alive');
  directory.ownPresenceBack();
  mock.timers.tick(1); // settled
  const requester = new Requester(options, transport, directory);

  const presence = (who: number, what: Presence) => {
    const handler = known[who];
    if (!handler) return;
    if (what === 'cleared') return directory.update(handler.id, undefined);
    if (what === 'dead') return announce(handler, 'dead');
    if (what === 'restarted') Object.assign(handler, { since: handler.since + 1, seq: 0, instance: `${handler.id}-${handler.since + 1}` });
    handler.seq += 1;
    announce(handler, what === 'stopped' ? 'stopped' : 'alive');
  };
  const answer = (who: number, kind: 'ack' | 'progress' | 'final' | 'refusal', token: string) => {
    const source = HANDLERS[who]!;
    const base = { v: 1, type: 'response', source, destination: 'req', token };
    const body =
      kind === 'ack' ? { final: false, accepted: true, payload: null }
      : kind === 'progress' ? { final: false, payload: { step: 1 }, progress: 0.5 }
      : kind === 'final' ? { final: true, code: 0, payload: { done: source } }
      : { final: true, accepted: false, code: 6, payload: null, error: { name: 'TimeoutError', message: 'arrived after its acceptance deadline' } };
    requester.onResponse({ ...base, ...body } as unknown as Envelope, 'main');
  };
  return { requester, written, presence, answer };
}

/** Lets the promise callbacks of what just happened run (setImmediate is not mocked). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

async function play(providers: 1 | 2, targeted: boolean, steps: Step[]) {
  const { requester, written, presence, answer } = world(providers);
  let outcome: { ok: true } | { ok: false; error: unknown } | undefined;
  let goneBy: string | undefined;
  const token = 'tok';
  requester.request(ACTION, {}, { token, ...(targeted && { target: 'h0' }) }).then(
    () => (outcome = { ok: true }),
    (error: unknown) => (outcome = { ok: false, error }),
  );
  await settle();
  for (const step of steps) {
    if (outcome) break;
    if (step.kind === 'wait') mock.timers.tick(step.ms);
    else if (step.kind === 'answer') answer(step.from, step.answer, token);
    else {
      if (step.what !== 'alive-again') goneBy ??= `${step.what} of h${step.who}`;
      presence(step.who, step.what);
    }
    await settle();
  }
  // Past the time-out and the grace: whatever happened, it has ended.
  for (let ms = 0; ms < TIMEOUT + GRACE + 1000 && !outcome; ms += 100) {
    mock.timers.tick(100);
    await settle();
  }
  return { outcome, goneBy, written };
}

describe('requester failure detection (mocked time)', () => {
  afterEach(() => mock.timers.reset());

  for (const [providers, targeted] of [[1, true], [1, false], [2, false], [2, true]] as const) {
    const what = `${targeted ? 'a targeted request' : 'a request without target'}, ${providers} provider${providers > 1 ? 's' : ''}`;

    it(`requester - ${what}: silences, late answers and refusals never end in HandlerGoneError; it ends`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof(waits, answers), { maxLength: 25 }), async (steps) => {
          mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
          try {
            const { outcome } = await play(providers, targeted, steps);
            assert.ok(outcome, 'the request ended');
            assert.ok(outcome.ok || !(outcome.error instanceof HandlerGoneError), `HandlerGoneError without a presence saying so: ${outcome.ok ? '' : String(outcome.error)}`);
          } finally {
            mock.timers.reset();
          }
        }),
        { numRuns: 150 },
      );
    });

    it(`requester - ${what}: HandlerGoneError only after a presence said a handler was gone; it ends`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof(waits, answers, presences), { maxLength: 25 }), async (steps) => {
          mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
          try {
            const { outcome, goneBy } = await play(providers, targeted, steps);
            assert.ok(outcome, 'the request ended');
            if (!outcome.ok && outcome.error instanceof HandlerGoneError) assert.ok(goneBy, `HandlerGoneError with no presence event: ${String(outcome.error)}`);
          } finally {
            mock.timers.reset();
          }
        }),
        { numRuns: 150 },
      );
    });
  }

  it('requester - a silent handler is offered the command again with a later acceptBy each time its wait ends, until the time-out', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    const { outcome, written } = await play(1, true, Array.from({ length: TIMEOUT / 50 + 1 }, (): Step => ({ kind: 'wait', ms: 50 })));
    assert.ok(outcome && !outcome.ok && (outcome.error as Error).name === 'TimeoutError', String(outcome && !outcome.ok && outcome.error));
    const offers = [...new Set(written.filter((message) => message.topic === `${ACTION}/request/h0`).map((message) => message.acceptBy))];
    // Waits of 100, 200, 400, 800 (the ceiling, 8 × ackTimeout), 800... within 4 s.
    assert.ok(offers.length >= 5, `${offers.length} offers`);
    assert.deepEqual([...offers].sort((a, b) => a! - b!), offers, 'each later than the one before');
  });
});
