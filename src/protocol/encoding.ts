/**
 * How an envelope is encoded (protocol §3): UTF-8, well formed, with no byte order mark. One
 * rule for every reader, so that no two readers can see two different messages in the same
 * bytes: a reader that drops a BOM or guesses UTF-16 (a browser's TextDecoder, Python's
 * `json.loads` of bytes) would otherwise read a `source` the broker's check never saw.
 * The broker refuses such a payload on Relais topics (docs/security.md), and `decode()` and
 * the page refuse it as an invalid message. Pure: no Node API.
 */

/** A well-formed UTF-8 decoder that keeps a BOM (so that it can be refused, not silently dropped). */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodesAsUtf8(bytes: Uint8Array): boolean {
  try {
    STRICT_UTF8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Why the start of `bytes` is a byte order mark, or undefined. */
function byteOrderMark(bytes: Uint8Array): string | undefined {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return 'it starts with a UTF-8 byte order mark';
  if ((bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes[0] === 0xff && bytes[1] === 0xfe)) return 'it starts with a UTF-16 byte order mark';
  return undefined;
}

// JSON never holds a raw U+0000 (controls are escaped in strings, and are not white space):
// a NUL byte is the mark of UTF-16 or UTF-32 text, which some readers detect and decode.
const NUL_PROBLEM = 'it holds a NUL byte (UTF-16 or UTF-32 text, not UTF-8)';

/**
 * Why `bytes` cannot be an envelope's encoding (protocol §3), or undefined. `isWellFormedUtf8`
 * may be a faster check of the same thing (the broker passes Node's `buffer.isUtf8`).
 */
export function encodingProblem(bytes: Uint8Array, isWellFormedUtf8: (bytes: Uint8Array) => boolean = decodesAsUtf8): string | undefined {
  const mark = byteOrderMark(bytes);
  if (mark) return mark;
  // A Buffer's indexOf is a memchr; a plain Uint8Array's is the engine's own loop.
  if (bytes.indexOf(0) >= 0) return NUL_PROBLEM;
  if (!isWellFormedUtf8(bytes)) return 'it is not well-formed UTF-8';
  return undefined;
}

/** The text of an envelope's bytes, or why they are not one's encoding (protocol §3). */
export function envelopeText(bytes: Uint8Array | string): { ok: true; text: string } | { ok: false; problem: string } {
  if (typeof bytes === 'string') {
    // Already decoded by someone: the same rule on what the bytes were.
    if (bytes.charCodeAt(0) === 0xfeff) return { ok: false, problem: 'it starts with a byte order mark' };
    if (bytes.includes('\u0000')) return { ok: false, problem: NUL_PROBLEM };
    return { ok: true, text: bytes };
  }
  const mark = byteOrderMark(bytes);
  if (mark) return { ok: false, problem: mark };
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch {
    return { ok: false, problem: 'it is not well-formed UTF-8' };
  }
  if (text.includes('\u0000')) return { ok: false, problem: NUL_PROBLEM };
  return { ok: true, text };
}

/**
 * How many bytes `text` takes in UTF-8, as a message's size is counted (protocol §3.4). A lone
 * surrogate counts 3, as the U+FFFD it would be written as. Any runtime: no Buffer.
 */
export function utf8ByteLength(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit < 0xdc00 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A pair: two units, four bytes.
      bytes += 2;
      i += 1;
    } else bytes += 2;
  }
  return bytes;
}
