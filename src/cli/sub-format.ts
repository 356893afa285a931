/**
 * How `relais sub` prints a message: mosquitto_sub's habits (`-v`, `-F` and its % specifiers
 * that mean something for Relais), and which topics it leaves out (`-T`, and the bus's own
 * `relais/#` traffic unless asked for).
 */
import { isBytes, topicMatches } from '../library.js';
import type { Delivery, ReceivedMessage } from '../library.js';
import { jsonWithBytes } from './binary-payload.js';
import { sealedSummary } from './sealed-payload.js';

/** The Relais services' and the library's own topics (protocol §2): left out of `sub` unless a filter names them. */
export const INTERNAL_PREFIX = 'relais/';

/** A filter that asks for the bus's own traffic: it starts with `relais/` (not `#` nor `+/…`, which match it only by accident). */
export function asksForInternal(filter: string): boolean {
  return filter.startsWith(INTERNAL_PREFIX) || filter === 'relais';
}

/** Whether a message on `topic`, received through `filter`, is printed. */
export function shown(topic: string, filter: string, excluded: readonly string[], internal: boolean): boolean {
  if (!internal && topic.startsWith(INTERNAL_PREFIX) && !asksForInternal(filter)) return false;
  return !excluded.some((exclude) => topicMatches(exclude, topic));
}

/** The message's payload as text: an envelope's `payload` as JSON, anything else as received (mosquitto_sub's %p). */
export function payloadText(delivery: Delivery): string {
  // A sealed message not opened here (protocol §3.6): whom it is for and its size.
  if ('envelope' in delivery && delivery.sealed === 'unopened') return unopenedSummary(delivery);
  // A binary message's body is shown by its size and digest (protocol §3.5), never dumped.
  if ('envelope' in delivery) return jsonWithBytes(delivery.envelope.payload ?? null);
  return delivery.raw.toString('utf8');
}

function unopenedSummary(delivery: ReceivedMessage): string {
  const { payload } = delivery.envelope;
  return sealedSummary(delivery.envelope.seal, isBytes(payload) ? payload.length : 0);
}

/**
 * The default JSON line: `{"topic", "envelope"}` (`"sealed": "opened"` or `"unopened"` added for a
 * sealed message, whose ciphertext reads as its summary), or `{"topic", "invalid", "text"}`.
 */
export function jsonLine(delivery: Delivery): string {
  if (!('envelope' in delivery)) return JSON.stringify({ topic: delivery.topic, invalid: delivery.invalid, text: delivery.text, ...(delivery.retained && { retained: true }) });
  const envelope = delivery.sealed === 'unopened' ? { ...delivery.envelope, payload: unopenedSummary(delivery) } : delivery.envelope;
  return JSON.stringify({ topic: delivery.topic, envelope, ...(delivery.sealed && { sealed: delivery.sealed }), ...(delivery.retained && { retained: true }) });
}

/** `-v`: `topic payload`, as mosquitto_sub -v prints it. */
export function verboseLine(delivery: Delivery): string {
  return `${delivery.topic} ${payloadText(delivery)}`;
}

/** Local ISO-8601 with the offset, as mosquitto_sub's %I: `2026-12-01T01:40:02+0100`. */
function isoLocal(date: Date): string {
  const pad = (n: number) => String(Math.abs(n)).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}${sign}${pad(Math.trunc(offset / 60))}${pad(offset % 60)}`;
}

/**
 * `-F`: mosquitto_sub's specifiers that make sense on a Relais bus — %t topic, %p payload, %e
 * the whole message (the envelope as received), %r retained (0/1), %q QoS, %l message length in
 * bytes, %x/%X the message in hex, %I ISO-8601 time, %U Unix time, %j one JSON object of them, %%
 * — and the escapes \n \t \\. Returns the formatter, or the problem with the format.
 */
export function compileFormat(format: string): ((delivery: Delivery, now: Date) => string) | { problem: string } {
  const parts: Array<string | ((delivery: Delivery, now: Date) => string)> = [];
  for (let i = 0; i < format.length; i++) {
    const char = format[i]!;
    const next = format[i + 1];
    if (char === '\\' && next !== undefined && 'nt\\'.includes(next)) {
      parts.push(next === 'n' ? '\n' : next === 't' ? '\t' : '\\');
      i++;
    } else if (char === '%') {
      const specifier = SPECIFIERS[next ?? ''];
      if (!specifier) return { problem: next === undefined ? '-F ends with a lone %' : `-F: %${next} is not a specifier relais sub knows (%t %p %e %r %q %l %x %X %I %U %j %%)` };
      parts.push(specifier);
      i++;
    } else {
      parts.push(char);
    }
  }
  return (delivery, now) => parts.map((part) => (typeof part === 'string' ? part : part(delivery, now))).join('');
}

const SPECIFIERS: Record<string, (delivery: Delivery, now: Date) => string> = {
  '%': () => '%',
  t: (delivery) => delivery.topic,
  p: payloadText,
  e: (delivery) => delivery.raw.toString('utf8'),
  r: (delivery) => (delivery.retained ? '1' : '0'),
  q: (delivery) => String(delivery.qos),
  l: (delivery) => String(delivery.raw.length),
  x: (delivery) => delivery.raw.toString('hex'),
  X: (delivery) => delivery.raw.toString('hex').toUpperCase(),
  I: (_delivery, now) => isoLocal(now),
  U: (_delivery, now) => (now.getTime() / 1000).toFixed(3),
  j: (delivery, now) =>
    jsonWithBytes({
      tst: now.toISOString(),
      topic: delivery.topic,
      qos: delivery.qos,
      retain: delivery.retained,
      payloadlen: delivery.raw.length,
      ...('envelope' in delivery
        ? delivery.sealed === 'unopened'
          ? { payload: unopenedSummary(delivery), envelope: { ...delivery.envelope, payload: unopenedSummary(delivery) }, sealed: 'unopened' }
          : { payload: delivery.envelope.payload ?? null, envelope: delivery.envelope, ...(delivery.sealed && { sealed: delivery.sealed }) }
        : { payload: delivery.raw.toString('utf8') }),
    }),
};
