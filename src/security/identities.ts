/**
 * Identities (docs/security.md "Identities and enforcement"): a JSON file of `{ name, roles, tokenHash?, fingerprint?, certificate?,
 * createdAt, revoked? }`. An identity holds a secret token, a client certificate, or both.
 * Tokens are stored as scrypt hashes with a random salt (node:crypto, run on libuv's thread
 * pool) and compared in constant time; a certificate is recorded by its SHA-256 fingerprint, so
 * only the one issued last for a name is accepted.
 *
 * Verifications read an index of the file made once and made again when the file changes (its
 * inode, size and times, looked at before each verification, and watched for whoever follows
 * changes: `onChange`), so `relais identity revoke` takes effect at the next CONNECT and, through
 * `onChange`, on live connections (docs/security.md "Live revocation"). A file that stops being
 * valid keeps the identities last read in force, with a log line, as a policy reload does.
 * `list()` and the writers read the file itself.
 *
 * Nothing here logs a token, and no error message carries one.
 */
import { randomBytes, scrypt as scryptCallback, createHash, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { checkClientId } from '../protocol/topics.js';

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;
const ROLE = /^[A-Za-z0-9_.:@-]{1,128}$/;

function scrypt(secret: string, salt: Buffer, params: { N: number; r: number; p: number; keylen: number }): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 64 * 1024 * 1024 };
  return new Promise((resolve, reject) => scryptCallback(secret, salt, params.keylen, options, (error, key) => (error ? reject(error) : resolve(key))));
}

const identitySchema = z
  .object({
    name: z.string().min(1),
    roles: z.array(z.string().regex(ROLE)).default([]),
    /** `scrypt$N$r$p$<salt base64>$<hash base64>` */
    tokenHash: z.string().regex(/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/).optional(),
    /** First 16 hex digits of the token's SHA-256: tells tokens apart in listings, reveals nothing usable. */
    fingerprint: z.string().optional(),
    /** The client certificate issued to this identity (its CN is the name). */
    certificate: z.object({ fingerprint: z.string().regex(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/), serial: z.string(), notAfter: z.string() }).strict().optional(),
    createdAt: z.string(),
    revoked: z.string().optional(),
  })
  .strict()
  .refine((identity) => identity.tokenHash !== undefined || identity.certificate !== undefined, { message: 'an identity needs a tokenHash or a certificate' });

const fileSchema = z.object({ version: z.literal(1), identities: z.array(identitySchema) }).strict();

export type IdentityRecord = z.output<typeof identitySchema>;

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

export type Verification =
  /** `credential`: what was proved (the token's hash, or the certificate's fingerprint), for `standing()`. */
  | { ok: true; name: string; roles: string[]; credential: string }
  | { ok: false; reason: 'unknown identity' | 'revoked' | 'wrong token' | 'no token' | 'certificate not on record' | 'identity file unreadable'; detail?: string };

/** A client certificate issued for an identity (src/security/pki.ts). */
export interface CertificateRecord {
  fingerprint: string;
  serial: string;
  notAfter: string;
}

/** Why `name` cannot be an identity, or undefined: it is also an MQTT client id (protocol §7.5). */
export function checkIdentityName(name: string): string | undefined {
  const problem = checkClientId(name);
  if (problem) return problem;
  // checkClientId lets `<base>~<session>` through: an identity is a base id alone.
  if (name.includes('~')) return `an identity cannot contain ~: <identity>~<session> is a session of <identity>, <identity>~rt its real-time lane (protocol §2.1, §6.2)`;
  return undefined;
}

const certificateCredential = (fingerprint: string) => `certificate ${fingerprint}`;

export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}

