/**
 * Curve25519 public keys as the keys files and the wire write them (protocol §12.1, §12.5): PEM
 * (SPKI) or the base64 of the raw 32 key bytes, for Ed25519 (signing) and X25519 (sealing)
 * alike. The raw bytes go through JWK (RFC 8037: its `x` is the raw key): exporting one costs
 * ~3-7 µs and importing ~25 µs, where the SPKI DER costs 100-200 µs each way (Node 20).
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { KEY_ID_HEX_DIGITS } from '../protocol/signature.js';

export type Curve25519 = 'ed25519' | 'x25519';

const JWK_CURVE: Record<Curve25519, string> = { ed25519: 'Ed25519', x25519: 'X25519' };
const NAME: Record<Curve25519, string> = { ed25519: 'Ed25519', x25519: 'X25519' };

/** The raw 32-byte public key of a KeyObject (public or private) of `curve`. Throws `TypeError` for another kind. */
export function rawPublicKeyOf(key: KeyObject, curve: Curve25519): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.asymmetricKeyType !== curve) throw new TypeError(`an ${NAME[curve]} key is needed, got ${publicKey.asymmetricKeyType ?? 'a symmetric key'}`);
  return Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
}

/** The key id: the first 16 hex digits of the SHA-256 of the raw public key (protocol §12.1, §12.5). */
export function keyIdOfRaw(raw: Uint8Array): string {
  return createHash('sha256').update(raw).digest('hex').slice(0, KEY_ID_HEX_DIGITS);
}

/** A public key of `curve` from its raw 32 bytes. */
export function publicKeyFromRaw(raw: Uint8Array, curve: Curve25519): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: JWK_CURVE[curve], x: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url') }, format: 'jwk' });
}

/** A public key of `curve` from PEM (SPKI) or from the base64 of its raw 32 bytes. Throws `TypeError` saying why. */
export function parsePublicKeyText(text: string, curve: Curve25519): KeyObject {
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
    if (raw?.length !== 32) throw new TypeError(`expected a PEM public key or the base64 of 32 raw ${NAME[curve]} key bytes`);
    key = publicKeyFromRaw(raw, curve);
  }
  if (key.asymmetricKeyType !== curve) throw new TypeError(`an ${NAME[curve]} key is needed, got ${key.asymmetricKeyType ?? 'another kind'}`);
  return key;
}
