/**
 * xPL messages (the xPL Project's protocol specification): parse and write, pure, no I/O.
 *
 *   xpl-trig            message type: xpl-cmnd | xpl-stat | xpl-trig
 *   {
 *   hop=1               1..9, incremented by each bridge between networks
 *   source=acme-cm12.server   vendor (≤ 8) - device (≤ 8) . instance (≤ 16)
 *   target=*            * or an address like source
 *   }
 *   x10.basic           schema: class (≤ 8) . type (≤ 8)
 *   {
 *   command=on          key (≤ 16) = value (≤ 128), in order, keys may repeat
 *   device=a1
 *   }
 *
 * Every line ends with a line feed; a message is one UDP datagram of at most 1500 bytes.
 * The body is a list of [key, value] pairs: order and repeated keys are kept.
 */
export const XPL_TYPES = ['xpl-cmnd', 'xpl-stat', 'xpl-trig'] as const;
export type XplType = (typeof XPL_TYPES)[number];

export const XPL_LIMITS = {
  maxBytes: 1500,
  maxHop: 9,
  vendor: 8,
  device: 8,
  instance: 16,
  schemaClass: 8,
  schemaType: 8,
  key: 16,
  value: 128,
} as const;

export interface XplMessage {
  type: XplType;
  hop: number;
  source: string;
  target: string;
  /** `class.type`, e.g. `x10.basic`. */
  schema: string;
  body: Array<[key: string, value: string]>;
}

export type ParsedXpl = { ok: true; message: XplMessage } | { ok: false; problem: string };

// Names are lower case in the specification; some devices write upper case, which is read as is.
const ADDRESS = new RegExp(`^[a-z0-9]{1,${XPL_LIMITS.vendor}}-[a-z0-9]{1,${XPL_LIMITS.device}}\\.[a-z0-9-]{1,${XPL_LIMITS.instance}}$`, 'i');
const SCHEMA = new RegExp(`^[a-z0-9-]{1,${XPL_LIMITS.schemaClass}}\\.[a-z0-9-]{1,${XPL_LIMITS.schemaType}}$`, 'i');
const KEY = new RegExp(`^[a-z0-9-]{1,${XPL_LIMITS.key}}$`, 'i');
// Printable characters only: a value is one line, and control characters have no place in it.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads one datagram. Never throws: a bad one comes back with what is wrong with it. */
export function parseXpl(datagram: Uint8Array): ParsedXpl {
  if (datagram.length > XPL_LIMITS.maxBytes) return { ok: false, problem: `datagram of ${datagram.length} bytes is over the ${XPL_LIMITS.maxBytes}-byte limit` };
  let text: string;
  try {
    text = utf8.decode(datagram);
  } catch {
    return { ok: false, problem: 'not valid UTF-8' };
  }
  try {
    return { ok: true, message: readMessage(text) };
  } catch (error) {
    return { ok: false, problem: (error as Error).message };
  }
}

