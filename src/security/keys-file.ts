/**
 * A public keys file (docs/security.md "Signed envelopes", "Sealed payloads"): which key belongs
 * to which identity. One mechanism for both kinds of key of protocol §12: the Ed25519 signing
 * keys (signing-keys.json) and the X25519 sealing keys (sealing-keys.json, §12.5). Every client
 * that verifies or seals gets a copy; it holds no secret. Each private key lives in its own PEM
 * file, mode 0600, on its owner's host.
 *
 *   { "version": 1, "keys": { "<kid>": { "identity", "publicKey", "createdAt", "revoked"? } } }
 *
 * The key id is the first 16 hex digits of the SHA-256 of the raw public key (protocol §12.1,
 * §12.5); a file whose id does not match its key is refused.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { checkClientId } from '../protocol/topics.js';

/** What differs between the kinds of key a keys file holds. */
export interface KeyKind {
  /** The algorithm, as node:crypto names it. */
  type: 'ed25519' | 'x25519';
  /** Its name in messages: "Ed25519", "X25519". */
  label: string;
  /** What the private key file of `<identity>` is called in the key directory. */
  privateKeyFileName(identity: string): string;
  parsePublicKey(text: string): KeyObject;
  keyIdOf(key: KeyObject): string;
  /** The error every failure of this file is thrown as. */
  error(message: string): Error;
}

const entrySchema = z
  .object({
    identity: z.string().refine((name) => checkClientId(name) === undefined, { message: 'must be a client id (protocol §2.1)' }),
    /** PEM (SPKI) or the base64 of the 32 raw key bytes. */
    publicKey: z.string().min(1),
    createdAt: z.string(),
    /** When it was revoked (ISO time). */
    revoked: z.string().optional(),
  })
  .strict();

const fileSchema = z.object({ version: z.literal(1), keys: z.record(z.string().regex(/^[0-9a-f]{16}$/, 'a key id is 16 lower-case hex digits'), entrySchema) }).strict();

export type KeyRecord = z.output<typeof entrySchema> & { kid: string };

/** The file's entries, checked: every field, and that each key id is its key's. Missing file: none. */
export function listKeys(kind: KeyKind, file: string): KeyRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw kind.error(`${file}: cannot read it: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw kind.error(`${file}: not valid JSON: ${(error as Error).message}`);
  }
  const parsed = fileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw kind.error(`${file}: field '${issue.path.join('.') || '(top level)'}': ${issue.message}`);
  }
  return Object.entries(parsed.data.keys).map(([kid, entry]) => {
    let key: KeyObject;
    try {
      key = kind.parsePublicKey(entry.publicKey);
    } catch (error) {
      throw kind.error(`${file}: field 'keys.${kid}.publicKey': ${(error as Error).message}`);
    }
    const actual = kind.keyIdOf(key);
    if (actual !== kid) throw kind.error(`${file}: field 'keys.${kid}': this key's id is ${actual}, not ${kid}`);
    return { kid, ...entry };
  });
}

/** Reads a private key PEM file (as `relais identity keygen` writes it). */
export function readPrivateKeyFile(kind: KeyKind, file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(fs.readFileSync(file));
  } catch (error) {
    throw kind.error(`${file}: not a readable private key: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== kind.type) throw kind.error(`${file}: an ${kind.label} private key is needed, got ${key.asymmetricKeyType}`);
  return key;
}

/**
 * Makes a key pair for `identity`, writes the private key to `<outDir>/<file name of the kind>`
 * (PEM, mode 0600; an existing file is never overwritten) and registers the public key in `file`.
 */
export function generateKey(kind: KeyKind, file: string, identity: string, outDir: string): { kid: string; privateKeyFile: string } {
  const problem = checkClientId(identity);
  if (problem) throw kind.error(`identity ${JSON.stringify(identity)}: ${problem}`);
  const records = listKeys(kind, file);
  // The overloads of generateKeyPairSync want a literal type.
  const { privateKey, publicKey } = kind.type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('x25519');
  const kid = kind.keyIdOf(publicKey);
  const privateKeyFile = path.resolve(outDir, kind.privateKeyFileName(identity));
  fs.mkdirSync(path.dirname(privateKeyFile), { recursive: true, mode: 0o700 });
  try {
    fs.writeFileSync(privateKeyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw kind.error(`${privateKeyFile} exists already: move it away (or revoke its key) first`);
    throw error;
  }
  const record: KeyRecord = { kid, identity, publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(), createdAt: new Date().toISOString() };
  writeKeys(file, [...records, record]);
  return { kid, privateKeyFile };
}

/** Marks a key revoked; false when there is no such unrevoked key. */
export function revokeKey(kind: KeyKind, file: string, kid: string): boolean {
  const records = listKeys(kind, file);
  const found = records.find((record) => record.kid === kid && !record.revoked);
  if (!found) return false;
  found.revoked = new Date().toISOString();
  writeKeys(file, records);
  return true;
}

function writeKeys(file: string, records: KeyRecord[]): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const keys = Object.fromEntries(records.map(({ kid, ...entry }) => [kid, entry]));
  const temporary = `${file}.${process.pid}.tmp`;
  // Public keys only: readable by the clients that verify or seal.
  fs.writeFileSync(temporary, `${JSON.stringify({ version: 1, keys }, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(temporary, file);
}
