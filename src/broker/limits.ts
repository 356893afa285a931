/**
 * Bounded resources of the embedded broker (docs/security.md "Bounded resources (broker)").
 * Aedes 1.2 reads packets with mqtt-packet, whose parser has no size limit for MQTT 3.1.1: it
 * buffers a packet's whole declared body (up to 256 MB) before handing it over. So every
 * network connection is read through a small scanner of MQTT fixed headers that refuses a
 * packet by its declared length, before its body is buffered; and every network client gets a
 * slow-consumer policy instead of Aedes's "wait up to 60 s for drain", which holds the shared
 * publish pipeline (mqemitter waits for every subscriber's write callback) for everyone.
 */
import type { Duplex } from 'node:stream';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/envelope.js';

export interface BrokerLimits {
  /**
   * Largest MQTT packet accepted (its declared remaining length), in bytes. A packet claiming
   * more closes the connection as soon as its fixed header is read. Default: the library's
   * maximum message (1 MiB) plus 64 KiB for the topic and the envelope's JSON.
   */
  maxPacketBytes: number;
  /**
   * Largest packet before the connection is authenticated (its CONNECT, and anything sent before
   * the CONNACK), in bytes: a bigger one closes the connection at its fixed header. Default
   * 16 KiB: an identity, a token, a client id and a presence will take well under it.
   */
  maxConnectBytes: number;
  /** A connection that sends no CONNECT within this many ms is closed. Default 5000 (Aedes: 30 s). */
  connectTimeoutMs: number;
  /**
   * Largest keep-alive a client may ask for, in seconds; 0 (the default) sets no limit. With a
   * limit, a CONNECT asking for more, or for keep-alive 0 (the client never pings), is refused
   * with CONNACK return code 2, "identifier rejected", as Mosquitto's `max_keepalive` does
   * (MQTT 3.1.1 §3.2.2.3 has no code for it), then closed. Keep-alive 0 is legal (MQTT 3.1.1
   * §3.1.2.10) and the default of several clients: half-open sockets of such clients are found
   * by TCP keep-alive probes (`tcpKeepaliveMs`) and by the slow-consumer cut-off instead.
   */
  maxKeepaliveSeconds: number;
  /** Idle time after which the kernel probes an accepted TCP connection (SO_KEEPALIVE). Default 60000. */
  tcpKeepaliveMs: number;
  /** A client whose unsent outgoing bytes exceed this is cut off at once. Default 8 MiB. */
  maxBufferedBytes: number;
  /** A client whose socket has not drained for this many ms while bytes wait is cut off. Default 2000. */
  stallMs: number;
}

export const BROKER_LIMITS: Readonly<BrokerLimits> = Object.freeze({
  maxPacketBytes: DEFAULT_MAX_MESSAGE_BYTES + 64 * 1024,
  maxConnectBytes: 16 * 1024,
  connectTimeoutMs: 5000,
  maxKeepaliveSeconds: 0,
  tcpKeepaliveMs: 60_000,
  maxBufferedBytes: 8 * 1024 * 1024,
  stallMs: 2000,
});

/** Connections each limit closed since the broker started (shown by `relais stats`, protocol §11.9). */
export interface CutOffCounts {
  /** A packet over `maxPacketBytes`, a first packet that is not CONNECT, or a malformed length. */
  packet: number;
  /** No CONNECT within `connectTimeoutMs`. */
  connectTimeout: number;
  /** A CONNECT refused by `maxKeepaliveSeconds` (never, unless the operator set one). */
  keepalive: number;
  /** Over `maxBufferedBytes` waiting, or not drained for `stallMs`. */
  slowConsumer: number;
}

export function noCutOffs(): CutOffCounts {
  return { packet: 0, connectTimeout: 0, keepalive: 0, slowConsumer: 0 };
}

/** The largest remaining length a 4-byte MQTT varint can carry (MQTT 3.1.1 §2.2.3). */
export const MAX_REMAINING_LENGTH = 268_435_455;

const CONNECT = 1;

export type HeaderVerdict =
  | { ok: true }
  | {
      ok: false;
      reason: 'too-large';
      type: number;
      claimed: number;
      /** where its header starts in the last chunk (0 when in an earlier one) */
      at: number;
      /** the limit it broke: `maxConnectBytes` before authentication, else `maxPacketBytes` */
      limit: number;
      beforeAuthentication: boolean;
    }
  | { ok: false; reason: 'not-connect'; type: number }
  | { ok: false; reason: 'malformed' };

/**
 * Follows the packet boundaries of one MQTT byte stream from the fixed headers alone: it keeps
 * a few integers, never a body. `scan(chunk)` says whether the stream so far is acceptable;
 * once it is not, the connection must be closed (the scanner stops there).
 */
export class HeaderScanner {
  private state: 'type' | 'length' | 'body' = 'type';
  private type = 0;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyLeft = 0;
  private packets = 0;
  private headerAt = 0;
  private verdict: HeaderVerdict = { ok: true };
  private authenticated: boolean;

