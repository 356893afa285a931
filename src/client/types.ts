/**
 * The public surface of the Relais client library, part 2: what a connected client does
 * (requests, handlers, subscriptions, presence). Part 1, connecting, is connect-options.ts,
 * re-exported here so that this file is the one place to import from.
 */
import type { ZodType } from 'zod';
import type { Envelope, Priority } from '../protocol/envelope.js';
import type { Lane } from '../protocol/request-lifecycle.js';
import type { PublicSigningKey } from '../security/ed25519.js';

export type { Envelope, Priority, PublicSigningKey };
export type * from './connect-options.js';

/** Which MQTT connection carries a subscription or a message (protocol §6.2). */
export type { Lane };

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
  /**
   * The identity this command is sent for, by a client trusted to act for others (the HTTP
   * API): the router records it as the command's author and answers history queries as it
   * (protocol §3.1, §11.2). Ignored by the router from anyone else.
   */
  onBehalfOf?: string;
  /**
   * When the handler (given as `target`, or the only kind of provider there is) is a client of
   * a site whose link is down (protocol §13.4), the request fails at once with
   * `SiteUnreachableError` (`details: {site, since}`), nothing sent. With `waitForSite` (ms) it
   * waits that long for the link to come back up, then sends; else fails with that error at its
   * end. Part of the time-out, never beyond it. A request already sent when the link drops is not
   * failed: its answer may still come once the link is back, within its time-out.
   */
  waitForSite?: number;
  /**
   * Seal the payload (protocol §3.6) for the target's identity, or for every identity serving
   * the action (so that a retry elsewhere, §4.7, still reaches a handler that can open it); its
   * answers come back sealed for this client. No sealing key known for the handler's identity:
   * it fails at once with `SealingError`, nothing sent. Default: `sealing.requests` of connect.
   */
  seal?: boolean;
}

/** One step of a streamed call: `accepted`, progress, final (protocol §4.3, §4.7). */
export type { Step } from '../protocol/request-lifecycle.js';

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
  /** The whole request envelope (a sealed one opened: `payload` is the plaintext, `seal` kept). */
  readonly envelope: Envelope;
  /** The command came sealed (protocol §3.6): its answers go back sealed for the requester. */
  readonly sealed: boolean;
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
  /** `'require'`: an unsealed command is refused, code 3 (protocol §3.6), the handler not run. */
  sealed?: 'require';
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
  /**
   * The level of the log line for a message that is not a valid envelope (when not
   * `includeInvalid`). Default `warn` (protocol §5.2); `debug` for a subscription to everything
   * (`#`), which also sees the plain MQTT traffic of standard clients: not a mistake there.
   */
  invalidLog?: 'warn' | 'debug';
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
  /**
   * A sealed message (protocol §3.6): `opened` (the envelope's payload is the plaintext) or
   * `unopened` (not sealed for this client, or it did not open: the payload is the ciphertext
   * bytes). Absent: the message was not sealed. `envelope.seal` stays in both cases.
   */
  sealed?: 'opened' | 'unopened';
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

/** What a client announces about itself (retained on `relais/presence/<id>`): its shape lives with the protocol (protocol §7.1). */
export type { PresenceInfo } from '../protocol/presence.js';
