/**
 * `connect()` and the Bus: wires the transport, the directory, the requester, the
 * handlers and the subscriptions, and routes each incoming message to them by topic kind.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { decode, EVERYONE, type DecodeResult, type Envelope } from '../protocol/envelope.js';
import { CancelledError, InvalidMessageError, NotSentError, stackFromCaller, TimeoutError } from '../protocol/errors.js';
import { checkClientId, checkPath, logTopic, notificationTopic, parseTopic, PRESENCE_FILTER, presenceTopic } from '../protocol/topics.js';
import { Directory } from './directory.js';
import { Handlers } from './handlers.js';
import { checkOptions, checkTimeout, resolveOptions, type ResolvedOptions } from './options.js';
import { Requester } from './requester.js';
import { Subscriptions } from './subscriptions.js';
import { CLOSE_GRACE_MS, Transport } from './transport.js';
import { TwinWatch } from './twins.js';
import type {
  ConnectOptions,
  Delivery,
  Handler,
  HandleOptions,
  Lane,
  PresenceInfo,
  ReceivedMessage,
  Registration,
  RequestOptions,
  SendOptions,
  Step,
  SubscribeOptions,
  Subscription,
} from './types.js';

/** Connects to the broker; resolves once connected and the directory of handlers is loaded. */
/** Pause between a reconnection and our presence, for the retained presences to arrive first. */
const REANNOUNCE_DELAY_MS = 100;

export async function connect(options: ConnectOptions): Promise<Bus> {
  const problem = checkClientId(options.id);
  if (problem) throw new TypeError(problem);
  const resolved = resolveOptions(options);
  const badOption = checkOptions(resolved);
  if (badOption) throw new TypeError(badOption);
  const bus = new Bus(resolved);
  try {
    await bus.ready;
  } catch (error) {
    await bus.close();
    throw error;
  }
  return bus;
}

/**
 * A connected client. Events: `offline` (the main connection dropped; the library
 * reconnects), `online` (it is back; subscriptions and presence are being restored),
 * `replaced` (another client started with this id; this one has stopped, protocol §7.5).
 */
export class Bus extends EventEmitter<{ online: []; offline: []; replaced: [other: PresenceInfo] }> {
  readonly id: string;
  /** The clients known from their presence and the actions they serve. */
  readonly directory = new Directory();
  readonly ready: Promise<void>;
  private readonly transport: Transport;
  private readonly requester: Requester;
  private readonly handlers: Handlers;
  private readonly subscriptions: Subscriptions;
  private readonly twins = new TwinWatch(Date.now());
  /** Set by close, kill or a takeover: what a later close() waits for. */
  private ending: Promise<void> = Promise.resolve();
  private presenceSeq = 0;
  private settleTimer: NodeJS.Timeout | undefined;
  private reannounceTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** What calls made after the end are told. */
  private closedBecause = 'the client is closed';
  /** Waits (waitForHandler) to end when the client stops. */
  private readonly onStop = new Set<() => void>();
  private announcing: Promise<void> = Promise.resolve();
  private directoryLoaded!: () => void;
  private failLoading!: (error: Error) => void;

  /** Use `connect()`. */
  constructor(private readonly options: ResolvedOptions) {
    super();
    this.id = options.id;
    this.transport = new Transport(
      options,
      // Ephemeral clients too: an empty will would hide a takeover from the other client (§7.5).
      { topic: presenceTopic(this.id), payload: this.presenceBody('dead') },
      (topic, payload, retained, lane) => this.route(topic, payload, retained, lane),
      (lane, reconnected) => this.onConnect(lane, reconnected),
      (lane) => {
        if (lane !== 'main') return;
        const twin = this.twins.knockedOffBy();
        if (twin) this.giveWay(twin);
        else this.emit('offline');
      },
    );
    this.requester = new Requester(options, this.transport, this.directory);
    this.handlers = new Handlers(options, this.transport, () => this.announce());
    this.subscriptions = new Subscriptions(options, this.transport);
    const directoryLoaded = new Promise<void>((resolve, reject) => {
      this.directoryLoaded = resolve;
      this.failLoading = reject;
    });
    this.ready = this.transport.ready().then(() => {
      const timer = setTimeout(
        () => this.failLoading(new NotSentError(`connected to ${this.transport.brokerLabel}, but our presence did not come back within ${options.connectTimeout} ms (does the broker's ACL allow relais/presence/#?)`)),
        options.connectTimeout,
      );
      return directoryLoaded.finally(() => clearTimeout(timer));
    });
    this.ready.catch(() => {});
  }

  get logger() {
    return this.options.logger;
  }

  /** True while the main connection is up. */
  get connected(): boolean {
    return this.transport.connected;
  }

