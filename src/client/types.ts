/**
 * The public surface of the Relais client library, documented in one place.
 * Implementation lives in the other files of this folder.
 */
import type { ZodType } from 'zod';
import type { KeyObject } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { IClientOptions } from 'mqtt';
import type { Logger } from 'pino';
import type { Envelope, Priority } from '../protocol/envelope.js';
import type { PublicSigningKey } from '../protocol/signature.js';
import type { LogLineLevel, LogsAnswer, LogsRequest } from '../protocol/logs.js';

export type { Envelope, Priority, PublicSigningKey };

/** Which MQTT connection carries a subscription or a message (protocol §6). */
export type Lane = 'main' | 'realtime';

export interface ConnectOptions {
  /** This client's id: its MQTT client id, the `source` of what it sends and the `<requester>` of its response topics. */
  id: string;
  /**
   * Broker URL: `mqtt://host:port`, `mqtts://host:port`, `ws://host:port/path`, `wss://...`,
   * or `unix:///path/to/socket`. Default `RELAIS_BROKER` from the environment, else `mqtt://127.0.0.1:1883`.
   */
  broker?: string;
  username?: string;
  password?: string;
  /**
   * TLS for `mqtts://` / `wss://`: `ca` to trust a private or self-signed broker certificate
   * (else the system's CAs), `cert` + `key` for client-certificate authentication.
   * `rejectUnauthorized: false` turns checking off; never do that outside a test.
   */
  tls?: Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'servername' | 'rejectUnauthorized'>;
  /** Default time-out of `request`/`call`, in ms. Default 30 000. */
  timeout?: number;
  /**
   * How long a request waits for the handler's acknowledgement, in ms, when the handler
   * announces that it acknowledges (protocol §4.7). Without it in time the handler is taken as
   * gone: a request without a target goes to another provider, a targeted one fails with
   * `HandlerGoneError`. Default 2000.
   */
  ackTimeout?: number;
  /**
   * How long a request already acknowledged waits for its handler to come back after the
   * handler's connection (or ours) was lost, in ms, before failing with `HandlerGoneError`
   * (protocol §4.7). It covers a broker restart. Default 10 000.
   */
  reconnectGrace?: number;
  /** Open a second connection for `realtime` traffic so it never waits behind bulk messages. Default true. */
  realtimeLane?: boolean;
  /** Messages kept while disconnected, at most. Beyond, sending fails with `NotSentError`. Default 1000. */
  maxOfflineMessages?: number;
  /** Largest message accepted or sent, in bytes. Default 1 MiB. */
  maxMessageBytes?: number;
  /** First reconnect delay in ms; doubles each try up to `reconnectMaxDelay`, with full jitter. Default 100. */
  reconnectDelay?: number;
  /** Longest reconnect delay in ms. Default 5000. */
  reconnectMaxDelay?: number;
  /** How long the first connection may take before `connect` rejects, in ms. Default 10 000. */
  connectTimeout?: number;
  /** MQTT keep-alive in seconds; also how fast the broker notices a silent death. Default 30. */
  keepalive?: number;
  /**
   * Fail a request at once with `NoHandlerError` when no client announces the action (protocol §7).
   * Turn off to talk to handlers that do not announce themselves (plain MQTT peers). Default true.
   */
  checkHandlers?: boolean;
  /**
   * How long after (re)connecting the directory of handlers is taken as complete, in ms. Before,
   * a request for an action nobody announces is sent anyway and fails with NoHandlerError only at
   * this point (some brokers, Aedes among them, deliver retained presences late). Default 500.
   */
  directorySettle?: number;
  /** Where the library logs (bad input, dropped messages, reconnects). Default: pino to stderr at `RELAIS_LOG_LEVEL` or `warn`. */
  logger?: Logger;
  /**
   * A short-lived client (a CLI command, a test): on close or death its retained presence is
   * cleared instead of left as `stopped`/`dead`, so it leaves no trace in the directory. Default false.
   */
  ephemeral?: boolean;
  /** Free-form facts published in this client's presence (host, version, role...). */
  info?: Record<string, unknown>;
  /**
   * Connect over this stream instead of `broker` (called again for every reconnection): an
   * in-process client of the embedded broker passes `() => broker.connectInProcess()`.
   */
  stream?: () => Duplex;
  /**
   * Keep this client's MQTT session at the broker between connections (clean session off, on
   * the main lane): what is published at QoS 1 to its subscriptions while it is away is
   * delivered when it comes back, where the broker keeps sessions (protocol §1.3). Default false.
   */
  persistentSession?: boolean;
  /**
   * Subscriptions made before the connection opens, each with its callback. With
   * `persistentSession`, what the broker kept while this client was away arrives right after
   * the CONNACK, before `connect()` resolves: only these see it (the router records it).
   */
  subscriptions?: ReadonlyArray<{ filter: string; callback: (message: ReceivedMessage) => void; qos?: 0 | 1 }>;
  /**
   * How this client reports its start-up, as Domogik plugins do (`starting` → `alive` → `stopped`).
   * `'auto'` (default): it is `alive` as soon as `connect()` resolves. `'manual'`: it is
   * connected but announced as `starting` (presence `status: "alive"` with `lifecycle: "starting"`
   * and no actions, protocol §7.1) until `bus.markReady()` is called, so no requester picks it as
   * a handler while it loads its configuration; `handle()` may be called meanwhile and its actions
   * are announced by `markReady()`.
   */
  startup?: 'auto' | 'manual';
  /**
   * Logs on demand (protocol §11.4): the client keeps its recent log lines (what `logger`, and
   * `bus.logger`, write) in memory and serves them on the built-in action `relais/logs/get`.
   * `false` keeps nothing and serves nothing. Defaults: see `LogsOptions`.
   */
  logs?: LogsOptions | false;
  /**
   * Sign every message this client writes with this Ed25519 key (protocol §12): receivers that
   * verify then know the message comes from the identity the key is registered to, for this
   * topic, once, and recently. Make a key with `relais identity keygen`.
   */
  signing?: SigningOptions;
  /**
   * Check the signatures of what this client receives (protocol §12.4), before any handler,
   * requester, directory or subscription sees it. What is refused is dropped, logged (one
   * warning: topic, claimed source, reason) and counted (`bus.signatures`, event `refused`).
   */
  verify?: VerifyOptions;
}

