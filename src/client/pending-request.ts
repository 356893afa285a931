/**
 * One request on the requesting side, from the command to its end (protocol §4.1, §4.7):
 * the handler it went to, its acknowledgement, the time-outs, the resending after a lost
 * connection, the move to another handler. Every path ends in exactly one `onStep(final)`
 * or `fail()`. The mirror of `RunningRequest` on the serving side.
 *
 * Late is never taken for gone: a handler that does not answer within its deadline
 * (failure-detector.ts) is suspected, and the request moves once to a provider that is not,
 * or goes on waiting for it (its own time-out ends it). Only the handler's presence says it
 * is gone (protocol §7.3): `stopped`, its will (then `reconnectGrace` to come back), or
 * another instance.
 */
import { encode, type Envelope, type Priority } from '../protocol/envelope.js';
import { CancelledError, fromWire, HandlerGoneError, NoHandlerError, type NotSentError, type RelaisError, ResponseCode, TimeoutError } from '../protocol/errors.js';
import { cancelMessage, commandMessage, restampAcceptBy } from '../protocol/messages.js';
import { cancelTopic, requestTopic } from '../protocol/topics.js';
import type { AwaitingAck } from './ack-clock.js';
import type { OutboundMessage } from './transport.js';
import type { Lane, PresenceInfo, Step } from './types.js';
import type { RequestInit, RequestServices, StepSink } from './request-services.js';

/** How many handlers a request the library chose a handler for is offered to, at most (protocol §4.7). */
const MAX_OFFERS = 2;

export class PendingRequest implements AwaitingAck, OutboundMessage {
  readonly token: string;
  readonly action: string;
  readonly lane: Lane;
  readonly priority: Priority;
  readonly deadline: number;
  /** The handler the command went to; undefined when sent untargeted. */
  assignee: string | undefined;
  /** The first client that answered (what a broadcast's cancel and "handler gone" go by). */
  responder: string | undefined;
  awaitingDirectory: boolean;
  private readonly picked: boolean;
  /** The handlers it was offered to before the current one (made only when it moves). */
  private previous: Set<string> | undefined;
  private assigneeInstance: unknown;
  /** The assignee acknowledges (its presence says so): QoS 0, acceptBy, resending (protocol §4.7). */
  private acks = false;
  private accepted = false;
  /** A status query (acceptBy 0) was written: a refusal now means the handler no longer knows the command. */
  private statusAsked = false;
  private written = false;
  private finished = false;
  /** The command's wire text (its acceptBy renewed in place when needed). */
  private text = '';
  private timer: NodeJS.Timeout | undefined;
  private forgetSignal: (() => void) | undefined;
  /** The acceptance deadline the command's text carries (protocol §4.7): the current offer's, or 0 for a status query. */
  private acceptBy: number | undefined;
  /** The current handler was offered the command again (new acceptBy): a refusal before the first one passed then says nothing of its clock. */
  private offeredAgain = false;
  /** How long the current offer waits for the handler's first answer (failure-detector.ts). */
  private ackWait = 0;
  /** How many times the current handler's wait ended without an answer: each doubles the next one. */
  private misses = 0;
  /** When the current handler was first offered the command (0: not yet): its round trip is measured from there. */
  private offeredAt = 0;
  private graceTimer: NodeJS.Timeout | undefined;
  /** When the last step was made (its `ts`) and when it arrived, for the Nagle watch. */
  private lastStep: { ts: number; at: number } | undefined;
  private readonly init: RequestInit;
  /** OutboundMessage: where the command goes (targeted at the assignee, or untargeted). */
  topic = '';
  /** AckClock's times for this request. */
  ackRetryAt = Infinity;
  ackExpireAt = Infinity;
  private sendMode: 'offer' | 'retry' = 'offer';

  constructor(
    private readonly services: RequestServices,
    init: RequestInit,
    private readonly sink: StepSink,
  ) {
    this.init = init;
    this.token = init.token;
    this.action = init.action;
    this.lane = init.lane;
    this.priority = init.priority;
    this.deadline = Date.now() + init.timeout;
    this.picked = init.target === undefined;
    this.awaitingDirectory = init.awaitingDirectory;
    this.assign(this.picked ? services.pick(init.action, undefined) : init.target === '*' ? undefined : init.target);
  }

