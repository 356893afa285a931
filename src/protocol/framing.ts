/**
 * Binary messages (protocol §3.5): an envelope whose payload is bytes travels as its header (the
 * envelope as UTF-8 JSON text, `payload` absent, `"body": <byte count>` in its place), one LF
 * byte (0x0A), then the body bytes. JSON.stringify never writes a raw LF, so the first 0x0A of a
 * binary message ends its header. A reader that knows only JSON fails to parse one (the bytes
 * after the LF are not JSON): it never misreads it. Pure: no Node API, so the page and any
 * runtime read and write the same framing.
 */

/** What the library sends: JSON text, or the bytes of a binary message. */
export type WireBody = string | Uint8Array;

/** Ends a binary message's header (protocol §3.5). */
export const HEADER_END = 0x0a;

/** The header member that gives the body's length in bytes. */
export const BODY_MEMBER = 'body';

const UTF8 = new TextEncoder();
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

/** Whether a message value (an envelope, or anything `publish` takes) goes as a binary message: its `payload` is bytes. */
export function hasBinaryPayload(value: unknown): value is { payload: Uint8Array } {
  return typeof value === 'object' && value !== null && !isBytes(value) && isBytes((value as { payload?: unknown }).payload);
}

/**
 * The header of a binary message: the members of `message` in their order, with `"body": <n>`
 * where `payload` was (so a trailing `acceptBy` or `sig` stays last, protocol §4.7, §12.2).
 */
export function binaryHeader(message: Record<string, unknown>, bodyLength: number): Record<string, unknown> {
  const header: Record<string, unknown> = {};
  for (const key of Object.keys(message)) {
    if (key === 'payload') header[BODY_MEMBER] = bodyLength;
    else if (key !== BODY_MEMBER) header[key] = message[key];
  }
  return header;
}

/** Header text + LF + body, as one byte array (what is published). */
export function frame(headerText: string, body: Uint8Array): Uint8Array {
  const header = UTF8.encode(headerText);
  const bytes = allocate(header.length + 1 + body.length);
  bytes.set(header, 0);
  bytes[header.length] = HEADER_END;
  copyInto(bytes, body, header.length + 1);
  return bytes;
}

// Where the runtime has Node's Buffer: allocUnsafe skips zeroing what is about to be overwritten,
// and its copy is a memcpy, 3-4x TypedArray#set on 256 KiB file chunks here (Node 20). Looked up on
// globalThis, so that this file runs where there is no Buffer (the page).
interface NativeBuffer {
  allocUnsafe(size: number): Uint8Array;
  from(bytes: ArrayBufferLike, offset: number, length: number): { copy(target: Uint8Array, targetStart: number): number };
}
const native = (globalThis as { Buffer?: NativeBuffer }).Buffer;
const allocate: (size: number) => Uint8Array = native ? (size) => native.allocUnsafe(size) : (size) => new Uint8Array(size);
const copyInto: (target: Uint8Array, source: Uint8Array, at: number) => void = native
  ? (target, source, at) => void native.from(source.buffer, source.byteOffset, source.byteLength).copy(target, at)
  : (target, source, at) => target.set(source, at);

/** A binary message split at its first LF (protocol §3.5). */
export interface Framed {
  /** The header's text (well-formed UTF-8, checked) and the object it parses to. */
  headerText: string;
  header: Record<string, unknown>;
  /** Everything after the LF. */
  body: Uint8Array;
  /** The `body` member as written (the decoder checks it against `body.length`). */
  declared: unknown;
}

/**
 * `bytes` read as a binary message, or undefined when they are not one (a JSON envelope, pretty
 * printed or with a trailing newline included): they are one when the text before the first LF
 * is a JSON object with a `body` member and no `payload` member. The one rule every reader
 * applies (the library, the router, the embedded broker's checks).
 */
export function splitFrame(bytes: Uint8Array): Framed | undefined {
  const end = bytes.indexOf(HEADER_END);
  if (end < 0) return undefined;
  let headerText: string;
  let header: unknown;
  try {
    headerText = STRICT_UTF8.decode(bytes.subarray(0, end));
    header = JSON.parse(headerText);
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return undefined;
  if (!(BODY_MEMBER in header) || 'payload' in header) return undefined;
  return { headerText, header: header as Record<string, unknown>, body: bytes.subarray(end + 1), declared: (header as Record<string, unknown>)[BODY_MEMBER] };
}

/** Why a binary message's `body` member does not describe its body, or undefined (protocol §3.5). */
export function bodyLengthProblem(framed: Framed): string | undefined {
  const { declared, body } = framed;
  if (!Number.isSafeInteger(declared) || (declared as number) < 0) return `field 'body' must be the byte length of what follows the header's LF, a non-negative integer (protocol §3.5)`;
  if (declared !== body.length) return `binary message: its header says 'body' is ${declared as number} bytes, ${body.length} follow the LF (protocol §3.5)`;
  return undefined;
}

/** The bytes of a wire body, for a byte count or a digest. */
export function wireBytes(body: WireBody): Uint8Array {
  return typeof body === 'string' ? UTF8.encode(body) : body;
}
