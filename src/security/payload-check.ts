/**
 * What the embedded broker reads of a PUBLISH's payload (docs/security.md "Identities and
 * enforcement"): its encoding on Relais topics (protocol §3: UTF-8 JSON, no BOM) and the
 * envelope's `source`. Pure functions of the bytes.
 */
import { isUtf8 } from 'node:buffer';
import { encodingProblem, envelopeText } from '../protocol/encoding.js';
import { HEADER_END, splitFrame } from '../protocol/framing.js';
import { parseTopic, SYSTEM_ROOT } from '../protocol/topics.js';

/**
 * The part of a PUBLISH that is the envelope: a binary message's header (protocol §3.5: the
 * text before the first LF, by the rule every reader applies), else the whole payload. The body
 * of a binary message is any bytes: its encoding is nobody's business, and a `"source"` in it is
 * not the message's.
 */
export function envelopeHead(payload: Buffer | string): Buffer | string {
  if (typeof payload === 'string' || payload.indexOf(HEADER_END) < 0) return payload;
  const framed = splitFrame(payload);
  return framed ? payload.subarray(0, payload.length - framed.body.length - 1) : payload;
}

/** A topic whose payload is an envelope (protocol §2.2), or anything under `relais/`. */
export function isRelaisTopic(topic: string): boolean {
  return topic.startsWith(`${SYSTEM_ROOT}/`) || parseTopic(topic).kind !== 'other';
}

/**
 * Why `payload` cannot be an envelope (protocol §3: a BOM, UTF-16 or UTF-32, ill-formed
 * UTF-8), or undefined. An empty payload (a cleared presence) passes.
 */
export function payloadEncodingProblem(payload: Buffer | string): string | undefined {
  if (payload.length === 0) return undefined;
  if (typeof payload === 'string') {
    const text = envelopeText(payload);
    return text.ok ? undefined : text.problem;
  }
  return encodingProblem(payload, isUtf8);
}

/** The identity's own `"source":"<identity>"`, as text and as bytes, made once per connection. */
export interface SourceKey {
  sourceKey: string;
  sourceKeyBytes: Buffer;
}

export function sourceKeyOf(identity: string): SourceKey {
  const sourceKey = `"source":${JSON.stringify(identity)}`;
  return { sourceKey, sourceKeyBytes: Buffer.from(sourceKey) };
}

/**
 * True when `payload` cannot carry a `source` other than the identity's, without parsing it:
 * no backslash (so no escaped key like "sour\u0063e", and no `"` inside a string value), and
 * `"source"` occurs exactly once, as `"source":"<identity>"` (the library writes it so). A
 * nested `source` alone would also be allowed by the full check. Anything else is parsed.
 */
export function sourceIsSurely(payload: Buffer | string, subject: SourceKey): boolean {
  if (typeof payload === 'string') {
    const at = payload.indexOf(SOURCE);
    if (at < 0 || !payload.startsWith(subject.sourceKey, at)) return false;
    const next = at + subject.sourceKey.length;
    return isEndOfValue(payload.charCodeAt(next)) && payload.indexOf(SOURCE, next) < 0 && payload.indexOf('\\') < 0;
  }
  // Byte needles, not strings: Buffer#indexOf(string) encodes its needle at every call (it
  // was the larger part of the check's cost, measured by a profile of the broker).
  const key = subject.sourceKeyBytes;
  const at = payload.indexOf(SOURCE_BYTES);
  if (at < 0 || at + key.length >= payload.length || payload.compare(key, 0, key.length, at, at + key.length) !== 0) return false;
  const next = at + key.length;
  return isEndOfValue(payload[next]) && payload.indexOf(SOURCE_BYTES, next) < 0 && payload.indexOf(BACKSLASH) < 0;
}

const SOURCE = '"source"';
const SOURCE_BYTES = Buffer.from(SOURCE);
const BACKSLASH = 0x5c;

/** After `"source":"<identity>"`: a comma, a closing brace or a space (not a longer name). */
function isEndOfValue(code: number | undefined): boolean {
  return code === 0x2c || code === 0x7d || code === 0x20;
}

/** The payload as a JSON object, when it is one (an envelope); else undefined. */
export function jsonObject(payload: Buffer | string): Record<string, unknown> | undefined {
  // JSON may start with white space: a receiver's JSON.parse takes it, so this check must too.
  let first = 0;
  const at = (i: number) => (typeof payload === 'string' ? payload.charCodeAt(i) : payload[i]);
  while (first < payload.length && (at(first) === 0x20 || at(first) === 0x09 || at(first) === 0x0a || at(first) === 0x0d)) first++;
  if (at(first) !== 0x7b) return undefined;
  return parsedObject(typeof payload === 'string' ? payload : payload.toString('utf8'));
}

/**
 * The object a lenient reader would see in a payload the broker refuses for its encoding (a
 * BOM dropped, UTF-16 decoded): only to answer a refused command with its token, never to
 * let anything through.
 */
export function leniently(payload: Buffer | string): Record<string, unknown> | undefined {
  if (typeof payload === 'string') return parsedObject(payload.replace(/^\uFEFF/, ''));
  let text: string;
  if (payload[0] === 0xef && payload[1] === 0xbb && payload[2] === 0xbf) text = payload.subarray(3).toString('utf8');
  else if (payload[0] === 0xff && payload[1] === 0xfe) text = payload.subarray(2).toString('utf16le');
  else if (payload[0] === 0xfe && payload[1] === 0xff) text = Buffer.from(payload.subarray(2)).swap16().toString('utf16le');
  else if (payload.length % 2 === 0 && payload[0] !== 0 && payload[1] === 0) text = payload.toString('utf16le');
  else if (payload.length % 2 === 0 && payload[0] === 0 && payload[1] !== 0) text = Buffer.from(payload).swap16().toString('utf16le');
  else text = payload.toString('utf8');
  return parsedObject(text.replace(/^\uFEFF/, ''));
}

function parsedObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