  /** Starts the clock: the time-out and the caller's signal. Then `send()`. */
  begin(): void {
    const { timeout, signal } = this.init;
    this.timer = setTimeout(timedOut, timeout, this);
    if (signal) {
      const onAbort = () => this.cancel(new CancelledError(`request to ${this.action} cancelled by the caller`, { cause: signal.reason }), 'cancelled by the requester');
      signal.addEventListener('abort', onAbort, { once: true });
      this.forgetSignal = () => signal.removeEventListener('abort', onAbort);
    }
  }

  /** The request's own time-out. Its stack is taken again where the application awaits (Bus.request, Bus.call). */
  timedOut(): void {
    this.cancel(new TimeoutError(`no final response to ${this.action} within ${this.init.timeout} ms`), 'requester time-out');
  }

  /** The command's wire text, checked (JSON, size) before anything is registered or sent. */
  encodeCommand(): void {
    if (this.acks) this.ackWait = this.services.ackDeadline(this.assignee!, this.init.ackTimeout);
    this.acceptBy = this.acks ? this.newAcceptBy() : undefined;
    const envelope: Envelope = commandMessage({
      source: this.services.options.id,
      destination: this.assignee ?? '*',
      token: this.token,
      payload: this.init.payload,
      priority: this.priority,
      deadline: this.deadline,
      ...(this.acceptBy !== undefined && { acceptBy: this.acceptBy }),
      ...(this.init.onBehalfOf !== undefined && { onBehalfOf: this.init.onBehalfOf }),
    });
    this.text = encode(envelope, { maxBytes: this.services.options.maxMessageBytes, what: () => `the request to ${this.action}` });
  }

  /** When a handler must have taken the command written now: the last quarter of the wait is for its acknowledgement to travel back. */
  private newAcceptBy(): number {
    return Math.round(Date.now() + (this.ackWait * 3) / 4);
  }

  private assign(handler: string | undefined): void {
    if (this.assignee !== undefined && handler !== this.assignee) (this.previous ??= new Set()).add(this.assignee);
    this.assignee = handler;
    this.topic = requestTopic(this.action, handler);
    const info = handler === undefined ? undefined : this.services.directory.get(handler);
    this.acks = info?.acks === true && info.status === 'alive';
    this.assigneeInstance = info?.instance;
    this.offeredAt = 0;
    this.misses = 0;
    this.offeredAgain = false;
  }

  /**
   * Writes the command (again). To a handler that acknowledges it goes at QoS 0 with an
   * `acceptBy` set when it is written, and the acknowledgement is awaited from then; half-way
   * it is written once more with the same `acceptBy` (a QoS 0 message lost in a reconnection
   * costs half a wait, not the request); once accepted it is sent again only as a
   * status query (`acceptBy` 0). protocol §4.7
   */
  send(mode: 'offer' | 'retry' = 'offer'): void {
    if (this.finished) return;
    this.sendMode = mode;
    try {
      // The request is its own outbound message (topic, body(), onWritten()...): nothing made per send.
      this.services.transport.send(this);
    } catch (error) {
      this.fail(error);
    }
  }

  /** OutboundMessage: QoS 0 to a handler that acknowledges, 1 otherwise (protocol §1.3). */
  get qos(): 0 | 1 {
    return this.acks ? 0 : 1;
  }

  /** OutboundMessage: the text, made when written, with the acceptBy the write needs. */
  body(): string {
    if (!this.acks) return this.text;
    const wanted = this.accepted ? 0 : this.sendMode === 'retry' ? this.acceptBy! : this.newAcceptBy();
    if (wanted === 0) this.statusAsked = true;
    // The text is renewed only when it carries another acceptBy: not on a first write,
    // which happens within the millisecond of its encoding.
    const current = this.acceptBy!;
    if (wanted !== current && !(wanted > 0 && current > 0 && wanted - current <= 2)) {
      this.text = restampAcceptBy(this.text, wanted);
      this.acceptBy = wanted;
    }
    return this.text;
  }

