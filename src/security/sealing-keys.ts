/**
 * The public sealing keys file (protocol §12.5, docs/security.md "Sealed payloads"): which X25519
 * key opens what is sealed for which identity, read and written by the one keys-file mechanism
 * (keys-file.ts). A sender seals for every unrevoked key of the recipient identity.
 */
import type { KeyObject } from 'node:crypto';
import { generateKey, listKeys, readPrivateKeyFile, revokeKey, type KeyKind, type KeyRecord } from './keys-file.js';
import { parseSealingPublicKey, sealingKeyIdOf, type PublicSealingKey } from './sealing.js';

export type SealingKeyRecord = KeyRecord;

/** The public sealing keys a client seals with: as `loadSealingKeys()` reads them (`connect({ sealing: { keys } })`). */
export type SealingKeys = ReadonlyArray<PublicSealingKey>;

export class SealingKeysError extends Error {
  override readonly name = 'SealingKeysError';
}

const SEALING: KeyKind = {
  type: 'x25519',
  label: 'X25519',
  // Apart from the signing key `<identity>.key`: both may live in one directory.
  privateKeyFileName: (identity) => `${identity}.sealing.key`,
  parsePublicKey: parseSealingPublicKey,
  keyIdOf: sealingKeyIdOf,
  error: (message) => new SealingKeysError(message),
};

/** The file's entries, checked: every field, and that each key id is its key's. Missing file: none. */
export function listSealingKeys(file: string): SealingKeyRecord[] {
  return listKeys(SEALING, file);
}

/** The keys of the file, as `connect({ sealing: { keys } })` takes them (revoked ones included: nothing is sealed for them). */
export function loadSealingKeys(file: string): PublicSealingKey[] {
  return listSealingKeys(file).map((record) => ({ identity: record.identity, publicKey: parseSealingPublicKey(record.publicKey), ...(record.revoked && { revoked: record.revoked }) }));
}

/** Reads a private sealing key PEM file (as `generateSealingKey` writes it) for `connect({ sealing: { privateKey } })`. */
export function readSealingPrivateKey(file: string): KeyObject {
  return readPrivateKeyFile(SEALING, file);
}

/**
 * Makes an X25519 key pair for `identity`, writes the private key to
 * `<outDir>/<identity>.sealing.key` (PEM, mode 0600; an existing file is never overwritten) and
 * registers the public key in `file`.
 */
export function generateSealingKey(file: string, identity: string, outDir: string): { kid: string; privateKeyFile: string } {
  return generateKey(SEALING, file, identity, outDir);
}

/** Marks a sealing key revoked (nothing is sealed for it any more); false when there is no such unrevoked key. */
export function revokeSealingKey(file: string, kid: string): boolean {
  return revokeKey(SEALING, file, kid);
}