export interface SigningOptions {
  /** The Ed25519 private key: a KeyObject or PEM text (PKCS #8). */
  privateKey: KeyObject | string;
}

export interface VerifyOptions {
  /**
   * The keys trusted: a list (as `loadSigningKeys()` reads from a keys file), or a function
   * from a key id to its key, asked for every message signed with a key not in the list (it may
   * revoke at once; return KeyObjects, parsing PEM each time is slow).
   */
  keys: ReadonlyArray<PublicSigningKey> | ((kid: string) => PublicSigningKey | undefined);
  /**
   * Refuse unsigned messages too. Default true. With false, unsigned messages pass (a network
   * moving to signatures) but a signed one that fails any check is still refused.
   */
  require?: boolean;
  /** Largest difference between a signature's time and this client's clock, in ms. Default 30 000. */
  maxSkewMs?: number;
  /** Senders (key and start) whose replay windows are kept, at most; least recently heard forgotten first. Default 10 000. */
  maxSenders?: number;
}

/** Why a received message was refused (protocol §12.4). */
export type RefusalReason = 'unsigned' | 'malformed' | 'unknown-key' | 'revoked-key' | 'wrong-identity' | 'forged' | 'stale' | 'replayed';

/** `bus.signatures`: what the verifier let through and refused since connect. */
export interface SignatureStats {
  /** Messages whose signature held. */
  verified: number;
  refused: Record<RefusalReason, number>;
  /** Replay windows held now. */
  sendersTracked?: number;
  /** Windows forgotten while a replay of theirs could still have been fresh (more than `maxSenders` active senders). */
  unsafeEvictions?: number;
}

