/**
 * The request lifecycle (protocol §4.1, §4.3–§4.7, §7.3) as a pure state machine, without MQTT,
 * timers or clocks: each scenario of the protocol step by step, then any order of answers,
 * silences, presences, reconnections and cancels (fast-check) with the guarantees that must
 * hold whatever happens: every request ends exactly once, no step is yielded twice, a request
 * moves to another handler at most once and never after it was taken, and `HandlerGoneError`
 * only when a presence said so.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HandlerGoneError, NoHandlerError, NotSentError, RemoteError, SiteUnreachableError, TimeoutError, CancelledError } from '../../src/protocol/errors.js';
import type { PresenceInfo } from '../../src/protocol/presence.js';
import { RequestLifecycle, type Lane, type RequestEffects, type RequestPlan, type RequestWorld, type ResponseFields, type Step } from '../../src/protocol/request-lifecycle.js';

const ACTION = 'demo/work';
const ACK_TIMEOUT = 100;
const GRACE = 400;
const TIMEOUT = 4000;
const T0 = 1_000_000;

/** What the world looks like to the request: presences, the directory's state, suspicions. */
class World implements RequestWorld {
  readonly self = 'req';
  readonly maxMessageBytes = 1 << 20;
  readonly reconnectGrace = GRACE;
  directorySettled = true;
  readonly presences = new Map<string, PresenceInfo>();
  readonly suspected = new Set<string>();
  /** Handlers on a site whose link is down (protocol §13.4), with the error a request to them gets. */
  readonly downSites = new Map<string, SiteUnreachableError>();

  constructor(handlers: string[] = ['h0', 'h1']) {
    for (const id of handlers) this.announce(id, 'alive');
  }

  announce(id: string, status: PresenceInfo['status'], instance = `${id}-1`): PresenceInfo {
    const info: PresenceInfo = { status, actions: status === 'alive' ? [ACTION] : [], since: 1, seq: 1, instance, acks: true };
    this.presences.set(id, info);
    return info;
  }

  presence(handler: string): PresenceInfo | undefined {
    return this.presences.get(handler);
  }

  private providers(): string[] {
    return [...this.presences].filter(([, info]) => info.status === 'alive' && info.actions.includes(ACTION)).map(([id]) => id);
  }

  hasProvider(): boolean {
    return this.providers().length > 0;
  }

  missing(action: string, target: string | undefined): NoHandlerError | undefined {
    if (target !== undefined) return this.providers().includes(target) ? undefined : new NoHandlerError(`no handler for ${action}: target ${target} is not connected`);
    return this.hasProvider() ? undefined : new NoHandlerError(`no connected client serves ${action}`);
  }

  pick(_action: string, exclude: ReadonlySet<string> | undefined, unsuspectedOnly = false): string | undefined {
    const all = this.providers().filter((id) => !exclude?.has(id));
    // As HandlerChoice: the clients of a down site only when nobody else is left (protocol §13.4).
    const reachable = all.filter((id) => !this.downSites.has(id));
    const candidates = reachable.length > 0 ? reachable : all;
    const unsuspected = candidates.filter((id) => !this.suspected.has(id));
    return (unsuspected.length > 0 || unsuspectedOnly ? unsuspected : candidates)[0];
  }

  ackDeadline(_handler: string, ackTimeout: number, misses = 0): number {
    return Math.min(8 * ackTimeout, ackTimeout * 2 ** misses);
  }

  unreachable(handler: string): SiteUnreachableError | undefined {
    return this.downSites.get(handler);
  }
}

interface Written {
  at: number;
  /** The directory had settled when it was written. */
  settled: boolean;
  topic: string;
  qos: 0 | 1;
  destination: string;
  acceptBy?: number;
}

/**
 * A shell as the Node client's, on simulated time: it writes at once (the lane up unless told
 * otherwise), keeps the timers the request arms and fires them as time passes, and records
 * every effect.
 */
class Shell implements RequestEffects {
  now = T0;
  laneUp = true;
  writable = true;
  readonly written: Written[] = [];
  readonly steps: Step[] = [];
  readonly cancels: Array<{ destination: string; reason: string; at: number }> = [];
  readonly outcomes: Array<{ ok: true; payload: unknown; source: string } | { ok: false; error: unknown }> = [];
  readonly suspicions: string[] = [];
  readonly logs: string[] = [];
  deadlineAt = Infinity;
  ack: { half: number; end: number } | undefined;
  graceAt = Infinity;
  siteWaitAt = Infinity;
  request!: RequestLifecycle;
  world!: World;
  /** Effects asked after the end (none may come). */
  afterEnd: string[] = [];

  private note(what: string): void {
    if (this.outcomes.length > 0) this.afterEnd.push(what);
  }

