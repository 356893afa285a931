/**
 * Signed envelopes in the client (protocol §12): the `Signer` the transport passes every
 * message through before it is written, and the `Verifier` that `deliver` (inbound.ts) asks
 * about every message received, before any part of the client or any subscription sees it.
 */
import { identityOfClientId } from '../../protocol/topics.js';
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { DecodeResult } from '../../protocol/envelope.js';
import { frame, HEADER_END, splitFrame, type WireBody } from '../../protocol/framing.js';
import { isSignable, readSignature } from '../../protocol/signature.js';
import { keyIdOf, parsePublicKey, signatureMatches, signBody, type PublicSigningKey } from '../../security/ed25519.js';
import { ReplayWindows } from './replay-window.js';
import type { RefusalReason, SignatureStats, SigningOptions, VerifyOptions } from '../types.js';

export const REFUSAL_REASONS: readonly RefusalReason[] = ['unsigned', 'malformed', 'unknown-key', 'revoked-key', 'wrong-identity', 'forged', 'stale', 'replayed'];

/** What each reason means, for the warning line. */
const WHY: Record<RefusalReason, string> = {
  unsigned: 'no signature, and this client requires one',
  malformed: 'its sig member is not written as protocol §12.2 says',
  'unknown-key': 'signed with a key this client does not know',
  'revoked-key': 'signed with a revoked key',
  'wrong-identity': 'signed with the key of another identity than its source',
  forged: 'the signature does not match the message and its topic',
  stale: 'its signature time is outside the accepted clock skew',
  replayed: 'its sequence number was seen before (a replay or a duplicate)',
};

function toPrivateKey(key: KeyObject | string): KeyObject {
  const object = typeof key === 'string' ? createPrivateKey(key) : key;
  if (object.type !== 'private' || object.asymmetricKeyType !== 'ed25519') throw new TypeError('signing.privateKey must be an Ed25519 private key (KeyObject or PEM)');
  return object;
}

/** Signs what this client writes, one sequence per start (protocol §12.3). */
export class Signer {
  readonly kid: string;
  readonly publicKey: KeyObject;
  private readonly privateKey: KeyObject;
  private readonly boot = randomBytes(8).toString('hex');
  private seq = 0;
  signed = 0;

  constructor(options: SigningOptions) {
    this.privateKey = toPrivateKey(options.privateKey);
    this.publicKey = createPublicKey(this.privateKey);
    this.kid = keyIdOf(this.publicKey);
  }

  /**
   * `body` with its signature for `topic`: a binary message's `sig` goes last in its header and
   * covers its body too (protocol §12.2, §3.5); a text that is not a JSON object, or raw bytes,
   * are written as they are.
   */
  sign(topic: string, body: string): string;
  sign(topic: string, body: WireBody): WireBody;
  sign(topic: string, body: WireBody): WireBody {
    if (typeof body !== 'string') {
      const framed = splitFrame(body);
      if (!framed || !isSignable(framed.headerText)) return body;
      return frame(this.signText(topic, framed.headerText, framed.body), framed.body);
    }
    return isSignable(body) ? this.signText(topic, body) : body;
  }

  private signText(topic: string, text: string, binaryBody?: Uint8Array): string {
    this.seq += 1;
    this.signed += 1;
    return signBody(topic, text, { kid: this.kid, boot: this.boot, seq: this.seq, ts: Date.now() }, this.privateKey, binaryBody);
  }
}

interface KnownKey {
  identity: string;
  publicKey: KeyObject;
  revoked: boolean;
}

export type Verdict = { ok: true } | { ok: false; reason: RefusalReason; source?: string };

const ADMITTED: Verdict = { ok: true };

/** Checks received messages against the known keys, the clock and the replay windows. */
export class Verifier {
  readonly require: boolean;
  private readonly maxSkewMs: number;
  private readonly lookup: (kid: string) => KnownKey | undefined;
  private readonly windows: ReplayWindows;
  private readonly counts: SignatureStats;