/** A message refused by the verifier (event `refused` of the Bus). */
export interface Refusal {
  topic: string;
  /** The `source` it claims, when it could be read. */
  source?: string;
  reason: RefusalReason;
  lane: Lane;
}

/** The log buffer of `ConnectOptions.logs`. */
export interface LogsOptions {
  /** Lines kept, at most; the oldest go first. Default 1000. */
  maxLines?: number;
  /** Bytes of log text kept, at most (UTF-8); the oldest lines go first. Default 262 144 (256 KiB). */
  maxBytes?: number;
  /**
   * Lowest level kept. Default: the logger's own level (nothing more is logged than before).
   * A lower one (`'debug'`) makes `relais logs --level debug` useful at the price of formatting
   * those lines, which then reach the buffer only, not the logger's destination.
   */
  level?: LogLineLevel;
  /**
   * Longest time one retrieval holds this client's logs lock, in ms (seed 002: "au-delà de 1
   * minute, on timeout"): a follow ends then (`ended: 'lock-timeout'`) and a caller that vanished
   * frees the lock by then. Default 60 000.
   */
  lockTimeout?: number;
  /**
   * Other logs this client serves on `relais/logs/get` (protocol §11.4): a request naming a
   * `source` goes to `serve` (the agent's configured files and journal, src/agent/logs.ts).
   * Without it, such a request is refused (code 1).
   */
  sources?: LogSources;
}

/** Serves the requests of `relais/logs/get` that name a `source` (protocol §11.4). */
export interface LogSources {
  serve(request: LogsRequest & { source: string }, ctx: HandlerContext): LogsAnswer | Promise<LogsAnswer>;
}

export interface SendOptions {
  priority?: Priority;
  /** Epoch ms after which the message is useless: not sent late from the offline queue. */
  deadline?: number;
}

export interface RequestOptions extends SendOptions {
  /**
   * Id of the one client that must handle the command (`<action>/request/<target>`).
   * Absent: the library picks one alive client serving the action (the one with the fewest
   * requests pending from this client, in turn among equals), so the command runs once.
   * `'*'`: every client serving it runs it and the first final response wins (reads, discovery).
   */
  target?: string;
  /** Time-out in ms; the request rejects with `TimeoutError` after it. Default: the connect option. */
  timeout?: number;
  /** Aborting it rejects with `CancelledError` and sends a cancel message to the handler. */
  signal?: AbortSignal;
  /** Overrides `ConnectOptions.checkHandlers` for this request. */
  checkHandlers?: boolean;
  /** Token to use instead of a generated one. Must be unique. */
  token?: string;
  /** Overrides `ConnectOptions.ackTimeout` for this request. */
  ackTimeout?: number;
}

/**
 * One step of a streamed call: `accepted` (the handler `source` took the command; protocol
 * §4.7), then progress responses, then the final one.
 */
export type Step =
  | { kind: 'accepted'; progress?: number; source: string; token: string }
  | { kind: 'progress'; progress?: number; payload: unknown; source: string; token: string }
  | { kind: 'final'; payload: unknown; code: number; source: string; token: string };

export interface HandlerContext {
  readonly action: string;
  readonly token: string;
  /** Id of the requester. */
  readonly source: string;
  readonly priority: Priority;
  /** Epoch ms by which the requester stops waiting; undefined when it gave none. */
  readonly deadline?: number;
  /** Aborted when the requester cancels or the deadline passes. */
  readonly signal: AbortSignal;
  /** The whole request envelope. */
  readonly envelope: Envelope;
  /** Sends a progress response: `fraction` in [0, 1], `data` any JSON. */
  progress(fraction: number | undefined, data?: unknown): void;
  /**
   * Resolves once every progress response sent so far has been handed to the socket (or given
   * up), at once when none waits, and when the command ends or is aborted. A handler that
   * streams (a command's output) awaits it before reading more: its producer slows down to
   * what the connection carries instead of filling memory.
   */
  drained(): Promise<void>;
}

