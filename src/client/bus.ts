/**
 * `connect()` and the Bus, the facade: wires the transport, the directory, the presence, the
 * requester, the handlers and the subscriptions, has each incoming message delivered to the
 * part its topic names (inbound.ts), and stops them together.
 */
import { iterateFromCaller, NotSentError, stackFromCaller } from '../protocol/errors.js';
import type { BusEvent } from '../protocol/events.js';
import { HISTORY_ACTIONS, type HistoryPage, type HistoryQuery, type HistoryRow } from '../protocol/history.js';
import type { LogLevel } from '../protocol/messages.js';
import { checkPath, presenceTopic, PRESENCE_FILTER } from '../protocol/topics.js';
import { Emitter } from './emitter.js';
import { Transport, type Signer, type Verifier } from './connection/index.js';
import { Directory, Presence, SiteDirectory, Startup, type SiteView } from './presence/index.js';
import { eventFeed, followToken, requestAll, Requester, type EventGap, type EventsOptions, type FanOutOptions, type FanOutResult, type FollowOptions } from './requesting/index.js';
import { Handlers } from './serving/index.js';
import { deliver, type ClientParts } from './inbound.js';
import { CONTRACTS_ACTION } from '../protocol/contracts.js';
import { LOGS_ACTION } from '../protocol/logs.js';
import { checkTimeout, type ResolvedOptions } from './options.js';
import { Publisher } from './publisher.js';
import type { Runtime } from './runtime.js';
import { Subscriptions } from './subscriptions.js';
import type { Sealing } from './sealing.js';
import { KvBucket } from './kv.js';
import { openConfig, type ClientConfig, type ConfigOptions } from './config.js';
import type { ZodType, z } from 'zod';
import type {
  Delivery,
  Handler,
  HandleOptions,
  Lane,
  PresenceInfo,
  ReceivedMessage,
  Refusal,
  Registration,
  RequestOptions,
  SendOptions,
  SealingStats,
  SignatureStats,
  Step,
  SubscribeOptions,
  Subscription,
} from './types.js';

/**
 * A connected client. Events: `offline` (the main connection dropped; the library
 * reconnects), `online` (it is back; subscriptions and presence are being restored),
 * `lane` (a connection, main or real-time, went down or came back up, protocol §6.2),
 * `replaced` (another client started with this id; this one has stopped, protocol §7.5),
 * `refused` (with `verify`: a received message was refused, protocol §12.4).
 */
export class Bus extends Emitter<{ online: []; offline: []; lane: [lane: Lane, up: boolean]; replaced: [other: PresenceInfo]; refused: [refusal: Refusal] }> {
  readonly id: string;
  /** The clients known from their presence and the actions they serve. */
  readonly directory: Directory;
  /** The sites' links and rosters (protocol §13.4): `change` when one changes. */
  readonly siteDirectory: SiteDirectory;
  readonly ready: Promise<void>;
  private readonly transport: Transport;
  private readonly presence: Presence;
  private readonly requester: Requester;
  private readonly handlers: Handlers;
  private readonly subscriptions: Subscriptions;
  private readonly publisher: Publisher;
  private readonly signer: Signer | undefined;
  private readonly verifier: Verifier | undefined;
  /** Sealed payloads (protocol §3.6): present in Node even without the option (sealed messages are then left unopened, counted). */
  private readonly sealingPart: Sealing | undefined;
  /** What an incoming message may be handed to (inbound.ts). */
  private readonly parts: ClientParts;
  /** Set by close, kill or a takeover: what a later close() waits for. */
  private ending: Promise<void> = Promise.resolve();
  private closed = false;
  /** What calls made after the end are told. */
  private closedBecause = 'the client is closed';
  /** Aborted when the client stops, with why: what waits (waitForHandler) ends then. */
  private readonly stopped = new AbortController();
  private readonly startup: Startup;

  private readonly options: ResolvedOptions;

