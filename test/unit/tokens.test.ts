import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { base64url, newToken, randomText } from '../../src/client/tokens.js';

describe('tokens', () => {
  it('tokens - base64url writes what Node\'s Buffer writes, for any bytes and any slice', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const end = start + (bytes.length === 0 ? 0 : b % (bytes.length - start + 1));
        assert.equal(base64url(bytes, start, end), Buffer.from(bytes).toString('base64url', start, end));
      }),
    );
  });

  it('tokens - a token is 16 base64url characters (96 random bits), none repeated over a few pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const token = newToken();
      assert.match(token, /^[A-Za-z0-9_-]{16}$/);
      seen.add(token);
    }
    assert.equal(seen.size, 2000);
    assert.match(randomText(6), /^[A-Za-z0-9_-]{8}$/);
  });

  it('tokens - none begins with "-", which a command line would take for an option (relais kill <token>)', () => {
    // 1 in 64 random ones would: 20,000 draws hold ~300 of them.
    const first = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const letter = newToken()[0]!;
      first.set(letter, (first.get(letter) ?? 0) + 1);
    }
    assert.equal(first.get('-'), undefined);
    assert.equal(first.size, 63, 'every other character still begins some');
  });
});
