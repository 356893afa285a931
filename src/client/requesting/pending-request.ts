/**
 * One request on the requesting side, in the Node client: the shell that gives its lifecycle
 * (protocol/request-lifecycle.ts, where every rule of protocol §4.1–§4.7 lives) what it needs
 * here — Node timers, the ack clock, the transport, the failure detector, the caller's
 * AbortSignal — and hands its steps and its end to the caller. The mirror of `CommandContext` on the
 * serving side.
 */
import type { Logger } from 'pino';
import { encode, type Priority } from '../../protocol/envelope.js';
import { CancelledError, type NotSentError } from '../../protocol/errors.js';
import type { WireBody } from '../../protocol/framing.js';
import { cancelMessage } from '../../protocol/messages.js';
import { RequestLifecycle, type Lane, type RequestEffects, type RequestPlan, type RequestWorld, type ResponseFields, type Step } from '../../protocol/request-lifecycle.js';
import { cancelTopic } from '../../protocol/topics.js';
import type { AckClock, AwaitingAck } from './ack-clock.js';
import type { FailureDetector } from './failure-detector.js';
import type { NagleWatch } from './nagle-watch.js';
import type { OutboundMessage, Transport } from '../connection/index.js';

/** Where a request's steps go: `call()` wants each one, `request()` only the final payload (no Step made for it). */
export interface StepSink {
  onStep(step: Step): void;
  /** When present, the final answer goes here instead of an `onStep` with a final Step. */
  onResult?(payload: unknown): void;
  fail(error: unknown): void;
}

/** What the pending requests of one requester share. Objects, each with its own job; nothing here calls back into the requester. */
export interface RequestSurroundings {
  /** What a lifecycle reads: the directory, the choice of a handler, the waits. */
  readonly world: RequestWorld;
  readonly transport: Transport;
  readonly ackClock: AckClock;
  readonly detector: FailureDetector;
  readonly nagle: NagleWatch;
  readonly logger: Logger;
  /** The table of pending requests, by token: a request leaves it when it ends. */
  readonly pending: Map<string, PendingRequest>;
}

/** How long a cancel may wait in the offline queue (protocol §4.4). */
const CANCEL_QUEUE_MS = 5000;

export class PendingRequest implements RequestEffects, OutboundMessage, AwaitingAck {
  readonly lifecycle: RequestLifecycle;
  /** AckClock's times for this request. */
  ackRetryAt = Infinity;
  ackExpireAt = Infinity;
  ackWaitMs = 0;
  ackAsked = false;
  private deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private siteWaitTimer: ReturnType<typeof setTimeout> | undefined;
  private forgetSignal: (() => void) | undefined;
  /** When the last step was made (its `ts`) and when it arrived, for the Nagle watch. */
  private lastStep: { ts: number; at: number } | undefined;
  private readonly ackTimeout: number;
  /** The command goes sealed (protocol §3.6): its answers must come sealed too. */
  readonly sealed: boolean;

  /** Throws what makes the request impossible (lifecycle's constructor): nothing is registered or sent then. */
  constructor(
    private readonly around: RequestSurroundings,
    plan: RequestPlan,
    private readonly sink: StepSink,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.ackTimeout = plan.ackTimeout;
    this.sealed = plan.seal !== undefined;
    this.lifecycle = new RequestLifecycle(plan, around.world, this, Date.now());
  }

  get token(): string {
    return this.lifecycle.token;
  }

  get action(): string {
    return this.lifecycle.action;
  }

  get lane(): Lane {
    return this.lifecycle.lane;
  }

  get assignee(): string | undefined {
    return this.lifecycle.assignee;
  }

  /** Registers it and starts its clock: the time-out and the caller's signal. */
  begin(): void {
    this.around.pending.set(this.token, this);
    this.lifecycle.start();
    const signal = this.signal;
    if (signal) {
      const onAbort = () => this.lifecycle.cancel(new CancelledError(`request to ${this.action} cancelled by the caller`, { cause: signal.reason }), 'cancelled by the requester');
      signal.addEventListener('abort', onAbort, { once: true });
      this.forgetSignal = () => signal.removeEventListener('abort', onAbort);
    }
  }