  armDeadline(ms: number): void {
    this.deadlineAt = this.now + ms;
  }
  write(): void {
    this.note('write');
    if (!this.writable) throw new NotSentError('offline queue full');
    const text = this.request.commandText(this.now);
    const body = JSON.parse(text as string) as { destination: string; acceptBy?: number };
    this.written.push({ at: this.now, settled: this.world.directorySettled, topic: this.request.topic, qos: this.request.qos, destination: body.destination, ...(body.acceptBy !== undefined && { acceptBy: body.acceptBy }) });
    this.request.wasWritten(this.now, this.laneUp);
  }
  awaitAnswer(wait: number, now: number): void {
    this.note('awaitAnswer');
    this.ack = { half: now + wait / 2, end: now + wait };
  }
  stopAwaitingAnswer(): void {
    this.ack = undefined;
  }
  armSiteWait(ms: number): void {
    this.note('armSiteWait');
    this.siteWaitAt = this.now + ms;
  }
  armGrace(ms: number): void {
    this.note('armGrace');
    this.graceAt = this.now + ms;
  }
  clearGrace(): void {
    this.graceAt = Infinity;
  }
  sendCancel(destination: string, reason: string): void {
    this.note('sendCancel');
    this.cancels.push({ destination, reason, at: this.now });
  }
  step(step: Step): void {
    this.note('step');
    this.steps.push(step);
  }
  succeeded(payload: unknown, _code: number, source: string): void {
    this.note('succeeded');
    this.outcomes.push({ ok: true, payload, source });
    this.stopTimers();
  }
  failed(error: unknown): void {
    this.note('failed');
    this.outcomes.push({ ok: false, error });
    this.stopTimers();
  }
  suspect(handler: string): void {
    this.suspicions.push(handler);
  }
  answered(): void {}
  log(_level: string, _fields: unknown, message: string): void {
    this.logs.push(message);
  }

  private stopTimers(): void {
    this.deadlineAt = Infinity;
    this.ack = undefined;
    this.graceAt = Infinity;
    this.siteWaitAt = Infinity;
  }

  /** Lets `ms` pass, firing the timers due in their order. */
  wait(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const half = this.ack && this.ack.half !== Infinity ? this.ack.half : Infinity;
      const end = this.ack ? this.ack.end : Infinity;
      const next = Math.min(this.deadlineAt, half, end, this.graceAt, this.siteWaitAt);
      if (next > until) break;
      this.now = Math.max(this.now, next);
      if (next === this.siteWaitAt) {
        this.siteWaitAt = Infinity;
        this.request.siteWaitOver();
      } else if (next === this.deadlineAt) {
        this.deadlineAt = Infinity;
        this.request.timedOut();
      } else if (next === end) {
        this.ack = undefined;
        this.request.ackExpired(this.now);
      } else if (next === half) {
        this.ack!.half = Infinity;
        this.request.ackHalfway();
      } else {
        this.graceAt = Infinity;
        this.request.graceOver(next);
      }
    }
    this.now = until;
  }
}

function plan(overrides: Partial<RequestPlan> = {}): RequestPlan {
  return { action: ACTION, payload: { n: 1 }, token: 'tok', priority: 'normal', lane: 'main', timeout: TIMEOUT, ackTimeout: ACK_TIMEOUT, target: undefined, checkHandlers: true, ...overrides };
}

/** A request started and subscribed (unless `subscribed: false`). */
function begin(world = new World(), overrides: Partial<RequestPlan> = {}, { subscribed = true } = {}) {
  const shell = new Shell();
  shell.world = world;
  shell.request = new RequestLifecycle(plan(overrides), world, shell, shell.now);
  shell.request.start();
  if (subscribed) shell.request.subscribed();
  return { world, shell, request: shell.request };
}

const ack = (source: string): ResponseFields => ({ source, final: false, accepted: true, payload: null });
const progress = (source: string, fraction: number): ResponseFields => ({ source, final: false, progress: fraction, payload: { fraction } });
const final = (source: string, payload: unknown = { done: true }): ResponseFields => ({ source, final: true, code: 0, payload });
const failure = (source: string): ResponseFields => ({ source, final: true, code: 1, payload: null, error: { name: 'Error', message: 'it broke' } });
const refusal = (source: string): ResponseFields => ({ source, final: true, code: 6, accepted: false, payload: null, error: { name: 'TimeoutError', message: 'arrived after its acceptance deadline' } });

