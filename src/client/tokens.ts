/**
 * Request tokens (protocol §3.1): 96 random bits, 16 base64url characters. Unpredictable, so
 * nobody can claim the next token of another client in the router's history before it is used
 * (protocol §11.2). Drawn from a pool of random bytes refilled 256 tokens at a time: one
 * `getRandomValues` call per 256 requests. Web Crypto, so that the same code runs in a browser.
 */

const TOKEN_BYTES = 12;
const POOL_BYTES = TOKEN_BYTES * 256;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const pool = new Uint8Array(POOL_BYTES);
let used = POOL_BYTES;

/** `count` cryptographically random bytes as base64url (a multiple of 3 gives no padding to drop). */
export function randomText(count: number): string {
  if (used + count > POOL_BYTES) {
    if (count > POOL_BYTES) throw new RangeError(`at most ${POOL_BYTES} random bytes at a time`);
    globalThis.crypto.getRandomValues(pool);
    used = 0;
  }
  const text = base64url(pool, used, used + count);
  used += count;
  return text;
}

/**
 * A new request token. Never one beginning with `-`: users paste tokens into commands
 * (`relais kill <token>`, `relais history <token>`), where such a word is taken for an option.
 * Drawn again instead (1 in 64), so every other token stays as likely as before.
 */
export function newToken(): string {
  for (;;) {
    const token = randomText(TOKEN_BYTES);
    if (token[0] !== '-') return token;
  }
}

/** base64url (RFC 4648 §5) of `bytes[start, end)`, without padding. */
export function base64url(bytes: Uint8Array, start: number, end: number): string {
  let text = '';
  let at = start;
  for (; at + 3 <= end; at += 3) {
    const word = (bytes[at]! << 16) | (bytes[at + 1]! << 8) | bytes[at + 2]!;
    text += BASE64URL[word >> 18]! + BASE64URL[(word >> 12) & 63]! + BASE64URL[(word >> 6) & 63]! + BASE64URL[word & 63]!;
  }
  const left = end - at;
  if (left === 1) text += BASE64URL[bytes[at]! >> 2]! + BASE64URL[(bytes[at]! & 3) << 4]!;
  else if (left === 2) {
    const word = (bytes[at]! << 8) | bytes[at + 1]!;
    text += BASE64URL[word >> 10]! + BASE64URL[(word >> 4) & 63]! + BASE64URL[(word & 15) << 2]!;
  }
  return text;
}
