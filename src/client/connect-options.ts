/**
 * The public surface of the library, part 1: how a client connects (`connect()`'s options,
 * signing and verification, logs on demand). Part 2, what it does once connected, is types.ts,
 * which re-exports this file: import from there.
 */
import type { KeyObject } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { IClientOptions } from 'mqtt';
import type { Logger } from 'pino';
import type { PublicSigningKey } from '../security/ed25519.js';
import type { PublicSealingKey } from '../security/sealing.js';
import type { SealFailure } from '../protocol/sealing.js';
import type { LogLineLevel, LogsAnswer, LogsRequest } from '../protocol/logs.js';
import type { HandlerContext, Lane, ReceivedMessage } from './types.js';

export interface ConnectOptions {
  /** This client's id: its MQTT client id, the `source` of what it sends and the `<requester>` of its response topics. */
  id: string;
  /**
   * Broker URL: `mqtt://host:port`, `mqtts://host:port`, `ws://host:port/path`, `wss://...`,
   * or `unix:///path/to/socket`. Default `RELAIS_BROKER` from the environment, else `mqtt://127.0.0.1:1883`.
   *
   * Several URLs, the nodes of one cluster (or bridged brokers), as a list or one string
   * separated by commas (`'mqtt://a:1883,mqtt://b:1883'`): the first connection tries each in
   * turn; after a loss, each reconnection attempt goes to the next one (protocol §1.3). The
   * credentials and TLS options are the same for all.
   */
  broker?: string | readonly string[];
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
   * The least time a request waits for a first answer (acknowledgement, progress or final) from
   * a handler that announces that it acknowledges, in ms, and the wait for a handler not heard
   * from yet (protocol §4.7). The wait adapts per handler to the round trips this client sees
   * (SRTT + 4·RTTVAR), up to 8 × `ackTimeout`. Without an answer in time the handler is
   * suspected, not taken as gone: a request without a target moves once to a provider that is
   * not suspected; otherwise it is offered again and waits for its own `timeout`. Default 2000.
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
   * a request for an action nobody announces waits for a provider, and fails with NoHandlerError
   * only at this point (some brokers, Aedes among them, deliver retained presences late;
   * protocol §7.2). Default 500.
   */
  directorySettle?: number;
  /**
   * When this client starts following every presence on the bus (protocol §7.2). `'full'`
   * (default): at connect, so requests find their handler at once. `'on-demand'`: at its first
   * request, `call`, `requestAll`, `waitForHandler` or `clients()`, or a kill relayed by the router;
   * until then it hears only its own presence. For fleets of clients that mostly serve and notify
   * (pollers, sensors, agents): each presence otherwise goes to every client, N² deliveries when
   * N clients connect (bench/RESULTS.md, idle clients). The first request then waits for the
   * directory as one made right after connect does.
   */
  directory?: 'full' | 'on-demand';
  /**
   * Publishes each presence of this client once more this many ms after the broker took it
   * (protocol §7.1, "On a cluster"), or never with `false`. A cluster's nodes (NATS, EMQX...)
   * copy retained messages to each other some time after the PUBACK: a client that subscribes
   * on another node meanwhile gets the previous presence and would keep it until the next one
   * (a handler without its new action, measured on a loaded NATS cluster in 1 subscription of
   * 10 made within ~50 ms of the presence). Default: 2000 when `broker` lists several URLs (a
   * cluster, docs/deploy.md), else `false`: one broker has no such delay.
   */
  presenceRepeat?: number | false;
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
  subscriptions?: ReadonlyArray<{ filter: string; callback: (message: ReceivedMessage) => void; qos?: 0 | 1; invalidLog?: 'warn' | 'debug' }>;
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
  /**
   * Sealed payloads (protocol §3.6): the keys this client seals for others with, and the private
   * key it opens what is sealed for it with. Sealed messages for this client are opened before any
   * handler, requester or subscription sees them (`envelope.seal` stays, informational).
   */
  sealing?: SealingOptions;
}

export interface SealingOptions {
  /**
   * The X25519 private key(s) this client opens with (KeyObject or PEM text, PKCS #8): several
   * during a rotation, so that what was sealed for the old key still opens. Absent: this client
   * only seals for others. Make one with `generateSealingKey()` (`relais identity keygen --seal`).
   */
  privateKey?: KeyObject | string | ReadonlyArray<KeyObject | string>;
  /**
   * The public sealing keys of the other identities (protocol §12.5): a list (as
   * `loadSealingKeys()` reads from a sealing keys file), or a function from an identity to its
   * keys, asked each time a message is sealed (a key it stops returning is no longer sealed for).
   * A message for an identity is sealed for every key of it not revoked.
   */
  keys: ReadonlyArray<PublicSealingKey> | ((identity: string) => ReadonlyArray<PublicSealingKey> | undefined);
  /** Seal every request to an application action (`seal: true` by default in `request()` and `call()`; not the router's and built-in `relais/…` actions, which hold no key). Default false. */
  requests?: boolean;
}

/** `bus.sealing`: what this client sealed, opened and could not open since connect (protocol §3.6). */
export interface SealingStats {
  /** Messages sealed. */
  sealed: number;
  /** Sealed messages opened. */
  opened: number;
  /** Sealed messages not opened, by why. */
  refused: Record<SealFailure, number>;
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
   * Longest time one retrieval holds this client's logs lock, in ms (protocol §11.4, the
   * lock's time-out): a follow ends then (`ended: 'lock-timeout'`) and a caller that vanished
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