describe('request lifecycle - the protocol step by step', () => {
  it('request lifecycle - a request without target goes to one provider, targeted, at QoS 0 with acceptBy = written + ¾ of its wait, and ends with its final', () => {
    const { shell, request } = begin();
    assert.deepEqual(shell.written, [{ at: T0, settled: true, topic: `${ACTION}/request/h0`, qos: 0, destination: 'h0', acceptBy: T0 + 75 }]);
    assert.equal(request.response(final('h0', 42), 'main', shell.now), true);
    assert.deepEqual(shell.outcomes, [{ ok: true, payload: 42, source: 'h0' }]);
  });

  it('request lifecycle - nothing is written before the response subscription is in place', () => {
    const { shell, request } = begin(undefined, {}, { subscribed: false });
    assert.equal(shell.written.length, 0);
    request.subscribed();
    assert.equal(shell.written.length, 1);
  });

  it('request lifecycle - to a handler that does not acknowledge: QoS 1, no acceptBy, no wait for an answer', () => {
    const world = new World();
    world.presences.get('h0')!.acks = undefined;
    const { shell } = begin(world);
    assert.deepEqual(shell.written, [{ at: T0, settled: true, topic: `${ACTION}/request/h0`, qos: 1, destination: 'h0' }]);
    assert.equal(shell.ack, undefined);
  });

  it('request lifecycle - half-way through the wait the command is written again with the same acceptBy', () => {
    const { shell } = begin();
    shell.wait(50);
    assert.deepEqual(shell.written.map((w) => w.acceptBy), [T0 + 75, T0 + 75]);
    assert.equal(shell.written[1]!.at, T0 + 50);
  });

  it('request lifecycle - no answer within the wait: the handler is suspected and the request moves once to another provider, a new acceptBy', () => {
    const { shell, world } = begin();
    world.suspected.add('h0'); // what the failure detector does on `suspect`
    shell.wait(100);
    assert.deepEqual(shell.suspicions, ['h0']);
    assert.deepEqual(shell.written.map((w) => w.destination), ['h0', 'h0', 'h1']);
    assert.equal(shell.written[2]!.acceptBy, T0 + 100 + 75);
    assert.match(shell.logs.join('\n'), /request sent to another handler: h0 did not answer within 100 ms/);
  });

  it('request lifecycle - moved once already: the next silence offers it again to the same handler with a doubled wait, until the time-out', () => {
    const { shell, world } = begin();
    world.suspected.add('h0');
    shell.wait(100); // moved to h1
    world.suspected.add('h1');
    shell.wait(100); // h1 silent: offered again to h1, wait 200
    assert.deepEqual(shell.written.map((w) => w.destination), ['h0', 'h0', 'h1', 'h1', 'h1']);
    assert.equal(shell.written[4]!.acceptBy, T0 + 200 + 150);
    shell.wait(TIMEOUT);
    assert.equal(shell.outcomes.length, 1);
    assert.ok((shell.outcomes[0] as { error: unknown }).error instanceof TimeoutError);
    assert.ok(new Set(shell.written.map((w) => w.destination)).size <= 2, 'offered to two handlers at most');
  });

  it('request lifecycle - a targeted request is never moved: a silent target is offered again until the time-out', () => {
    const { shell } = begin(undefined, { target: 'h1' });
    shell.wait(TIMEOUT + 1);
    assert.deepEqual([...new Set(shell.written.map((w) => w.destination))], ['h1']);
    const outcome = shell.outcomes[0] as { ok: false; error: Error };
    assert.ok(outcome.error instanceof TimeoutError);
    assert.match(outcome.error.message, /no final response to demo\/work within 4000 ms/);
    assert.deepEqual(shell.cancels.map((c) => [c.destination, c.reason]), [['h1', 'requester time-out']]);
  });

  it('request lifecycle - once taken, a request is never moved, whatever the silences', () => {
    const { shell, request, world } = begin();
    request.response(ack('h0'), 'main', shell.now);
    world.suspected.add('h0');
    shell.wait(3000);
    assert.deepEqual([...new Set(shell.written.map((w) => w.destination))], ['h0']);
  });

  it('request lifecycle - an expiry of the wait that comes after the acknowledgement was read changes nothing (protocol §4.7)', () => {
    const { shell, request, world } = begin();
    request.response(ack('h0'), 'main', shell.now + 150);
    request.ackExpired(shell.now + 150); // a shell whose expiry was already due
    world.suspected.add('h0');
    assert.deepEqual([...new Set(shell.written.map((w) => w.destination))], ['h0']);
    assert.deepEqual(shell.suspicions, []);
  });

  it('request lifecycle - each handler\'s acknowledgement is yielded once, progress steps each once, in order', () => {
    const { shell, request } = begin();
    request.response(ack('h0'), 'main', shell.now);
    request.response(ack('h0'), 'main', shell.now); // the answer to the command written again
    request.response(progress('h0', 0.5), 'main', shell.now);
    request.response(progress('h0', 0.8), 'main', shell.now);
    request.response(final('h0'), 'main', shell.now);
    assert.deepEqual(shell.steps.map((s) => s.kind + ('progress' in s ? s.progress : '')), ['accepted', 'progress0.5', 'progress0.8']);
    assert.equal(shell.outcomes.length, 1);
  });

  it('request lifecycle - a copy of a response on the client\'s other connection is not a step (protocol §6.2)', () => {
    const { shell, request } = begin();
    assert.equal(request.response(progress('h0', 0.5), 'main', shell.now), true);
    assert.equal(request.response(progress('h0', 0.5), 'realtime', shell.now), false);
    request.response(final('h0'), 'realtime', shell.now);
    assert.equal(shell.steps.length, 1);
    assert.equal(shell.outcomes.length, 0);
  });

  it('request lifecycle - a response from another client than the one it went to is ignored', () => {
    const { shell, request } = begin();
    assert.equal(request.response(final('h1'), 'main', shell.now), false);
    assert.equal(shell.outcomes.length, 0);
  });

  it('request lifecycle - an error response fails the request with the handler\'s error', () => {
    const { shell, request } = begin();
    request.response(failure('h0'), 'main', shell.now);
    const outcome = shell.outcomes[0] as { ok: false; error: Error };
    assert.ok(outcome.error instanceof RemoteError);
    assert.match(outcome.error.message, /it broke/);
  });

  it('request lifecycle - a refusal as late after acceptBy passed: the handler is slow, the request moves to another provider', () => {
    const { shell, request } = begin();
    shell.now += 80; // past acceptBy (75)
    request.response(refusal('h0'), 'main', shell.now);
    assert.deepEqual(shell.written.map((w) => w.destination), ['h0', 'h1']);
    assert.equal(shell.outcomes.length, 0);
  });

  it('request lifecycle - a refusal before acceptBy passed on our clock: the clocks disagree, the request moves, else fails with the handler\'s error', () => {
    const { shell, request } = begin(new World(['h0']));
    request.response(refusal('h0'), 'main', shell.now + 10);
    const outcome = shell.outcomes[0] as { ok: false; error: Error };
    assert.ok(outcome.error instanceof TimeoutError, 'code 6 arrives as TimeoutError');
  });

  it('request lifecycle - the handler stopped before taking it: moved at once; stopped after taking it: HandlerGoneError', () => {
    {
      const { shell, request, world } = begin();
      request.presenceGone('h0', world.announce('h0', 'stopped'), shell.now);
      assert.deepEqual(shell.written.map((w) => w.destination), ['h0', 'h1']);
    }
    {
      const { shell, request, world } = begin();
      request.response(ack('h0'), 'main', shell.now);
      request.presenceGone('h0', world.announce('h0', 'stopped'), shell.now);
      const outcome = shell.outcomes[0] as { ok: false; error: Error };
      assert.ok(outcome.error instanceof HandlerGoneError);
      assert.match(outcome.error.message, /stopped before answering/);
    }
  });

  it('request lifecycle - the handler\'s will after it took it: reconnectGrace to come back, then a status query (acceptBy 0); not back: HandlerGoneError', () => {
    const { shell, request, world } = begin();
    request.response(ack('h0'), 'main', shell.now);
    request.presenceGone('h0', world.announce('h0', 'dead'), shell.now);
    shell.wait(GRACE - 1);
    assert.equal(shell.outcomes.length, 0);
    request.presenceBack('h0', world.announce('h0', 'alive'), shell.now);
    assert.equal(shell.written.at(-1)!.acceptBy, 0, 'a status query');
    // It no longer knows the command: it restarted or forgot it.
    request.response(refusal('h0'), 'main', shell.now);
    const outcome = shell.outcomes[0] as { ok: false; error: Error };
    assert.ok(outcome.error instanceof HandlerGoneError);
    assert.match(outcome.error.message, /no longer knows the request/);

    const second = begin();
    second.request.response(ack('h0'), 'main', second.shell.now);
    second.request.presenceGone('h0', second.world.announce('h0', 'dead'), second.shell.now);
    second.shell.wait(GRACE);
    assert.match((second.shell.outcomes[0] as { error: Error }).error.message, /lost its connection and did not come back within 400 ms/);
  });

  it('request lifecycle - the handler\'s will before its acknowledgement came (it may have taken it, the acknowledgement lost with its connection): not moved at the end of its wait; back within reconnectGrace: offered again to it; not back: moved', () => {
    const { shell, request, world } = begin();
    request.presenceGone('h0', world.announce('h0', 'dead'), shell.now);
    shell.wait(GRACE - 1);
    assert.ok(GRACE - 1 > ACK_TIMEOUT * 2, 'past its wait for an acknowledgement');
    assert.deepEqual([...new Set(shell.written.map((w) => w.destination))], ['h0'], 'not moved while it may come back');
    request.presenceBack('h0', world.announce('h0', 'alive'), shell.now);
    assert.equal(shell.written.at(-1)!.destination, 'h0', 'offered again to it, which remembers the token (§4.8)');
    request.response(ack('h0'), 'main', shell.now);
    assert.deepEqual([...new Set(shell.written.map((w) => w.destination))], ['h0']);

    const second = begin();
    second.request.presenceGone('h0', second.world.announce('h0', 'dead'), second.shell.now);
    second.shell.wait(GRACE);
    assert.equal(second.shell.written.at(-1)!.destination, 'h1', 'moved once its grace is over');
    assert.equal(second.shell.outcomes.length, 0);
  });

  it('request lifecycle - the handler came back as another instance (restarted): moved before it was taken, HandlerGoneError after', () => {
    {
      const { shell, request, world } = begin();
      request.presenceBack('h0', world.announce('h0', 'alive', 'h0-2'), shell.now);
      assert.deepEqual(shell.written.map((w) => w.destination), ['h0', 'h1']);
    }
    {
      const { shell, request, world } = begin();
      request.response(ack('h0'), 'main', shell.now);
      request.presenceBack('h0', world.announce('h0', 'alive', 'h0-2'), shell.now);
      assert.match((shell.outcomes[0] as { error: Error }).error.message, /restarted before answering/);
    }
  });

  it('request lifecycle - our lane down: no wait for an answer; back: offered again, or asked its status once taken', () => {
    const { shell, request } = begin();
    request.disconnected();
    assert.equal(shell.ack, undefined);
    shell.wait(1000);
    assert.equal(shell.outcomes.length, 0, 'nothing ends it while the lane is down but its time-out');
    request.reconnected();
    assert.equal(shell.written.length, 2);
    assert.ok(shell.written[1]!.acceptBy! > T0 + 1000);
    request.response(ack('h0'), 'main', shell.now);
    request.reconnected();
    assert.equal(shell.written.at(-1)!.acceptBy, 0);
  });

  it('request lifecycle - a cancel tells the handler that answered first; before anything was handed over, no cancel is sent', () => {
    {
      const { shell, request } = begin();
      request.cancel(new CancelledError('stop'), 'cancelled by the requester');
      assert.deepEqual(shell.cancels.map((c) => [c.destination, c.reason]), [['h0', 'cancelled by the requester']]);
      assert.ok((shell.outcomes[0] as { error: unknown }).error instanceof CancelledError);
    }
    {
      const { shell, request } = begin(undefined, {}, { subscribed: false });
      request.cancel(new CancelledError('stop'), 'cancelled by the requester');
      assert.equal(shell.cancels.length, 0);
      assert.equal(shell.outcomes.length, 1);
      request.subscribed();
      assert.equal(shell.written.length, 0, 'nothing written after the end');
    }
  });

  it('request lifecycle - a command the transport cannot take fails the request with that error', () => {
    const world = new World();
    const shell = new Shell();
    shell.world = world;
    shell.writable = false;
    shell.request = new RequestLifecycle(plan(), world, shell, shell.now);
    shell.request.start();
    shell.request.subscribed();
    assert.ok((shell.outcomes[0] as { error: unknown }).error instanceof NotSentError);
  });

  it('request lifecycle - the settled directory knows no provider: NoHandlerError before anything is registered', () => {
    const world = new World([]);
    assert.throws(() => new RequestLifecycle(plan(), world, new Shell(), T0), NoHandlerError);
    assert.throws(() => new RequestLifecycle(plan({ target: 'h9' }), world, new Shell(), T0), NoHandlerError);
  });

  it('request lifecycle - a payload that is not JSON fails before anything is sent', () => {
    assert.throws(() => new RequestLifecycle(plan({ payload: { n: 1n } }), new World(), new Shell(), T0), TypeError);
  });
});

