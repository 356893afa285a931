/**
 * The public signing keys file (docs/security.md "Signed envelopes"): which Ed25519 key signs
 * for which identity, read and written by the one keys-file mechanism (keys-file.ts).
 */
import type { KeyObject } from 'node:crypto';
import { keyIdOf, parsePublicKey, type PublicSigningKey } from './ed25519.js';
import { generateKey, listKeys, readPrivateKeyFile, revokeKey, type KeyKind, type KeyRecord } from './keys-file.js';

export type SigningKeyRecord = KeyRecord;

export class SigningKeysError extends Error {
  override readonly name = 'SigningKeysError';
}

const SIGNING: KeyKind = {
  type: 'ed25519',
  label: 'Ed25519',
  privateKeyFileName: (identity) => `${identity}.key`,
  parsePublicKey,
  keyIdOf,
  error: (message) => new SigningKeysError(message),
};

/** The file's entries, checked: every field, and that each key id is its key's. Missing file: none. */
export function listSigningKeys(file: string): SigningKeyRecord[] {
  return listKeys(SIGNING, file);
}

/** The keys a receiver trusts, as `connect({ verify: { keys } })` takes them (revoked ones included, so that they are refused as such). */
export function loadSigningKeys(file: string): PublicSigningKey[] {
  return listSigningKeys(file).map((record) => ({ identity: record.identity, publicKey: parsePublicKey(record.publicKey), ...(record.revoked && { revoked: record.revoked }) }));
}

/** Reads a private key PEM file (as `relais identity keygen` writes it) for `connect({ signing })`. */
export function readPrivateKey(file: string): KeyObject {
  return readPrivateKeyFile(SIGNING, file);
}

/**
 * Makes a key pair for `identity`, writes the private key to `<outDir>/<identity>.key` (PEM,
 * mode 0600; an existing file is never overwritten) and registers the public key in `file`.
 */
export function generateSigningKey(file: string, identity: string, outDir: string): { kid: string; privateKeyFile: string } {
  return generateKey(SIGNING, file, identity, outDir);
}

/** Marks a key revoked; false when there is no such unrevoked key. */
export function revokeSigningKey(file: string, kid: string): boolean {
  return revokeKey(SIGNING, file, kid);
}