  /** Requests waiting for their final response. */
  get inFlight(): number {
    return this.requester.inFlight;
  }

  /**
   * Sends a command and resolves with the final response's payload.
   * Rejects with `RemoteError` (the handler's error code), `TimeoutError`, `NoHandlerError`,
   * `HandlerGoneError`, `CancelledError` or `NotSentError`. Always settles. The error's stack
   * starts at the application function that awaits this call (V8 async stack traces).
   */
  async request<T = unknown>(action: string, payload?: unknown, options?: RequestOptions): Promise<T> {
    try {
      if (this.closed) throw new NotSentError(this.closedBecause);
      return (await this.requester.request(action, payload, options)) as T;
    } catch (error) {
      stackFromCaller(error, Bus.prototype.request);
      throw error;
    }
  }

  /** Sends a command and yields each progress response, then the final one (seed 000: "20%, 50%, 80%, done"). */
  call(action: string, payload?: unknown, options?: RequestOptions): AsyncIterableIterator<Step> {
    if (this.closed) throw new NotSentError(this.closedBecause);
    const steps = this.requester.call(action, payload, options);
    const next = async (): Promise<IteratorResult<Step>> => {
      try {
        return await steps.next();
      } catch (error) {
        stackFromCaller(error, next);
        throw error;
      }
    };
    return {
      next,
      return: () => steps.return!(),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** Serves `action`: subscribes to its request topics and announces it in the presence. */
  handle(action: string, handler: Handler, options?: HandleOptions): Promise<Registration> {
    if (this.closed) return Promise.reject(new NotSentError(this.closedBecause));
    const problem = checkPath(action);
    if (problem) return Promise.reject(new TypeError(problem));
    return this.handlers.handle(action, handler, options);
  }

  /** Publishes a notification on `<category>/notification`. */
  notify(category: string, payload: unknown, options: SendOptions & { destination?: string } = {}): void {
    this.sendEnvelope(notificationTopic(category), { type: 'notification', payload, destination: options.destination ?? EVERYONE }, options);
  }

  /** Publishes a log record on `<category>/log`. */
  log(category: string, level: 'debug' | 'info' | 'warn' | 'error', message: string, data?: unknown): void {
    this.sendEnvelope(logTopic(category), { type: 'log', payload: { level, message, ...(data !== undefined && { data }) }, destination: EVERYONE }, {});
  }

  /** Publishes a ready-made envelope (or any JSON) on any topic, as `relais pub` does. */
  publish(topic: string, message: unknown, options: SendOptions & { retain?: boolean; qos?: 0 | 1 } = {}): void {
    if (this.closed) throw new NotSentError(this.closedBecause);
    const body = typeof message === 'string' ? message : JSON.stringify(message);
    this.transport.send({ topic, body, qos: options.qos ?? 1, priority: options.priority ?? 'normal', ...(options.retain && { retain: true }), ...(options.deadline !== undefined && { deadline: options.deadline }) });
  }

  subscribe(filter: string, options?: SubscribeOptions & { includeInvalid?: false }): Promise<Subscription<ReceivedMessage>>;
  subscribe(filter: string, options: SubscribeOptions & { includeInvalid: true }): Promise<Subscription<Delivery>>;
  subscribe(filter: string, callback: (message: ReceivedMessage) => void, options?: SubscribeOptions): Promise<Subscription<never>>;
  subscribe(
    filter: string,
    callbackOrOptions?: SubscribeOptions | ((message: ReceivedMessage) => void),
    maybeOptions?: SubscribeOptions,
  ): Promise<Subscription<Delivery>> {
    if (this.closed) return Promise.reject(new NotSentError(this.closedBecause));
    const callback = typeof callbackOrOptions === 'function' ? callbackOrOptions : undefined;
    const options = (typeof callbackOrOptions === 'function' ? maybeOptions : callbackOrOptions) ?? {};
    return this.subscriptions.subscribe(filter, options, callback as ((delivery: Delivery) => void) | undefined);
  }

  /**
   * Resolves once some alive client (or `target`) announces `action`; rejects with
   * `TimeoutError` after `timeout` ms (default: the request time-out). For a client that
   * starts before the handlers it needs.
   */
  waitForHandler(action: string, options: { target?: string; timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.closed) return Promise.reject(new NotSentError(this.closedBecause));
    const available = () => (options.target ? this.directory.serves(options.target, action) : this.directory.providers(action).size > 0);
    if (available()) return Promise.resolve();
    const timeout = options.timeout ?? this.options.timeout;
    const badTimeout = checkTimeout(timeout);
    if (badTimeout) return Promise.reject(new RangeError(badTimeout));
    const timeoutError = new TimeoutError(`no handler for ${action}${options.target ? ` on ${options.target}` : ''} appeared within ${timeout} ms`);
    return new Promise((resolve, reject) => {
      const done = (error?: unknown) => {
        clearTimeout(timer);
        this.directory.off('change', onChange);
        this.onStop.delete(onStop);
        options.signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve();
      };
      const onStop = () => done(new NotSentError(this.closedBecause));
      this.onStop.add(onStop);
      const onChange = () => {
        if (available()) done();
      };
      const onAbort = () => done(new CancelledError(`stopped waiting for a handler of ${action}`, { cause: options.signal?.reason }));
      const timer = setTimeout(() => done(timeoutError), timeout);
      this.directory.on('change', onChange);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Clients known from presence, with their status and actions. */
  clients(): Array<{ id: string } & PresenceInfo> {
    return this.directory.list().map(([id, info]) => ({ id, ...info }));
  }

  private sendEnvelope(topic: string, fields: Pick<Envelope, 'type' | 'payload' | 'destination'>, options: SendOptions): void {
    if (this.closed) throw new NotSentError(this.closedBecause);
    const priority = options.priority ?? 'normal';
    const envelope: Envelope = { v: 1, ...fields, source: this.id, priority, ts: Date.now(), ...(options.deadline !== undefined && { deadline: options.deadline }) };
    this.transport.send({ topic, body: JSON.stringify(envelope), qos: 1, priority, ...(options.deadline !== undefined && { deadline: options.deadline }) });
  }

  private presenceBody(status: PresenceInfo['status']): string {
    const info: PresenceInfo = {
      // Caller facts first, so they cannot overwrite the fields the protocol relies on.
      host: hostname(),
      pid: process.pid,
      ...this.options.info,
      status,
      actions: status === 'alive' ? this.handlers?.actions('main') ?? [] : [],
      realtimeActions: status === 'alive' ? this.handlers?.actions('realtime') ?? [] : [],
      since: this.twins.since,
      seq: this.presenceSeq++,
      instance: this.twins.instance,
      ...(this.options.ephemeral && { ephemeral: true }),
    };
    const envelope: Envelope = { v: 1, type: 'notification', source: this.id, destination: EVERYONE, payload: info, ts: Date.now() };
    return JSON.stringify(envelope);
  }

  /** Clears the retained presence on our topic, then announces ours: directories forget the other instance first. */
  private reclaimPresence(): void {
    this.announcing = this.announcing
      .catch(() => {})
      .then(() => (this.transport.connected ? this.transport.publishNow(presenceTopic(this.id), '', true) : undefined))
      .catch(() => {});
    void this.announce().catch((error: Error) => this.logger.warn({ err: error.message }, 'presence not republished'));
  }

  /** Publishes this client's presence (retained) and resolves once the broker has it. protocol §7 */
  private announce(): Promise<void> {
    // Serialised so the broker keeps the latest list, whatever order the acks come in.
    this.announcing = this.announcing
      .catch(() => {})
      .then(() => (this.transport.connected ? this.transport.publishNow(presenceTopic(this.id), this.presenceBody('alive'), true) : undefined))
      .catch((error: unknown) => {
        // A connection lost on the way is not a failure: every reconnection announces again.
        if (this.transport.connected || this.closed) throw error;
        this.logger.debug({ err: (error as Error).message }, 'presence not acknowledged before the connection dropped; it is republished on reconnection');
      });
    return this.announcing;
  }

  private onConnect(lane: Lane, reconnected: boolean): void {
    if (lane !== 'main') return;
    if (!reconnected) {
      // The directory is loaded when our own presence comes back: the broker sends the
      // retained presences for the subscription before it (protocol §7.2).
      void this.transport.subscribe(PRESENCE_FILTER, 'main').then(
        () => this.announce(),
        (error: Error) => this.failLoading(new NotSentError(`cannot subscribe to relais/presence/+: ${error.message}`, { cause: error })),
      ).catch((error: Error) => this.failLoading(new NotSentError(`cannot publish our presence: ${error.message}`, { cause: error })));
    } else {
      this.directory.beginReload();
      // Announced a moment later, once the broker has replayed the retained presences: ours
      // published first would overwrite what another client with our id left there (§7.5).
      clearTimeout(this.reannounceTimer);
      this.reannounceTimer = setTimeout(() => {
        if (this.closed || !this.transport.connected) return;
        void this.announce().catch((error: Error) => this.logger.warn({ err: error.message }, 'presence not republished'));
      }, REANNOUNCE_DELAY_MS);
      this.emit('online');
    }
  }

  private route(topic: string, payload: Buffer, retained: boolean, lane: Lane): void {
    let cached: DecodeResult | undefined;
    const decoded = () => (cached ??= payload.length === 0 ? EMPTY_MESSAGE : decode(payload, this.options.maxMessageBytes));
    const parsed = parseTopic(topic);
    switch (parsed.kind) {
      case 'response':
        if (parsed.requester === this.id) {
          const result = decoded();
          if (result.ok && result.envelope.type === 'response') this.requester.onResponse(result.envelope);
          else if (!result.ok) this.logger.warn({ topic, err: result.error.message }, 'invalid response');
        }
        break;
      case 'request':
        // Only for actions served here: a client that merely subscribes to '#' must not answer.
        if (parsed.target === this.id || (parsed.target === undefined && this.handlers.serves(parsed.action))) {
          this.handlers.onRequest(parsed.action, parsed.target !== undefined, decoded());
        }
        break;
      case 'cancel':
        if (this.handlers.serves(parsed.action)) this.handlers.onCancel(decoded());
        break;
      case 'presence': {
        const result = decoded();
        this.directory.update(parsed.clientId, result.ok ? result.envelope : undefined);
        if (parsed.clientId !== this.id || !result.ok) break;
        const presence = result.envelope.payload as Partial<PresenceInfo> | null;
        if (this.twins.isOther(presence?.instance)) {
          this.onSameId(presence as PresenceInfo);
          break;
        }
        if (!this.directory.settled && !this.settleTimer) {
          this.directoryLoaded();
          this.settleTimer = setTimeout(() => {
            this.settleTimer = undefined;
            this.directory.endReload();
          }, this.options.directorySettle);
        }
        break;
      }
      default:
        break;
    }
    this.subscriptions.dispatch(topic, lane, () => payload.toString('utf8'), decoded, retained);
  }

  /** Stops serving, announces `stopped`, fails what is pending and disconnects. */
  close(): Promise<void> {
    if (!this.stopLocally('the client closed before the response came')) return this.ending;
    this.ending = (async () => {
      if (this.transport.connected) {
        const farewell = this.options.ephemeral ? '' : this.presenceBody('stopped');
        // Bounded: a broker that just died would never acknowledge it.
        await this.transport.publishNow(presenceTopic(this.id), farewell, true, CLOSE_GRACE_MS).catch((error: Error) => {
          this.logger.warn({ err: error.message }, 'farewell presence not acknowledged; the will may announce this client as dead');
        });
      }
      await this.transport.close();
    })();
    return this.ending;
  }

  /** Drops the connection as a crash would: no `stopped` presence, the broker fires the Last Will. */
  kill(): Promise<void> {
    if (!this.stopLocally('the client was killed')) return this.ending;
    this.ending = this.transport.kill();
    return this.ending;
  }

  /** Another client announced itself with our id (§7.5): act on the verdict. */
  private onSameId(other: PresenceInfo): void {
    if (this.closed) return;
    const where = whereItRuns(other);
    switch (this.twins.judge(other)) {
      case 'older-twin':
        this.logger.warn({ id: this.id, other: where }, 'an older client uses our id; it gives way to this one');
        break;
      case 'suspected-twin':
        // Carry on, but give way if knocked off soon. Its will outranks our presence everywhere
        // (§7.1 ordering), so clear it and announce again.
        this.logger.warn({ id: this.id, other: where }, 'a client started later with our id has died (its will); carrying on');
        this.reclaimPresence();
        break;
      case 'give-way':
        this.giveWay(other);
        break;
      case 'ignore':
        break;
    }
  }

  /**
   * Stops because another client holds our id: says why, fails what is pending, and leaves
   * without a farewell (which would mark the id `stopped` under the winner).
   */
  private giveWay(other: PresenceInfo): void {
    const where = whereItRuns(other);
    const message = `another client connected with the id ${this.id} (${where}): only one connection may hold an id, so this one stops; give each client its own id`;
    this.logger.error({ id: this.id, other: where, otherSince: other.since, since: this.twins.since }, message);
    this.failLoading(new NotSentError(message));
    if (!this.stopLocally(message, `the client is closed: ${message}`)) return;
    // Closing starts before listeners run, so one that exits the process still leaves cleanly.
    this.ending = this.transport.close();
    this.emit('replaced', other);
  }

  /** What close and kill share: end everything in flight here. False when already stopped. */
  private stopLocally(reason: string, closedBecause = 'the client is closed'): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.closedBecause = closedBecause;
    clearTimeout(this.reannounceTimer);
    for (const stop of [...this.onStop]) stop();
    clearTimeout(this.settleTimer);
    this.handlers.abortAll();
    this.requester.failAll(() => new NotSentError(reason));
    this.subscriptions.closeAll();
    return true;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const EMPTY_MESSAGE: DecodeResult = { ok: false, error: new InvalidMessageError('empty message (a cleared retained topic)') };

function whereItRuns(presence: PresenceInfo): string {
  return `host ${String(presence.host ?? '?')}, pid ${String(presence.pid ?? '?')}`;
}