describe('request lifecycle - while the directory settles (protocol §4.6, §7.2)', () => {
  const settling = (handlers: string[] = []) => {
    const world = new World(handlers);
    world.directorySettled = false;
    return world;
  };

  it('request lifecycle - no provider known yet: nothing is sent untargeted; the first provider to appear gets it, targeted', () => {
    const { shell, request, world } = begin(settling());
    assert.equal(shell.written.length, 0, 'not sent to every handler');
    request.presenceBack('h1', world.announce('h1', 'alive'), shell.now);
    assert.deepEqual(shell.written.map((w) => w.topic), [`${ACTION}/request/h1`]);
    request.response(final('h1'), 'main', shell.now);
    assert.equal((shell.outcomes[0] as { ok: boolean }).ok, true);
  });

  it('request lifecycle - no provider known yet, the directory settles with none: NoHandlerError, nothing sent, no cancel', () => {
    const { shell, request, world } = begin(settling());
    world.directorySettled = true;
    request.directorySettled(shell.now);
    assert.ok((shell.outcomes[0] as { error: unknown }).error instanceof NoHandlerError);
    assert.deepEqual([shell.written.length, shell.cancels.length], [0, 0]);
  });

  it('request lifecycle - no provider known yet, and it settles with one: sent to it', () => {
    const { shell, request, world } = begin(settling());
    world.announce('h0', 'alive');
    world.directorySettled = true;
    request.directorySettled(shell.now);
    assert.deepEqual(shell.written.map((w) => w.destination), ['h0']);
  });

  it('request lifecycle - with checkHandlers: false, nobody announced once settled: untargeted, for peers without presence (protocol §4.6)', () => {
    const { shell, request, world } = begin(settling(), { checkHandlers: false });
    assert.equal(shell.written.length, 0);
    world.directorySettled = true;
    request.directorySettled(shell.now);
    assert.deepEqual(shell.written.map((w) => [w.topic, w.destination, w.qos]), [[`${ACTION}/request`, '*', 1]]);
  });

  it('request lifecycle - no provider appears before the time-out: TimeoutError saying nothing was sent, no cancel', () => {
    const { shell } = begin(settling());
    shell.wait(TIMEOUT);
    const outcome = shell.outcomes[0] as { error: Error };
    assert.ok(outcome.error instanceof TimeoutError);
    assert.match(outcome.error.message, /no handler of demo\/work appeared within 4000 ms; nothing was sent/);
    assert.equal(shell.cancels.length, 0);
  });

  it('request lifecycle - a target not known yet gets the command again, acknowledged, when its presence comes: the first copy may have reached nobody', () => {
    const { shell, request, world } = begin(settling(), { target: 'h9' });
    assert.deepEqual(shell.written.map((w) => [w.destination, w.qos, w.acceptBy === undefined]), [['h9', 1, true]], 'sent blind: QoS 1, no acceptBy');
    request.presenceBack('h9', world.announce('h9', 'alive'), shell.now);
    assert.deepEqual(shell.written.slice(1).map((w) => [w.destination, w.qos, w.acceptBy !== undefined]), [['h9', 0, true]], 'offered again as to any handler that acknowledges');
    // Then as any offer: written again half-way, answered, done.
    shell.wait(ACK_TIMEOUT / 2);
    assert.equal(shell.written.length, 3);
    request.response(final('h9'), 'main', shell.now);
    assert.deepEqual(shell.outcomes, [{ ok: true, payload: { done: true }, source: 'h9' }]);
    // A target known when it was sent is not offered again by its presence alone.
    const known = begin(undefined, { target: 'h1' });
    known.request.presenceBack('h1', known.world.announce('h1', 'alive'), known.shell.now);
    assert.equal(known.shell.written.length, 1);
  });

  it('request lifecycle - a provider known while it settles gets it at once; a target not known yet is sent anyway and judged at settle time', () => {
    assert.deepEqual(begin(settling(['h0'])).shell.written.map((w) => w.destination), ['h0']);
    const { shell, request, world } = begin(settling(), { target: 'h9' });
    assert.deepEqual(shell.written.map((w) => w.topic), [`${ACTION}/request/h9`]);
    world.directorySettled = true;
    request.directorySettled(shell.now);
    assert.ok((shell.outcomes[0] as { error: unknown }).error instanceof NoHandlerError);
    assert.deepEqual(shell.cancels.map((c) => c.reason), ['no handler']);
  });
});

