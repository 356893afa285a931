/**
 * Sealed payloads (protocol §3.6): the layout of the `seal` member and the text each sealed
 * body is bound to. Pure: no key is handled here, so any runtime (the page, the router) can read
 * the member and show whom a message is sealed for; the Node cryptography is
 * src/security/sealing.ts.
 *
 * A sealed message is a binary message (§3.5) whose body is the ciphertext and whose header
 * carries, right after `body`, the member
 *
 *   "seal":{"alg":"X25519-HKDF-SHA256-A256GCM","form":"json"|"bytes","epk":"<b64 32>","nonce":"<b64 12>","to":[{"kid":"<16 hex>","key":"<b64 48>"},…]}
 */
import { z } from 'zod';
import type { Envelope } from './envelope.js';
import { isBytes } from './framing.js';

/** The one construction of protocol §3.6: X25519 agreement, HKDF-SHA256, AES-256-GCM. */
export const SEAL_ALGORITHM = 'X25519-HKDF-SHA256-A256GCM';

/** The header member of a sealed message. */
export const SEAL_MEMBER = 'seal';

/** Most recipients one message is sealed for (protocol §3.6): bounds the header and the work of a receiver. */
export const MAX_SEAL_RECIPIENTS = 64;

/** HKDF's `info` for a recipient's key-encryption key (protocol §3.6). */
export const SEAL_KEY_INFO = 'relais-seal/1 key';

/** What the plaintext is: the payload's JSON text (UTF-8), or the payload's bytes. */
export const SEAL_FORMS = ['json', 'bytes'] as const;
export type SealForm = (typeof SEAL_FORMS)[number];

/** Why a sealed message was not opened (protocol §3.6). */
export const SEAL_FAILURES = ['not-for-me', 'malformed', 'undecryptable'] as const;
export type SealFailure = (typeof SEAL_FAILURES)[number];

/** Byte lengths of the members (protocol §3.6). */
export const SEAL_SIZES = { epk: 32, nonce: 12, wrappedKey: 48, contentKey: 32, tag: 16 } as const;

/** One recipient: the id of its sealing key (§12.5) and the content key wrapped for it. */
export interface SealRecipient {
  kid: string;
  /** Base64 (standard, padded) of AES-256-GCM(KEK, zero nonce, CEK, aad = kid): 32 + 16 bytes. */
  key: string;
}

/** The `seal` member, its fields in wire order. */
export interface SealMember {
  /** SEAL_ALGORITHM, the one construction of this version (checked by readSealMember). */
  alg: string;
  form: SealForm;
  /** Base64 of the sender's ephemeral X25519 public key, 32 raw bytes. */
  epk: string;
  /** Base64 of the 12-byte AES-GCM nonce of the body. */
  nonce: string;
  to: SealRecipient[];
}

/** What of the envelope the sealed body is bound to (protocol §3.6). */
export interface SealBinding {
  type: string;
  source: string;
  token?: string | undefined;
}

const NUL = '\u0000';
const DOMAIN = 'relais-seal/1';
const UTF8 = new TextEncoder();

/**
 * The additional authenticated data of a sealed body: `relais-seal/1␀<type>␀<source>␀<token or
 * empty>␀<form>␀<epk>`. It binds the body to its kind, sender, request and ephemeral key, so that
 * it cannot be pasted into another envelope. `acceptBy` and `destination` are not bound: a
 * command sent again (§4.7) or to another handler keeps its seal.
 */
export function sealAad(binding: SealBinding, form: SealForm, epk: string): Uint8Array {
  return UTF8.encode(`${DOMAIN}${NUL}${binding.type}${NUL}${binding.source}${NUL}${binding.token ?? ''}${NUL}${form}${NUL}${epk}`);
}

/** Base64 (standard alphabet, padded) of exactly `bytes` bytes. */
function base64Of(bytes: number): RegExp {
  const full = Math.floor(bytes / 3) * 4;
  const rest = bytes % 3;
  const tail = rest === 0 ? '' : rest === 1 ? '[A-Za-z0-9+/][AQgw]==' : '[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=';
  return new RegExp(`^[A-Za-z0-9+/]{${full}}${tail}$`);
}

