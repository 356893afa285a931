/**
 * Sealed payloads in the client (protocol §3.6): the one place that seals what this client
 * sends for other identities (requests, their answers, notifications) and opens what arrives
 * sealed for it (`deliver`, inbound.ts, after the signature check and before any part of the
 * client sees the message). Counts both (`bus.sealing`). Node only: the runtime makes it.
 */
import { createHash, type KeyObject } from 'node:crypto';
import type { Envelope } from '../protocol/envelope.js';
import type { HistoryKind, HistoryRow } from '../protocol/history.js';
import { SealingError } from '../protocol/errors.js';
import { MAX_SEAL_RECIPIENTS, SEAL_FAILURES, SEAL_MEMBER, sealedEnvelope, type SealBinding, type SealFailure } from '../protocol/sealing.js';
import { identityOfClientId } from '../protocol/topics.js';
import { openPayload, sealingIdentityKey, sealingRecipient, sealPayload, type PublicSealingKey, type SealingIdentityKey, type SealingRecipient } from '../security/sealing.js';
import type { SealingOptions, SealingStats } from './types.js';

/** What opening a received sealed envelope gave. */
export type Opening = { ok: true; envelope: Envelope } | { ok: false; reason: SealFailure; why: string };

/** What `keys` of the options says, as recipients by identity. */
type KeySource = (identity: string) => SealingRecipient[];

export class Sealing {
  /** `sealing.requests`: every request sealed unless told otherwise. */
  readonly requestsByDefault: boolean;
  private readonly own: SealingIdentityKey[];
  private readonly keysOf: KeySource;
  private readonly counts: SealingStats = { sealed: 0, opened: 0, refused: Object.fromEntries(SEAL_FAILURES.map((reason) => [reason, 0])) as Record<SealFailure, number> };

  /** Without options: a client that seals nothing and holds no key (its sealed messages stay unopened, counted). */
  constructor(options: SealingOptions | undefined) {
    this.requestsByDefault = options?.requests ?? false;
    const privateKeys: ReadonlyArray<KeyObject | string> = options?.privateKey === undefined ? [] : Array.isArray(options.privateKey) ? options.privateKey : [options.privateKey as KeyObject | string];
    this.own = privateKeys.map((key) => sealingIdentityKey(key));
    const keys = options?.keys;
    if (keys === undefined) this.keysOf = () => [];
    else if (typeof keys === 'function') this.keysOf = (identity) => usable(keys(identity) ?? [], identity);
    else {
      if (!Array.isArray(keys)) throw new TypeError('sealing.keys must be a list of public sealing keys (loadSealingKeys()) or a function from an identity to its keys');
      // Parsed once: a list does not change.
      const byIdentity = new Map<string, SealingRecipient[]>();
      for (const key of keys as ReadonlyArray<PublicSealingKey>) {
        if (key.revoked) continue;
        const recipients = byIdentity.get(key.identity) ?? [];
        recipients.push(sealingRecipient(key.publicKey));
        byIdentity.set(key.identity, recipients);
      }
      this.keysOf = (identity) => byIdentity.get(identity) ?? [];
    }
  }

  /** The ids of the keys this client opens with. */
  get kids(): string[] {
    return this.own.map((key) => key.kid);
  }

  get stats(): SealingStats {
    return { sealed: this.counts.sealed, opened: this.counts.opened, refused: { ...this.counts.refused } };
  }

  /** Whether a key is known for the identity of `clientId` (`<identity>~<session>` → identity). */
  canSealFor(clientId: string): boolean {
    return this.keysOf(identityOfClientId(clientId)).length > 0;
  }