// ---- any order of events -------------------------------------------------------------------

type Who = 0 | 1 | 2;
const who = fc.constantFrom<Who>(0, 1, 2);

type Event =
  | { kind: 'wait'; ms: number }
  | { kind: 'answer'; from: Who; answer: 'ack' | 'progress' | 'final' | 'error' | 'refusal'; lane: Lane }
  | { kind: 'presence'; who: Who; what: 'dead' | 'stopped' | 'alive-again' | 'restarted' | 'cleared' | 'appears' }
  | { kind: 'settled' }
  | { kind: 'lane'; up: boolean }
  | { kind: 'cancel' };

const events: fc.Arbitrary<Event> = fc.oneof(
  fc.integer({ min: 0, max: 1500 }).map((ms): Event => ({ kind: 'wait', ms })),
  fc.record({ kind: fc.constant('answer' as const), from: who, answer: fc.constantFrom('ack' as const, 'progress' as const, 'final' as const, 'error' as const, 'refusal' as const), lane: fc.constantFrom<Lane>('main', 'main', 'main', 'realtime') }),
  fc.record({ kind: fc.constant('presence' as const), who, what: fc.constantFrom('dead' as const, 'stopped' as const, 'alive-again' as const, 'restarted' as const, 'cleared' as const, 'appears' as const) }),
  fc.constant<Event>({ kind: 'settled' }),
  fc.boolean().map((up): Event => ({ kind: 'lane', up })),
  fc.constant<Event>({ kind: 'cancel' }),
);

