/**
 * The requesting side (protocol §4): the table of pending requests, their time-outs,
 * progress, cancellation, and the fast failures (no handler, handler gone).
 */
import { randomBytes } from 'node:crypto';
import { EVERYONE, type Envelope, type Priority } from '../protocol/envelope.js';
import {
  CancelledError,
  fromWire,
  HandlerGoneError,
  NoHandlerError,
  NotSentError,
  PayloadTooLargeError,
  type RelaisError,
  ResponseCode,
  TimeoutError,
} from '../protocol/errors.js';
import { cancelTopic, checkClientId, checkPath, requestTopic, responseTopic } from '../protocol/topics.js';
import type { Directory } from './directory.js';
import { checkTimeout, type ResolvedOptions } from './options.js';
import type { Transport } from './transport.js';
import type { Lane, RequestOptions, Step } from './types.js';
import { AsyncQueue } from './async-queue.js';

interface Pending {
  action: string;
  target?: string;
  /** Id of the client answering, once a response came. */
  handler?: string;
  priority: Priority;
  checkHandlers: boolean;
  /** Sent before the directory settled with no handler known: judged at settle time. */
  awaitingDirectory: boolean;
  onStep(step: Step): void;
  fail(error: unknown): void;
  /** Fails the request and tells the handler to stop. */
  cancel(error: RelaisError, reason: string): void;
}

const NOTHING_TO_CANCEL = () => {};

export class Requester {
  private readonly pending = new Map<string, Pending>();
  /** `true` once subscribed, the pending SUBACK before. */
  private readonly responseSubscriptions = new Map<string, true | Promise<void>>();
  /** Random per-connection prefix + counter: unique tokens without a random draw per request. */
  private readonly tokenPrefix = randomBytes(6).toString('base64url');
  private tokenCounter = 0;
  /** Requests pending per handler, to send the next one to the least busy. */
  private readonly loadByHandler = new Map<string, number>();
  private rotation = 0;

