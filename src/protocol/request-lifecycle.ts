/**
 * The life of one request on the requesting side, from the command to its end (protocol §4.1,
 * §4.3–§4.7, §7.3), as a state machine: events in (the method calls: written, a response, a
 * timer that fired, a presence that changed, the directory settled, a cancel…), effects out
 * (the `RequestEffects` it is given: write the command, wait for an answer, yield a step,
 * settle, send a cancel, suspect a handler). It reads the world around it through
 * `RequestWorld` (who is there, which provider to pick, how long to wait for one) and is told
 * the time with each event: no timer, no socket, no clock, nothing Node-specific. The Node
 * client's `PendingRequest` is a thin shell around it; so can be any other runtime's.
 *
 * Every request ends exactly once (one `succeeded` or `failed`), yields each handler's
 * `accepted` step once, and is moved to another handler once at most, and never after it was
 * taken. Late is never taken for gone: a handler that does not answer within its wait is
 * suspected, and the request moves once to a provider that is not, or goes on waiting for it
 * (its own time-out ends it). Only the handler's presence says it is gone (protocol §7.3):
 * `stopped`, its will (then `reconnectGrace` to come back), or another instance.
 */
import { encodeMessage, type Envelope, type Priority } from './envelope.js';
import type { WireBody } from './framing.js';
import { fromWire, HandlerGoneError, NoHandlerError, type RelaisError, ResponseCode, type SiteUnreachableError, TimeoutError } from './errors.js';
import { commandMessage, restampAcceptBy } from './messages.js';
import type { PresenceInfo } from './presence.js';
import { requestTopic } from './topics.js';

/** Which MQTT connection of a client carries a subscription or a message (protocol §6.2). */
export type Lane = 'main' | 'realtime';

/**
 * One step of a streamed call: `accepted` (the handler `source` took the command; protocol
 * §4.7), then progress responses, then the final one.
 */
export type Step =
  | { kind: 'accepted'; progress?: number; source: string; token: string }
  | { kind: 'progress'; progress?: number; payload: unknown; source: string; token: string }
  | { kind: 'final'; payload: unknown; code: number; source: string; token: string };

/** How many handlers a request the library chose a handler for is offered to, at most (protocol §4.7). */
export const MAX_OFFERS = 2;

/** What a request is, checked (protocol §4.1). */
export interface RequestPlan {
  action: string;
  payload: unknown;
  token: string;
  priority: Priority;
  /** The lane of its priority: its answers come on that connection (protocol §6.2). */
  lane: Lane;
  /** The effective time-out, ms (protocol §4.5). */
  timeout: number;
  ackTimeout: number;
  /** An id, `*` for every provider, or undefined to let the library pick one (protocol §4.6). */
  target: string | undefined;
  /** Fail fast when the directory knows nobody who serves it (protocol §7.3). */
  checkHandlers: boolean;
  onBehalfOf?: string | undefined;
  /**
   * How long (ms, within `timeout`) a request whose handler is on a site whose link is down
   * waits for the link to come back before it fails with SiteUnreachableError (protocol §13.4).
   * 0 or absent: it fails at once.
   */
  waitForSite?: number | undefined;
  /**
   * Seals the command's payload (protocol §3.6), called at each encoding: a command moved to
   * another handler is sealed again for it. Throws what makes it impossible (no key).
   */
  seal?: ((command: Envelope) => Envelope) | undefined;
}

