/**
 * The requesting side (protocol §4): checks a request before anything is sent, keeps the
 * table of pending requests (each a `PendingRequest`, the shell of a `RequestLifecycle`) and
 * tells them what concerns them: responses, presence changes, the directory settling, the
 * connection dropping and coming back.
 */
import { EVERYONE, type Envelope } from '../../protocol/envelope.js';
import { CancelledError, NoHandlerError, NotSentError, SealingError, type SiteUnreachableError, TimeoutError } from '../../protocol/errors.js';
import type { PresenceInfo } from '../../protocol/presence.js';
import type { Lane, RequestWorld, Step } from '../../protocol/request-lifecycle.js';
import { checkClientId, checkPath, responseTopic, SYSTEM_ROOT } from '../../protocol/topics.js';
import { AckClock } from './ack-clock.js';
import { AsyncQueue } from '../async-queue.js';
import { SiteDirectory, siteUnreachable, type Directory } from '../presence/index.js';
import { FailureDetector } from './failure-detector.js';
import { HandlerChoice } from './handler-choice.js';
import { NagleWatch } from './nagle-watch.js';
import { checkTimeout, type ResolvedOptions } from '../options.js';
import { PendingRequest, type RequestSurroundings, type StepSink } from './pending-request.js';
import { newToken } from '../tokens.js';
import type { Transport } from '../connection/index.js';
import type { Sealing } from '../sealing.js';
import type { RequestOptions } from '../types.js';

export class Requester {
  private readonly pending = new Map<string, PendingRequest>();
  /** `true` once subscribed, the pending SUBACK before. */
  private readonly responseSubscriptions: Record<Lane, Map<string, true | Promise<void>>> = { main: new Map(), realtime: new Map() };
  private readonly surroundings: RequestSurroundings;

  constructor(
    private readonly options: ResolvedOptions,
    private readonly transport: Transport,
    private readonly directory: Directory,
    sites: SiteDirectory = new SiteDirectory(options.logger),
    /** What seals commands (`seal: true`) and opened their answers (protocol §3.6). */
    private readonly sealing?: Sealing,
  ) {
    const detector = new FailureDetector((handler) => directory.get(handler));
    this.surroundings = {
      world: new DirectoryWorld(options, directory, sites, new HandlerChoice(directory, detector, sites), detector, this.pending),
      transport,
      ackClock: new AckClock({ heardAt: (lane) => transport.connection(lane).heardAt, probe: (lane) => transport.connection(lane).probe() }),
      detector,
      nagle: new NagleWatch((message) => options.logger.warn({ broker: transport.brokerLabel }, message)),
      logger: options.logger,
      pending: this.pending,
    };
    directory.on('gone', (clientId, info) => {
      const now = Date.now();
      for (const request of [...this.pending.values()]) request.lifecycle.presenceGone(clientId, info, now);
    });
    directory.on('change', (clientId, info) => {
      detector.presenceChanged(clientId, info);
      if (info?.status !== 'alive') return;
      const now = Date.now();
      for (const request of [...this.pending.values()]) request.lifecycle.presenceBack(clientId, info, now);
    });
    sites.on('change', () => {
      const now = Date.now();
      for (const request of [...this.pending.values()]) request.lifecycle.sitesChanged(now);
    });
    directory.on('settled', () => {
      const now = Date.now();
      for (const request of [...this.pending.values()]) request.lifecycle.directorySettled(now);
    });
  }

  get inFlight(): number {
    return this.pending.size;
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
    const queue = new AsyncQueue<Step>(Infinity, () => request?.lifecycle.cancel(new CancelledError(`call to ${action} stopped by its consumer`), 'consumer stopped reading'));
    request = this.start(action, payload, options, {
      onStep: (step) => {
        queue.push(step);
        if (step.kind === 'final') queue.end();
      },
      fail: (error) => queue.end(error),
    });
    return queue;
  }

