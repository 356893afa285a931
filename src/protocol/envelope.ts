/**
 * The message envelope (protocol §3): one UTF-8 JSON object per MQTT message.
 * Pure: encoding, decoding and validation, no I/O.
 */
import { z } from 'zod';
import { utf8ByteLength } from './bytes.js';
import { envelopeText } from './encoding.js';
import { InvalidMessageError, PayloadTooLargeError, type WireError } from './errors.js';
import { binaryHeader, bodyLengthProblem, frame, hasBinaryPayload, HEADER_END, isBytes, splitFrame, type Framed, type WireBody } from './framing.js';

export const PROTOCOL_VERSION = 1;

export const MESSAGE_TYPES = ['command', 'response', 'notification', 'log', 'cancel'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** Highest first: the order queued messages leave in (protocol §6.1). */
export const PRIORITIES = ['realtime', 'high', 'normal', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** `normal` unless told otherwise (protocol §6.1). */
export const DEFAULT_PRIORITY: Priority = 'normal';

/** The priority `value` names, or the default when it names none (a field read from an unchecked message). */
export function priorityOf(value: unknown): Priority {
  return PRIORITIES.includes(value as Priority) ? (value as Priority) : DEFAULT_PRIORITY;
}

/** Destination meaning "every client". */
export const EVERYONE = '*';

/** Default largest encoded message accepted, in bytes (protocol §3.4). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

const wireErrorSchema = z.object({
  name: z.string().max(200),
  message: z.string().max(64 * 1024),
  details: z.unknown().optional(),
});

const idString = z.string().min(1).max(256);

export const envelopeSchema = z
  .object({
    v: z.number().int().positive().optional(),
    type: z.enum(MESSAGE_TYPES),
    source: idString,
    destination: idString,
    token: z.string().min(1).max(256).optional(),
    payload: z.unknown(),
    code: z.number().int().nonnegative().optional(),
    final: z.boolean().optional(),
    progress: z.number().min(0).max(1).optional(),
    error: wireErrorSchema.optional(),
    priority: z.enum(PRIORITIES).optional(),
    deadline: z.number().int().nonnegative().optional(),
    acceptBy: z.number().int().nonnegative().optional(),
    accepted: z.boolean().optional(),
    ts: z.number().nonnegative().optional(),
  })
  .superRefine((message, ctx) => {
    if ((message.type === 'response' || message.type === 'cancel') && message.token === undefined) {
      ctx.addIssue({ code: 'custom', path: ['token'], message: `a ${message.type} must carry the token of its command` });
    }
  });

/** A validated message. Unknown extra fields are kept as they came (forward compatibility, protocol §3.3). */
export interface Envelope {
  v?: number;
  type: MessageType;
  source: string;
  destination: string;
  token?: string;
  payload: unknown;
  code?: number;
  final?: boolean;
  progress?: number;
  error?: WireError;
  priority?: Priority;
  deadline?: number;
  /** Command: a handler that acknowledges must not start it after this time (protocol §4.7). */
  acceptBy?: number;
  /** Response: `true` on the acknowledgement step; `false` on a final that refused to run the command (protocol §4.7). */
  accepted?: boolean;
  ts?: number;
  [extra: string]: unknown;
}

export type DecodeResult =
  | { ok: true; envelope: Envelope }
  | {
      ok: false;
      error: InvalidMessageError | PayloadTooLargeError;
      /** What could be read of the sender, so an error can go back to it. */
      sender?: { source: string; token?: string };
    };

/** Reads and validates one message: UTF-8 JSON without a BOM (protocol §3, encoding.ts). Never throws. */
export function decode(bytes: Uint8Array | string, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): DecodeResult {
  // A UTF-16 unit is at most 3 bytes of UTF-8: a short text needs no count.
  const size = typeof bytes === 'string' ? (bytes.length * 3 > maxBytes ? utf8ByteLength(bytes) : 0) : bytes.byteLength;
  if (size > maxBytes) {
    const error = new PayloadTooLargeError(`message of ${size} bytes is over the ${maxBytes}-byte limit`);
    const sender = senderFromHead(typeof bytes === 'string' ? bytes.slice(0, HEAD_BYTES) : LENIENT_UTF8.decode(bytes.subarray(0, HEAD_BYTES)));
    return { ok: false, error, ...(sender && { sender }) };
  }
  // A binary message (protocol §3.5): only a message holding an LF can be one (a memchr).
  if (typeof bytes !== 'string' && bytes.indexOf(HEADER_END) >= 0) {
    const framed = splitFrame(bytes);
    if (framed) return decodeFramed(framed);
  }
  const text = envelopeText(bytes);
  if (!text.ok) return { ok: false, error: new InvalidMessageError(`message is not UTF-8 JSON: ${text.problem} (protocol §3)`) };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.text);
  } catch (cause) {
    return { ok: false, error: new InvalidMessageError(`message is not valid JSON: ${(cause as Error).message}`, { cause }) };
  }
  return validate(parsed);
}

