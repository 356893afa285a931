/**
 * Signed envelopes (protocol §12): the layout of the `sig` member, the bytes an Ed25519
 * signature covers, and key ids. Pure (node:crypto computes, nothing is read or sent); the
 * replay window and the policy of what to refuse live in the client (src/client/signing.ts).
 *
 * A signed message is the envelope's wire text with one member appended, last, written exactly so:
 *
 *   ,"sig":{"kid":"<16 hex>","boot":"<16 hex>","seq":<integer>,"ts":<integer>,"sig":"<88 base64>"}}
 *
 * so that a receiver recovers the signed text by cutting that tail off, with no canonical JSON
 * (protocol §12.2).
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

/** Separates the parts of the signed bytes; it cannot occur in a topic (protocol §2.1), a key id or a number. */
const NUL = '\u0000';
const DOMAIN = 'relais-sig/1';
const TAIL_START = ',"sig":{"kid":"';
/** The whole appended member; anything else after `,"sig":{"kid":"` is a malformed signature. */
const TAIL = /^,"sig":\{"kid":"([0-9a-f]{16})","boot":"([0-9a-f]{16})","seq":(\d{1,16}),"ts":(\d{1,16}),"sig":"([A-Za-z0-9+/]{86}==)"\}\}$/;

/** A public key a receiver trusts: messages signed with it are taken as sent by `identity`. */
export interface PublicSigningKey {
  identity: string;
  /** KeyObject, PEM (SPKI) or the base64 of the 32 raw key bytes. Its id is computed from it, never read. */
  publicKey: KeyObject | string;
  /** Messages signed with a revoked key are refused. */
  revoked?: boolean | string;
}

/** What the `sig` member says besides the signature itself. */
export interface SignatureHeader {
  /** Key id: the first 16 hex digits of the SHA-256 of the raw 32-byte public key (`keyIdOf`). */
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

/** The raw 32-byte Ed25519 public key of a KeyObject (public or private). */
export function rawPublicKey(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new TypeError(`an Ed25519 key is needed, got ${publicKey.asymmetricKeyType ?? 'a symmetric key'}`);
  // The SPKI DER of an Ed25519 key is a fixed 12-byte prefix followed by the 32 key bytes.
  return publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
}

/** The key id of an Ed25519 key (protocol §12.1). */
export function keyIdOf(key: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, 16);
}

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A public key from PEM (SPKI) or from the base64 of its raw 32 bytes. Throws `TypeError` saying why. */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  let key: KeyObject;
  if (trimmed.startsWith('-----BEGIN')) {
    try {
      key = createPublicKey(trimmed);
    } catch (error) {
      throw new TypeError(`not a readable PEM public key: ${(error as Error).message}`);
    }
  } else {
    const raw = /^[A-Za-z0-9+/]{43}=$/.test(trimmed) ? Buffer.from(trimmed, 'base64') : undefined;
    if (raw?.length !== 32) throw new TypeError('expected a PEM public key or the base64 of 32 raw Ed25519 key bytes');
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError(`an Ed25519 key is needed, got ${key.asymmetricKeyType ?? 'another kind'}`);
  return key;
}

function signedBytes(topic: string, header: SignatureHeader, unsigned: string): Buffer {
  return Buffer.from(`${DOMAIN}${NUL}${topic}${NUL}${header.kid}${NUL}${header.boot}${NUL}${header.seq}${NUL}${header.ts}${NUL}${unsigned}`, 'utf8');
}

/** Whether `body` is a JSON object text with at least one member, the only kind of text that is signed. */
export function isSignable(body: string): boolean {
  return body.length > 2 && body.charCodeAt(0) === 0x7b && body.charCodeAt(body.length - 1) === 0x7d;
}

/**
 * `body` (a JSON object text, `isSignable`) with the `sig` member appended, signed for `topic`
 * with `privateKey` (protocol §12.2).
 */
export function signBody(topic: string, body: string, header: SignatureHeader, privateKey: KeyObject): string {
  const signature = sign(null, signedBytes(topic, header, body), privateKey).toString('base64');
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

/** Whether `signature` was made by `publicKey` over this message for `topic`. Never throws. */
export function signatureMatches(topic: string, signature: ReadSignature, publicKey: KeyObject): boolean {
  try {
    return verify(null, signedBytes(topic, signature, signature.unsigned), publicKey, Buffer.from(signature.sig, 'base64'));
  } catch {
    return false;
  }
}