  /**
   * `envelope` with its payload sealed for every unrevoked key of each identity of `required`
   * (client ids or identities), and of those of `optional` that have keys while there is room
   * (64 keys, protocol §3.6). Throws `SealingError` naming an identity of `required` with no key or
   * past the 64 keys, or when no key at all is known; `TypeError` for a payload that is not JSON.
   */
  seal(envelope: Envelope, required: Iterable<string>, optional: Iterable<string> = []): Envelope {
    const recipients: SealingRecipient[] = [];
    const seen = new Set<string>();
    const add = (clientId: string, mustHave: boolean) => {
      const identity = identityOfClientId(clientId);
      if (seen.has(identity)) return;
      seen.add(identity);
      const keys = this.keysOf(identity);
      if (keys.length === 0 && mustHave) throw noKey(identity);
      for (const key of keys) {
        if (recipients.some((known) => known.kid === key.kid)) continue;
        // A recipient left out would silently not read it: only optional ones are dropped past the cap.
        if (recipients.length === MAX_SEAL_RECIPIENTS) {
          if (mustHave) throw new SealingError(`a message is sealed for at most ${MAX_SEAL_RECIPIENTS} keys (protocol §3.6): ${identity} and the identities before it have more; nothing was sent`);
          return;
        }
        recipients.push(key);
      }
    };
    for (const clientId of required) add(clientId, true);
    for (const clientId of optional) add(clientId, false);
    if (recipients.length === 0) throw new SealingError(seen.size === 0 ? 'nobody to seal for: no recipient identity is known yet (protocol §3.6)' : `no sealing key for ${[...seen].join(', ')}: give their public sealing keys (sealing.keys, a sealing keys file)`);
    const { seal, body } = sealPayload(envelope.payload, bindingOf(envelope), recipients);
    this.counts.sealed += 1;
    return sealedEnvelope(envelope, seal, body);
  }

  /** A received envelope that carries a `seal` member, opened with this client's keys; counted. Never throws. */
  open(envelope: Envelope): Opening {
    const opened = openPayload(bindingOf(envelope), envelope[SEAL_MEMBER], envelope.payload, this.own);
    if (!opened.ok) {
      this.counts.refused[opened.reason] += 1;
      return opened;
    }
    this.counts.opened += 1;
    return { ok: true, envelope: { ...envelope, payload: opened.payload } };
  }

  /**
   * A history row the router recorded sealed (protocol §11.1), opened when this client holds one
   * of its keys and the row holds the whole ciphertext (not `truncated`): `data`, `size`,
   * `sha256` become what the row of the same payload unsealed holds, `seal` stays, `opened` is
   * set. Any other row comes back as it is. Never throws.
   */
  openRow<T extends HistoryRow>(row: T): T {
    const type = row.seal === undefined || row.truncated || row.opened ? undefined : ENVELOPE_TYPE_OF_KIND[row.kind];
    if (type === undefined || this.own.length === 0) return row;
    const opened = openPayload({ type, source: row.via ?? row.source, token: row.token }, row.seal, Buffer.from(row.data, 'base64'), this.own);
    if (!opened.ok) return row;
    if (opened.seal.form === 'bytes') {
      const bytes = opened.payload as Buffer;
      return { ...row, data: bytes.toString('base64'), size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), truncated: false, opened: true };
    }
    const { sha256: _ciphertextDigest, ...rest } = row;
    const data = JSON.stringify(opened.payload);
    return { ...rest, data, size: Buffer.byteLength(data), truncated: false, opened: true } as T;
  }
}

/** The envelope type a history row of each kind recorded (protocol §11.1): what its seal is bound to. */
const ENVELOPE_TYPE_OF_KIND: Partial<Record<HistoryKind, string>> = { command: 'command', accepted: 'response', progress: 'response', final: 'response', error: 'response', cancel: 'cancel' };

function bindingOf(envelope: Envelope): SealBinding {
  return { type: envelope.type, source: envelope.source, token: envelope.token };
}

function noKey(identity: string): SealingError {
  return new SealingError(`no sealing key for identity ${identity}: add it to the sealing keys file (sealing.keys) or ask its owner for one; nothing was sent`, { details: { identity } });
}

/** A resolver's keys for `identity`: its own, unrevoked, parsed. */
function usable(keys: ReadonlyArray<PublicSealingKey>, identity: string): SealingRecipient[] {
  return keys.filter((key) => key.identity === identity && !key.revoked).map((key) => sealingRecipient(key.publicKey));
}