  constructor(options: VerifyOptions, own: Signer | undefined, identity: string) {
    this.require = options.require ?? true;
    // Our presence comes back through this check, and the directory waits for it (protocol §7.2).
    if (this.require && !own) throw new TypeError('verify.require needs signing too: this client\'s own messages (its presence) must pass its own check; give signing.privateKey, or verify.require: false');
    this.maxSkewMs = options.maxSkewMs ?? 30_000;
    if (!(this.maxSkewMs > 0)) throw new TypeError(`verify.maxSkewMs must be a positive number of ms, got ${options.maxSkewMs}`);
    const maxSenders = options.maxSenders ?? 10_000;
    if (!(Number.isSafeInteger(maxSenders) && maxSenders > 0)) throw new TypeError(`verify.maxSenders must be a positive integer, got ${options.maxSenders}`);
    this.windows = new ReplayWindows(maxSenders, this.maxSkewMs);
    const table = new Map<string, KnownKey>();
    // Our own messages come back to our subscriptions (our presence among them).
    if (own) table.set(own.kid, { identity: identityOfClientId(identity), publicKey: own.publicKey, revoked: false });
    const keys = options.keys;
    const resolver = typeof keys === 'function' ? keys : undefined;
    for (const key of typeof keys === 'function' ? [] : keys) {
      const entry = known(key);
      table.set(keyIdOf(entry.publicKey), entry);
    }
    this.lookup = resolver ? (kid) => table.get(kid) ?? resolved(kid, resolver(kid)) : (kid) => table.get(kid);
    this.counts = { verified: 0, refused: Object.fromEntries(REFUSAL_REASONS.map((reason) => [reason, 0])) as Record<RefusalReason, number> };
  }

  get stats(): SignatureStats {
    return { verified: this.counts.verified, refused: { ...this.counts.refused }, sendersTracked: this.windows.size, unsafeEvictions: this.windows.unsafeEvictions };
  }

  /**
   * Whether a received message may go on (protocol §12.4). `freshnessApplies` is false for
   * presences and retained messages: old by nature, only their signature is checked.
   */
  check(topic: string, payload: Buffer, decoded: () => DecodeResult, freshnessApplies: boolean, now = Date.now()): Verdict {
    const result = decoded();
    const envelope = result.ok ? result.envelope : undefined;
    const source = envelope?.source ?? (result.ok ? undefined : result.sender?.source);
    if (envelope?.sig === undefined) return this.refuseIf(this.require, 'unsigned', source);
    // A binary message's signature is in its header and covers its body (protocol §12.2, §3.5).
    const framed = payload.indexOf(HEADER_END) >= 0 ? splitFrame(payload) : undefined;
    const signature = readSignature(framed ? framed.headerText : payload.toString('utf8'));
    if (!signature) return this.refuse('malformed', source);
    const key = this.lookup(signature.kid);
    if (!key) return this.refuse('unknown-key', source);
    if (key.revoked) return this.refuse('revoked-key', source);
    // A key is an identity's; each of its sessions `<identity>~<session>` signs with it (protocol §2.1, §12).
    if (key.identity !== identityOfClientId(envelope.source)) return this.refuse('wrong-identity', source);
    if (!signatureMatches(topic, signature, key.publicKey, framed?.body)) return this.refuse('forged', source);
    if (freshnessApplies) {
      if (Math.abs(now - signature.ts) > this.maxSkewMs) return this.refuse('stale', source);
      // Recorded only once the signature holds: a forger cannot move anyone's window.
      if (this.windows.check(`${signature.kid}.${signature.boot}`, signature.seq, signature.ts, now) === 'replayed') return this.refuse('replayed', source);
    }
    this.counts.verified += 1;
    return ADMITTED;
  }

  private refuseIf(condition: boolean, reason: RefusalReason, source: string | undefined): Verdict {
    return condition ? this.refuse(reason, source) : ADMITTED;
  }

  private refuse(reason: RefusalReason, source: string | undefined): Verdict {
    this.counts.refused[reason] += 1;
    return source === undefined ? { ok: false, reason } : { ok: false, reason, source };
  }

  /** The one warning line of a refusal: topic, claimed source, why; never the payload. */
  logRefusal(logger: Logger, topic: string, verdict: Extract<Verdict, { ok: false }>): void {
    logger.warn({ topic, source: verdict.source ?? '(unreadable)', reason: verdict.reason }, `message refused: ${WHY[verdict.reason]}`);
  }
}

function known(key: PublicSigningKey): KnownKey {
  const publicKey = typeof key.publicKey === 'string' ? parsePublicKey(key.publicKey) : key.publicKey.type === 'private' ? createPublicKey(key.publicKey) : key.publicKey;
  return { identity: key.identity, publicKey, revoked: Boolean(key.revoked) };
}

/**
 * A resolver's answer, asked for every message (so that it can revoke a key at once), and
 * checked: a key whose id is not the one asked for is no key.
 */
function resolved(kid: string, key: PublicSigningKey | undefined): KnownKey | undefined {
  if (!key) return undefined;
  const entry = known(key);
  return keyIdOf(entry.publicKey) === kid ? entry : undefined;
}