const starts: fc.Arbitrary<Start> = fc.record({
  handlers: fc.constantFrom(0, 1, 2, 3),
  settled: fc.boolean(),
  target: fc.constantFrom<string | undefined>(undefined, undefined, 'h0', '*'),
  checkHandlers: fc.boolean(),
  subscribedLate: fc.boolean(),
});

interface Start {
  handlers: number;
  settled: boolean;
  target: string | undefined;
  checkHandlers: boolean;
  subscribedLate: boolean;
}

/** Plays `script` on a request; returns the shell, whether a presence said a handler was gone, and who took it when. */
function play(start: Start, script: Event[]) {
  const ids = ['h0', 'h1', 'h2'];
  const world = new World(ids.slice(0, start.handlers));
  world.directorySettled = start.settled;
  const shell = new Shell();
  shell.world = world;
  try {
    shell.request = new RequestLifecycle(plan({ target: start.target, checkHandlers: start.checkHandlers }), world, shell, shell.now);
  } catch (error) {
    return { refused: error, shell, goneSaid: false, takenBy: undefined as string | undefined, takenAt: 0 };
  }
  const request = shell.request;
  request.start();
  if (!start.subscribedLate) request.subscribed();
  let goneSaid = false;
  let takenBy: string | undefined;
  let takenAt = 0;
  const instances = new Map(ids.map((id) => [id, 1]));
  for (const [n, event] of script.entries()) {
    if (start.subscribedLate && n === 2) request.subscribed();
    switch (event.kind) {
      case 'wait':
        shell.wait(event.ms);
        break;
      case 'answer': {
        const source = ids[event.from]!;
        const body = { ack, progress: (s: string) => progress(s, 0.5), final, error: failure, refusal }[event.answer](source);
        const taken = request.response(body, event.lane, shell.now);
        if (taken && takenBy === undefined && request.assignee !== undefined) {
          takenBy = source;
          takenAt = shell.written.length;
        }
        break;
      }
      case 'presence': {
        const id = ids[event.who]!;
        const before = world.presence(id);
        if (event.what === 'cleared') {
          world.presences.delete(id);
          goneSaid = true;
          if (before?.status === 'alive') request.presenceGone(id, undefined, shell.now);
        } else if (event.what === 'dead' || event.what === 'stopped') {
          if (!before) break;
          goneSaid = true;
          const info = world.announce(id, event.what, before.instance);
          if (before.status === 'alive') request.presenceGone(id, info, shell.now);
        } else {
          if (event.what === 'restarted') {
            instances.set(id, instances.get(id)! + 1);
            goneSaid = true;
          } else if (event.what === 'alive-again' && !before) break;
          const info = world.announce(id, 'alive', `${id}-${instances.get(id)}`);
          request.presenceBack(id, info, shell.now);
        }
        break;
      }
      case 'settled':
        if (world.directorySettled) break;
        world.directorySettled = true;
        request.directorySettled(shell.now);
        break;
      case 'lane':
        shell.laneUp = event.up;
        // After our reconnection a handler that took it must answer its status query within reconnectGrace (protocol §4.7).
        if (event.up) {
          goneSaid ||= takenBy !== undefined;
          request.reconnected();
        }
        else request.disconnected();
        break;
      case 'cancel':
        request.cancel(new CancelledError('stopped by the caller'), 'cancelled by the requester');
        break;
    }
  }
  if (start.subscribedLate && script.length <= 2) request.subscribed();
  shell.wait(TIMEOUT + GRACE + 1000);
  return { refused: undefined, shell, goneSaid, takenBy, takenAt };
}

