import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { portableDecodeBase64, portableEncodeBase64, portableUtf8ByteLength } from '../../src/protocol/bytes.js';

/** Any UTF-16 text, lone surrogates included (what a JavaScript string may hold). */
const anyText = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)), maxLength: 200 });

describe('bytes', () => {
  it("bytes - the portable UTF-8 length is Node's, lone surrogates and pairs included", () => {
    fc.assert(fc.property(fc.oneof(anyText, fc.string({ unit: 'binary' })), (text) => portableUtf8ByteLength(text) === Buffer.byteLength(text, 'utf8')), { numRuns: 2000 });
    assert.equal(portableUtf8ByteLength('a\u00e9\u20ac\u{1F600}'), 1 + 2 + 3 + 4);
  });

  it("bytes - the portable Base64 is Node's both ways, past one slice of 32 KiB", () => {
    const sizes = fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0x8000 - 2, max: 0x8000 + 2 }), fc.integer({ min: 0, max: 100_000 }));
    fc.assert(
      fc.property(sizes, fc.integer(), (size, seed) => {
        const bytes = Uint8Array.from({ length: size }, (_, i) => (i * 7919 + seed) & 0xff);
        const text = portableEncodeBase64(bytes);
        return text === Buffer.from(bytes).toString('base64') && Buffer.from(portableDecodeBase64(text)).equals(Buffer.from(bytes));
      }),
      { numRuns: 200 },
    );
  });
});
