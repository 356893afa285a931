/**
 * Binary data travels as Base64 (protocol §3.5). A field holding bytes is
 * written `{ "$base64": "..." }` so a receiver can tell bytes from text.
 */
import { decodeBase64, encodeBase64 } from './bytes.js';

export interface Base64Value {
  $base64: string;
}

export function toBase64(bytes: Uint8Array): Base64Value {
  return { $base64: encodeBase64(bytes) };
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
  return decodeBase64(text);
}