  /** Starts a request; fails the sink at once (nothing sent) when it cannot be sent. */
  private start(action: string, payload: unknown, options: RequestOptions, sink: StepSink): PendingRequest | undefined {
    // Choosing a handler and noticing it gone need every presence (an on-demand directory starts following them, protocol §7.2).
    this.directory.want();
    let request: PendingRequest;
    try {
      request = this.prepare(action, payload, options, sink);
    } catch (error) {
      sink.fail(error);
      return undefined;
    }
    request.begin();
    const subscribed = this.ensureResponseSubscription(action, request.lane);
    if (subscribed === true) request.lifecycle.subscribed();
    else {
      subscribed.then(
        () => request.lifecycle.subscribed(),
        (error: Error) => request.lifecycle.fail(new NotSentError(`request to ${action} not sent: subscribing to its responses failed: ${error.message}`, { cause: error })),
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
    const waitForSite = options.waitForSite;
    if (waitForSite !== undefined && !(typeof waitForSite === 'number' && waitForSite >= 0)) throw new RangeError(`waitForSite must be a number of ms, 0 or more, got ${String(waitForSite)}`);
    const target = options.target;
    const problem = checkPath(action) ?? (target !== undefined && target !== EVERYONE ? checkClientId(target) : undefined) ?? (options.onBehalfOf !== undefined ? checkClientId(options.onBehalfOf) : undefined);
    if (problem) throw new TypeError(problem);
    if (options.signal?.aborted) throw new CancelledError(`request to ${action} cancelled before it was sent`, { cause: options.signal.reason });
    const token = options.token ?? newToken();
    if (typeof token !== 'string' || token.length === 0 || token.length > 256) throw new TypeError('token must be a string of 1 to 256 characters');
    // Two pending requests with one token would each take the other's responses.
    if (this.pending.has(token)) throw new TypeError(`token ${token} is already used by a pending request; tokens must be unique`);
    // `sealing.requests` is for the application's actions: the router and the built-in ones (`relais/…`) hold no sealing key.
    const seal = options.seal ?? ((this.sealing?.requestsByDefault ?? false) && !action.startsWith(`${SYSTEM_ROOT}/`));
    if (seal && !this.sealing) throw new SealingError('this runtime cannot seal (protocol §3.6): sealing works in Node');
    const plan = {
      action,
      payload,
      token,
      priority: options.priority ?? 'normal',
      lane: this.transport.laneOf(options.priority),
      timeout,
      ackTimeout,
      target,
      checkHandlers: options.checkHandlers ?? this.options.checkHandlers,
      onBehalfOf: options.onBehalfOf,
      // Part of the time-out, never beyond it (protocol §13.4).
      waitForSite: waitForSite === undefined ? undefined : Math.min(waitForSite, timeout),
      seal: seal ? (command: Envelope) => this.sealCommand(command, action, target) : undefined,
    };
    return new PendingRequest(this.surroundings, plan, sink, options.signal);
  }

  /**
   * A command sealed for its handler (protocol §3.6): the target's identity; else the handler
   * it goes to, and every identity the directory says serves the action that has a key, so that
   * a retry elsewhere (§4.7) reaches a handler that can open it; and this client's own identity
   * when it has a key.
   */
  private sealCommand(command: Envelope, action: string, target: string | undefined): Envelope {
    const sealing = this.sealing!;
    // This client's own identity too, when it has a key: it reads its own command in the history (§11.2).
    const self = this.options.id;
    if (target !== undefined && target !== EVERYONE) return sealing.seal(command, [target], [self]);
    return sealing.seal(command, command.destination === EVERYONE ? [] : [command.destination], [...this.directory.providers(action), self]);
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

  /** A response arrived on `<action>/response/<me>`, on the connection of `lane`. protocol §4.3 */
  onResponse(envelope: Envelope, lane: Lane): void {
    const request = envelope.token === undefined ? undefined : this.pending.get(envelope.token);
    if (!request) {
      this.options.logger.debug({ token: envelope.token, source: envelope.source }, 'response for no pending request (late, or answered already)');
      return;
    }
    // A sealed command's answers come sealed (protocol §3.6): a plaintext one is not its handler's.
    if (request.sealed && envelope.seal === undefined && envelope.error === undefined && envelope.accepted !== true) {
      this.options.logger.warn({ token: envelope.token, source: envelope.source }, 'answer to a sealed request came unsealed: refused');
      request.lifecycle.fail(new SealingError(`the answer of ${envelope.source} to the sealed request ${envelope.token} came unsealed: refused (protocol §3.6)`));
      return;
    }
    request.onResponse(envelope, lane);
  }

  /** A sealed answer for us that did not open (protocol §3.6): its request fails, nothing else could read it. */
  onUnopenedResponse(envelope: Envelope, why: string): void {
    const request = envelope.token === undefined ? undefined : this.pending.get(envelope.token);
    if (!request) return;
    request.lifecycle.fail(new SealingError(`the sealed answer of ${envelope.source} to request ${envelope.token} did not open: ${why}`));
  }

  onDisconnected(lane: Lane): void {
    for (const request of this.pending.values()) if (request.lane === lane) request.lifecycle.disconnected();
  }

  /** A lane is back: once its response subscriptions are made again, what may have been lost is sent again. */
  onReconnected(lane: Lane): void {
    for (const request of [...this.pending.values()]) {
      if (request.lane !== lane) continue;
      this.transport.subscribe(responseTopic(request.action, this.options.id), lane).then(
        () => request.lifecycle.reconnected(),
        () => {}, // closing, or refused: the request's own timer ends it
      );
    }
  }

  /** Fails every pending request (the client is closing), each with its own error: callers restack theirs. */
  failAll(makeError: () => Error): void {
    for (const request of [...this.pending.values()]) request.lifecycle.fail(makeError());
  }
}

/** What a request reads of this client (protocol/request-lifecycle.ts `RequestWorld`): its directory, the choice of a handler, the waits. */
class DirectoryWorld implements RequestWorld {
  readonly self: string;
  readonly maxMessageBytes: number;
  readonly reconnectGrace: number;

  constructor(
    options: ResolvedOptions,
    private readonly directory: Directory,
    private readonly sites: SiteDirectory,
    private readonly choice: HandlerChoice,
    private readonly detector: FailureDetector,
    private readonly pending: ReadonlyMap<string, PendingRequest>,
  ) {
    this.self = options.id;
    this.maxMessageBytes = options.maxMessageBytes;
    this.reconnectGrace = options.reconnectGrace;
  }

  get directorySettled(): boolean {
    return this.directory.settled;
  }

  presence(handler: string): PresenceInfo | undefined {
    return this.directory.get(handler);
  }

  hasProvider(action: string): boolean {
    return this.directory.providers(action).size > 0;
  }

  pick(action: string, exclude: ReadonlySet<string> | undefined, unsuspectedOnly?: boolean): string | undefined {
    return this.choice.pick(action, () => this.loadByHandler(), exclude, unsuspectedOnly);
  }

  ackDeadline(handler: string, ackTimeout: number, misses?: number): number {
    return this.detector.deadline(handler, ackTimeout, misses);
  }

  /** protocol §7.3: a target absent, not alive or not serving the action; or nobody announcing it. */
  missing(action: string, target: string | undefined): NoHandlerError | undefined {
    if (target !== undefined) {
      if (this.directory.serves(target, action)) return undefined;
      const info = this.directory.get(target);
      const refusal = this.directory.refusedBecause(target);
      const why = !info
        ? refusal === undefined
          ? 'is not connected'
          : `is not known: its presence was refused (${refusal}), and this client verifies signatures (protocol §12.4)`
        : info.status !== 'alive'
          ? `is ${info.status}`
          : `does not serve it (serves: ${info.actions.join(', ') || 'nothing'})`;
      return new NoHandlerError(`no handler for ${action}: target ${target} ${why}`);
    }
    if (this.directory.providers(action).size > 0) return undefined;
    const failure = this.directory.failure === undefined ? '' : ` (this client ${this.directory.failure})`;
    return new NoHandlerError(`no connected client serves ${action}${refusedNote(this.directory.refusedPresences())}${failure}`);
  }

  /** protocol §13.4: a client of a site whose link is down. */
  unreachable(handler: string): SiteUnreachableError | undefined {
    const down = this.sites.down(handler);
    return down && siteUnreachable(down, handler);
  }

  /** Requests pending per handler, derived from the table: the choice of the least busy needs it. */
  private loadByHandler(): Map<string, number> {
    const load = new Map<string, number>();
    for (const request of this.pending.values()) {
      const assignee = request.assignee;
      if (assignee !== undefined) load.set(assignee, (load.get(assignee) ?? 0) + 1);
    }
    return load;
  }
}

/** `request()` waits for the result only. */
function ignoreStep(): void {}

/** What a "no handler" error adds when presences were refused (protocol §12.4): one of them may be the handler. */
function refusedNote(refusals: ReadonlyMap<string, string>): string {
  if (refusals.size === 0) return '';
  const named = [...refusals].slice(0, 3).map(([id, reason]) => `${id} (${reason})`);
  const more = refusals.size > 3 ? ` and ${refusals.size - 3} more` : '';
  return ` (this client verifies signatures and refused the presences of ${named.join(', ')}${more})`;
}
