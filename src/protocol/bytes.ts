/**
 * Byte counts and Base64 for the wire (protocol §3.4, §3.5), in any runtime: Node, the page, a
 * user's browser app. Where the runtime has Node's `Buffer`, its native codec is used: it is
 * several times faster than the portable one (Base64 of 256 KiB: ~8x btoa, ~5x a table; UTF-8
 * length of 0.5 MB: ~6x a loop), and file transfers encode every chunk. Looked up on
 * `globalThis`, so that this file depends on no Node type and runs where there is none.
 */

interface NativeBuffer {
  byteLength(text: string, encoding: 'utf8'): number;
  from(bytes: ArrayBufferLike, offset: number, length: number): { toString(encoding: 'base64'): string };
  from(text: string, encoding: 'base64'): Uint8Array;
}

const native = (globalThis as { Buffer?: NativeBuffer }).Buffer;

/** Bytes of `text` in UTF-8; a lone surrogate counts 3, the bytes of the U+FFFD it is sent as. */
export const utf8ByteLength: (text: string) => number = native ? (text) => native.byteLength(text, 'utf8') : portableUtf8ByteLength;

/** Standard Base64 (RFC 4648, padded) of `bytes`. */
export const encodeBase64: (bytes: Uint8Array) => string = native ? (bytes) => native.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') : portableEncodeBase64;

/** The bytes of standard Base64 `text`, which the caller has checked is well formed. */
export const decodeBase64: (text: string) => Uint8Array = native ? (text) => new Uint8Array(native.from(text, 'base64')) : portableDecodeBase64;

// The portable versions: what a browser runs (exported for the tests that hold them to Node's).

export function portableUtf8ByteLength(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) {
      bytes += 1;
      continue;
    }
    const next = text.charCodeAt(i + 1);
    if (unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      // A pair: two units, four bytes.
      bytes += 2;
      i += 1;
      continue;
    }
    bytes += 2;
  }
  return bytes;
}

export function portableEncodeBase64(bytes: Uint8Array): string {
  let binary = '';
  // In slices: a spread of a whole large array would overflow the call stack.
  for (let start = 0; start < bytes.length; start += 0x8000) binary += String.fromCharCode(...bytes.subarray(start, start + 0x8000));
  return btoa(binary);
}

export function portableDecodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
