/**
 * Signed envelopes (protocol §12): the layout of the `sig` member and the text an Ed25519
 * signature covers. Pure: no key is handled here, so any runtime can read and write the layout;
 * the Node signer and verifier are src/security/ed25519.ts (keys, sign, verify) and
 * src/client/connection/signing.ts (the replay window and the policy of what to refuse).
 *
 * A signed message is the envelope's wire text with one member appended, last, written exactly so:
 *
 *   ,"sig":{"kid":"<16 hex>","boot":"<16 hex>","seq":<integer>,"ts":<integer>,"sig":"<88 base64>"}}
 *
 * so that a receiver recovers the signed text by cutting that tail off, with no canonical JSON
 * (protocol §12.2).
 */

/** Separates the parts of the signed bytes; it cannot occur in a topic (protocol §2.1), a key id or a number. */
const NUL = '\u0000';
const DOMAIN = 'relais-sig/1';
const TAIL_START = ',"sig":{"kid":"';
/** The whole appended member; anything else after `,"sig":{"kid":"` is a malformed signature. */
const TAIL = /^,"sig":\{"kid":"([0-9a-f]{16})","boot":"([0-9a-f]{16})","seq":(\d{1,16}),"ts":(\d{1,16}),"sig":"([A-Za-z0-9+/]{86}==)"\}\}$/;

/** Hex digits of a key id: the first ones of the SHA-256 of the raw 32-byte public key (protocol §12.1). */
export const KEY_ID_HEX_DIGITS = 16;

/** What the `sig` member says besides the signature itself. */
export interface SignatureHeader {
  /** Key id: the first 16 hex digits of the SHA-256 of the raw 32-byte public key (protocol §12.1). */
  kid: string;
  /** 64 random bits in hex, drawn when the signer starts: one sequence per (kid, boot) (protocol §12.3). */
  boot: string;
  /** 1, 2, 3… per (kid, boot). */
  seq: number;
  /** Epoch ms when the message was signed. */
  ts: number;
}

export interface ReadSignature extends SignatureHeader {
  /** The base64 signature. */
  sig: string;
  /** The message as it was before the `sig` member was appended: what was signed. */
  unsigned: string;
}

/** The text an Ed25519 signature covers, to be signed as its UTF-8 bytes (protocol §12.2). */
export function signedText(topic: string, header: SignatureHeader, unsigned: string): string {
  return `${DOMAIN}${NUL}${topic}${NUL}${header.kid}${NUL}${header.boot}${NUL}${header.seq}${NUL}${header.ts}${NUL}${unsigned}`;
}

const UTF8 = new TextEncoder();

/**
 * The bytes an Ed25519 signature covers: `signedText` in UTF-8 and, for a binary message, one
 * NUL and its body (protocol §12.2, §3.5): `unsigned` is then the header without the sig member.
 */
export function signedBytes(topic: string, header: SignatureHeader, unsigned: string, body?: Uint8Array): Uint8Array {
  const text = UTF8.encode(signedText(topic, header, unsigned));
  if (!body) return text;
  const bytes = new Uint8Array(text.length + 1 + body.length);
  bytes.set(text, 0);
  bytes[text.length] = 0;
  bytes.set(body, text.length + 1);
  return bytes;
}

/** Whether `body` is a JSON object text with at least one member, the only kind of text that is signed. */
export function isSignable(body: string): boolean {
  return body.length > 2 && body.charCodeAt(0) === 0x7b && body.charCodeAt(body.length - 1) === 0x7d;
}

/** `body` (a JSON object text, `isSignable`) with the `sig` member appended: `signature` is the base64 Ed25519 signature of `signedText` (protocol §12.2). */
export function appendSignature(body: string, header: SignatureHeader, signature: string): string {
  return `${body.slice(0, -1)}${TAIL_START}${header.kid}","boot":"${header.boot}","seq":${header.seq},"ts":${header.ts},"sig":"${signature}"}}`;
}

/** The `sig` member of a message's wire text, or undefined when its tail is not one written as §12.2 says. */
export function readSignature(text: string): ReadSignature | undefined {
  const at = text.lastIndexOf(TAIL_START);
  if (at < 0) return undefined;
  const match = TAIL.exec(text.slice(at));
  if (!match) return undefined;
  const seq = Number(match[3]);
  const ts = Number(match[4]);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(ts)) return undefined;
  return { kid: match[1]!, boot: match[2]!, seq, ts, sig: match[5]!, unsigned: `${text.slice(0, at)}}` };
}
