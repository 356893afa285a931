/**
 * Binary data travels as Base64 (seed 001, protocol §3.5). A field holding bytes is
 * written `{ "$base64": "..." }` so a receiver can tell bytes from text.
 */

export interface Base64Value {
  $base64: string;
}

interface NodeBufferClass {
  from(buffer: ArrayBufferLike, offset: number, length: number): { toString(encoding: 'base64'): string };
  from(text: string, encoding: 'base64'): Uint8Array;
}

/**
 * Node's Buffer, where the runtime has one: its Base64 is native, several times faster than
 * `btoa` over a binary string. Elsewhere (a browser) the portable functions below.
 */
const nodeBuffer = (globalThis as { Buffer?: NodeBufferClass }).Buffer;

export function toBase64(bytes: Uint8Array): Base64Value {
  return { $base64: nodeBuffer ? nodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') : portableToBase64(bytes) };
}

export function isBase64Value(value: unknown): value is Base64Value {
  return typeof value === 'object' && value !== null && typeof (value as Base64Value).$base64 === 'string' && Object.keys(value).length === 1;
}

const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes `{ $base64 }` or a bare Base64 string. Throws TypeError on anything else. */
export function fromBase64(value: Base64Value | string): Uint8Array {
  const text = typeof value === 'string' ? value : isBase64Value(value) ? value.$base64 : undefined;
  if (text === undefined) throw new TypeError('expected a Base64 string or { "$base64": string }');
  if (text.length % 4 !== 0 || !BASE64_PATTERN.test(text)) throw new TypeError('not valid Base64 (RFC 4648, padded)');
  return nodeBuffer ? new Uint8Array(nodeBuffer.from(text, 'base64')) : portableFromBase64(text);
}

/** Base64 of `bytes` with `btoa`, in chunks small enough for `String.fromCharCode`'s arguments. */
export function portableToBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let at = 0; at < bytes.length; at += 0x8000) binary += String.fromCharCode(...bytes.subarray(at, at + 0x8000));
  return btoa(binary);
}

/** The bytes of checked Base64 text, with `atob`. */
export function portableFromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let at = 0; at < binary.length; at++) bytes[at] = binary.charCodeAt(at);
  return bytes;
}
