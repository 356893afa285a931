/**
 * Sealed payloads (protocol §3.6) on node:crypto: X25519 key agreement, HKDF-SHA256 and
 * AES-256-GCM, no primitive of our own. The layout (the seal member, the AAD text) is the
 * protocol's (src/protocol/sealing.ts); this is the Node side of the cryptography: sealing key
 * ids, reading X25519 keys, sealing a payload for a list of public keys and opening it with a
 * private one.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { keyIdOfRaw, parsePublicKeyText, publicKeyFromRaw, rawPublicKeyOf } from './curve25519-keys.js';
import { isBytes } from '../protocol/framing.js';
import { MAX_SEAL_RECIPIENTS, readSealMember, SEAL_ALGORITHM, SEAL_KEY_INFO, SEAL_SIZES, sealAad, type SealBinding, type SealFailure, type SealForm, type SealMember } from '../protocol/sealing.js';

/** A public sealing key and the identity it seals for (protocol §12.5). */
export interface PublicSealingKey {
  identity: string;
  /** KeyObject, PEM (SPKI) or the base64 of the 32 raw X25519 key bytes. */
  publicKey: KeyObject | string;
  /** Nothing is sealed for a revoked key. */
  revoked?: boolean | string;
}

/** A key a message is sealed for, with what sealing needs of it computed once. */
export interface SealingRecipient {
  kid: string;
  publicKey: KeyObject;
  /** Its raw 32 bytes (the HKDF salt needs them). */
  raw: Buffer;
}

const ZERO_NONCE = Buffer.alloc(12);

/** The raw 32-byte X25519 public key of a KeyObject (public or private). */
export function rawSealingPublicKey(key: KeyObject): Buffer {
  return rawPublicKeyOf(key, 'x25519');
}

/** The key id of a sealing key: the first 16 hex digits of the SHA-256 of its raw public key (protocol §12.5). */
export function sealingKeyIdOf(key: KeyObject): string {
  return keyIdOfRaw(rawSealingPublicKey(key));
}

/** A public sealing key from PEM (SPKI) or from the base64 of its raw 32 bytes. Throws `TypeError` saying why. */
export function parseSealingPublicKey(text: string): KeyObject {
  return parsePublicKeyText(text, 'x25519');
}

/** A private sealing key from a KeyObject or PEM (PKCS#8). Throws `TypeError` saying why. */
export function toSealingPrivateKey(key: KeyObject | string): KeyObject {
  let object: KeyObject;
  try {
    object = typeof key === 'string' ? createPrivateKey(key) : key;
  } catch (error) {
    throw new TypeError(`sealing.privateKey is not a readable private key: ${(error as Error).message}`);
  }
  if (object.type !== 'private' || object.asymmetricKeyType !== 'x25519') throw new TypeError('sealing.privateKey must be an X25519 private key (KeyObject or PEM)');
  return object;
}

/** A new X25519 key pair. */
export function newSealingKeyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('x25519');
}

/** Recipients already computed, by key object or by the text of the key: a client seals for the same few keys on every message. */
const recipientsByObject = new WeakMap<KeyObject, SealingRecipient>();
const recipientsByText = new Map<string, SealingRecipient>();
/** Key texts remembered; past this many the memory starts again (a resolver handing out ever new keys cannot grow it). */
const MAX_REMEMBERED_KEY_TEXTS = 4096;

/** The recipient entry of a public key: its id computed from it, never read. Computed once per key (parsing, hashing and exporting cost ~250 µs). */
export function sealingRecipient(publicKey: KeyObject | string): SealingRecipient {
  const known = typeof publicKey === 'string' ? recipientsByText.get(publicKey) : recipientsByObject.get(publicKey);
  if (known) return known;
  const key = typeof publicKey === 'string' ? parseSealingPublicKey(publicKey) : publicKey.type === 'private' ? createPublicKey(publicKey) : publicKey;
  const raw = rawSealingPublicKey(key);
  const recipient = { kid: keyIdOfRaw(raw), publicKey: key, raw };
  if (typeof publicKey === 'string') {
    if (recipientsByText.size >= MAX_REMEMBERED_KEY_TEXTS) recipientsByText.clear();
    recipientsByText.set(publicKey, recipient);
  } else {
    recipientsByObject.set(publicKey, recipient);
  }
  return recipient;
}

/** HKDF-SHA256(Z, salt = epk ‖ R, info = "relais-seal/1 key") → the 32-byte key-encryption key of one recipient. */
function keyEncryptionKey(shared: Buffer, epk: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([epk, recipient]), SEAL_KEY_INFO, 32));
}

function gcmSeal(key: Buffer, nonce: Buffer, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** AES-256-GCM opening of `sealed` (ciphertext ‖ tag); undefined when the tag fails. */
function gcmOpen(key: Buffer, nonce: Buffer, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (sealed.length < SEAL_SIZES.tag) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - SEAL_SIZES.tag));
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - SEAL_SIZES.tag)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** The plaintext of a payload and its form: bytes as they are, anything else as its JSON text. Throws `TypeError` for what is not JSON. */
function plaintextOf(payload: unknown): { form: SealForm; plaintext: Uint8Array } {
  if (isBytes(payload)) return { form: 'bytes', plaintext: payload };
  let text: string | undefined;
  try {
    text = JSON.stringify(payload ?? null);
  } catch (cause) {
    throw new TypeError(`the payload to seal is not JSON: ${(cause as Error).message}`, { cause });
  }
  if (text === undefined) throw new TypeError(`the payload to seal is not JSON: ${typeof payload}`);
  return { form: 'json', plaintext: Buffer.from(text, 'utf8') };
}