describe('request lifecycle - any order of events (fast-check)', () => {
  const property = (check: (result: ReturnType<typeof play>, start: Parameters<typeof play>[0]) => void) =>
    fc.assert(fc.property(starts, fc.array(events, { maxLength: 30 }), (start, script) => check(play(start, script), start)), { numRuns: 600 });

  it('request lifecycle - every request ends exactly once, by its time-out at the latest, and nothing happens after its end', () => {
    property(({ refused, shell }) => {
      if (refused) return assert.ok(refused instanceof NoHandlerError);
      assert.equal(shell.outcomes.length, 1, `ended ${shell.outcomes.length} times`);
      assert.deepEqual(shell.afterEnd, [], 'effects after the end');
    });
  });

  it('request lifecycle - no acknowledgement step is yielded twice for one handler; a copy on the other lane is never a step', () => {
    property(({ shell }) => {
      const accepted = shell.steps.filter((s) => s.kind === 'accepted').map((s) => s.source);
      assert.equal(new Set(accepted).size, accepted.length);
    });
  });

  it('request lifecycle - a request is offered to two handlers at most, a targeted one to its target only, and never moved once taken', () => {
    property(({ shell, takenBy, takenAt }, start) => {
      const destinations = shell.written.map((w) => w.destination);
      assert.ok(new Set(destinations).size <= 2, `offered to ${[...new Set(destinations)].join(', ')}`);
      if (start.target === 'h0') assert.deepEqual([...new Set(destinations)].filter((d) => d !== 'h0'), []);
      if (takenBy !== undefined) assert.deepEqual(destinations.slice(takenAt).filter((d) => d !== takenBy), [], `moved after ${takenBy} took it`);
    });
  });

  it('request lifecycle - never sent untargeted while the directory settles; untargeted only to every provider on purpose (`*`) or to peers without presence', () => {
    property(({ shell }, start) => {
      for (const write of shell.written.filter((w) => w.destination === '*')) {
        assert.ok(start.target === '*' || (start.target === undefined && !start.checkHandlers && write.settled), `untargeted write (target ${start.target}, directory ${write.settled ? 'settled' : 'settling'})`);
      }
    });
  });

  it('request lifecycle - HandlerGoneError only after a presence said a handler was gone (or a status query went unanswered); a cancel only for a command handed over', () => {
    property(({ shell, goneSaid }) => {
      const outcome = shell.outcomes[0];
      if (outcome && !outcome.ok && outcome.error instanceof HandlerGoneError) assert.ok(goneSaid, String(outcome.error));
      if (shell.written.length === 0) assert.equal(shell.cancels.length, 0);
    });
  });
});