function readMessage(text: string): XplMessage {
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  // The last line's feed leaves an empty string behind, which is not a line.
  if (lines[lines.length - 1] === '') lines.pop();
  let at = 0;
  const next = (what: string): string => {
    if (at >= lines.length) throw new Error(`truncated: ${what} missing`);
    return lines[at++]!;
  };
  const expect = (wanted: string, what: string) => {
    const line = next(what);
    if (line !== wanted) throw new Error(`line ${at}: expected '${wanted}' (${what}), got '${clip(line)}'`);
  };
  const block = (what: string): Array<[string, string]> => {
    expect('{', `start of the ${what}`);
    const pairs: Array<[string, string]> = [];
    for (;;) {
      const line = next(`end of the ${what}`);
      if (line === '}') return pairs;
      const equals = line.indexOf('=');
      if (equals < 0) throw new Error(`line ${at}: '${clip(line)}' is not key=value`);
      pairs.push([line.slice(0, equals), line.slice(equals + 1)]);
    }
  };
  const type = next('message type').toLowerCase();
  if (!(XPL_TYPES as readonly string[]).includes(type)) throw new Error(`line 1: '${clip(type)}' is not xpl-cmnd, xpl-stat or xpl-trig`);
  const header = new Map<string, string>();
  for (const [key, value] of block('header')) {
    const name = key.toLowerCase();
    if (name !== 'hop' && name !== 'source' && name !== 'target') throw new Error(`header: unknown field '${clip(key)}'`);
    if (header.has(name)) throw new Error(`header: '${name}' given twice`);
    header.set(name, value);
  }
  for (const name of ['hop', 'source', 'target']) if (!header.has(name)) throw new Error(`header: '${name}' missing`);
  const schema = next('schema');
  const body = block('body');
  // After the body only the final line feed (some senders add more, or a NUL).
  if (lines.slice(at).some((line) => line.replace(/\0/g, '').trim() !== '')) throw new Error('text after the end of the body');
  const message: XplMessage = { type: type as XplType, hop: Number(header.get('hop')), source: header.get('source')!, target: header.get('target')!, schema, body };
  const problem = checkXpl(message, header.get('hop'));
  if (problem) throw new Error(problem);
  return message;
}

/** What is wrong with a message by the specification's rules, or undefined. */
export function checkXpl(message: XplMessage, hopText = String(message.hop)): string | undefined {
  if (!(XPL_TYPES as readonly string[]).includes(message.type)) return `type '${clip(String(message.type))}' is not xpl-cmnd, xpl-stat or xpl-trig`;
  if (!/^[1-9]$/.test(hopText)) return `hop '${clip(hopText)}' is not 1..${XPL_LIMITS.maxHop}`;
  if (!ADDRESS.test(message.source)) return `source '${clip(message.source)}' is not vendor-device.instance (at most ${XPL_LIMITS.vendor}, ${XPL_LIMITS.device} and ${XPL_LIMITS.instance} of a-z 0-9)`;
  if (message.target !== '*' && !ADDRESS.test(message.target)) return `target '${clip(message.target)}' is neither * nor vendor-device.instance`;
  if (!SCHEMA.test(message.schema)) return `schema '${clip(message.schema)}' is not class.type (at most ${XPL_LIMITS.schemaClass} and ${XPL_LIMITS.schemaType} of a-z 0-9 -)`;
  if (!Array.isArray(message.body)) return 'body is not a list of [key, value] pairs';
  for (const pair of message.body) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return 'body is not a list of [key, value] pairs of strings';
    const [key, value] = pair;
    if (!KEY.test(key)) return `body key '${clip(key)}' is not 1 to ${XPL_LIMITS.key} of a-z 0-9 -`;
    if (value.length > XPL_LIMITS.value) return `body value of '${key}' has ${value.length} characters, over ${XPL_LIMITS.value}`;
    if (CONTROL.test(value)) return `body value of '${key}' holds a control character`;
  }
  return undefined;
}

export class XplFormatError extends Error {
  override name = 'XplFormatError';
  /** A bad payload on the bus: response code 2 (protocol §5.1). */
  readonly responseCode = 2;
}

/** The datagram text of a message; throws `XplFormatError` for one the specification does not allow. */
export function writeXpl(message: XplMessage): string {
  const problem = checkXpl(message);
  if (problem) throw new XplFormatError(problem);
  const body = message.body.map(([key, value]) => `${key}=${value}\n`).join('');
  const text = `${message.type}\n{\nhop=${message.hop}\nsource=${message.source}\ntarget=${message.target}\n}\n${message.schema}\n{\n${body}}\n`;
  const bytes = Buffer.byteLength(text);
  if (bytes > XPL_LIMITS.maxBytes) throw new XplFormatError(`message of ${bytes} bytes is over the ${XPL_LIMITS.maxBytes}-byte limit`);
  return text;
}

/** The first value of `key` in a body (keys compared without case). */
export function bodyValue(message: XplMessage, key: string): string | undefined {
  return message.body.find(([name]) => name.toLowerCase() === key)?.[1];
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
