/**
 * The requesting side (protocol §4): checks a request before anything is sent, keeps the
 * table of pending requests (each a `PendingRequest`), and tells them what concerns them:
 * responses, presence changes, the directory settling, the connection dropping and coming back.
 */
import { EVERYONE, type Envelope } from '../protocol/envelope.js';
import { CancelledError, NoHandlerError, NotSentError, TimeoutError } from '../protocol/errors.js';
import { checkClientId, checkPath, responseTopic } from '../protocol/topics.js';
import { AckClock } from './ack-clock.js';
import { AsyncQueue } from './async-queue.js';
import type { Directory } from './directory.js';
import { FailureDetector } from './failure-detector.js';
import { HandlerChoice } from './handler-choice.js';
import { NagleWatch } from './nagle-watch.js';
import { checkTimeout, type ResolvedOptions } from './options.js';
import { PendingRequest } from './pending-request.js';
import { newToken } from './tokens.js';
import type { RequestServices, StepSink } from './request-services.js';
import type { Transport } from './transport.js';
import type { Lane, RequestOptions, Step } from './types.js';

export class Requester {
  private readonly pending = new Map<string, PendingRequest>();
  /** `true` once subscribed, the pending SUBACK before. */
  private readonly responseSubscriptions: Record<Lane, Map<string, true | Promise<void>>> = { main: new Map(), realtime: new Map() };
  private readonly detector: FailureDetector;
  private readonly choice: HandlerChoice;
  private readonly services: RequestServices;
  private readonly nagle: NagleWatch;

