/**
 * The public signing keys file (docs/security.md "Signed envelopes"): which
 * Ed25519 key signs for which identity. Every receiver that verifies signatures gets a copy;
 * it holds no secret. Each private key lives in its own PEM file, mode 0600, on its owner's host.
 *
 *   { "version": 1, "keys": { "<kid>": { "identity", "publicKey", "createdAt", "revoked"? } } }
 *
 * The key id is the first 16 hex digits of the SHA-256 of the raw public key (protocol §12.1);
 * a file whose id does not match its key is refused.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { keyIdOf, parsePublicKey, type PublicSigningKey } from './ed25519.js';
import { checkClientId } from '../protocol/topics.js';

const entrySchema = z
  .object({
    identity: z.string().refine((name) => checkClientId(name) === undefined, { message: 'must be a client id (protocol §2.1)' }),
    /** PEM (SPKI) or the base64 of the 32 raw key bytes. */
    publicKey: z.string().min(1),
    createdAt: z.string(),
    /** When it was revoked (ISO time): messages signed with it are refused. */
    revoked: z.string().optional(),
  })
  .strict();

const fileSchema = z.object({ version: z.literal(1), keys: z.record(z.string().regex(/^[0-9a-f]{16}$/, 'a key id is 16 lower-case hex digits'), entrySchema) }).strict();

export type SigningKeyRecord = z.output<typeof entrySchema> & { kid: string };

export class SigningKeysError extends Error {
  override readonly name = 'SigningKeysError';
}

/** The file's entries, checked: every field, and that each key id is its key's. Missing file: none. */
export function listSigningKeys(file: string): SigningKeyRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new SigningKeysError(`${file}: cannot read it: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new SigningKeysError(`${file}: not valid JSON: ${(error as Error).message}`);
  }
  const parsed = fileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SigningKeysError(`${file}: field '${issue.path.join('.') || '(top level)'}': ${issue.message}`);
  }
  return Object.entries(parsed.data.keys).map(([kid, entry]) => {
    let key: KeyObject;
    try {
      key = parsePublicKey(entry.publicKey);
    } catch (error) {
      throw new SigningKeysError(`${file}: field 'keys.${kid}.publicKey': ${(error as Error).message}`);
    }
    const actual = keyIdOf(key);
    if (actual !== kid) throw new SigningKeysError(`${file}: field 'keys.${kid}': this key's id is ${actual}, not ${kid}`);
    return { kid, ...entry };
  });
}

/** The keys a receiver trusts, as `connect({ verify: { keys } })` takes them (revoked ones included, so that they are refused as such). */
export function loadSigningKeys(file: string): PublicSigningKey[] {
  return listSigningKeys(file).map((record) => ({ identity: record.identity, publicKey: parsePublicKey(record.publicKey), ...(record.revoked && { revoked: record.revoked }) }));
}

/** Reads a private key PEM file (as `relais identity keygen` writes it) for `connect({ signing })`. */
export function readPrivateKey(file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(fs.readFileSync(file));
  } catch (error) {
    throw new SigningKeysError(`${file}: not a readable private key: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new SigningKeysError(`${file}: an Ed25519 private key is needed, got ${key.asymmetricKeyType}`);
  return key;
}

/**
 * Makes a key pair for `identity`, writes the private key to `<outDir>/<identity>.key` (PEM,
 * mode 0600; an existing file is never overwritten) and registers the public key in `file`.
 */
export function generateSigningKey(file: string, identity: string, outDir: string): { kid: string; privateKeyFile: string } {
  const problem = checkClientId(identity);
  if (problem) throw new SigningKeysError(`identity ${JSON.stringify(identity)}: ${problem}`);
  const records = listSigningKeys(file);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const kid = keyIdOf(publicKey);
  const privateKeyFile = path.resolve(outDir, `${identity}.key`);
  fs.mkdirSync(path.dirname(privateKeyFile), { recursive: true, mode: 0o700 });
  try {
    fs.writeFileSync(privateKeyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new SigningKeysError(`${privateKeyFile} exists already: move it away (or revoke its key) first`);
    throw error;
  }
  const record: SigningKeyRecord = { kid, identity, publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(), createdAt: new Date().toISOString() };
  writeKeys(file, [...records, record]);
  return { kid, privateKeyFile };
}

/** Marks a key revoked; false when there is no such unrevoked key. */
export function revokeSigningKey(file: string, kid: string): boolean {
  const records = listSigningKeys(file);
  const found = records.find((record) => record.kid === kid && !record.revoked);
  if (!found) return false;
  found.revoked = new Date().toISOString();
  writeKeys(file, records);
  return true;
}

function writeKeys(file: string, records: SigningKeyRecord[]): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const keys = Object.fromEntries(records.map(({ kid, ...entry }) => [kid, entry]));
  const temporary = `${file}.${process.pid}.tmp`;
  // Public keys only: readable by the receivers that verify.
  fs.writeFileSync(temporary, `${JSON.stringify({ version: 1, keys }, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(temporary, file);
}