const EPK = base64Of(SEAL_SIZES.epk);
const NONCE = base64Of(SEAL_SIZES.nonce);
const WRAPPED = base64Of(SEAL_SIZES.wrappedKey);
const KID = /^[0-9a-f]{16}$/;
const MEMBER_KEYS = ['alg', 'form', 'epk', 'nonce', 'to'];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The `seal` member checked field by field, or why it is not one written as protocol §3.6 says. */
export function readSealMember(value: unknown): SealMember | string {
  if (!isObject(value)) return "field 'seal' must be an object (protocol §3.6)";
  const keys = Object.keys(value);
  if (keys.length !== MEMBER_KEYS.length || keys.some((key, at) => key !== MEMBER_KEYS[at])) return `field 'seal' must have the fields ${MEMBER_KEYS.join(', ')}, in this order (protocol §3.6)`;
  if (value.alg !== SEAL_ALGORITHM) return `field 'seal.alg' must be "${SEAL_ALGORITHM}" (protocol §3.6)`;
  if (!SEAL_FORMS.includes(value.form as SealForm)) return `field 'seal.form' must be "json" or "bytes" (protocol §3.6)`;
  if (typeof value.epk !== 'string' || !EPK.test(value.epk)) return `field 'seal.epk' must be the base64 of 32 bytes (protocol §3.6)`;
  if (typeof value.nonce !== 'string' || !NONCE.test(value.nonce)) return `field 'seal.nonce' must be the base64 of 12 bytes (protocol §3.6)`;
  const to = value.to;
  if (!Array.isArray(to) || to.length === 0) return `field 'seal.to' must be a list of 1 to ${MAX_SEAL_RECIPIENTS} recipients (protocol §3.6)`;
  if (to.length > MAX_SEAL_RECIPIENTS) return `field 'seal.to' lists ${to.length} recipients, over the limit of ${MAX_SEAL_RECIPIENTS} (protocol §3.6)`;
  const seen = new Set<string>();
  for (const [at, recipient] of to.entries()) {
    if (!isObject(recipient) || Object.keys(recipient).join() !== 'kid,key') return `field 'seal.to.${at}' must be {"kid", "key"} (protocol §3.6)`;
    if (typeof recipient.kid !== 'string' || !KID.test(recipient.kid)) return `field 'seal.to.${at}.kid' must be 16 lower-case hex digits (protocol §12.5)`;
    if (typeof recipient.key !== 'string' || !WRAPPED.test(recipient.key)) return `field 'seal.to.${at}.key' must be the base64 of 48 bytes (protocol §3.6)`;
    if (seen.has(recipient.kid)) return `field 'seal.to.${at}.kid': key ${recipient.kid} is listed twice (protocol §3.6)`;
    seen.add(recipient.kid);
  }
  return value as unknown as SealMember;
}

/** `readSealMember` as a zod schema, for the places that check a whole structure with zod (a history row, protocol §11.1). */
export const sealMemberSchema = z.custom<SealMember>().superRefine((value, context) => {
  const member = readSealMember(value);
  if (typeof member === 'string') context.addIssue({ code: 'custom', message: member });
});

/** Whether an envelope carries a `seal` member (opened or not). */
export function isSealed(envelope: Envelope): boolean {
  return envelope[SEAL_MEMBER] !== undefined;
}

/** The key ids a seal member names, for a line that says whom a message is for; empty when it is not a list of recipients. */
export function sealedFor(seal: unknown): string[] {
  const to = isObject(seal) && Array.isArray(seal.to) ? seal.to : [];
  return to.flatMap((recipient) => (isObject(recipient) && typeof recipient.kid === 'string' ? [recipient.kid] : [])).slice(0, MAX_SEAL_RECIPIENTS);
}

/**
 * The envelope with its payload replaced by the sealed body and the `seal` member right after it,
 * so that the binary header reads `…"body":<n>,"seal":{…},…` and a trailing `acceptBy` or `sig`
 * stays last (protocol §3.5, §4.7, §12.2).
 */
export function sealedEnvelope(envelope: Envelope, seal: SealMember, body: Uint8Array): Envelope {
  const sealed: Record<string, unknown> = {};
  for (const key of Object.keys(envelope)) {
    if (key === SEAL_MEMBER) continue;
    if (key === 'payload') {
      sealed.payload = body;
      sealed[SEAL_MEMBER] = seal;
    } else sealed[key] = envelope[key];
  }
  return sealed as Envelope;
}

/** Why a received envelope's seal cannot even be tried (its member, or its body not bytes), or undefined. */
export function sealProblem(envelope: Envelope): string | undefined {
  const member = readSealMember(envelope[SEAL_MEMBER]);
  if (typeof member === 'string') return member;
  if (!isBytes(envelope.payload)) return 'a sealed message is a binary message: its body is the ciphertext (protocol §3.6)';
  if (envelope.payload.length < SEAL_SIZES.tag) return `a sealed body is at least its ${SEAL_SIZES.tag}-byte tag, got ${envelope.payload.length} bytes (protocol §3.6)`;
  return undefined;
}