/** What the request reads of the requester around it. Queries only: nothing here has an effect. */
export interface RequestWorld {
  /** This client's id: the command's `source`. */
  readonly self: string;
  readonly maxMessageBytes: number;
  /** How long a handler whose connection was lost has to come back (protocol §4.7). */
  readonly reconnectGrace: number;
  /** Whether the directory has settled (protocol §7.2): "nobody serves it" is then trusted. */
  readonly directorySettled: boolean;
  /** The presence the directory holds for `handler`. */
  presence(handler: string): PresenceInfo | undefined;
  /** Whether some alive client announces `action`. */
  hasProvider(action: string): boolean;
  /** Why nobody takes a command for `action` (at `target`), or undefined when someone does (protocol §7.3). */
  missing(action: string, target: string | undefined): NoHandlerError | undefined;
  /** The provider of `action` to offer it to, outside `exclude`; a suspected one only when `unsuspectedOnly` is not set and nobody else is left (protocol §4.6). */
  pick(action: string, exclude: ReadonlySet<string> | undefined, unsuspectedOnly?: boolean): string | undefined;
  /** How long to wait for `handler`'s first answer to a command written now, after `misses` waits in vain (protocol §4.7). */
  ackDeadline(handler: string, ackTimeout: number, misses?: number): number;
  /**
   * Why `handler` cannot be reached now: it is a client of a site whose link is down
   * (SiteUnreachableError, protocol §13.4); undefined when it can, or when sites are unknown.
   */
  unreachable?(handler: string): SiteUnreachableError | undefined;
}

/** What the request asks of its shell. Each is an effect; none calls back into the request. */
export interface RequestEffects {
  /** Arm the request's own time-out: `timedOut()` in `ms`. */
  armDeadline(ms: number): void;
  /**
   * Hand the command to the transport (again); its text is `commandText(now)` when it is
   * written, then `written()`. Throws (`NotSentError`) when it cannot be handed over: the
   * request fails with that error.
   */
  write(): void;
  /** Wait `wait` ms from `now` for the handler's first answer: `ackHalfway()` half-way, `ackExpired()` at the end. */
  awaitAnswer(wait: number, now: number): void;
  stopAwaitingAnswer(): void;
  /** The request's wait for a site's link to come back (`waitForSite`) ends in `ms`: `siteWaitOver()` then (protocol §13.4). */
  armSiteWait?(ms: number): void;
  /** The handler has `ms` to come back (protocol §4.7): `graceOver()` then. */
  armGrace(ms: number): void;
  clearGrace(): void;
  /** Publish a cancel for the command (protocol §4.4); best effort. */
  sendCancel(destination: string, reason: string): void;
  /** Yield a step that is not the final one. */
  step(step: Step): void;
  /** The request ended with its final success. */
  succeeded(payload: unknown, code: number, source: string): void;
  /** The request ended with an error. */
  failed(error: unknown): void;
  /** `handler` gave no first answer within `waited` ms: it is suspected (protocol §4.7). */
  suspect(handler: string, waited: number): void;
  /** `handler` gave its first answer `rtt` ms after the command was first written to it. */
  answered(handler: string, rtt: number): void;
  log(level: 'debug' | 'info', fields: Record<string, unknown>, message: string): void;
}

/** The fields of a response the lifecycle reads (protocol §4.3). */
export type ResponseFields = Pick<Envelope, 'source' | 'final' | 'code' | 'accepted' | 'payload' | 'progress' | 'error'>;

