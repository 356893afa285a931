/**
 * Ed25519 keys and signatures of signed envelopes (protocol §12) on node:crypto: key ids,
 * reading public keys, signing and checking. The layout of what is signed is the protocol's
 * (src/protocol/signature.ts); this is only the Node side of the cryptography.
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import { keyIdOfRaw, parsePublicKeyText, rawPublicKeyOf } from './curve25519-keys.js';
import { appendSignature, signedBytes, type ReadSignature, type SignatureHeader } from '../protocol/signature.js';

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
  return rawPublicKeyOf(key, 'ed25519');
}

/** The key id of an Ed25519 key (protocol §12.1). */
export function keyIdOf(key: KeyObject): string {
  return keyIdOfRaw(rawPublicKey(key));
}

/** A public key from PEM (SPKI) or from the base64 of its raw 32 bytes. Throws `TypeError` saying why. */
export function parsePublicKey(text: string): KeyObject {
  return parsePublicKeyText(text, 'ed25519');
}

/**
 * `body` (a JSON object text, `isSignable`) with the `sig` member appended, signed for `topic`
 * with `privateKey` (protocol §12.2). For a binary message `body` is its header and `binaryBody`
 * the bytes after the LF, which the signature covers too (protocol §3.5).
 */
export function signBody(topic: string, body: string, header: SignatureHeader, privateKey: KeyObject, binaryBody?: Uint8Array): string {
  const signature = sign(null, signedBytes(topic, header, body, binaryBody), privateKey).toString('base64');
  return appendSignature(body, header, signature);
}

/** Whether `signature` was made by `publicKey` over this message for `topic` (and a binary message's body). Never throws. */
export function signatureMatches(topic: string, signature: ReadSignature, publicKey: KeyObject, binaryBody?: Uint8Array): boolean {
  try {
    return verify(null, signedBytes(topic, signature, signature.unsigned, binaryBody), publicKey, Buffer.from(signature.sig, 'base64'));
  } catch {
    return false;
  }
}