/** Serves an action: returns the result (any JSON) or throws (becomes an error response). */
export type Handler = (payload: any, ctx: HandlerContext) => unknown | Promise<unknown>;

export interface HandleOptions {
  /** `realtime` serves this action on the real-time connection. Default `main`. */
  lane?: Lane;
  /**
   * zod schema of the payload: a payload that does not match is refused before the handler runs
   * (code 2, the message names the field) and the handler gets the parsed value (protocol §7.6).
   */
  input?: ZodType;
  /** zod schema of the result: checked before it is sent (not with NODE_ENV=production); a mismatch is an error response. */
  output?: ZodType;
  /** One line describing the action, for `relais contracts` and the AsyncAPI document. */
  description?: string;
}

export interface Registration {
  /** Stops serving: unsubscribes and updates the presence. */
  close(): Promise<void>;
}

export interface SubscribeOptions {
  lane?: Lane;
  /** MQTT QoS of the subscription. Default 1. */
  qos?: 0 | 1;
  /** Also deliver messages that are not valid envelopes (as `InvalidMessage`). Default false. */
  includeInvalid?: boolean;
  /** Messages kept for a slow consumer; beyond, the oldest are dropped with a log line. Default 10 000. */
  bufferSize?: number;
}

export interface ReceivedMessage {
  topic: string;
  envelope: Envelope;
  /** Delivered from the broker's retained store rather than live. */
  retained: boolean;
  /** The QoS it was delivered at: a QoS 1 message is acknowledged to the broker when the callback returns. */
  qos: 0 | 1;
  /** The message's bytes as received (not a copy: do not modify). */
  raw: Buffer;
}

export interface InvalidMessage {
  topic: string;
  /** Why it is not a valid envelope, naming the field. */
  invalid: string;
  /** The raw text (first 4 KiB). */
  text: string;
  retained: boolean;
  qos: 0 | 1;
  raw: Buffer;
}

export type Delivery = ReceivedMessage | InvalidMessage;

export interface Subscription<T = ReceivedMessage> extends AsyncIterable<T> {
  readonly filter: string;
  /** Number of messages dropped because the consumer was too slow. */
  readonly dropped: number;
  unsubscribe(): Promise<void>;
}

/** What a client announces about itself (retained on `relais/presence/<id>`, protocol §7). */
export interface PresenceInfo {
  status: 'alive' | 'stopped' | 'dead';
  actions: string[];
  realtimeActions?: string[];
  /** When this client instance started (epoch ms). */
  since: number;
  /** Counter of this instance's presence messages, to drop ones that arrive out of order. */
  seq?: number;
  /** Random per start: tells this instance from another client with the same id (protocol §7.5). */
  instance?: string;
  /** The client acknowledges commands and remembers their tokens (protocol §4.7). */
  acks?: boolean;
  /** A short-lived client: a presence of it that is not `alive` reads as forgotten. */
  ephemeral?: boolean;
  /**
   * `"starting"` while a client with `startup: 'manual'` has not called `markReady()`; absent
   * otherwise. Only with `status: "alive"` and no actions (protocol §7.1).
   */
  lifecycle?: 'starting';
  /**
   * Built-in actions it serves only when a command names it as target (`relais/logs/get`,
   * protocol §11.4): apart from `actions`, so never picked for an untargeted request.
   */
  targetedActions?: string[];
  /** Actions with a declared contract, and its hash (protocol §7.6); `relais/contracts/get` gives them whole. */
  contracts?: Record<string, string>;
  [extra: string]: unknown;
}