/** A binary message's envelope: its header's members, the body bytes as `payload` where `body` was (protocol §3.5). */
function decodeFramed(framed: Framed): DecodeResult {
  const problem = bodyLengthProblem(framed);
  if (problem) {
    const sender = senderOf(framed.header);
    return { ok: false, error: new InvalidMessageError(problem), ...(sender && { sender }) };
  }
  // A body much smaller than the buffer it views (a socket read holding other packets) is copied,
  // so that keeping the payload does not keep the whole read; a large one is the buffer already.
  const body = framed.body.byteLength * 2 < framed.body.buffer.byteLength ? Uint8Array.prototype.slice.call(framed.body) : framed.body;
  const envelope: Record<string, unknown> = {};
  for (const key of Object.keys(framed.header)) {
    if (key === 'body') envelope.payload = body;
    else envelope[key] = framed.header[key];
  }
  return validate(envelope);
}

/** Validates an already-parsed value as an envelope. Never throws. */
export function validate(value: unknown): DecodeResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: new InvalidMessageError(`message must be a JSON object, got ${describe(value)}`) };
  }
  const sender = senderOf(value as Record<string, unknown>);
  if (!('payload' in value)) {
    // A binary message's header without its LF and body is the likely mistake (protocol §3.5).
    const why = 'body' in value ? "field 'payload' is required (a binary message's header is followed by one LF and its 'body' bytes, protocol §3.5)" : "field 'payload' is required";
    return { ok: false, error: new InvalidMessageError(why), ...(sender && { sender }) };
  }
  if (isPlainlyValid(value as Record<string, unknown>)) return { ok: true, envelope: value as Envelope };
  const result = envelopeSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const field = issue.path.length ? issue.path.join('.') : '(message)';
      return `field '${field}': ${issue.message}`;
    });
    return {
      ok: false,
      error: new InvalidMessageError(`invalid message: ${problems.join('; ')}`, { details: { issues: problems } }),
      ...(sender && { sender }),
    };
  }
  // The original object is returned so unknown fields survive; zod only checked it.
  return { ok: true, envelope: value as Envelope };
}

const HEAD_BYTES = 1024;
/** Only to look for the sender of an oversized message: its bytes are never parsed. */
const LENIENT_UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });
const HEAD_SOURCE = /"source"\s*:\s*"([A-Za-z0-9_.:@-]{1,128})"/;
const HEAD_TOKEN = /"token"\s*:\s*"([^"\\]{1,256})"/;

/**
 * An oversized message is not parsed; its sender and token are looked for in its first
 * KiB only, so an error can still go back to it (protocol §3.4). Senders that write
 * `source` and `token` before `payload`, as Relais does, always get one.
 */
function senderFromHead(head: string): { source: string; token?: string } | undefined {
  const source = HEAD_SOURCE.exec(head)?.[1];
  if (!source) return undefined;
  const token = HEAD_TOKEN.exec(head)?.[1];
  return token ? { source, token } : { source };
}

const TYPE_SET: ReadonlySet<unknown> = new Set(MESSAGE_TYPES);
const PRIORITY_SET: ReadonlySet<unknown> = new Set(PRIORITIES);
const isId = (value: unknown) => typeof value === 'string' && value.length >= 1 && value.length <= 256;
// Safe integers, as zod's int() demands: 2^53 is an integer, and refused there.
const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
const absentOr = (value: unknown, check: (value: unknown) => boolean) => value === undefined || check(value);

/**
 * The hot path: the checks of `envelopeSchema`, written out, for messages that pass them.
 * A message that fails any goes through zod, which is the authority and names the field.
 * A property test keeps the two in agreement (test/unit/envelope.test.ts).
 */