  /** Use `connect()`. */
  constructor(given: ResolvedOptions, runtime: Runtime) {
    super();
    // Logs on demand (protocol §11.4): every part logs through the logger that keeps its lines.
    const logs = given.logs === false ? undefined : runtime.logService?.(given, given.logs);
    const options = (this.options = logs ? { ...given, logger: logs.logger } : given);
    this.id = options.id;
    // On demand (protocol §7.2): every presence only once something needs them, through the same held subscription.
    this.directory = new Directory(options.directorySettle, options.directory === 'on-demand' ? () => this.transport.subscribe(PRESENCE_FILTER, 'main') : undefined);
    this.siteDirectory = new SiteDirectory(options.logger);
    // Retained statuses not sent again after a reconnection were cleared meanwhile.
    this.directory.on('settled', () => this.siteDirectory.endReload());
    // protocol §12: made first, so that a bad key fails connect() before anything is opened.
    const signatures = (options.signing || options.verify) && runtime.signatures;
    if ((options.signing || options.verify) && !signatures) throw new TypeError('signing and verify (protocol §12) need Ed25519 keys, which this runtime does not offer: they work in Node');
    this.signer = options.signing && signatures ? signatures.signer(options.signing) : undefined;
    this.verifier = options.verify && signatures ? signatures.verifier(options.verify, this.signer, options.id) : undefined;
    // protocol §3.6: a bad key fails connect() before anything is opened, too.
    if (options.sealing && !runtime.sealing) throw new TypeError('sealing (protocol §3.6) needs X25519 keys, which this runtime does not offer: it works in Node');
    this.sealingPart = runtime.sealing?.(options.sealing);
    this.presence = new Presence(
      options,
      (lane) => this.handlers.actions(lane),
      { replaced: (other, message) => this.giveWay(other, message) },
      () => this.handlers.targetedActions(),
      () => this.handlers.contractHashes(),
    );
    this.transport = new Transport(options, this.presence.will(), {
      message: (topic, payload, retained, qos, lane) => deliver(this.parts, { topic, payload, retained, qos, lane }),
      connected: (lane, reconnected) => this.onConnected(lane, reconnected),
      disconnected: (lane) => this.onDisconnected(lane),
    }, this.signer);
    this.presence.attach(this.transport);
    this.requester = new Requester(options, this.transport, this.directory, this.siteDirectory, this.sealingPart);
    this.handlers = new Handlers(
      options,
      this.transport,
      () => this.presence.announce(),
      () => !this.presence.isStarting,
      (id) => this.isRouter(id),
      this.sealingPart,
    );
    if (logs) this.handlers.serveTargeted(LOGS_ACTION, logs.serve);
    this.handlers.serveTargeted(CONTRACTS_ACTION, () => ({ actions: this.handlers.contracts() }));
    this.subscriptions = new Subscriptions(options, this.transport);
    this.publisher = new Publisher(options, this.transport, () => (this.closed ? this.closedBecause : undefined), this.sealingPart);
    this.subscriptions.subscribeFromStart(options.subscriptions ?? []);
    this.parts = {
      options, directory: this.directory, presence: this.presence, sites: this.siteDirectory, requester: this.requester, handlers: this.handlers, subscriptions: this.subscriptions,
      ...(this.sealingPart && { sealing: this.sealingPart }),
      ...(this.verifier && { verifier: this.verifier, refused: (refusal: Refusal) => this.emit('refused', refusal) }),
    };
    this.startup = new Startup(this.transport, this.directory, this.presence, options.connectTimeout, options.logger, this.directory.following ? PRESENCE_FILTER : presenceTopic(options.id));
    this.ready = this.startup.ready;
  }

  /** The client's logger: what is logged through it (or a child) is also served by `relais logs` (protocol §11.4). */
  get logger() {
    return this.options.logger;
  }

  /** True while the main connection is up. */
  get connected(): boolean {
    return this.transport.connected;
  }

  /**
   * The broker the main connection uses now (or is trying), its password masked: with several
   * broker URLs, the one the client has moved to (protocol §1.3).
   */
  get broker(): string {
    return this.transport.brokerLabel;
  }

  /** True while a client connected with `startup: 'manual'` has not called `markReady()` (protocol §7.1). */
  get starting(): boolean {
    return this.presence.isStarting;
  }

  /**
   * Ends the `starting` phase of a client connected with `startup: 'manual'`: its presence
   * becomes `alive` with the actions it serves, so requesters may now pick it. Resolves once the
   * broker has the presence (or, offline, at once: every reconnection announces it). Does
   * nothing for a client that is not starting.
   */
  async markReady(): Promise<void> {
    if (this.closed) throw new NotSentError(this.closedBecause);
    await this.presence.markReady();
  }

  /**
   * Signed envelopes (protocol §12): how many messages this client signed, and with `verify`
   * how many it verified and refused, by reason. Undefined fields: that side is off.
   */
  get signatures(): { signed?: number; kid?: string } & Partial<SignatureStats> {
    return { ...(this.signer && { signed: this.signer.signed, kid: this.signer.kid }), ...this.verifier?.stats };
  }