async function hashToken(token: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(token, salt, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

async function tokenMatches(token: string, stored: string): Promise<boolean> {
  const [, n, r, p, salt, hash] = stored.split('$');
  const expected = Buffer.from(hash!, 'base64');
  const key = await scrypt(token, Buffer.from(salt!, 'base64'), { N: Number(n), r: Number(r), p: Number(p), keylen: expected.length });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Spent on an unknown name so that it takes as long as a wrong token (no probing for names). */
const DUMMY_HASH = `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`;

/** How often a followed file is looked at besides fs.watch (which may miss a change on some file systems). */
const FOLLOW_POLL_MS = 500;

/** Where a store says that a changed file was refused (default: standard error). */
const STDERR_LOG = (line: string) => void process.stderr.write(`relais: ${line}\n`);

const stores = new Map<string, IdentityStore>();

/**
 * The store of a file, one per file in the process (so that the broker and the HTTP API given
 * the same path share its index and its Authenticator); a store given is returned as it is.
 */
export function identityStoreOf(identities: string | IdentityStore): IdentityStore {
  if (typeof identities !== 'string') return identities;
  const file = path.resolve(identities);
  let store = stores.get(file);
  if (!store) stores.set(file, (store = new IdentityStore(file)));
  return store;
}

/** The identities file. */
export class IdentityStore {
  /** The identities in force, by name, and the version of the file they were read from. */
  private index?: { version: string; byName: Map<string, IdentityRecord> };
  /** A version of the file that did not validate, and why: not read again until it changes. */
  private refused?: { version: string; reason: string };
  private readonly listeners = new Set<() => void>();
  private stopFollowing?: () => void;

  constructor(
    readonly file: string,
    private readonly options: { log?: (line: string) => void } = {},
  ) {}

  /** Every identity of the file, read now (the writers and `relais identity list`); throws IdentityError naming the problem. */
  list(): IdentityRecord[] {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new IdentityError(`${this.file}: cannot read it: ${(error as Error).message}`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new IdentityError(`${this.file}: not valid JSON: ${(error as Error).message}`);
    }
    const parsed = fileSchema.safeParse(data);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new IdentityError(`${this.file}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    }
    return parsed.data.identities;
  }

  /** Adds `name` with a new random token; returns the token (shown once, never stored) and its fingerprint. */
  async add(name: string, roles: readonly string[] = []): Promise<{ token: string; fingerprint: string; record: IdentityRecord }> {
    const { token, fingerprint, record } = await this.issue(name, roles, true);
    return { token: token!, fingerprint: fingerprint!, record };
  }

  /** Adds `name` with the client certificate issued for it, and a token too when `withToken`. */
  addWithCertificate(name: string, roles: readonly string[], certificate: CertificateRecord, withToken: boolean): Promise<{ token?: string; fingerprint?: string; record: IdentityRecord }> {
    return this.issue(name, roles, withToken, certificate);
  }

  private async issue(name: string, roles: readonly string[], withToken: boolean, certificate?: CertificateRecord): Promise<{ token?: string; fingerprint?: string; record: IdentityRecord }> {
    this.checkFree(name, roles);
    const identities = this.list();
    const token = withToken ? `relais_${randomBytes(32).toString('base64url')}` : undefined;
    const fingerprint = token && tokenFingerprint(token);
    const record: IdentityRecord = {
      name,
      roles: [...new Set(roles)],
      ...(token && { tokenHash: await hashToken(token), fingerprint }),
      ...(certificate && { certificate }),
      createdAt: new Date().toISOString(),
    };
    // A revoked entry of the same name is replaced: its token stays refused (it is a new hash).
    this.write([...identities.filter((identity) => identity.name !== name), record]);
    return { ...(token && { token, fingerprint }), record };
  }

  /** Throws unless `add(name, roles)` can succeed: a valid name no unrevoked identity holds, valid roles. */
  checkFree(name: string, roles: readonly string[] = []): void {
    const problem = checkIdentityName(name);
    if (problem) throw new IdentityError(`identity name ${JSON.stringify(name)}: ${problem}`);
    for (const role of roles) if (!ROLE.test(role)) throw new IdentityError(`role ${JSON.stringify(role)}: 1-128 characters among letters, digits and _ . : @ -`);
    if (this.list().some((identity) => identity.name === name && !identity.revoked)) {
      throw new IdentityError(`identity ${name} exists already (revoke it first to issue new credentials)`);
    }
  }

  /** Marks `name` revoked; false when there is no such (unrevoked) identity. */
  revoke(name: string): boolean {
    const identities = this.list();
    const found = identities.find((identity) => identity.name === name && !identity.revoked);
    if (!found) return false;
    found.revoked = new Date().toISOString();
    this.write(identities);
    return true;
  }

  /**
   * Checks a CONNECT's username (identity name) and password (token): one scrypt, also for an
   * unknown name (no probing for names). Never throws. Rate limits and the memory of verified
   * tokens are the Authenticator's (authenticator.ts).
   */
  async verify(name: string | undefined, token: string | Buffer | undefined): Promise<Verification> {
    if (!name) return { ok: false, reason: 'unknown identity' };
    if (token === undefined || token.length === 0) return { ok: false, reason: 'no token' };
    const { found, unreadable } = this.lookup(name);
    if (unreadable) return unreadable;
    const secret = typeof token === 'string' ? token : token.toString('utf8');
    const matches = await tokenMatches(secret, found?.tokenHash ?? DUMMY_HASH).catch(() => false);
    if (found && !found.tokenHash) return { ok: false, reason: 'wrong token' };
    if (!found) return { ok: false, reason: 'unknown identity' };
    if (!matches) return { ok: false, reason: 'wrong token' };
    if (found.revoked) return { ok: false, reason: 'revoked' };
    return { ok: true, name: found.name, roles: found.roles, credential: found.tokenHash! };
  }

  /**
   * Checks the identity a TLS client certificate names (its CN), the chain already verified by
   * TLS: the identity must exist, not be revoked, and have been issued this very certificate.
   */
  verifyCertificate(name: string, fingerprint: string): Verification {
    const { found, unreadable } = this.lookup(name);
    if (unreadable) return unreadable;
    if (!found) return { ok: false, reason: 'unknown identity' };
    if (found.revoked) return { ok: false, reason: 'revoked' };
    if (found.certificate?.fingerprint !== fingerprint) return { ok: false, reason: 'certificate not on record' };
    return { ok: true, name: found.name, roles: found.roles, credential: certificateCredential(fingerprint) };
  }

  /**
   * Whether `name` still holds the `credential` it proved (a Verification's): not revoked, not
   * removed, not issued new credentials since; with its roles now. Undefined when the file
   * cannot tell (never read well).
   */
  standing(name: string, credential: string): { ok: true; roles: string[] } | { ok: false; reason: 'revoked' | 'no longer an identity' | 'issued new credentials' } | undefined {
    const records = this.records();
    if (!(records instanceof Map)) return undefined;
    const found = records.get(name);
    if (!found) return { ok: false, reason: 'no longer an identity' };
    if (found.revoked) return { ok: false, reason: 'revoked' };
    const holds = credential === found.tokenHash || (found.certificate !== undefined && credential === certificateCredential(found.certificate.fingerprint));
    return holds ? { ok: true, roles: found.roles } : { ok: false, reason: 'issued new credentials' };
  }

  /** The record of `name` in force now (undefined: unknown, or the file was never read well). */
  record(name: string): IdentityRecord | undefined {
    const records = this.records();
    return records instanceof Map ? records.get(name) : undefined;
  }

  /** What the identities say of `name` now: its record, if any (`{}`: none); undefined when the file was never read well. */
  lookUp(name: string): { record?: IdentityRecord } | undefined {
    const records = this.records();
    if (!(records instanceof Map)) return undefined;
    const record = records.get(name);
    return record ? { record } : {};
  }

  /**
   * Calls `listener` (soon, not within the caller's stack) each time the identities in force
   * change; returns how to stop. While anyone listens, the file is watched (fs.watch on its
   * folder, and a look every FOLLOW_POLL_MS).
   */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    if (!this.stopFollowing) this.follow();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        this.stopFollowing?.();
        this.stopFollowing = undefined;
      }
    };
  }

  private follow(): void {
    this.records(); // the version changes are measured against
    const look = () => void this.records();
    const folder = path.dirname(path.resolve(this.file));
    const base = path.basename(this.file);
    let watcher: fs.FSWatcher | undefined;
    try {
      watcher = fs.watch(folder, { persistent: false }, (_event, name) => (name === null || name === base) && look());
      watcher.on('error', () => watcher?.close()); // the folder went away: the poll still looks
    } catch {
      // No watch here (a missing folder, a file system without it): the poll alone.
    }
    const poll = setInterval(look, FOLLOW_POLL_MS);
    poll.unref();
    this.stopFollowing = () => {
      clearInterval(poll);
      watcher?.close();
    };
  }

  /** The version of the file on disk: its inode, size and times (a write or a rename changes one). */
  private version(): string {
    try {
      const stat = fs.statSync(this.file, { bigint: true });
      return `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
    } catch (error) {
      return `absent:${(error as NodeJS.ErrnoException).code ?? ''}`;
    }
  }

  /**
   * The identities in force, by name: read again only when the file's version changed. A new
   * version that does not validate is logged once and the previous identities kept; with none
   * before it, the reason (verifications are then refused).
   */
  private records(): Map<string, IdentityRecord> | { unreadable: string } {
    const version = this.version();
    if (this.index?.version === version) return this.index.byName;
    if (this.refused?.version === version) return this.index?.byName ?? { unreadable: this.refused.reason };
    let records: IdentityRecord[];
    try {
      records = this.list();
    } catch (error) {
      const reason = (error as Error).message;
      this.refused = { version, reason };
      if (this.index) (this.options.log ?? STDERR_LOG)(`the identities file changed and is refused; the identities read before stay in force: ${reason}`);
      return this.index?.byName ?? { unreadable: reason };
    }
    const first = this.index === undefined;
    this.index = { version, byName: new Map(records.map((record) => [record.name, record])) };
    this.refused = undefined;
    if (!first && this.listeners.size > 0) queueMicrotask(() => this.listeners.forEach((listener) => listener()));
    return this.index.byName;
  }

  /** The record of `name`, for the verifiers: an unreadable file is a refusal to give, not a throw. */
  private lookup(name: string): { found?: IdentityRecord; unreadable?: Verification } {
    const records = this.records();
    if (records instanceof Map) return { found: records.get(name) };
    return { unreadable: { ok: false, reason: 'identity file unreadable', detail: records.unreadable } };
  }

  private write(identities: IdentityRecord[]): void {
    fs.mkdirSync(path.dirname(path.resolve(this.file)), { recursive: true });
    const temporary = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, `${JSON.stringify({ version: 1, identities }, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(temporary, this.file);
  }
}