  /** `maxConnectBytes`, when given, bounds every packet until `authenticate()`: nothing large is buffered for a stranger. */
  constructor(
    private readonly maxPacketBytes: number,
    private readonly maxConnectBytes?: number,
  ) {
    this.authenticated = maxConnectBytes === undefined;
  }

  /** The connection is authenticated (its CONNACK sent): packets up to `maxPacketBytes` from now on. */
  authenticate(): void {
    this.authenticated = true;
  }

  scan(chunk: Uint8Array): HeaderVerdict {
    let i = 0;
    this.headerAt = 0;
    while (i < chunk.length && this.verdict.ok) {
      if (this.state === 'body') {
        const skipped = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= skipped;
        i += skipped;
        if (this.bodyLeft === 0) this.state = 'type';
        continue;
      }
      const byte = chunk[i++]!;
      if (this.state === 'type') {
        this.headerAt = i - 1;
        this.type = byte >> 4;
        // [MQTT-3.1.0-1]: the first packet from a client must be CONNECT.
        if (this.packets === 0 && this.type !== CONNECT) this.verdict = { ok: false, reason: 'not-connect', type: this.type };
        this.state = 'length';
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        continue;
      }
      // Remaining length: 1-4 bytes, 7 bits each, least significant first (MQTT 3.1.1 §2.2.3).
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if (byte & 0x80) {
        if (this.lengthBytes === 4) this.verdict = { ok: false, reason: 'malformed' };
        continue;
      }
      this.packets++;
      const limit = this.authenticated ? this.maxPacketBytes : Math.min(this.maxConnectBytes!, this.maxPacketBytes);
      if (this.length > limit) {
        this.verdict = { ok: false, reason: 'too-large', type: this.type, claimed: this.length, at: this.headerAt, limit, beforeAuthentication: !this.authenticated };
      } else if (this.length > 0) {
        this.state = 'body';
        this.bodyLeft = this.length;
      } else {
        this.state = 'type';
      }
    }
    return this.verdict;
  }
}

/** What each connection declared in its CONNECT: its client id (to name it in log lines), keep-alive and clean flag. */
const declared = new WeakMap<object, { clientId: string; keepalive: number; clean: boolean }>();

/**
 * Aedes's `preConnect` hook, called as soon as a CONNECT is parsed: remembers what it declares,
 * so a connection refused right after its CONNECT (in the same chunk) is named by its client
 * id, and for `checkConnect`.
 */
export function rememberConnect(client: { conn: object }, packet: { clientId?: string; keepalive?: number; clean?: boolean }, callback: (error: Error | null, ok: boolean) => void): void {
  declared.set(client.conn, { clientId: packet.clientId ?? '', keepalive: packet.keepalive ?? 0, clean: packet.clean !== false });
  callback(null, true);
}

type Authenticate = (client: { conn: object; id: string }, username: string | undefined, password: Buffer | undefined, done: (error: (Error & { returnCode?: number }) | null, ok?: boolean) => void) => void;

/**
 * The CONNECT checks Aedes does not make, each refused with a return code MQTT 3.1.1 defines
 * (§3.2.2.3: 0 to 5; Aedes's own `keepaliveLimit` answers 6, which 3.1.1 clients cannot read):
 * - a zero-length client id with clean session 0: 2, identifier rejected [MQTT-3.1.3-8]
 *   (Aedes would make up an id, so the session could never be found again);
 * - with `maxKeepaliveSeconds`, keep-alive 0 or above it: 2, as Mosquitto's `max_keepalive`.
 * Wraps Aedes's `authenticate`, the first step after the CONNECT is read, so install it after
 * the security hooks: nothing is authenticated for a connection refused here.
 */
export function checkConnect(aedes: object, maxKeepaliveSeconds: number, log: (line: string) => void, counts: CutOffCounts): void {
  const broker = aedes as { authenticate: Authenticate };
  const authenticate = broker.authenticate;
  const refuse = (done: Parameters<Authenticate>[3], line: string) => {
    log(line);
    done(Object.assign(new Error(line), { returnCode: 2 }), false);
  };
  broker.authenticate = function (client, username, password, done) {
    const connect = declared.get(client.conn) ?? { clientId: client.id, keepalive: 0, clean: true };
    if (connect.clientId === '' && !connect.clean) {
      return refuse(done, 'refused a CONNECT with a zero-length client id and clean session 0: the broker cannot find such a session again [MQTT-3.1.3-8]');
    }
    const keepalive = connect.keepalive;
    if (maxKeepaliveSeconds && (keepalive === 0 || keepalive > maxKeepaliveSeconds)) {
      counts.keepalive++;
      return refuse(done, `refused CONNECT of client ${JSON.stringify(client.id).slice(0, 200)}: keep-alive ${keepalive === 0 ? '0 (never pings)' : `${keepalive} s`}, the limit is 1 to ${maxKeepaliveSeconds} s (maxKeepaliveSeconds)`);
    }
    authenticate.call(this, client, username, password, done);
  };
}