describe('request lifecycle - a handler on a site whose link is down (protocol §13.4)', () => {
  const down = () => new SiteUnreachableError('site poller-1 is unreachable since 2026-12-06T04:12:03Z (its link is down): h0 cannot be reached', { site: 'poller-1', since: 1 });

  it('request lifecycle - targeted at it: fails at once with SiteUnreachableError, nothing written', () => {
    const world = new World();
    world.downSites.set('h0', down());
    assert.throws(() => begin(world, { target: 'h0' }), SiteUnreachableError);
  });

  it('request lifecycle - with waitForSite: nothing written while the site is down; written once it is up, and answered', () => {
    const world = new World();
    world.downSites.set('h0', down());
    const { shell, request } = begin(world, { target: 'h0', waitForSite: 1000 });
    shell.wait(500);
    request.sitesChanged(shell.now); // another site changed: still down
    assert.deepEqual([shell.written.length, shell.outcomes.length], [0, 0]);
    world.downSites.delete('h0');
    request.sitesChanged(shell.now);
    assert.deepEqual(shell.written.map((w) => [w.destination, w.at, w.acceptBy]), [['h0', T0 + 500, T0 + 500 + 75]], 'a fresh acceptBy, from when it was written');
    request.response(final('h0', 7), 'main', shell.now);
    assert.deepEqual(shell.outcomes, [{ ok: true, payload: 7, source: 'h0' }]);
  });

  it('request lifecycle - with waitForSite: still down at its end, it fails with SiteUnreachableError, no cancel; a wait as long as the time-out ends with the same error', () => {
    const world = new World();
    world.downSites.set('h0', down());
    const { shell } = begin(world, { target: 'h0', waitForSite: 1000 });
    shell.wait(999);
    assert.equal(shell.outcomes.length, 0);
    shell.wait(1);
    assert.ok((shell.outcomes[0] as { error: unknown }).error instanceof SiteUnreachableError);
    assert.deepEqual([shell.written.length, shell.cancels.length, shell.afterEnd], [0, 0, []]);

    const whole = begin(world, { target: 'h0', waitForSite: TIMEOUT });
    whole.shell.wait(TIMEOUT);
    const error = (whole.shell.outcomes[0] as { error: unknown }).error;
    assert.ok(error instanceof SiteUnreachableError, `the site is why, not the time-out: ${String(error)}`);
  });

  it('request lifecycle - chosen by the library with every provider on a down site: waits, then goes to the first that can be reached', () => {
    const world = new World();
    world.downSites.set('h0', down());
    world.downSites.set('h1', down());
    const { shell, request } = begin(world, { waitForSite: 2000 });
    assert.equal(shell.written.length, 0);
    world.downSites.delete('h1');
    world.announce('h1', 'alive', 'h1-2'); // its presence carried again
    request.presenceBack('h1', world.presence('h1')!, shell.now);
    assert.deepEqual(shell.written.map((w) => w.destination), ['h1'], 'h0 is still down: the one that can be reached');
  });

  it('request lifecycle - once its site is up it goes to the handler that can be reached, which counts as its first offer; a silence never moves it to a down site', () => {
    const world = new World(['h0', 'h1', 'h2']);
    for (const id of ['h0', 'h1', 'h2']) world.downSites.set(id, down());
    const { shell, request } = begin(world, { waitForSite: 2000 });
    world.downSites.delete('h1');
    request.sitesChanged(shell.now);
    assert.deepEqual(shell.written.map((w) => w.destination), ['h1']);
    // h1 silent: the only others are on down sites, so it is offered again to h1, not moved.
    world.suspected.add('h1');
    shell.wait(ACK_TIMEOUT);
    assert.deepEqual(shell.written.map((w) => w.destination), ['h1', 'h1', 'h1']);
    // h2's site back: the next silence moves it there, its one move (the handler it waited for was never offered it).
    world.downSites.delete('h2');
    shell.wait(2 * ACK_TIMEOUT);
    assert.deepEqual(shell.written.map((w) => w.destination).slice(-1), ['h2']);
  });

  it('request lifecycle - cancelled while it waits for its site: CancelledError, and no cancel message (nothing was sent)', () => {
    const world = new World();
    world.downSites.set('h0', down());
    const { shell, request } = begin(world, { target: 'h0', waitForSite: 1000 });
    request.cancel(new CancelledError('stopped'), 'cancelled by the requester');
    assert.ok((shell.outcomes[0] as { error: unknown }).error instanceof CancelledError);
    assert.deepEqual([shell.written.length, shell.cancels.length], [0, 0]);
    shell.wait(2000);
    assert.equal(shell.outcomes.length, 1);
  });
});