export class RequestLifecycle {
  readonly token: string;
  readonly action: string;
  readonly lane: Lane;
  readonly priority: Priority;
  /** Epoch ms after which nobody waits for it (protocol §4.5). */
  readonly deadline: number;
  /** Where the command goes: targeted at the assignee, or untargeted. */
  topic = '';
  private assigneeId: string | undefined;
  /** The first client that answered (what a broadcast's cancel and "handler gone" go by). */
  private responder: string | undefined;
  /** Sent to a target the directory did not know yet: judged once it settles (protocol §7.2). */
  private awaitingDirectory = false;
  /** Picked by the library with no provider known while the directory settles: nothing sent yet (protocol §4.6). */
  private waitingForProvider = false;
  /**
   * Its handler is on a site whose link is down and it has `waitForSite`: nothing sent yet,
   * it goes once the link is up (protocol §13.4). The error it fails with if not.
   */
  private siteBlocked: SiteUnreachableError | undefined;
  /** The response subscription is in place: the command may be written. */
  private ready = false;
  private readonly picked: boolean;
  /** The handlers it was offered to before the current one (made only when it moves). */
  private previous: Set<string> | undefined;
  private assigneeInstance: unknown;
  /**
   * Written to a target the directory did not know yet (protocol §7.2): at QoS 1, without
   * acknowledgements, and perhaps before the target subscribed. Offered again once its presence
   * comes, if it acknowledges (its memory of tokens, §4.8, makes a second copy harmless).
   */
  private sentBlind = false;
  /** The assignee acknowledges (its presence says so): QoS 0, acceptBy, resending (protocol §4.7). */
  private acks = false;
  private accepted = false;
  /** Handlers whose `accepted` step was yielded: a repeated acknowledgement says nothing new (protocol §4.8). */
  private acceptedBy: Set<string> | undefined;
  /** A status query (acceptBy 0) was written: a refusal now means the handler no longer knows the command. */
  private statusAsked = false;
  /** Handed to the transport at least once: a handler may have it. */
  private handed = false;
  private written = false;
  private finished = false;
  /** The command's wire text (its acceptBy renewed in place when needed). */
  private text: WireBody = '';
  /** The acceptance deadline the text carries (protocol §4.7): the current offer's, or 0 for a status query. */
  private acceptBy: number | undefined;
  /** The current handler was offered the command again (new acceptBy): a refusal before the first one passed then says nothing of its clock. */
  private offeredAgain = false;
  /** How long the current offer waits for the handler's first answer. */
  private ackWait = 0;
  /** How many times the current handler's wait ended without an answer: each doubles the next one. */
  private misses = 0;
  /** When the current handler was first offered the command (0: not yet): its round trip is measured from there. */
  private offeredAt = 0;
  /** Why the request fails if its handler's `reconnectGrace` passes; undefined while that wait is off. */
  private graceReason: string | undefined;
  private mode: 'offer' | 'retry' = 'offer';

  /**
   * The request, its handler chosen and its command encoded. Throws what makes it impossible,
   * before anything is sent: `NoHandlerError` when the settled directory knows nobody who takes
   * it (with `checkHandlers`), `TypeError` or `PayloadTooLargeError` for its payload.
   */
  constructor(
    private readonly plan: RequestPlan,
    private readonly world: RequestWorld,
    private readonly effects: RequestEffects,
    now: number,
  ) {
    this.token = plan.token;
    this.action = plan.action;
    this.lane = plan.lane;
    this.priority = plan.priority;
    this.deadline = now + plan.timeout;
    this.picked = plan.target === undefined;
    this.assign(this.picked ? world.pick(plan.action, undefined) : plan.target === '*' ? undefined : plan.target);
    // A handler on a site whose link is down cannot get it (handler choice picks one only when every provider is): protocol §13.4.
    const unreachable = this.assigneeId === undefined ? undefined : world.unreachable?.(this.assigneeId);
    if (unreachable) {
      if (!((plan.waitForSite ?? 0) > 0)) throw unreachable;
      this.siteBlocked = unreachable;
    } else if (this.picked && this.assigneeId === undefined && !world.directorySettled) {
      // Sent untargeted, it would run on every handler (protocol §4.6): it waits for one to be known.
      this.waitingForProvider = true;
    } else if (plan.checkHandlers) {
      const missing = world.missing(plan.action, this.assigneeId);
      // Once settled the directory is trusted; while it loads a targeted command goes anyway, judged at settle time.
      if (missing && world.directorySettled) throw missing;
      this.awaitingDirectory = missing !== undefined;
    }
    this.encode(now);
  }

  /** The handler the command went to; undefined when sent untargeted, or not sent yet. */
  get assignee(): string | undefined {
    return this.assigneeId;
  }

  get ended(): boolean {
    return this.finished;
  }