  /** OutboundMessage: never written (deadline passed offline, client closed). */
  onDropped(error: NotSentError): void {
    this.fail(error);
  }

  /** OutboundMessage: written. */
  onWritten(): void {
    this.written = true;
    // Its answers come on its lane: while that is down, nothing can come back; the lane's
    // return sends it again and starts the wait (onReconnected).
    if (this.sendMode === 'offer' && this.acks && !this.accepted && this.services.transport.connection(this.lane).connected) this.armAckTimers();
  }

  /** Half-way the command is written again, at the end the handler is suspected (AckClock). */
  private armAckTimers(): void {
    const now = Date.now();
    if (this.offeredAt === 0) this.offeredAt = now;
    this.services.ackClock.start(this, this.ackWait, now);
  }

  private clearAckTimers(): void {
    this.services.ackClock.stop(this);
  }

  /** AckClock: half-way through the wait. */
  retry(): void {
    this.send('retry');
  }

  /** AckClock: the wait for the first answer is over. */
  expire(): void {
    this.onNoAnswer();
  }

  /**
   * No first answer within the handler's deadline (protocol §4.7). A handler whose presence
   * says it is away has `reconnectGrace` to come back (onGone); one still alive is suspected:
   * the request moves once to a provider that is not, or goes on waiting for it.
   */
  private onNoAnswer(): void {
    if (this.finished || this.accepted || this.assignee === undefined) return;
    const handler = this.assignee;
    if (!this.isAlive(handler)) {
      const next = this.alternative(false);
      if (next !== undefined) this.moveTo(next, 'lost its connection before taking it');
      return;
    }
    this.services.suspect(handler, this.init.ackTimeout, this.ackWait);
    this.misses += 1;
    const next = this.alternative(true);
    if (next !== undefined) return this.moveTo(next, `did not answer within ${Math.round(this.ackWait)} ms (busy, stopped or unreachable)`);
    this.offerAgain();
  }

  /** The handler refused the command as arriving after its acceptBy (protocol §4.7): it never ran there. */
  private onRefused(envelope: Envelope, code: number): void {
    const now = Date.now();
    if (!this.offeredAgain && now < this.acceptBy!) {
      // The only acceptBy we sent it has not passed by our clock: its clock is ahead of ours.
      const next = this.alternative(false);
      if (next !== undefined) return this.moveTo(next, `refused it before its acceptance deadline (check that the clocks agree): ${envelope.error?.message ?? 'refused'}`);
      return this.fail(fromWire(envelope.error, code, envelope.source, envelope.payload));
    }
    if (now < this.acceptBy!) {
      this.services.options.logger.debug({ action: this.action, token: this.token, handler: envelope.source }, 'an earlier copy of the request was refused as late; a later one may still be taken');
      return;
    }
    // Alive but slow: the time it took teaches its deadline, and it is offered again.
    if (this.offeredAt !== 0) this.services.answered(envelope.source, now - this.offeredAt);
    const next = this.alternative(true);
    if (next !== undefined) return this.moveTo(next, `took it after its acceptance deadline: ${envelope.error?.message ?? 'refused'}`);
    this.offerAgain();
  }

  /**
   * Another provider for a request the library chose the handler of, not offered it yet, while
   * it has been offered to fewer than MAX_OFFERS; one that is not suspected when `unsuspectedOnly`.
   */
  private alternative(unsuspectedOnly: boolean): string | undefined {
    if (!this.picked || 1 + (this.previous?.size ?? 0) >= MAX_OFFERS) return undefined;
    return this.services.pick(this.action, new Set(this.previous).add(this.assignee!), unsuspectedOnly);
  }

  /** Offers the command to `next` instead (same token, a new acceptBy). */
  private moveTo(next: string, why: string): void {
    const from = this.assignee;
    this.services.options.logger.info({ action: this.action, token: this.token, from, to: next }, `request sent to another handler: ${from} ${why}`);
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.assign(next);
    try {
      this.encodeCommand();
    } catch (error) {
      return this.fail(error);
    }
    this.send();
  }

