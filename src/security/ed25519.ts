/**
 * Ed25519 keys and signatures of signed envelopes (protocol §12) on node:crypto: key ids,
 * reading public keys, signing and checking. The layout of what is signed is the protocol's
 * (src/protocol/signature.ts); this is only the Node side of the cryptography.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { appendSignature, KEY_ID_HEX_DIGITS, signedText, type ReadSignature, type SignatureHeader } from '../protocol/signature.js';

/** A public key a receiver trusts: messages signed with it are taken as sent by `identity`. */
export interface PublicSigningKey {
  identity: string;
  /** KeyObject, PEM (SPKI) or the base64 of the 32 raw key bytes. Its id is computed from it, never read. */
  publicKey: KeyObject | string;
  /** Messages signed with a revoked key are refused. */
  revoked?: boolean | string;
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
  return createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, KEY_ID_HEX_DIGITS);
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

/**
 * `body` (a JSON object text, `isSignable`) with the `sig` member appended, signed for `topic`
 * with `privateKey` (protocol §12.2).
 */
export function signBody(topic: string, body: string, header: SignatureHeader, privateKey: KeyObject): string {
  const signature = sign(null, Buffer.from(signedText(topic, header, body), 'utf8'), privateKey).toString('base64');
  return appendSignature(body, header, signature);
}

/** Whether `signature` was made by `publicKey` over this message for `topic`. Never throws. */
export function signatureMatches(topic: string, signature: ReadSignature, publicKey: KeyObject): boolean {
  try {
    return verify(null, Buffer.from(signedText(topic, signature, signature.unsigned), 'utf8'), publicKey, Buffer.from(signature.sig, 'base64'));
  } catch {
    return false;
  }
}
