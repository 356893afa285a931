/**
 * Who may read and write which rows of the history (protocol §11.2, docs/security.md "History
 * privacy"). With security on, a row is visible to the parties of its token (its requester, its
 * handlers, the author of the put that opened it) and to identities granted `history:read-all`
 * by the policy; the router reads the identities' roles and the policy from the files the broker
 * reads, again when they change. With security off (no identities file) every client reads
 * every row: any client may claim any id and subscribe to `#`, so the history hides nothing.
 * A party is an identity: the rows of each of its sessions `<identity>~<session>` are its own
 * (protocol §2.1; one principal, docs/security.md "Sessions").
 *
 * A delegate (the HTTP API of `relais start`) asks for the identity its caller proved: it names
 * it in the command's `onBehalfOf`; the router trusts that field from delegates only.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { HandlerContext } from '../client/types.js';
import { NotAuthorizedError } from '../protocol/errors.js';
import { checkClientId, identityOfClientId } from '../protocol/topics.js';
import { defaultPolicy } from '../security/default-policy.js';
import { IdentityStore } from '../security/identities.js';
import { loadPolicy } from '../security/policy-file.js';
import { SITE_ROLE } from '../security/site-claim.js';
import { holdsGrant, type Grant, type Policy } from '../security/policy.js';
import type { HistoryScope } from './history-store.js';

/** The grant that lifts history privacy (docs/security.md "History privacy"). */
export const READ_ALL_GRANT = 'history:read-all';

export interface HistoryAccessOptions {
  /** The identities file the broker checks (roles by identity). */
  identities: string;
  /** The policy file, or a policy; absent: the default policy. */
  policy?: string | Policy;
  /** Client ids trusted to ask on behalf of an identity (`onBehalfOf`): the HTTP API of `relais start`. */
  delegates?: readonly string[];
  /**
   * The other ends of this process's links (protocol §13.1): the broker admits each as an
   * identity with role `site` even without an entry in the identities file, so the router gives
   * it that role too (a central pulls a site's rows as one, protocol §13.5).
   */
  linkPeers?: readonly string[];
}

export class HistoryAccess {
  readonly delegates: ReadonlySet<string>;
  private readonly linkPeers: ReadonlySet<string>;
  private readonly identities: FileSnapshot<Map<string, string[]>> | undefined;
  private readonly policy: (() => Policy) | undefined;

  /** `options` absent: security off, every row open to every client. */
  constructor(options: HistoryAccessOptions | undefined, logger: Logger) {
    this.delegates = new Set(options?.delegates ?? []);
    this.linkPeers = new Set(options?.linkPeers ?? []);
    if (!options) return;
    const store = new IdentityStore(options.identities);
    this.identities = new FileSnapshot(options.identities, () => new Map(store.list().map((identity) => [identity.name, identity.roles])), logger, 'identities');
    const given = options.policy;
    if (typeof given === 'string') {
      const file = new FileSnapshot(given, () => loadPolicy(given), logger, 'policy');
      this.policy = () => file.current();
    } else {
      const fixed = given ?? defaultPolicy();
      this.policy = () => fixed;
    }
  }

  /** Whether rows are private (security on). */
  get private(): boolean {
    return this.identities !== undefined;
  }

  /**
   * The identity a history request is for: the `onBehalfOf` of a delegate's command, else its
   * sender. A delegate must name one (it is a party to every request it sent for others), and
   * nobody else may.
   */
  asker(ctx: HandlerContext): string {
    const named = ctx.envelope.onBehalfOf;
    if (!this.delegates.has(ctx.source)) {
      if (named !== undefined && this.private) throw new NotAuthorizedError(`onBehalfOf is accepted only from ${[...this.delegates].join(', ') || 'the HTTP API'}, not from ${ctx.source}`);
      return ctx.source;
    }
    if (typeof named === 'string' && checkClientId(named) === undefined && !this.delegates.has(named)) return named;
    if (!this.private) return ctx.source;
    throw new NotAuthorizedError(`${ctx.source} asks the history on behalf of an identity: onBehalfOf must name one`);
  }

  /** Whether the identity of `clientId` holds `grant` (always, with security off: there is no policy to say otherwise). */
  holds(clientId: string, grant: Grant): boolean {
    if (!this.identities || !this.policy) return true;
    const identity = identityOfClientId(clientId);
    return holdsGrant(this.policy(), { identity, roles: this.rolesOf(identity) }, grant);
  }

  /** The roles of `identity`: the identities file's, and `site` for the other end of one of this process's links (as the broker admits it). */
  private rolesOf(identity: string): string[] {
    const roles = this.identities?.current().get(identity) ?? [];
    return this.linkPeers.has(identity) && !roles.includes(SITE_ROLE) ? [...roles, SITE_ROLE] : roles;
  }

  /**
   * The policy in force and the subject `clientId` is to it, for the key-value store's rules
   * (protocol §14.8): roles are its identity's, `${id}` is read by the kv rules; undefined with security off.
   */
  policySubject(clientId: string): { policy: Policy; subject: { identity: string; roles: string[] } } | undefined {
    if (!this.identities || !this.policy) return undefined;
    return { policy: this.policy(), subject: { identity: clientId, roles: this.rolesOf(identityOfClientId(clientId)) } };
  }

  /** The rows the identity of `clientId` may read (its sessions' too): undefined for all of them (security off, or `history:read-all`). */
  scopeOf(clientId: string): HistoryScope | undefined {
    if (!this.identities || !this.policy) return undefined;
    const identity = identityOfClientId(clientId);
    return holdsGrant(this.policy(), { identity, roles: this.rolesOf(identity) }, READ_ALL_GRANT) ? undefined : { party: identity };
  }
}

/**
 * What a file holds, read again when its size or modification time changes (a stat per use).
 * The first read throws (a router with a bad file does not start); a later change that cannot
 * be read or is invalid keeps what was read before, as the broker keeps its policy, with a log
 * line.
 */
class FileSnapshot<T> {
  private key: string;
  private value: T;

  constructor(
    private readonly file: string,
    private readonly read: () => T,
    private readonly logger: Logger,
    private readonly what: string,
  ) {
    this.key = this.stamp();
    this.value = read();
  }

  current(): T {
    const key = this.stamp();
    if (key === this.key) return this.value;
    this.key = key;
    try {
      this.value = this.read();
    } catch (error) {
      this.logger.error({ file: this.file, err: (error as Error).message }, `history: the new ${this.what} cannot be read; the previous one stays in force`);
    }
    return this.value;
  }

  private stamp(): string {
    try {
      const stat = fs.statSync(this.file);
      return `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
    } catch (error) {
      return `missing:${(error as NodeJS.ErrnoException).code ?? ''}`;
    }
  }
}