  /** The same handler is offered the command again with a new acceptBy, and its (longer) deadline to answer. */
  private offerAgain(): void {
    this.offeredAgain = true;
    this.ackWait = this.services.ackDeadline(this.assignee!, this.init.ackTimeout, this.misses);
    this.services.options.logger.debug({ action: this.action, token: this.token, handler: this.assignee, waitMs: Math.round(this.ackWait) }, 'request offered again to its handler');
    this.send();
  }

  /** The handler, by its presence: alive, and the instance the command was offered to. */
  private isAlive(handler: string): boolean {
    const info = this.services.directory.get(handler);
    return info?.status === 'alive' && (this.assigneeInstance === undefined || info.instance === this.assigneeInstance);
  }

  /** A response with our token arrived on our response topic. protocol §4.3 */
  onResponse(envelope: Envelope): void {
    if (this.finished) return;
    const source = envelope.source;
    // Only the handler the command went to answers it; another one is late, or forged.
    if (this.assignee !== undefined && source !== this.assignee) {
      this.services.options.logger.debug({ token: this.token, source, assignee: this.assignee }, 'response from another client than the one the request went to; ignored');
      return;
    }
    const code = envelope.code ?? ResponseCode.OK;
    if (envelope.final !== false && code !== ResponseCode.OK && envelope.accepted === false && this.acks) {
      // It did not run it: it came after its acceptance deadline, or, asked after a lost
      // connection, it no longer knows the command (restarted, or forgot it; protocol §4.7).
      if (!this.accepted) return this.onRefused(envelope, code);
      if (this.statusAsked) return this.fail(new HandlerGoneError(`handler ${source} of ${this.action} no longer knows the request (restarted, or forgot it): ${envelope.error?.message ?? 'refused'}`));
      this.services.options.logger.debug({ action: this.action, token: this.token, handler: source }, 'a copy of the request refused after it was taken; ignored');
      return;
    }
    this.heardFrom(source);
    if (envelope.ts !== undefined && (this.lastStep !== undefined || envelope.final === false)) {
      // Only answers in several steps are watched (an answer in one message costs nothing).
      const step = { ts: envelope.ts, at: Date.now() };
      if (this.lastStep) this.services.steps(this.lastStep, step);
      this.lastStep = step;
    }
    if (envelope.final === false) {
      const step: Step = envelope.accepted === true
        ? { kind: 'accepted', source, token: this.token }
        : { kind: 'progress', payload: envelope.payload, source, token: this.token };
      if (envelope.progress !== undefined) step.progress = envelope.progress;
      this.sink.onStep(step);
    } else if (code === ResponseCode.OK) {
      this.end();
      if (this.sink.onResult) this.sink.onResult(envelope.payload);
      else this.sink.onStep({ kind: 'final', payload: envelope.payload, code, source, token: this.token });
    } else {
      this.fail(fromWire(envelope.error, code, source, envelope.payload));
    }
  }

  private heardFrom(source: string): void {
    this.responder ??= source;
    if (this.assignee === undefined) return;
    // Its first answer: the round trip that teaches its deadline (and lifts a suspicion).
    if (!this.accepted && this.offeredAt !== 0) this.services.answered(source, Date.now() - this.offeredAt);
    this.accepted = true;
    this.clearAckTimers();
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
  }

  /** `clientId` is alive again (or anew): if it is our handler coming back, ask what became of the command. */
  onBack(clientId: string, info: PresenceInfo): void {
    if (this.finished || clientId !== this.assignee) return;
    if (this.assigneeInstance !== undefined && info.instance !== this.assigneeInstance) {
      // Another instance: what the one we offered it to had taken is lost with it.
      const next = this.accepted ? undefined : this.alternative(false);
      if (next !== undefined) return this.moveTo(next, 'restarted before taking it');
      return this.fail(new HandlerGoneError(`handler ${clientId} of ${this.action} restarted before answering`));
    }
    if (this.graceTimer === undefined) return;
    this.reoffer();
  }