  /** Event: the request is registered; its own time-out starts. */
  start(): void {
    this.effects.armDeadline(this.plan.timeout);
    if (!this.siteBlocked) return;
    const siteWait = this.plan.waitForSite ?? 0;
    if (siteWait < this.plan.timeout) this.effects.armSiteWait?.(siteWait);
    this.effects.log('info', { action: this.action, token: this.token, handler: this.assigneeId, waitMs: Math.min(siteWait, this.plan.timeout) }, `request waits for its handler's site to come back: ${this.siteBlocked.message}`);
  }

  /** Event: the response subscription is in place (protocol §4.1 step 5): the command can go. */
  subscribed(): void {
    if (this.finished || this.ready) return;
    this.ready = true;
    if (!this.waitingForProvider && !this.siteBlocked) this.send('offer');
  }

  /**
   * The command's text for a write at `now`. To a handler that acknowledges, a first offer
   * carries `acceptBy` = now + ¾ of its wait; a retry half-way, the same `acceptBy`; once
   * taken, `acceptBy` 0, a status query (protocol §4.7).
   */
  commandText(now: number): WireBody {
    if (!this.acks) return this.text;
    const wanted = this.accepted ? 0 : this.mode === 'retry' ? this.acceptBy! : this.acceptByFrom(now);
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

  /** QoS 0 to a handler that acknowledges, 1 otherwise (protocol §1.3). */
  get qos(): 0 | 1 {
    return this.acks ? 0 : 1;
  }

  /**
   * Event: the command was written to a connection. Its answers come on its lane: while that is
   * down nothing can come back, so the wait for an answer starts only with the lane up (its
   * return sends it again and starts the wait, `reconnected()`).
   */
  wasWritten(now: number, laneUp: boolean): void {
    this.written = true;
    if (this.mode === 'offer' && this.acks && !this.accepted && laneUp) {
      if (this.offeredAt === 0) this.offeredAt = now;
      this.effects.awaitAnswer(this.ackWait, now);
    }
  }

  /** Event: half-way through the wait, the command is written once more (a QoS 0 copy may be lost, protocol §4.7). */
  ackHalfway(): void {
    this.send('retry');
  }

  /**
   * Event: no first answer within the handler's wait (protocol §4.7). A handler whose presence
   * says it is away has `reconnectGrace` to come back (`presenceGone`); one still alive is
   * suspected: the request moves once to a provider that is not, or goes on waiting for it.
   */
  ackExpired(now: number): void {
    if (this.finished || this.accepted || this.assigneeId === undefined) return;
    const handler = this.assigneeId;
    if (!this.isAlive(handler)) {
      // Its connection was lost (its will): it may have taken the command just before, its
      // acknowledgement lost with the connection. Its return within `reconnectGrace` says
      // (asked again, §4.8), or the end of that wait moves the command: not its silence here.
      if (this.graceReason !== undefined) return;
      const next = this.alternative(false);
      if (next !== undefined) this.moveTo(next, 'lost its connection before taking it', now);
      return;
    }
    this.effects.suspect(handler, this.ackWait);
    this.misses += 1;
    const next = this.alternative(true);
    if (next !== undefined) return this.moveTo(next, `did not answer within ${Math.round(this.ackWait)} ms (busy, stopped or unreachable)`, now);
    this.offerAgain(now);
  }

  /**
   * Event: a response with our token arrived on `lane` (protocol §4.3). Returns whether it was
   * taken as a step of this request. A copy on the client's other connection (both subscribed
   * to the action's responses, protocol §6.2) is not: the answers of a command come on its lane.
   */
  response(envelope: ResponseFields, lane: Lane, now: number): boolean {
    // Before the command was handed over nobody can answer it: an earlier request's token, or forged.
    if (this.finished || lane !== this.lane || !this.handed) return false;
    const source = envelope.source;
    // Only the handler the command went to answers it; another one is late, or forged.
    if (this.assigneeId !== undefined && source !== this.assigneeId) {
      this.effects.log('debug', { token: this.token, source, assignee: this.assigneeId }, 'response from another client than the one the request went to; ignored');
      return false;
    }
    const code = envelope.code ?? ResponseCode.OK;
    if (envelope.final !== false && code !== ResponseCode.OK && envelope.accepted === false && this.acks) {
      // It did not run it: it came after its acceptance deadline, or, asked after a lost
      // connection, it no longer knows the command (restarted, or forgot it; protocol §4.7).
      if (!this.accepted) this.refused(envelope, code, now);
      else if (this.statusAsked) this.fail(new HandlerGoneError(`handler ${source} of ${this.action} no longer knows the request (restarted, or forgot it): ${envelope.error?.message ?? 'refused'}`));
      else this.effects.log('debug', { action: this.action, token: this.token, handler: source }, 'a copy of the request refused after it was taken; ignored');
      return false;
    }
    this.heardFrom(source, now);
    if (envelope.final === false) {
      if (envelope.accepted === true) {
        // A repeated acknowledgement (the answer to a command written again, protocol §4.8) says nothing new.
        if (this.acceptedBy?.has(source)) return true;
        (this.acceptedBy ??= new Set()).add(source);
        const step: Step = { kind: 'accepted', source, token: this.token };
        if (envelope.progress !== undefined) step.progress = envelope.progress;
        this.effects.step(step);
      } else {
        const step: Step = { kind: 'progress', payload: envelope.payload, source, token: this.token };
        if (envelope.progress !== undefined) step.progress = envelope.progress;
        this.effects.step(step);
      }
    } else if (code === ResponseCode.OK) {
      this.finished = true;
      this.effects.succeeded(envelope.payload, code, source);
    } else {
      this.fail(fromWire(envelope.error, code, source, envelope.payload));
    }
    return true;
  }

  /** Event: `clientId` is alive again (or anew), or appeared. */
  presenceBack(clientId: string, info: PresenceInfo, now: number): void {
    if (this.finished) return;
    // Another provider, not on a down site, may take a request the library chose the handler of.
    if (this.siteBlocked) return this.picked ? this.sitesChanged(now) : undefined;
    if (this.waitingForProvider) {
      const next = this.world.pick(this.action, undefined);
      if (next !== undefined) this.offerFirst(next, now);
      return;
    }
    if (clientId !== this.assigneeId) return;
    if (this.sentBlind) {
      // The target appears: the copy sent before may have reached nobody (it was not subscribed yet), and nothing would send it again.
      if (info.acks !== true || this.responder !== undefined || this.accepted) {
        this.sentBlind = false;
        return;
      }
      // Once it announces the action: it subscribes before it announces (protocol §7.4).
      if (this.world.missing(this.action, clientId) !== undefined) return;
      this.sentBlind = false;
      this.effects.log('debug', { action: this.action, token: this.token, handler: clientId }, 'request offered again to its target, unknown when it was sent');
      // Not written yet (its response subscription on its way): send() waits for it, and that first write takes the new text.
      return this.offerFirst(clientId, now);
    }
    if (this.assigneeInstance !== undefined && info.instance !== this.assigneeInstance) {
      // Another instance: what the one we offered it to had taken is lost with it.
      const next = this.accepted ? undefined : this.alternative(false);
      if (next !== undefined) return this.moveTo(next, 'restarted before taking it', now);
      return this.fail(new HandlerGoneError(`handler ${clientId} of ${this.action} restarted before answering`));
    }
    // Our handler back from a lost connection: ask what became of the command.
    if (this.graceReason !== undefined) this.reoffer();
  }

  /** Event: `clientId` left `alive` (stopped, dead, or forgotten when `info` is undefined). protocol §7.3 */
  presenceGone(clientId: string, info: PresenceInfo | undefined, now: number): void {
    if (this.finished || this.waitingForProvider || this.siteBlocked) return;
    const handler = this.assigneeId ?? this.responder;
    if (handler === undefined) {
      // Sent untargeted to nobody known: it fails when no provider is left.
      if (!this.awaitingDirectory && !this.world.hasProvider(this.action)) {
        this.fail(new HandlerGoneError(`handler ${clientId} of ${this.action} disconnected before answering`));
      }
      return;
    }
    if (clientId !== handler) return;
    if (!this.acks || info?.status === 'stopped') {
      // A handler that left cleanly answered what it had taken; one that does not acknowledge cannot be asked again.
      const next = this.acks && !this.accepted ? this.alternative(false) : undefined;
      if (next !== undefined) return this.moveTo(next, 'stopped before taking it', now);
      return this.fail(new HandlerGoneError(`handler ${clientId} of ${this.action} ${info?.status === 'stopped' ? 'stopped' : 'disconnected'} before answering`));
    }
    // Dead or forgotten: its connection may come back, within `reconnectGrace`. Before it took
    // the command, the end of its wait moves it to another provider if there is one.
    const grace = this.world.reconnectGrace;
    this.awaitReturn(this.accepted ? `lost its connection and did not come back within ${grace} ms` : `lost its connection before taking the request and did not come back within ${grace} ms`);
  }

  /** Event: the handler's `reconnectGrace` passed without its return: moved if it had not taken it and another can, else `HandlerGoneError`. */
  graceOver(now: number): void {
    if (this.finished || this.graceReason === undefined) return;
    const next = this.accepted ? undefined : this.alternative(false);
    if (next !== undefined) return this.moveTo(next, this.graceReason, now);
    this.fail(new HandlerGoneError(`handler ${this.assigneeId} of ${this.action} ${this.graceReason}`));
  }

  /** Event: our connection for this request dropped: nothing can come back, the wait for an answer is off. */
  disconnected(): void {
    this.effects.stopAwaitingAnswer();
  }

  /** Event: our connection is back and its response subscription made again: what may have been lost is sent again (protocol §4.7). */
  reconnected(): void {
    if (this.finished || !this.written || !this.acks) return;
    if (this.accepted) this.awaitReturn(`did not answer within ${this.world.reconnectGrace} ms after the connection came back`);
    this.reoffer();
  }

  /** Event: the directory has settled (protocol §7.2). */
  directorySettled(now: number): void {
    if (this.finished || this.siteBlocked) return;
    if (this.waitingForProvider) {
      const next = this.world.pick(this.action, undefined);
      if (next !== undefined) return this.offerFirst(next, now);
      if (this.plan.checkHandlers) return this.fail(this.world.missing(this.action, undefined) ?? new NoHandlerError(`no connected client serves ${this.action}`));
      // Peers that publish no presence (checkHandlers: false) are reached untargeted (protocol §4.6).
      this.waitingForProvider = false;
      if (this.ready) this.send('offer');
      return;
    }
    if (!this.awaitingDirectory) return;
    this.awaitingDirectory = false;
    if (this.responder !== undefined) return;
    const error = this.plan.checkHandlers ? this.world.missing(this.action, this.assigneeId) : undefined;
    if (error) this.cancel(error, 'no handler');
  }

  /**
   * Event: a site's link status or roster changed (protocol §13.4). A request waiting for its
   * handler's site goes once that site's link is up, or, when the library chose its handler,
   * to a provider that can be reached.
   */
  sitesChanged(now: number): void {
    if (this.finished || !this.siteBlocked) return;
    const next = this.picked ? this.world.pick(this.action, undefined) : this.assigneeId;
    if (next === undefined) return;
    const unreachable = this.world.unreachable?.(next);
    if (unreachable) {
      this.siteBlocked = unreachable;
      return;
    }
    this.siteBlocked = undefined;
    const missing = this.plan.checkHandlers && this.world.directorySettled ? this.world.missing(this.action, next) : undefined;
    if (missing) return this.fail(missing);
    // The handler it waited for was never offered it: it does not count among the offers (MAX_OFFERS).
    this.assigneeId = undefined;
    this.offerFirst(next, now);
  }

  /** Event: the request's `waitForSite` passed with its handler's site still down: it fails, nothing was sent. */
  siteWaitOver(): void {
    if (this.finished || !this.siteBlocked) return;
    this.fail(this.siteBlocked);
  }

  /** Event: the request's own time-out fired (protocol §4.5). */
  timedOut(): void {
    if (this.finished) return;
    // Its whole time-out spent waiting for a site: the site is why (waitForSite is never beyond the time-out).
    if (this.siteBlocked) return this.fail(this.siteBlocked);
    const why = this.waitingForProvider ? `no handler of ${this.action} appeared within ${this.plan.timeout} ms; nothing was sent` : `no final response to ${this.action} within ${this.plan.timeout} ms`;
    this.cancel(new TimeoutError(why), 'requester time-out');
  }

  /** Event: the caller gives up (its signal, a consumer that stopped reading): fails with `error`, and tells the handler to stop (protocol §4.4). */
  cancel(error: RelaisError, reason: string): void {
    if (this.finished) return;
    // Never handed over, no handler has it: nothing to cancel.
    if (this.handed) this.effects.sendCancel(this.responder ?? this.assigneeId ?? '*', reason);
    this.fail(error);
  }

  /** Event: the request cannot go on (never written, the client closing…): it fails with `error`. */
  fail(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.effects.failed(error);
  }

  private assign(handler: string | undefined): void {
    if (this.assigneeId !== undefined && handler !== this.assigneeId) (this.previous ??= new Set()).add(this.assigneeId);
    this.assigneeId = handler;
    this.topic = requestTopic(this.action, handler);
    const info = handler === undefined ? undefined : this.world.presence(handler);
    this.acks = info?.acks === true && info.status === 'alive';
    this.assigneeInstance = info?.instance;
    this.sentBlind = handler !== undefined && info === undefined;
    this.offeredAt = 0;
    this.misses = 0;
    this.offeredAgain = false;
  }

  /** The command's wire text, checked (JSON, size); throws what makes it impossible. */
  private encode(now: number): void {
    if (this.acks) this.ackWait = this.world.ackDeadline(this.assigneeId!, this.plan.ackTimeout);
    this.acceptBy = this.acks ? this.acceptByFrom(now) : undefined;
    const envelope = commandMessage({
      source: this.world.self,
      destination: this.assigneeId ?? '*',
      token: this.token,
      payload: this.plan.payload,
      priority: this.priority,
      deadline: this.deadline,
      ...(this.acceptBy !== undefined && { acceptBy: this.acceptBy }),
      ...(this.plan.onBehalfOf !== undefined && { onBehalfOf: this.plan.onBehalfOf }),
    });
    this.text = encodeMessage(this.plan.seal ? this.plan.seal(envelope) : envelope, { maxBytes: this.world.maxMessageBytes, what: () => `the request to ${this.action}` });
  }

  /** When a handler must have taken the command written at `now`: the last quarter of the wait is for its acknowledgement to travel back. */
  private acceptByFrom(now: number): number {
    return Math.round(now + (this.ackWait * 3) / 4);
  }

  /**
   * Writes the command (again). To a handler that acknowledges it goes at QoS 0 with an
   * `acceptBy` set when it is written, and the acknowledgement is awaited from then; half-way
   * it is written once more with the same `acceptBy`; once accepted it is sent again only as a
   * status query (`acceptBy` 0). protocol §4.7
   */
  private send(mode: 'offer' | 'retry'): void {
    if (this.finished || !this.ready) return;
    this.mode = mode;
    this.handed = true;
    try {
      this.effects.write();
    } catch (error) {
      this.fail(error);
    }
  }

  /** A provider is known at last for a request that waited for one, or a target unknown when it was sent: an offer as to any known handler. */
  private offerFirst(handler: string, now: number): void {
    this.waitingForProvider = false;
    this.assign(handler);
    try {
      this.encode(now);
    } catch (error) {
      return this.fail(error);
    }
    this.send('offer');
  }

  /** The handler refused the command as arriving after its acceptBy (protocol §4.7): it never ran there. */
  private refused(envelope: ResponseFields, code: number, now: number): void {
    if (!this.offeredAgain && now < this.acceptBy!) {
      // The only acceptBy we sent it has not passed by our clock: its clock is ahead of ours.
      const next = this.alternative(false);
      if (next !== undefined) return this.moveTo(next, `refused it before its acceptance deadline (check that the clocks agree): ${envelope.error?.message ?? 'refused'}`, now);
      return this.fail(fromWire(envelope.error, code, envelope.source, envelope.payload));
    }
    if (now < this.acceptBy!) {
      this.effects.log('debug', { action: this.action, token: this.token, handler: envelope.source }, 'an earlier copy of the request was refused as late; a later one may still be taken');
      return;
    }
    // Alive but slow: the time it took teaches its wait, and it is offered again.
    if (this.offeredAt !== 0) this.effects.answered(envelope.source, now - this.offeredAt);
    const next = this.alternative(true);
    if (next !== undefined) return this.moveTo(next, `took it after its acceptance deadline: ${envelope.error?.message ?? 'refused'}`, now);
    this.offerAgain(now);
  }

  /**
   * Another provider for a request the library chose the handler of, not offered it yet, while
   * it has been offered to fewer than MAX_OFFERS; one that is not suspected when `unsuspectedOnly`.
   */
  private alternative(unsuspectedOnly: boolean): string | undefined {
    if (!this.picked || 1 + (this.previous?.size ?? 0) >= MAX_OFFERS) return undefined;
    const next = this.world.pick(this.action, new Set(this.previous).add(this.assigneeId!), unsuspectedOnly);
    // Never moved to a client of a site whose link is down (protocol §13.4): it would not get it.
    return next !== undefined && this.world.unreachable?.(next) ? undefined : next;
  }

  /** Offers the command to `next` instead (same token, a new acceptBy). */
  private moveTo(next: string, why: string, now: number): void {
    const from = this.assigneeId;
    this.effects.log('info', { action: this.action, token: this.token, from, to: next }, `request sent to another handler: ${from} ${why}`);
    this.effects.stopAwaitingAnswer();
    this.clearGrace();
    this.assign(next);
    try {
      this.encode(now);
    } catch (error) {
      return this.fail(error);
    }
    this.send('offer');
  }

  /** The same handler is offered the command again with a new acceptBy, and its (longer) wait to answer. */
  private offerAgain(_now: number): void {
    this.offeredAgain = true;
    this.ackWait = this.world.ackDeadline(this.assigneeId!, this.plan.ackTimeout, this.misses);
    this.effects.log('debug', { action: this.action, token: this.token, handler: this.assigneeId, waitMs: Math.round(this.ackWait) }, 'request offered again to its handler');
    this.send('offer');
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
      this.ackWait = this.world.ackDeadline(this.assigneeId!, this.plan.ackTimeout);
    }
    this.send('offer');
  }

  /** The handler, by its presence: alive, and the instance the command was offered to. */
  private isAlive(handler: string): boolean {
    const info = this.world.presence(handler);
    return info?.status === 'alive' && (this.assigneeInstance === undefined || info.instance === this.assigneeInstance);
  }

  private heardFrom(source: string, now: number): void {
    this.responder ??= source;
    if (this.assigneeId === undefined) return;
    // Its first answer: the round trip that teaches its wait (and lifts a suspicion).
    if (!this.accepted && this.offeredAt !== 0) this.effects.answered(source, now - this.offeredAt);
    this.accepted = true;
    this.effects.stopAwaitingAnswer();
    this.clearGrace();
  }

  private awaitReturn(why: string): void {
    if (this.graceReason !== undefined) return;
    this.graceReason = why;
    this.effects.armGrace(this.world.reconnectGrace);
  }

  private clearGrace(): void {
    if (this.graceReason === undefined) return;
    this.graceReason = undefined;
    this.effects.clearGrace();
  }
}