function isPlainlyValid(m: Record<string, unknown>): boolean {
  const error = m.error as Record<string, unknown> | undefined;
  return (
    TYPE_SET.has(m.type) &&
    isId(m.source) &&
    isId(m.destination) &&
    absentOr(m.token, isId) &&
    (m.token !== undefined || (m.type !== 'response' && m.type !== 'cancel')) &&
    absentOr(m.v, (v) => Number.isSafeInteger(v) && (v as number) > 0) &&
    absentOr(m.code, isCount) &&
    absentOr(m.final, (v) => typeof v === 'boolean') &&
    absentOr(m.progress, (v) => typeof v === 'number' && v >= 0 && v <= 1) &&
    absentOr(m.priority, (v) => PRIORITY_SET.has(v)) &&
    absentOr(m.deadline, isCount) &&
    absentOr(m.acceptBy, isCount) &&
    absentOr(m.accepted, (v) => typeof v === 'boolean') &&
    absentOr(m.ts, (v) => typeof v === 'number' && v >= 0 && Number.isFinite(v)) &&
    absentOr(error, (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && typeof error!.name === 'string' && error!.name.length <= 200 && typeof error!.message === 'string' && error!.message.length <= 64 * 1024)
  );
}

function senderOf(value: Record<string, unknown>): { source: string; token?: string } | undefined {
  if (typeof value.source !== 'string' || value.source.length === 0) return undefined;
  return typeof value.token === 'string' && value.token.length > 0
    ? { source: value.source, token: value.token }
    : { source: value.source };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

export interface EncodeOptions {
  maxBytes?: number;
  /** Names the message in an error; a function is called only then (no text made per message). */
  what?: string | (() => string);
}

/**
 * Encodes an envelope as its wire form (stamping the protocol version), the one place a
 * message is serialised and measured: JSON text, or the bytes of a binary message when its
 * payload is a Uint8Array (protocol §3.5). Throws `TypeError` when it is not JSON (a BigInt, a
 * cycle) and `PayloadTooLargeError` when its encoded form is over `maxBytes` (protocol §3.4);
 * `what` names the message in both.
 */
export function encodeMessage(envelope: Envelope, options: EncodeOptions = {}): WireBody {
  return encodeWire(envelope.v === undefined ? { v: PROTOCOL_VERSION, ...envelope } : envelope, options);
}

/** `encodeMessage` of an envelope whose payload is JSON (presence, link status…): its text. */
export function encode(envelope: Envelope, options: EncodeOptions = {}): string {
  if (isBytes(envelope.payload)) throw new TypeError('this message has a bytes payload: it is a binary message, made by encodeMessage (protocol §3.5)');
  return encodeMessage(envelope, options) as string;
}

/**
 * What `publish` sends: an object whose `payload` is bytes as a binary message (protocol §3.5),
 * bytes as they are, anything else as `encodeJson` does; with the same checks.
 */
export function encodeWire(value: unknown, options: EncodeOptions = {}): WireBody {
  if (isBytes(value) || hasBinaryPayload(value)) return encodeBinary(value, options.maxBytes ?? Infinity, () => (typeof options.what === 'function' ? options.what() : (options.what ?? 'the message')));
  return encodeJson(value, options);
}

/** Any JSON value (or a string, sent as is) as wire text, with the checks of `encodeMessage`. */
export function encodeJson(value: unknown, options: EncodeOptions = {}): string {
  const what = () => (typeof options.what === 'function' ? options.what() : (options.what ?? 'the message'));
  let body: string | undefined;
  try {
    body = typeof value === 'string' ? value : JSON.stringify(value);
  } catch (cause) {
    throw new TypeError(`${what()} is not JSON: ${(cause as Error).message}`, { cause });
  }
  if (body === undefined) throw new TypeError(`${what()} is not JSON: ${typeof value}`);
  const maxBytes = options.maxBytes ?? Infinity;
  // A UTF-16 unit is at most 3 bytes of UTF-8: short texts need no count.
  if (body.length * 3 > maxBytes) {
    const size = utf8ByteLength(body);
    if (size > maxBytes) throw new PayloadTooLargeError(`${what()} is ${size} bytes, over the ${maxBytes}-byte limit`);
  }
  return body;
}

function encodeBinary(value: Uint8Array | { payload: Uint8Array }, maxBytes: number, what: () => string): Uint8Array {
  if (isBytes(value)) {
    if (value.length > maxBytes) throw new PayloadTooLargeError(`${what()} is ${value.length} bytes, over the ${maxBytes}-byte limit`);
    return value;
  }
  const body = value.payload;
  let headerText: string;
  try {
    headerText = JSON.stringify(binaryHeader(value as Record<string, unknown>, body.length));
  } catch (cause) {
    throw new TypeError(`${what()} is not JSON: ${(cause as Error).message}`, { cause });
  }
  // Header + LF + body (protocol §3.4): checked before a byte is copied.
  const size = utf8ByteLength(headerText) + 1 + body.length;
  if (size > maxBytes) throw new PayloadTooLargeError(`${what()} is ${size} bytes, over the ${maxBytes}-byte limit`);
  return frame(headerText, body);
}
