/**
 * One request on the requesting side, from the command to its end (protocol §4.1, §4.7):
 * the handler it went to, its acknowledgement, the time-outs, the resending after a lost
 * connection, the move to another handler. Every path ends in exactly one `onStep(final)`
 * or `fail()`. The mirror of `RunningRequest` on the serving side.
 */
import { encode, type Envelope, type Priority } from '../protocol/envelope.js';
import { CancelledError, fromWire, HandlerGoneError, NoHandlerError, type NotSentError, type RelaisError, ResponseCode, TimeoutError } from '../protocol/errors.js';
import { cancelMessage, commandMessage, restampAcceptBy } from '../protocol/messages.js';
import { cancelTopic, requestTopic } from '../protocol/topics.js';
import type { AwaitingAck } from './ack-clock.js';
import type { OutboundMessage } from './transport.js';
import type { Lane, PresenceInfo, Step } from './types.js';
import type { RequestInit, RequestServices, StepSink } from './request-services.js';

/** How many handlers an untargeted request is offered to, at most (protocol §4.7). */
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
  private written = false;
  private finished = false;
  /** The command's wire text (its acceptBy renewed in place when needed). */
  private text = '';
  private timer: NodeJS.Timeout | undefined;
  private forgetSignal: (() => void) | undefined;
  /** The acceptance deadline the command's text carries (protocol §4.7): the current offer's, or 0 for a status query. */
  private acceptBy: number | undefined;
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

  /** When a handler must have taken the command written now: leaves room for its acknowledgement to travel back. */
  private newAcceptBy(): number {
    const { ackTimeout } = this.init;
    return Date.now() + ackTimeout - Math.min(ackTimeout / 4, 250);
  }

  private assign(handler: string | undefined): void {
    if (this.assignee !== undefined && handler !== this.assignee) (this.previous ??= new Set()).add(this.assignee);
    this.assignee = handler;
    this.topic = requestTopic(this.action, handler);
    const info = handler === undefined ? undefined : this.services.directory.get(handler);
    this.acks = info?.acks === true && info.status === 'alive';
    this.assigneeInstance = info?.instance;
  }

  /**
   * Writes the command (again). To a handler that acknowledges it goes at QoS 0 with an
   * `acceptBy` set when it is written, and the acknowledgement is awaited from then; half-way
   * it is written once more with the same `acceptBy` (a QoS 0 message lost in a reconnection
   * costs half an ack time-out, not the request); once accepted it is sent again only as a
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

  /** Half-way the command is written again, at the end the handler is taken as gone (AckClock). */
  private armAckTimers(): void {
    this.services.ackClock.start(this, this.init.ackTimeout);
  }

  private clearAckTimers(): void {
    this.services.ackClock.stop(this);
  }

  /** AckClock: half-way through the ack time-out. */
  retry(): void {
    this.send('retry');
  }

  /** AckClock: the ack time-out is over. */
  expire(): void {
    this.onNoAcknowledgement();
  }

  /** No acknowledgement in time: the handler is treated as gone (protocol §4.7). */
  private onNoAcknowledgement(): void {
    if (this.finished || this.accepted || this.assignee === undefined) return;
    this.services.suspect(this.assignee);
    this.moveOn(`did not acknowledge within ${this.init.ackTimeout} ms (stopped, overloaded or unreachable)`);
  }

  /** The assignee will not run it: offer it to another provider when the library chose it, else fail. */
  private moveOn(why: string): void {
    const gone = this.assignee;
    const offers = 1 + (this.previous?.size ?? 0);
    const offered = new Set(this.previous).add(gone!);
    const next = this.picked && offers < MAX_OFFERS ? this.services.pick(this.action, offered) : undefined;
    if (next === undefined) {
      const elsewhere = this.picked && offers < MAX_OFFERS ? '; no other client serves it' : '';
      return this.fail(new HandlerGoneError(`handler ${gone} of ${this.action} ${why}${elsewhere}`));
    }
    this.services.options.logger.info({ action: this.action, token: this.token, from: gone, to: next }, `request sent to another handler: ${gone} ${why}`);
    this.assign(next);
    try {
      this.encodeCommand();
    } catch (error) {
      return this.fail(error);
    }
    this.send();
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
    if (envelope.final !== false && code !== ResponseCode.OK && envelope.accepted === false && !this.accepted && this.acks) {
      // It refused to run it (it came after its acceptance deadline): never ran there.
      return this.moveOn(`did not take it in time: ${envelope.error?.message ?? 'refused'}`);
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
    this.accepted = true;
    this.clearAckTimers();
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.services.cleared(source);
  }

  /** `clientId` is alive again (or anew): if it is our handler coming back, ask what became of the command. */
  onBack(clientId: string, info: PresenceInfo): void {
    if (this.finished || clientId !== this.assignee || this.graceTimer === undefined) return;
    if (this.assigneeInstance !== undefined && info.instance !== this.assigneeInstance) {
      return this.fail(new HandlerGoneError(`handler ${clientId} of ${this.action} restarted before answering`));
    }
    this.send();
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
      if (this.acks && !this.accepted && this.picked) return this.moveOn('stopped before taking it');
      return this.fail(new HandlerGoneError(`handler ${clientId} of ${this.action} disconnected before answering`));
    }
    // Dead or forgotten: its connection may come back. Before acceptance the acknowledgement
    // timer decides; after, it has `reconnectGrace` to return and answer.
    if (this.accepted) this.awaitReturn(`lost its connection and did not come back within ${this.services.options.reconnectGrace} ms`);
  }

  /** Our connection for this request dropped: the acknowledgement timer waits for it to return. */
  onDisconnected(): void {
    this.clearAckTimers();
  }

  /** Our connection is back: what may have been lost is sent again (protocol §4.7). */
  onReconnected(): void {
    if (this.finished || !this.written || !this.acks) return;
    if (this.accepted) this.awaitReturn(`did not answer within ${this.services.options.reconnectGrace} ms after the connection came back`);
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