  /** `clientId` left `alive` (stopped, dead, or forgotten when `info` is undefined). protocol §7.3 */
  onGone(clientId: string, info: PresenceInfo | undefined): void {
    if (this.finished) return;
    const handler = this.assignee ?? this.responder;
    if (handler === undefined) {
      // Sent untargeted to nobody known: it fails when no provider is left.
      if (!this.awaitingDirectory && this.services.directory.providers(this.action).size === 0) {
        this.fail(new HandlerGoneError(`handler ${clientId} of ${this.action} disconnected before answering`));
      }
      return;
    }
    if (clientId !== handler) return;
    if (!this.acks || info?.status === 'stopped') {
      // A handler that left cleanly answered what it had taken; one that does not acknowledge cannot be asked again.
      const next = this.acks && !this.accepted ? this.alternative(false) : undefined;
      if (next !== undefined) return this.moveTo(next, 'stopped before taking it');
      return this.fail(new HandlerGoneError(`handler ${clientId} of ${this.action} ${info?.status === 'stopped' ? 'stopped' : 'disconnected'} before answering`));
    }
    // Dead or forgotten: its connection may come back, within `reconnectGrace`. Before it took
    // the command, the end of its deadline moves it to another provider if there is one.
    const grace = this.services.options.reconnectGrace;
    this.awaitReturn(this.accepted ? `lost its connection and did not come back within ${grace} ms` : `lost its connection before taking the request and did not come back within ${grace} ms`);
  }

  /** Our connection for this request dropped: the acknowledgement timer waits for it to return. */
  onDisconnected(): void {
    this.clearAckTimers();
  }

  /** Our connection is back: what may have been lost is sent again (protocol §4.7). */
  onReconnected(): void {
    if (this.finished || !this.written || !this.acks) return;
    if (this.accepted) this.awaitReturn(`did not answer within ${this.services.options.reconnectGrace} ms after the connection came back`);
    this.reoffer();
  }

  /**
   * After a lost connection (ours or the handler's): a status query when it had taken the
   * command, else a new offer; its round trip is measured afresh, the outage is not its latency.
   */
  private reoffer(): void {
    if (!this.accepted) {
      this.offeredAgain = true;
      this.offeredAt = 0;
      this.misses = 0;
      this.ackWait = this.services.ackDeadline(this.assignee!, this.init.ackTimeout);
    }
    this.send();
  }

  private awaitReturn(why: string): void {
    if (this.graceTimer !== undefined) return;
    this.graceTimer = setTimeout(() => this.fail(new HandlerGoneError(`handler ${this.assignee} of ${this.action} ${why}`)), this.services.options.reconnectGrace);
  }

  /** The directory has settled: a request sent while it loaded learns whether anyone serves it. */
  onDirectorySettled(missing: () => NoHandlerError | undefined): void {
    if (!this.awaitingDirectory) return;
    this.awaitingDirectory = false;
    if (this.responder !== undefined) return;
    const error = missing();
    if (error) this.cancel(error, 'no handler');
  }

  /** Fails the request and tells the handler to stop. protocol §4.4 */
  cancel(error: RelaisError, reason: string): void {
    if (this.finished) return;
    const envelope = cancelMessage({ source: this.services.options.id, destination: this.responder ?? this.assignee ?? '*', token: this.token, reason, priority: this.priority });
    try {
      this.services.transport.send({ topic: cancelTopic(this.action), body: encode(envelope), qos: 1, priority: this.priority, deadline: Date.now() + 5000 });
    } catch {
      // Offline or closed: the handler's own deadline will stop it.
    }
    this.fail(error);
  }

  fail(error: unknown): void {
    if (this.finished) return;
    this.end();
    this.sink.fail(error);
  }

  private end(): void {
    this.finished = true;
    clearTimeout(this.timer);
    this.forgetSignal?.();
    this.clearAckTimers();
    clearTimeout(this.graceTimer);
    this.services.ended(this);
  }
}

function timedOut(request: PendingRequest): void {
  request.timedOut();
}