  /**
   * Sealed payloads (protocol §3.6): how many messages this client sealed and opened, and how
   * many sealed messages it received but did not open, by why. Zeros where the runtime cannot seal.
   */
  get sealing(): SealingStats {
    return this.sealingPart?.stats ?? { sealed: 0, opened: 0, refused: { 'not-for-me': 0, malformed: 0, undecryptable: 0 } };
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
      // Captured again after the await: V8's async stack trace then shows the application's awaiting function.
      stackFromCaller(error, Bus.prototype.request);
      throw error;
    }
  }

  /**
   * Sends a command and yields its steps: `accepted` (by which handler), each progress
   * response, then the final one (protocol §4.3).
   */
  call(action: string, payload?: unknown, options?: RequestOptions): AsyncIterableIterator<Step> {
    if (this.closed) throw new NotSentError(this.closedBecause);
    return iterateFromCaller(this.requester.call(action, payload, options));
  }

  /**
   * One request's lifecycle as the router recorded it (command, accepted, progress, final or
   * error), replayed then live until its end: for a requester that restarted, or a viewer.
   * Needs a router on the bus (`relais start` runs one).
   */
  async *follow(token: string, options?: FollowOptions): AsyncGenerator<HistoryRow> {
    for await (const row of followToken(this, token, options)) yield this.openRow(row);
  }

  /**
   * A page of the router's history (protocol §11.2; `relais/history/get`), as this client may
   * read it (a requester its own rows). Sealed rows it holds a key for come opened (`openRows`).
   */
  async history(query: HistoryQuery = {}, options?: Pick<RequestOptions, 'timeout' | 'signal'>): Promise<HistoryPage> {
    const page = await this.request<HistoryPage>(HISTORY_ACTIONS.get, query, options);
    return { ...page, rows: this.openRows(page.rows) };
  }

  /**
   * History rows (from `relais/history/get` or `follow`) with the sealed ones this client can
   * open opened (protocol §3.6, §11.1): `opened: true`, `seal` kept, `data`/`size`/`sha256` the
   * plaintext's. Rows not sealed, truncated, or not sealed for this client's keys: unchanged.
   */
  openRows<T extends HistoryRow>(rows: readonly T[]): T[] {
    return rows.map((row) => this.openRow(row));
  }

  private openRow<T extends HistoryRow>(row: T): T {
    return row.seal === undefined || !this.sealingPart ? row : this.sealingPart.openRow(row);
  }

  /**
   * The router's one event stream (client status changes, requests started and finished,
   * notifications, logs at warning or above), from `since` or from now, across lost
   * connections: each event once, in cursor order; a `gap` says how many retention removed.
   */
  events(options?: EventsOptions): AsyncGenerator<BusEvent | EventGap> {
    return eventFeed(this, options);
  }

  /**
   * Sends `action` to every client serving it and to each of `expect`, one targeted request
   * each, and resolves once all have answered or timed out: every answer by name, and who did
   * not answer, apart by why (`relais call --all`, protocol §11.7).
   */
  async requestAll(action: string, payload?: unknown, options: FanOutOptions = {}): Promise<FanOutResult> {
    // "Every client serving it now" needs the whole directory: a broker may send the retained presences late (protocol §7.2).
    this.directory.want();
    await this.directory.whenSettled(options.timeout ?? this.options.timeout);
    return requestAll((name, body, requestOptions) => this.request(name, body, requestOptions), [...this.directory.providers(action)], action, payload, options);
  }

  /**
   * One bucket of the router's key-value store (protocol §14): get, put (compare-and-set with
   * `expectRevision`), delete, keys, history, and a watch that survives lost connections.
   * Needs a router on the bus (`relais start` runs one).
   */
  kv<T = unknown>(bucket: string): KvBucket<T> {
    return new KvBucket<T>(this, bucket);
  }

  /**
   * This client's configuration, `config/<its id>` in the key-value store (protocol §14.6): the
   * schema is announced (the router checks every write against it, code 2 naming the field), the
   * defaults written when there is none, and the changes followed while the client runs.
   */
  config<S extends ZodType>(schema: S, options: ConfigOptions<z.input<S>>): Promise<ClientConfig<z.output<S>>> {
    return openConfig(this, this.id, schema, options);
  }

  /** Serves `action`: subscribes to its request topics and announces it in the presence. */
  handle(action: string, handler: Handler, options?: HandleOptions): Promise<Registration> {
    if (this.closed) return Promise.reject(new NotSentError(this.closedBecause));
    const problem = checkPath(action);
    if (problem) return Promise.reject(new TypeError(problem));
    return this.handlers.handle(action, handler, options);
  }

  /**
   * Publishes a notification on `<category>/notification`. With `sealFor` (identities), its
   * payload is sealed for them (protocol §3.6): `SealingError` when one has no sealing key, nothing sent.
   * Throws `TypeError` for a bad category, `PayloadTooLargeError` past `maxMessageBytes`.
   */
  notify(category: string, payload: unknown, options: SendOptions & { destination?: string; sealFor?: readonly string[] } = {}): void {
    this.publisher.notify(category, payload, options);
  }

  /** Publishes a log record on `<category>/log`. */
  log(category: string, level: LogLevel, message: string, data?: unknown): void {
    this.publisher.log(category, level, message, data);
  }

  /**
   * Publishes a ready-made envelope (or any JSON, or a string as is) on any topic, as `relais pub`
   * does. Throws `TypeError` for a topic no broker would take (protocol §2.1) and
   * `PayloadTooLargeError` past `maxMessageBytes`: nothing is sent then.
   */
  publish(topic: string, message: unknown, options: SendOptions & { retain?: boolean; qos?: 0 | 1 } = {}): void {
    this.publisher.publish(topic, message, options);
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

  /** Whether the client has ended (close(), kill, or a take-over of its id): every call now fails with NotSentError. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Resolves once some alive client (or `target`) announces `action`; rejects with
   * `TimeoutError` after `timeout` ms (default: the request time-out). For a client that
   * starts before the handlers it needs.
   */
  waitForHandler(action: string, options: { target?: string; timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.closed) return Promise.reject(new NotSentError(this.closedBecause));
    const timeout = options.timeout ?? this.options.timeout;
    const badTimeout = checkTimeout(timeout);
    if (badTimeout) return Promise.reject(new RangeError(badTimeout));
    this.directory.want();
    return this.directory.waitForProvider(action, { ...options, timeout, stopped: this.stopped.signal });
  }

  /**
   * The sites this broker is linked to (protocol §13): each link's status (`up`, `down`, since
   * when, pull or push, its round trip) and each site's roster, from their retained topics.
   * Empty on a bus without sites. `siteDirectory.on('change', …)` tells when it changes.
   */
  sites(): SiteView[] {
    return this.siteDirectory.list();
  }

  /**
   * Clients known from presence, with their status and actions. With `directory: 'on-demand'`,
   * the first call starts following the presences and returns what is known yet (this client).
   */
  clients(): Array<{ id: string } & PresenceInfo> {
    this.directory.want();
    return this.directory.list().map(([id, info]) => ({ id, ...info }));
  }

  /**
   * Whether `id` is a router, whose relayed cancels this client's handlers take (protocol §11.5).
   * Asked of a client the directory does not know while it settles (or of an on-demand one that does
   * not follow the presences yet, which starts to): answered once settled.
   */
  private isRouter(id: string): boolean | Promise<boolean> {
    const known = this.directory.get(id);
    if (known || (this.directory.following && this.directory.settled)) return known?.role === 'router';
    this.directory.want();
    return this.directory.whenSettled(this.options.timeout).then(() => this.directory.get(id)?.role === 'router');
  }

  private onConnected(lane: Lane, reconnected: boolean): void {
    if (lane === 'main' && !reconnected) {
      this.startup.begin();
    } else if (lane === 'main') {
      this.directory.beginReload();
      this.siteDirectory.beginReload();
      this.presence.reannounceSoon();
      this.emit('online');
    }
    if (reconnected) {
      this.requester.onReconnected(lane);
      this.emit('lane', lane, true);
    }
  }

  private onDisconnected(lane: Lane): void {
    this.requester.onDisconnected(lane);
    if (lane === 'main' && this.presence.knockedOff()) return;
    if (lane === 'main') this.emit('offline');
    this.emit('lane', lane, false);
  }

  /**
   * Changes facts this client announces in its presence (the `info` connect option, protocol
   * §7.1: a mode, a version after an upgrade…) and publishes the presence again; resolves once
   * the broker has it. The fields the protocol defines cannot be overwritten this way.
   */
  updateInfo(fields: Record<string, unknown>): Promise<void> {
    if (this.closed) return Promise.reject(new NotSentError(this.closedBecause));
    return this.presence.updateInfo(fields);
  }

  /** Stops serving, announces `stopped`, fails what is pending and disconnects. */
  close(): Promise<void> {
    if (!this.stopLocally('the client closed before the response came')) return this.ending;
    this.ending = (async () => {
      await this.presence.farewell();
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

  /**
   * Another client holds our id (protocol §7.5): fail what is pending and leave without a
   * farewell (which would mark the id `stopped` under the winner).
   */
  private giveWay(other: PresenceInfo, message: string): void {
    this.startup.fail(new NotSentError(message));
    if (!this.stopLocally(message, `the client is closed: ${message}`)) return;
    // Closing starts before listeners run, so one that exits the process still leaves cleanly.
    this.ending = this.transport.close();
    this.emit('replaced', other);
  }

  /** What close, kill and a takeover share: end everything in flight here. False when already stopped. */
  private stopLocally(reason: string, closedBecause = 'the client is closed'): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.closedBecause = closedBecause;
    this.presence.stop();
    this.directory.stop();
    this.stopped.abort(new NotSentError(closedBecause));
    this.handlers.abortAll();
    this.requester.failAll(() => new NotSentError(reason));
    this.subscriptions.closeAll();
    return true;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