  constructor(
    private readonly options: ResolvedOptions,
    private readonly transport: Transport,
    private readonly directory: Directory,
  ) {
    this.detector = new FailureDetector((handler) => directory.get(handler));
    this.choice = new HandlerChoice(directory, this.detector);
    this.nagle = new NagleWatch((message) => options.logger.warn({ broker: transport.brokerLabel }, message));
    this.services = {
      options,
      transport,
      directory,
      pick: (action, exclude, unsuspectedOnly) => this.choice.pick(action, () => this.loadByHandler(), exclude, unsuspectedOnly),
      ackDeadline: (handler, ackTimeout, misses) => this.detector.deadline(handler, ackTimeout, misses),
      suspect: (handler, ackTimeout, waited) => {
        if (this.detector.missed(handler, ackTimeout, Date.now())) {
          options.logger.info({ handler, waitedMs: Math.round(waited) }, `handler ${handler} gave no answer within ${Math.round(waited)} ms: suspected (busy, stopped or unreachable); requests go to other providers while there are, else wait for it`);
        }
      },
      answered: (handler, rtt) => this.detector.answered(handler, rtt),
      ended: (request) => this.pending.delete(request.token),
      steps: (previous, next) => this.nagle.steps(previous, next),
      ackClock: new AckClock(),
    };
    directory.on('gone', (clientId, info) => {
      for (const request of [...this.pending.values()]) request.onGone(clientId, info);
    });
    directory.on('change', (clientId, info) => {
      this.detector.presenceChanged(clientId, info);
      if (info?.status !== 'alive') return;
      for (const request of [...this.pending.values()]) request.onBack(clientId, info);
    });
    directory.on('settled', () => {
      for (const request of [...this.pending.values()]) {
        request.onDirectorySettled(() => this.missingHandler(request.action, request.assignee));
      }
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Requests pending per handler, derived from the table: the choice of the least busy needs it. */
  private loadByHandler(): Map<string, number> {
    const load = new Map<string, number>();
    for (const request of this.pending.values()) {
      if (request.assignee !== undefined) load.set(request.assignee, (load.get(request.assignee) ?? 0) + 1);
    }
    return load;
  }

  /** Resolves with the final response's payload; rejects with a typed error. */
  request(action: string, payload: unknown, options: RequestOptions = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.start(action, payload, options, { onStep: ignoreStep, onResult: resolve, fail: reject });
    });
  }

  /**
   * Yields each step as it came over the wire: `accepted` (once per handler, when it
   * acknowledged: a handler that answers at once, or does not acknowledge, sends none,
   * protocol §4.7), progress, then the final one; an error response throws.
   */
  call(action: string, payload: unknown, options: RequestOptions = {}): AsyncIterableIterator<Step> {
    let request: PendingRequest | undefined;
    const queue = new AsyncQueue<Step>(Infinity, () => request?.cancel(new CancelledError(`call to ${action} stopped by its consumer`), 'consumer stopped reading'));
    const acceptedBy = new Set<string>();
    request = this.start(action, payload, options, {
      onStep: (step) => {
        // A repeated acknowledgement (the answer to a command written again, protocol §4.8) says nothing new.
        if (step.kind === 'accepted') {
          if (acceptedBy.has(step.source)) return;
          acceptedBy.add(step.source);
        }
        queue.push(step);
        if (step.kind === 'final') queue.end();
      },
      fail: (error) => queue.end(error),
    });
    return queue;
  }

  /** Starts a request; fails the sink at once (nothing sent) when it cannot be sent. */
  private start(action: string, payload: unknown, options: RequestOptions, sink: StepSink): PendingRequest | undefined {
    let request: PendingRequest;
    try {
      request = this.prepare(action, payload, options, sink);
    } catch (error) {
      sink.fail(error);
      return undefined;
    }
    this.pending.set(request.token, request);
    request.begin();
    const subscribed = this.ensureResponseSubscription(action, request.lane);
    if (subscribed === true) request.send();
    else {
      subscribed.then(
        () => request.send(),
        (error: Error) => request.fail(new NotSentError(`request to ${action} not sent: subscribing to its responses failed: ${error.message}`, { cause: error })),
      );
    }
    return request;
  }

  /** The request, checked; throws what makes it impossible (nothing is registered or sent then). protocol §4.1 */
  private prepare(action: string, payload: unknown, options: RequestOptions, sink: StepSink): PendingRequest {
    // A caller's deadline earlier than the time-out wins: nobody waits past it.
    const timeout = Math.max(0, Math.min(options.timeout ?? this.options.timeout, options.deadline !== undefined ? options.deadline - Date.now() : Infinity));
    const ackTimeout = options.ackTimeout ?? this.options.ackTimeout;
    if (timeout <= 0) throw new TimeoutError(`the deadline of the request to ${action} has already passed; nothing was sent`);
    const badTiming = checkTimeout(timeout) ?? checkTimeout(ackTimeout, 'ackTimeout');
    if (badTiming) throw new RangeError(badTiming);
    const target = options.target;
    const problem = checkPath(action) ?? (target !== undefined && target !== EVERYONE ? checkClientId(target) : undefined) ?? (options.onBehalfOf !== undefined ? checkClientId(options.onBehalfOf) : undefined);
    if (problem) throw new TypeError(problem);
    if (options.signal?.aborted) throw new CancelledError(`request to ${action} cancelled before it was sent`, { cause: options.signal.reason });
    const token = options.token ?? newToken();
    if (typeof token !== 'string' || token.length === 0 || token.length > 256) throw new TypeError('token must be a string of 1 to 256 characters');
    // Two pending requests with one token would each take the other's responses.
    if (this.pending.has(token)) throw new TypeError(`token ${token} is already used by a pending request; tokens must be unique`);
    const checkHandlers = options.checkHandlers ?? this.options.checkHandlers;
    const request = new PendingRequest(
      this.services,
      {
        action,
        payload,
        token,
        priority: options.priority ?? 'normal',
        lane: this.transport.laneOf(options.priority),
        timeout,
        ackTimeout,
        target,
        signal: options.signal,
        awaitingDirectory: false,
        onBehalfOf: options.onBehalfOf,
      },
      sink,
    );
    const missing = checkHandlers ? this.missingHandler(action, request.assignee) : undefined;
    // Once settled the directory is trusted; while it loads the command goes anyway, judged at settle time.
    if (missing && this.directory.settled) throw missing;
    request.awaitingDirectory = missing !== undefined;
    request.encodeCommand();
    return request;
  }

  private missingHandler(action: string, target: string | undefined): NoHandlerError | undefined {
    if (target !== undefined) {
      if (this.directory.serves(target, action)) return undefined;
      const info = this.directory.get(target);
      const why = !info ? 'is not connected' : info.status !== 'alive' ? `is ${info.status}` : `does not serve it (serves: ${info.actions.join(', ') || 'nothing'})`;
      return new NoHandlerError(`no handler for ${action}: target ${target} ${why}`);
    }
    if (this.directory.providers(action).size > 0) return undefined;
    return new NoHandlerError(`no connected client serves ${action}`);
  }

  /** True when already subscribed (the hot path stays synchronous), else the pending SUBACK. */
  private ensureResponseSubscription(action: string, lane: Lane): true | Promise<void> {
    const known = this.responseSubscriptions[lane];
    const existing = known.get(action);
    if (existing) return existing;
    const subscribing = this.transport.subscribe(responseTopic(action, this.options.id), lane).then(
      () => {
        known.set(action, true);
      },
      (error: Error) => {
        known.delete(action);
        throw error;
      },
    );
    known.set(action, subscribing);
    return subscribing;
  }

  /** A response arrived on `<action>/response/<me>`. protocol §4.3 */
  onResponse(envelope: Envelope): void {
    const request = envelope.token === undefined ? undefined : this.pending.get(envelope.token);
    if (!request) {
      this.options.logger.debug({ token: envelope.token, source: envelope.source }, 'response for no pending request (late, or answered already)');
      return;
    }
    request.onResponse(envelope);
  }

  onDisconnected(lane: Lane): void {
    for (const request of this.pending.values()) if (request.lane === lane) request.onDisconnected();
  }

  /** A lane is back: once its response subscriptions are made again, what may have been lost is sent again. */
  onReconnected(lane: Lane): void {
    for (const request of [...this.pending.values()]) {
      if (request.lane !== lane) continue;
      this.transport.subscribe(responseTopic(request.action, this.options.id), lane).then(
        () => request.onReconnected(),
        () => {}, // closing, or refused: the request's own timer ends it
      );
    }
  }

  /** Fails every pending request (the client is closing), each with its own error: callers restack theirs. */
  failAll(makeError: () => Error): void {
    for (const request of [...this.pending.values()]) request.fail(makeError());
  }
}

/** `request()` waits for the result only. */
function ignoreStep(): void {}