export function describeConnection(stream: Duplex, address: string): string {
  // Aedes sets `conn.client` on the streams it handles, and `client.id` once CONNECT is handled.
  const id = (stream as Duplex & { client?: { id?: string | null } }).client?.id ?? (declared.get(stream)?.clientId || undefined);
  return id ? `client ${id} (${address})` : `connection ${address} (no CONNECT yet)`;
}

/**
 * Makes every read of `stream` go through a HeaderScanner first. Aedes takes bytes with
 * `stream.read()` on 'readable'; a chunk that breaks a limit is never given to it, and the
 * stream is destroyed. Call before handing the stream to Aedes.
 */
export function guardReads(stream: Duplex, address: string, limits: Pick<BrokerLimits, 'maxPacketBytes' | 'maxConnectBytes'>, log: (line: string) => void, counts?: CutOffCounts): void {
  const scanner = new HeaderScanner(limits.maxPacketBytes, limits.maxConnectBytes);
  const read = stream.read.bind(stream);
  let refused = false;
  let authenticated = false;
  stream.read = (size?: number) => {
    const chunk = read(size) as Buffer | null;
    if (chunk === null || stream.destroyed || refused) return refused ? null : chunk;
    // Aedes reads again only once the CONNECT is handled: a CONNACK sent (and the connection
    // still open) means authenticated, and what follows may be as large as any packet.
    if (!authenticated && (stream as Duplex & { client?: { connackSent?: boolean } }).client?.connackSent) {
      authenticated = true;
      scanner.authenticate();
    }
    const verdict = scanner.scan(chunk);
    if (verdict.ok) return chunk;
    refused = true;
    // The packets before the refused one (a CONNECT in the same chunk) still reach Aedes, so
    // the log line can name the client id it declared.
    setImmediate(refuse, verdict);
    return verdict.reason === 'too-large' && verdict.at > 0 ? chunk.subarray(0, verdict.at) : null;
  };
  const refuse = (verdict: Exclude<HeaderVerdict, { ok: true }>) => {
    if (counts) counts.packet++;
    const who = describeConnection(stream, address);
    if (verdict.reason === 'too-large' && verdict.beforeAuthentication) {
      log(`closed ${who}: a packet of type ${verdict.type} claims ${verdict.claimed} bytes before authentication, over the limit of ${verdict.limit} (maxConnectBytes)`);
    } else if (verdict.reason === 'too-large') {
      log(`closed ${who}: a packet of type ${verdict.type} claims ${verdict.claimed} bytes, over the limit of ${verdict.limit} (maxPacketBytes)`);
    } else if (verdict.reason === 'not-connect') {
      log(`closed ${who}: its first packet is of type ${verdict.type}, not CONNECT`);
    } else {
      log(`closed ${who}: malformed remaining length (more than 4 bytes)`);
    }
    stream.destroy();
  };
}

interface DrainingClient {
  waitForDrain(callback: (error: Error | null, client: unknown) => void): void;
}

/**
 * Replaces Aedes's wait for 'drain' on one client. Aedes holds each message's delivery until
 * every subscriber's socket accepted it, so one frozen reader stalls everyone (for up to its
 * 60 s drain time-out). Here a write is done as soon as the bytes are queued; the queued bytes
 * are bounded (`maxBufferedBytes`) and must drain within `stallMs`, or the client is cut off.
 */
export function slowConsumerPolicy(client: DrainingClient, stream: Duplex, address: string, limits: Pick<BrokerLimits, 'maxBufferedBytes' | 'stallMs'>, log: (line: string) => void, counts?: CutOffCounts): void {
  let stalled: NodeJS.Timeout | undefined;
  const drained = () => {
    clearTimeout(stalled);
    stalled = undefined;
  };
  const cut = (why: string) => {
    drained();
    if (stream.destroyed) return;
    if (counts) counts.slowConsumer++;
    log(`cut off slow consumer ${describeConnection(stream, address)}: ${why}`);
    stream.destroy();
  };
  stream.once('close', () => {
    clearTimeout(stalled);
    stream.off('drain', drained);
  });
  client.waitForDrain = (callback) => {
    const buffered = stream.writableLength;
    if (buffered > limits.maxBufferedBytes) {
      cut(`${buffered} bytes wait to be sent, over the limit of ${limits.maxBufferedBytes} (maxBufferedBytes)`);
      setImmediate(callback, new Error('slow consumer cut off'), client);
      return;
    }
    setImmediate(callback, null, client);
    if (stalled === undefined && !stream.destroyed) {
      stream.once('drain', drained);
      stalled = setTimeout(() => cut(`${stream.writableLength} bytes not read for ${limits.stallMs} ms (stallMs)`), limits.stallMs);
      stalled.unref();
    }
  };
}