/**
 * Seals `payload` for `recipients` (protocol §3.6): a fresh content key, nonce and ephemeral key
 * per call. Returns the seal member and the body (ciphertext ‖ tag). Throws `RangeError` for no
 * recipient or more than 64, `TypeError` for a payload that is not JSON.
 */
export function sealPayload(payload: unknown, binding: SealBinding, recipients: readonly SealingRecipient[]): { seal: SealMember; body: Uint8Array } {
  if (recipients.length === 0) throw new RangeError('a sealed message needs at least one recipient key (protocol §3.6)');
  if (recipients.length > MAX_SEAL_RECIPIENTS) throw new RangeError(`a message is sealed for at most ${MAX_SEAL_RECIPIENTS} keys, got ${recipients.length} (protocol §3.6)`);
  const { form, plaintext } = plaintextOf(payload);
  // One draw for both: each randomBytes call costs ~20 µs, whatever its size.
  const random = randomBytes(SEAL_SIZES.contentKey + SEAL_SIZES.nonce);
  const contentKey = random.subarray(0, SEAL_SIZES.contentKey);
  const nonce = random.subarray(SEAL_SIZES.contentKey);
  const ephemeral = generateKeyPairSync('x25519');
  const epkRaw = rawSealingPublicKey(ephemeral.publicKey);
  const epk = epkRaw.toString('base64');
  const seen = new Set<string>();
  const to = [];
  for (const recipient of recipients) {
    if (seen.has(recipient.kid)) continue;
    seen.add(recipient.kid);
    const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient.publicKey });
    const wrapped = gcmSeal(keyEncryptionKey(shared, epkRaw, recipient.raw), ZERO_NONCE, contentKey, Buffer.from(recipient.kid, 'utf8'));
    to.push({ kid: recipient.kid, key: wrapped.toString('base64') });
  }
  const body = gcmSeal(contentKey, nonce, plaintext, sealAad(binding, form, epk));
  return { seal: { alg: SEAL_ALGORITHM, form, epk, nonce: nonce.toString('base64'), to }, body };
}

/** A private key this client opens with, and its id. */
export interface SealingIdentityKey {
  kid: string;
  privateKey: KeyObject;
  /** Its raw public key (the HKDF salt needs it). */
  publicRaw: Buffer;
}

/** The opening entry of a private key. */
export function sealingIdentityKey(privateKey: KeyObject | string): SealingIdentityKey {
  const key = toSealingPrivateKey(privateKey);
  const publicKey = createPublicKey(key);
  return { kid: sealingKeyIdOf(publicKey), privateKey: key, publicRaw: rawSealingPublicKey(publicKey) };
}

export type OpenResult = { ok: true; payload: unknown; seal: SealMember } | { ok: false; reason: SealFailure; why: string };

/**
 * Opens a sealed body with the first of `keys` the seal lists (protocol §3.6): the payload (form
 * json: the parsed JSON; bytes: the bytes), or why not — `malformed` (a bad seal member, a body
 * that is not bytes, a plaintext that is not its form), `not-for-me` (no key of ours listed),
 * `undecryptable` (a tag fails: tampered, pasted into another envelope, or a wrong key). Never throws.
 */
export function openPayload(binding: SealBinding, sealValue: unknown, body: unknown, keys: readonly SealingIdentityKey[]): OpenResult {
  const seal = readSealMember(sealValue);
  if (typeof seal === 'string') return { ok: false, reason: 'malformed', why: seal };
  if (!isBytes(body)) return { ok: false, reason: 'malformed', why: 'a sealed message is a binary message: its body is the ciphertext (protocol §3.6)' };
  const mine = seal.to.map((recipient) => ({ recipient, key: keys.find((key) => key.kid === recipient.kid) })).find((pair) => pair.key !== undefined);
  if (!mine) return { ok: false, reason: 'not-for-me', why: `sealed for ${seal.to.map((recipient) => recipient.kid).join(', ')}, this client holds ${keys.map((key) => key.kid).join(', ') || 'no sealing key'}` };
  const { recipient, key } = mine as { recipient: SealMember['to'][number]; key: SealingIdentityKey };
  const epkRaw = Buffer.from(seal.epk, 'base64');
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: key.privateKey, publicKey: publicKeyFromRaw(epkRaw, 'x25519') });
  } catch (error) {
    // An all-zero or low-order ephemeral key makes X25519 fail: a forged seal.
    return { ok: false, reason: 'undecryptable', why: `the ephemeral key does not agree: ${(error as Error).message}` };
  }
  const contentKey = gcmOpen(keyEncryptionKey(shared, epkRaw, key.publicRaw), ZERO_NONCE, Buffer.from(recipient.key, 'base64'), Buffer.from(recipient.kid, 'utf8'));
  if (!contentKey || contentKey.length !== SEAL_SIZES.contentKey) return { ok: false, reason: 'undecryptable', why: `the content key wrapped for ${recipient.kid} does not open` };
  const plaintext = gcmOpen(contentKey, Buffer.from(seal.nonce, 'base64'), body, sealAad(binding, seal.form, seal.epk));
  if (!plaintext) return { ok: false, reason: 'undecryptable', why: 'the body does not open: tampered, or sealed for another envelope' };
  if (seal.form === 'bytes') return { ok: true, payload: plaintext, seal };
  try {
    return { ok: true, payload: JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(plaintext)), seal };
  } catch (error) {
    return { ok: false, reason: 'malformed', why: `form "json", but the plaintext is not JSON text: ${(error as Error).message}` };
  }
}