  constructor(
    private readonly options: ResolvedOptions,
    private readonly transport: Transport,
    private readonly directory: Directory,
  ) {
    directory.on('gone', (clientId) => this.onClientGone(clientId));
    directory.on('settled', () => this.onDirectorySettled());
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Resolves with the final response's payload; rejects with a typed error. */
  request(action: string, payload: unknown, options: RequestOptions = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.start(action, payload, options, {
        onStep: (step) => {
          if (step.kind === 'final') resolve(step.payload);
        },
        fail: reject,
      });
    });
  }

  /** Yields every progress response, then the final one; an error response throws. */
  call(action: string, payload: unknown, options: RequestOptions = {}): AsyncIterableIterator<Step> {
    let cancel: (() => void) | undefined;
    const queue = new AsyncQueue<Step>(Infinity, () => cancel?.());
    cancel = this.start(action, payload, options, {
      onStep: (step) => {
        queue.push(step);
        if (step.kind === 'final') queue.end();
      },
      fail: (error) => queue.end(error),
    });
    return queue;
  }

  /**
   * Starts a request. Returns a function that cancels it (used when a `call` consumer stops early).
   * Every path ends in exactly one of `onStep(final)` or `fail`.
   */
  private start(
    action: string,
    payload: unknown,
    options: RequestOptions,
    sink: { onStep(step: Step): void; fail(error: unknown): void },
  ): () => void {
    // A caller's deadline earlier than the time-out wins: nobody waits past it.
    const timeout = Math.max(0, Math.min(options.timeout ?? this.options.timeout, options.deadline !== undefined ? options.deadline - Date.now() : Infinity));
    // No target: the library picks one serving client, so "any handler" runs it once;
    // '*' asks every serving client (reads, discovery; protocol §4.6).
    const target = options.target === EVERYONE ? undefined : (options.target ?? this.pickHandler(action));
    const checkHandlers = options.checkHandlers ?? this.options.checkHandlers;
    const missing = this.missingHandler(action, target, checkHandlers);
    const priority = options.priority ?? 'normal';
    const token = options.token ?? `${this.tokenPrefix}.${(this.tokenCounter++).toString(36)}`;
    const deadline = Date.now() + timeout;
    const envelope: Envelope = {
      v: 1,
      type: 'command',
      source: this.options.id,
      destination: target ?? EVERYONE,
      token,
      payload: payload ?? {},
      priority,
      deadline,
      ts: Date.now(),
    };
    const body = this.refuse(action, target, timeout, missing, options.signal, envelope);
    if (typeof body !== 'string') {
      sink.fail(body);
      return NOTHING_TO_CANCEL;
    }

    let settled = false;
    if (target !== undefined) this.addLoad(target, 1);
    const finish = () => {
      settled = true;
      if (target !== undefined) this.addLoad(target, -1);
      this.pending.delete(token);
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const entry: Pending = {
      action,
      priority,
      checkHandlers,
      // The directory is still loading: send anyway, and judge once it has settled.
      awaitingDirectory: missing !== undefined,
      ...(target !== undefined && { target }),
      onStep: (step) => {
        if (settled) return;
        if (step.kind === 'final') finish();
        sink.onStep(step);
      },
      fail: (error) => {
        if (settled) return;
        finish();
        sink.fail(error);
      },
      cancel: (error, reason) => {
        if (settled) return;
        this.sendCancel(entry, token, reason);
        entry.fail(error);
      },
    };
    const onAbort = () =>
      entry.cancel(new CancelledError(`request to ${action} cancelled by the caller`, { cause: options.signal?.reason }), 'cancelled by the requester');
    // Its stack is taken again where the application awaits (Bus.request, Bus.call).
    const timer = setTimeout(() => entry.cancel(new TimeoutError(`no final response to ${action} within ${timeout} ms`), 'requester time-out'), timeout);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    this.pending.set(token, entry);

    const send = () => {
      if (settled) return;
      try {
        this.transport.send({ topic: requestTopic(action, target), body, qos: 1, priority, deadline, onDropped: (error) => entry.fail(error) });
      } catch (error) {
        entry.fail(error);
      }
    };
    const lane: Lane = priority === 'realtime' && this.transport.realtime ? 'realtime' : 'main';
    const subscribed = this.ensureResponseSubscription(action, lane);
    if (subscribed === true) send();
    else subscribed.then(send, (error: Error) => entry.fail(new NotSentError(`request to ${action} not sent: subscribing to its responses failed: ${error.message}`, { cause: error })));
    return () => entry.cancel(new CancelledError(`call to ${action} stopped by its consumer`), 'consumer stopped reading');
  }

  /** The encoded command, or why it must not be sent at all (nothing is registered or sent then). */
  private refuse(
    action: string,
    target: string | undefined,
    timeout: number,
    missing: NoHandlerError | undefined,
    signal: AbortSignal | undefined,
    envelope: Envelope,
  ): string | Error {
    if (timeout <= 0) return new TimeoutError(`the deadline of the request to ${action} has already passed; nothing was sent`);
    const badTimeout = checkTimeout(timeout);
    if (badTimeout) return new RangeError(badTimeout);
    const problem = checkPath(action) ?? (target !== undefined ? checkClientId(target) : undefined);
    if (problem) return new TypeError(problem);
    if (missing && this.directory.settled) return missing;
    if (signal?.aborted) return new CancelledError(`request to ${action} cancelled before it was sent`, { cause: signal.reason });
    const token = envelope.token!;
    if (typeof token !== 'string' || token.length === 0 || token.length > 256) return new TypeError(`token must be a string of 1 to 256 characters`);
    // Two pending requests with one token would each take the other's responses.
    if (this.pending.has(token)) return new TypeError(`token ${token} is already used by a pending request; tokens must be unique`);
    let body: string;
    try {
      body = JSON.stringify(envelope);
    } catch (cause) {
      return new TypeError(`the payload of ${action} is not JSON: ${(cause as Error).message}`);
    }
    const size = Buffer.byteLength(body);
    if (size > this.options.maxMessageBytes) {
      return new PayloadTooLargeError(`the request to ${action} is ${size} bytes, over the ${this.options.maxMessageBytes}-byte limit`);
    }
    return body;
  }

  /**
   * The alive client serving `action` with the fewest requests pending from us, taking turns
   * among equals; undefined when the directory knows none (then the command goes untargeted:
   * a handler that does not announce itself still gets it, and §7.2 judges it at settle time).
   */
  private pickHandler(action: string): string | undefined {
    const providers = this.directory.providers(action);
    if (providers.size <= 1) return providers.values().next().value;
    const ids = [...providers];
    const first = this.rotation++ % ids.length;
    let best: string | undefined;
    let bestLoad = Infinity;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[(first + i) % ids.length]!;
      const load = this.loadByHandler.get(id) ?? 0;
      if (load < bestLoad) {
        best = id;
        bestLoad = load;
      }
    }
    return best;
  }

  private addLoad(handler: string, delta: number): void {
    const load = (this.loadByHandler.get(handler) ?? 0) + delta;
    if (load > 0) this.loadByHandler.set(handler, load);
    else this.loadByHandler.delete(handler);
  }

  /** The directory has settled: requests sent while it loaded now learn whether anyone serves them. */
  private onDirectorySettled(): void {
    for (const entry of [...this.pending.values()]) {
      if (!entry.awaitingDirectory) continue;
      entry.awaitingDirectory = false;
      if (entry.handler !== undefined) continue;
      const missing = this.missingHandler(entry.action, entry.target, entry.checkHandlers);
      if (missing) entry.cancel(missing, 'no handler');
    }
  }

  private missingHandler(action: string, target: string | undefined, check: boolean): NoHandlerError | undefined {
    if (!check) return undefined;
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
    const key = `${lane} ${action}`;
    const existing = this.responseSubscriptions.get(key);
    if (existing) return existing;
    const subscribing = this.transport.subscribe(responseTopic(action, this.options.id), lane).then(
      () => {
        this.responseSubscriptions.set(key, true);
      },
      (error: Error) => {
        this.responseSubscriptions.delete(key);
        throw error;
      },
    );
    this.responseSubscriptions.set(key, subscribing);
    return subscribing;
  }

  /** A response arrived on `<action>/response/<me>`. protocol §4.3 */
  onResponse(envelope: Envelope): void {
    const token = envelope.token;
    const entry = token === undefined ? undefined : this.pending.get(token);
    if (!entry || token === undefined) {
      this.options.logger.debug({ token, source: envelope.source }, 'response for no pending request (late, or answered already)');
      return;
    }
    entry.handler ??= envelope.source;
    const code = envelope.code ?? ResponseCode.OK;
    if (envelope.final === false) {
      entry.onStep({
        kind: 'progress',
        ...(envelope.progress !== undefined && { progress: envelope.progress }),
        payload: envelope.payload,
        source: envelope.source,
        token,
      });
    } else if (code === ResponseCode.OK) {
      entry.onStep({ kind: 'final', payload: envelope.payload, code, source: envelope.source, token });
    } else {
      entry.fail(fromWire(envelope.error, code, envelope.source, envelope.payload));
    }
  }

  /** A client's presence went from alive to stopped/dead: fail what only it could answer. */
  private onClientGone(clientId: string): void {
    for (const entry of [...this.pending.values()]) {
      const servedByIt = entry.handler === clientId || entry.target === clientId;
      const nobodyLeft =
        entry.handler === undefined && entry.target === undefined && !entry.awaitingDirectory && this.directory.providers(entry.action).size === 0;
      if (servedByIt || nobodyLeft) {
        entry.fail(new HandlerGoneError(`handler ${entry.handler ?? entry.target ?? clientId} of ${entry.action} disconnected before answering`));
      }
    }
  }

  private sendCancel(entry: Pending, token: string, reason: string): void {
    const envelope: Envelope = {
      v: 1,
      type: 'cancel',
      source: this.options.id,
      destination: entry.handler ?? entry.target ?? EVERYONE,
      token,
      payload: { reason },
      priority: entry.priority,
      ts: Date.now(),
    };
    try {
      this.transport.send({ topic: cancelTopic(entry.action), body: JSON.stringify(envelope), qos: 1, priority: entry.priority, deadline: Date.now() + 5000 });
    } catch {
      // Offline or closed: the handler's own deadline will stop it.
    }
  }

  /** Fails every pending request (the client is closing), each with its own error: callers restack theirs. */
  failAll(makeError: () => Error): void {
    for (const entry of [...this.pending.values()]) entry.fail(makeError());
  }
}