  /** A response with our token arrived on `lane`. protocol §4.3 */
  onResponse(envelope: ResponseFields & { ts?: number | undefined }, lane: Lane): void {
    const now = Date.now();
    if (!this.lifecycle.response(envelope, lane, now)) return;
    if (envelope.ts !== undefined && (this.lastStep !== undefined || envelope.final === false)) {
      // Only answers in several steps are watched (an answer in one message costs nothing).
      const step = { ts: envelope.ts, at: now };
      if (this.lastStep) this.around.nagle.steps(this.lastStep, step);
      this.lastStep = step;
    }
  }

  // ---- OutboundMessage: the command as the transport writes it --------------------------

  get topic(): string {
    return this.lifecycle.topic;
  }

  get priority(): Priority {
    return this.lifecycle.priority;
  }

  get deadline(): number {
    return this.lifecycle.deadline;
  }

  get qos(): 0 | 1 {
    return this.lifecycle.qos;
  }

  /** The text, made when written, with the acceptBy the write needs. */
  body(): WireBody {
    return this.lifecycle.commandText(Date.now());
  }

  onWritten(): void {
    this.lifecycle.wasWritten(Date.now(), this.around.transport.connection(this.lane).connected);
  }

  /** Never written (deadline passed offline, client closed). */
  onDropped(error: NotSentError): void {
    this.lifecycle.fail(error);
  }

  // ---- AwaitingAck: the ack clock's calls ------------------------------------------------

  retry(): void {
    this.lifecycle.ackHalfway();
  }

  expire(): void {
    this.lifecycle.ackExpired(Date.now());
  }

  // ---- RequestEffects --------------------------------------------------------------------

  armDeadline(ms: number): void {
    this.deadlineTimer = setTimeout(timedOut, ms, this.lifecycle);
  }

  write(): void {
    // The request is its own outbound message (topic, body(), onWritten()...): nothing made per write.
    this.around.transport.send(this);
  }

  awaitAnswer(wait: number, now: number): void {
    this.around.ackClock.start(this, wait, now);
  }

  stopAwaitingAnswer(): void {
    this.around.ackClock.stop(this);
  }

  armSiteWait(ms: number): void {
    this.siteWaitTimer = setTimeout(siteWaitOver, ms, this.lifecycle);
  }

  armGrace(ms: number): void {
    this.graceTimer = setTimeout(graceOver, ms, this.lifecycle);
  }

  clearGrace(): void {
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
  }

  sendCancel(destination: string, reason: string): void {
    const envelope = cancelMessage({ source: this.around.world.self, destination, token: this.token, reason, priority: this.priority });
    try {
      this.around.transport.send({ topic: cancelTopic(this.action), body: encode(envelope), qos: 1, priority: this.priority, deadline: Date.now() + CANCEL_QUEUE_MS });
    } catch {
      // Offline or closed: the handler's own deadline will stop it.
    }
  }

  step(step: Step): void {
    this.sink.onStep(step);
  }

  succeeded(payload: unknown, code: number, source: string): void {
    this.end();
    if (this.sink.onResult) this.sink.onResult(payload);
    else this.sink.onStep({ kind: 'final', payload, code, source, token: this.token });
  }

  failed(error: unknown): void {
    this.end();
    this.sink.fail(error);
  }

  suspect(handler: string, waited: number): void {
    if (!this.around.detector.missed(handler, this.ackTimeout, Date.now())) return;
    this.around.logger.info({ handler, waitedMs: Math.round(waited) }, `handler ${handler} gave no answer within ${Math.round(waited)} ms: suspected (busy, stopped or unreachable); requests go to other providers while there are, else wait for it`);
  }

  answered(handler: string, rtt: number): void {
    this.around.detector.answered(handler, rtt);
  }

  log(level: 'debug' | 'info', fields: Record<string, unknown>, message: string): void {
    this.around.logger[level](fields, message);
  }

  private end(): void {
    clearTimeout(this.deadlineTimer);
    clearTimeout(this.siteWaitTimer);
    this.clearGrace();
    this.forgetSignal?.();
    this.around.ackClock.stop(this);
    this.around.pending.delete(this.token);
  }
}

function timedOut(lifecycle: RequestLifecycle): void {
  lifecycle.timedOut();
}

function siteWaitOver(lifecycle: RequestLifecycle): void {
  lifecycle.siteWaitOver();
}

function graceOver(lifecycle: RequestLifecycle): void {
  lifecycle.graceOver(Date.now());
}
