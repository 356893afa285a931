/**
 * The one door check of the bus (docs/security.md "One check at both doors"): who a caller is,
 * and what the policy lets it do, asked the same way by the embedded broker's hooks
 * (broker/enforce.ts, for MQTT) and by the HTTP API (web/auth.ts), so that an identity gets the
 * same answer at either door and a revocation or a new policy reaches both at once.
 *
 * - Authentication: a token through the Authenticator of the identities (rate limits, proved
 *   tokens remembered, authenticator.ts), or a client certificate the TLS layer verified; an
 *   identity reserved for the process's own clients is refused; an identity revoked while its
 *   token was being checked is refused as if checked after.
 * - Authorisation: `decide()` of policy.ts (pure) under the policy in force, for a publish or a
 *   subscribe on a topic; the HTTP API's routes say which topics they act on (web/route.ts).
 *   Each principal keeps the decisions made for it until the policy or its roles change.
 *   `decidePublish` adds what a PUBLISH's payload claims (protocol §3, §11.5).
 * - Live effect: `onChange` tells whoever holds live connections (the broker, the HTTP API's
 *   event streams and sockets) of each change of the identities or the policy.
 */
import { parseSiteTopic } from '../protocol/sites.js';
import { parseTopic } from '../protocol/topics.js';
import { authenticatorFor, type Authentication, type AuthenticationLimits, type Throttled } from './authenticator.js';
import { onSecurityChange, type SecurityChange, type SecurityFollower } from './changes.js';
import { identityStoreOf, type IdentityStore, type Verification } from './identities.js';
import { quoted } from './log-text.js';
import { envelopeHead, isRelaisTopic, jsonObject, leniently, payloadEncodingProblem, sourceIsSurely, sourceKeyOf, type SourceKey } from './payload-check.js';
import { decide, hasRole, holdsGrant, sessionLimit, type Decision, type Grant, type Operation, type Policy } from './policy.js';
import { SITE_ROLE, type SpeakingVerdict } from './site-claim.js';

/** What the doors are given: the identities, the policy, and who may not come in from outside. */
export interface SecuritySettings {
  /** The identities: a file (IdentityStore's JSON) or a store. */
  identities: string | IdentityStore;
  /** The policy, or a function giving the current one (a reloaded file). */
  policy: Policy | (() => Policy);
  /**
   * Identities only the process's own in-process clients may be: a network CONNECT (or an HTTP
   * API caller) proving one is refused. `relais start` lists the HTTP API's `relais-web`, whom
   * the router trusts to name the identity it asks for (protocol §11.2).
   */
  inProcessOnly?: readonly string[];
  /**
   * The identities of this file are this broker's own: the other end of a link (role `site`)
   * may not speak for one of them, connected or not (docs/security.md "Sites"). A central says
   * so (a site must not send as the central's operators); a site does not, since its central
   * speaks for the operators who command it.
   */
  identitiesStayLocal?: boolean;
  /** Limits on failed token checks (docs/security.md "Failed authentications"); shared by everyone checking this store's tokens. */
  authentication?: Partial<AuthenticationLimits>;
}

/**
 * Decisions kept per principal (then forgotten all at once): its topics are few in practice.
 * Bounded in number and in the characters of their topics (a topic may be 64 KiB).
 */
const DECISIONS_KEPT = 1024;
const DECISION_CHARACTERS_KEPT = 64 * 1024;

/** The decisions made for one principal under `policy`, by topic. */
class DecisionMemo {
  policy: Policy | undefined;
  readonly publish = new Map<string, Decision>();
  readonly subscribe = new Map<string, Decision>();
  characters = 0;
  /** Whether the principal has the role `site` under `policy` (asked at each PUBLISH). */
  site: boolean | undefined;

  clear(policy: Policy | undefined): void {
    this.policy = policy;
    this.site = undefined;
    this.publish.clear();
    this.subscribe.clear();
    this.characters = 0;
  }
}

/** An authenticated identity, at either door. */
export interface Principal extends SourceKey {
  readonly identity: string;
  /**
   * The client id it speaks as (protocol §2.1): the identity, or a session of it
   * `<identity>~<session>` (`withSession`). The `source` it may use, what `${id}` and the topics
   * a client owns are; the SourceKey is its.
   */
  readonly clientId: string;
  /** The session of `clientId`, when it has one. */
  readonly session?: string;
  /** Its roles now: `refresh()` changes them when the identities file does. */
  readonly roles: readonly string[];
  /** What it proved at authentication (a token's hash, a certificate's fingerprint): `standing()` checks it still holds. */
  readonly credential: string;
  /** The Authorizer's decisions for it. */
  readonly memo: DecisionMemo;
  /** The other end of a link, admitted on an in-process stream without credentials (`admitLink`). */
  readonly link?: true;
}

/** What a link principal "proved": nothing, it was named by this process (its standing is its identity's record, if any). */
const LINK_CREDENTIAL = 'in-process link';

/** Why the Authorizer refuses an identity beyond what the store and the Authenticator say. */
export type StandingReason = 'revoked' | 'no longer an identity' | 'issued new credentials';

export type Refusal =
  | Exclude<Verification, { ok: true }>
  | Throttled
  /** Revoked, removed or given new credentials while its token was being checked. */
  | { ok: false; reason: StandingReason; detail?: undefined }
  /** One of `inProcessOnly`. */
  | { ok: false; reason: 'identity reserved'; detail: string }
  /** The check itself failed (it never should: the Authenticator does not throw). */
  | { ok: false; reason: 'identities not verified'; detail: string };

export type Admission = { ok: true; principal: Principal } | Refusal;

/** A refusal without a check (too many failures or attempts): the caller waits `retryAfterMs`. */
export function isThrottled(refusal: Refusal): refusal is Throttled {
  return refusal.reason === 'too many failures' || refusal.reason === 'too many attempts at once';
}

/** One thing a caller does on the bus: what an HTTP route acts on, as the topics a client would use (web/route.ts). */
export interface BusAccess {
  operation: Operation;
  topic: string;
}

/** The verdict on a PUBLISH, with the envelope it claims when one was read (to answer a denied command, protocol §5.3). */
export interface PublishVerdict {
  decision: Decision;
  envelope?: Record<string, unknown> | undefined;
  /**
   * A site principal speaking for others (site-claim.ts): the ids it speaks for in this PUBLISH
   * (the broker records them as its claims once the PUBLISH is allowed), and the requester a
   * denied command is answered to when its `source` is one the principal may use.
   */
  speaking?: { ids: string[]; requester?: string };
}

/** Whether a site principal may speak for an id on this broker (the broker's facts, site-claim.ts's rule). */
export type SpeakingCheck = (speaker: Principal, id: string) => SpeakingVerdict;

const ANONYMOUS: Decision = Object.freeze({ allow: false, rule: 'builtin:anonymous' });

export class Authorizer {
  readonly store: IdentityStore;
  private readonly authenticator;
  private readonly current: () => Policy;
  private readonly listeners = new Set<(change: SecurityChange) => void>();
  private follower: SecurityFollower | undefined;

  constructor(readonly settings: SecuritySettings) {
    this.store = identityStoreOf(settings.identities);
    this.authenticator = authenticatorFor(this.store, settings.authentication);
    const { policy } = settings;
    this.current = typeof policy === 'function' ? policy : () => policy;
  }

  /** The policy in force. */
  policy(): Policy {
    return this.current();
  }

  /** Checks an identity's token for a caller at `address` (an IP address, or a label such as `unix socket`). Never throws. */
  async admitToken(name: string | undefined, token: string | Buffer | undefined, address: string): Promise<Admission> {
    let verdict: Authentication;
    try {
      verdict = await this.authenticator.verifyToken(name, token, address);
    } catch (error) {
      return { ok: false, reason: 'identities not verified', detail: (error as Error).message };
    }
    return this.admit(verdict);
  }

  /** Checks the identity a client certificate names, its chain already verified by TLS. */
  admitCertificate(name: string, fingerprint: string): Admission {
    return this.admit(this.store.verifyCertificate(name, fingerprint));
  }

  private admit(verdict: Authentication): Admission {
    if (!verdict.ok) return verdict;
    if (this.settings.inProcessOnly?.includes(verdict.name)) return { ok: false, reason: 'identity reserved', detail: `${verdict.name} is reserved for this process's own clients` };
    // Revoked (or changed) while its token was being checked: as if checked after.
    const standing = this.store.standing(verdict.name, verdict.credential);
    if (standing && !standing.ok) return { ok: false, reason: standing.reason };
    const principal: Principal = { identity: verdict.name, clientId: verdict.name, roles: standing?.roles ?? verdict.roles, credential: verdict.credential, memo: new DecisionMemo(), ...sourceKeyOf(verdict.name) };
    return { ok: true, principal };
  }

  /**
   * The other end of a link, on an in-process stream this process opened for it (protocol
   * §13.2): no credentials (this process named it), but the identity's standing and roles are
   * those of its record, if the identities have one, with role `site` added; so the policy
   * decides what it may do as for a network client. A revoked identity is refused.
   */
  admitLink(identity: string): Admission {
    if (this.settings.inProcessOnly?.includes(identity)) return { ok: false, reason: 'identity reserved', detail: `${identity} is reserved for this process's own clients` };
    const standing = this.linkStanding(identity);
    if (!standing) return { ok: false, reason: 'identities not verified', detail: 'the identities file was never read well' };
    if (!standing.ok) return { ok: false, reason: standing.reason };
    const principal: Principal = { identity, clientId: identity, roles: standing.roles, credential: LINK_CREDENTIAL, memo: new DecisionMemo(), link: true, ...sourceKeyOf(identity) };
    return { ok: true, principal };
  }

  /**
   * `principal` speaking as its session `<identity>~<session>` (protocol §2.1): same identity,
   * roles and standing; its own client id, source and decisions (`${id}` is the session's).
   */
  withSession(principal: Principal, session: string): Principal {
    const clientId = `${principal.identity}~${session}`;
    return { ...principal, clientId, session, memo: new DecisionMemo(), ...sourceKeyOf(clientId) };
  }

  /** How many sessions `principal`'s identity may hold at once under the policy in force (0: none). */
  sessionLimit(principal: Principal): number {
    return sessionLimit(this.current(), { identity: principal.identity, roles: principal.roles });
  }

  /** Whether `principal` still holds what it proved, with its roles now; undefined when the identities cannot tell. */
  standing(principal: Principal): ReturnType<IdentityStore['standing']> {
    if (principal.link) return this.linkStanding(principal.identity);
    return this.store.standing(principal.identity, principal.credential);
  }

  /** A link identity's standing: revoked if its record is; else its record's roles (none if absent) and `site`. */
  private linkStanding(identity: string): ReturnType<IdentityStore['standing']> {
    const known = this.store.lookUp(identity);
    if (!known) return undefined;
    const found = known.record;
    if (found?.revoked) return { ok: false, reason: 'revoked' };
    const roles = found?.roles ?? [];
    return { ok: true, roles: roles.includes(SITE_ROLE) ? [...roles] : [...roles, SITE_ROLE] };
  }

  /** Gives `principal` its roles now; its decisions, made for the old ones, are made again. Returns whether they changed. */
  refresh(principal: Principal, roles: readonly string[]): boolean {
    if (roles.length === principal.roles.length && roles.every((role, i) => role === principal.roles[i])) return false;
    (principal as { roles: readonly string[] }).roles = roles;
    principal.memo.clear(undefined);
    return true;
  }

  /** Allow or deny `operation` on `topic` for `principal` (none: anonymous) under the policy in force. */
  decide(principal: Principal | undefined, operation: Operation, topic: string): Decision {
    if (!principal) return ANONYMOUS;
    // decide() is pure: a principal's decision on a topic holds until the policy changes.
    const policy = this.current();
    const memo = principal.memo;
    if (memo.policy !== policy || memo.publish.size + memo.subscribe.size >= DECISIONS_KEPT || memo.characters >= DECISION_CHARACTERS_KEPT) {
      if (memo.policy !== policy) this.follower?.decidedUnder(policy);
      memo.clear(policy);
    }
    let decision = memo[operation].get(topic);
    if (!decision) {
      decision = decide(policy, { identity: principal.clientId, roles: principal.roles }, operation, topic);
      memo[operation].set(topic, decision);
      memo.characters += topic.length;
    }
    return decision;
  }

  /** The first of `accesses` the policy denies `principal`, with the decision; undefined when all are allowed. */
  firstDenied(principal: Principal | undefined, accesses: readonly BusAccess[]): { access: BusAccess; decision: Decision } | undefined {
    for (const access of accesses) {
      const decision = this.decide(principal, access.operation, access.topic);
      if (!decision.allow) return { access, decision };
    }
    return undefined;
  }

  /**
   * A PUBLISH by a network client: its topic decided, then, on a Relais topic, its payload's
   * encoding (protocol §3: no reader may see another source than this check), the envelope's
   * `source` (the principal's client id, or absent), and a presence saying role "router" from an
   * identity without that role (handlers take a cancel relayed by a router, protocol §11.5).
   *
   * A principal with role `site` given `speaking` (the broker's check, site-claim.ts) may use
   * as `source`, and publish the presence of, the ids that check allows instead of its own.
   */
  decidePublish(principal: Principal | undefined, topic: string, message: Buffer | string, speaking?: SpeakingCheck): PublishVerdict {
    const decision = this.decide(principal, 'publish', topic);
    if (!principal) return { decision };
    // What follows reads the envelope: a binary message's header only (protocol §3.5).
    const payload = envelopeHead(message);
    // decide() just made the memo the policy's in force: the role is looked up once per policy.
    const site = speaking !== undefined && (principal.memo.site ??= this.hasRole(principal, SITE_ROLE));
    if (!decision.allow) {
      // A command refused for its topic is answered to the requester it speaks for, when it may.
      const envelope = site ? claimedEnvelope(payload) : undefined;
      const source = typeof envelope?.source === 'string' ? envelope.source : undefined;
      return { decision, envelope, ...(site && source !== undefined && speaking(principal, source).allow && { speaking: { ids: [], requester: source } }) };
    }
    const problem = isRelaisTopic(topic) ? payloadEncodingProblem(payload) : undefined;
    if (problem) return { decision: { allow: false, rule: `builtin:encoding (${problem})` }, envelope: leniently(payload) };
    let envelope: Record<string, unknown> | undefined;
    const ids: string[] = [];
    let requester: string | undefined;
    if (!sourceIsSurely(payload, principal)) {
      envelope = claimedEnvelope(payload);
      if (envelope && typeof envelope.source === 'string' && envelope.source !== principal.clientId) {
        if (!site) return { decision: { allow: false, rule: `builtin:source (the envelope says ${quoted(envelope.source)})` }, envelope };
        const verdict = speaking(principal, envelope.source);
        if (!verdict.allow) return { decision: verdict, envelope };
        ids.push(envelope.source);
        requester = envelope.source;
      }
    }
    const parsed = parseTopic(topic);
    if (parsed.kind === 'presence' && site && parsed.clientId !== principal.clientId) {
      // The presence of another id: the id the topic names must be one it may speak for too.
      const verdict = speaking(principal, parsed.clientId);
      if (!verdict.allow) return { decision: verdict, envelope };
      if (!ids.includes(parsed.clientId)) ids.push(parsed.clientId);
    }
    if (site && parseSiteTopic(topic)?.kind === 'clients') {
      // A roster says whose requests fail at once while the link is down (protocol §13.4): it may list only ids the site may speak for.
      const listed = (envelope ?? claimedEnvelope(payload))?.payload;
      const clients = typeof listed === 'object' && listed !== null && Array.isArray((listed as { clients?: unknown }).clients) ? (listed as { clients: unknown[] }).clients : [];
      for (const id of clients) {
        if (typeof id !== 'string') continue;
        const verdict = speaking(principal, id);
        if (!verdict.allow) return { decision: verdict, envelope };
      }
    }
    if (parsed.kind === 'presence' && claimsRouterRole(envelope ?? claimedEnvelope(payload)) && !this.hasRole(principal, 'router')) {
      return { decision: { allow: false, rule: 'builtin:router-role (a presence saying role "router" from an identity without that role)' }, envelope };
    }
    return { decision, envelope, ...(site && { speaking: { ids, ...(requester !== undefined && { requester }) } }) };
  }

  /** Whether `principal` has `role` (from the identities or the policy's own entry for it). */
  hasRole(principal: Principal, role: string): boolean {
    return hasRole(this.current(), principal, role);
  }

  /** Whether `principal` holds `grant` under the policy in force. */
  holds(principal: Principal, grant: Grant): boolean {
    return holdsGrant(this.current(), principal, grant);
  }

  /** Calls `listener` at each change of the identities in force or of the policy, until the returned function is called. */
  onChange(listener: (change: SecurityChange) => void): () => void {
    this.listeners.add(listener);
    this.follower ??= onSecurityChange(this.store, this.settings.policy, (change) => {
      for (const each of [...this.listeners]) each(change);
    });
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size > 0) return;
      this.follower?.stop();
      this.follower = undefined;
    };
  }

  /**
   * Says that what was decided for `principal` is followed from now on (by an `onChange`
   * listener): a policy changed since those decisions is reported as a change, even one put
   * back before the follower looked.
   */
  followDecisionsOf(principal: Principal): void {
    if (principal.memo.policy) this.follower?.decidedUnder(principal.memo.policy);
  }
}

const authorizers = new WeakMap<SecuritySettings, Authorizer>();

/**
 * The Authorizer of `settings`, one per settings object: the broker and the HTTP API of one
 * `relais start` are given the same object, so they share it (and its Authenticator, its
 * follower of the identities and the policy).
 */
export function authorizerFor(settings: SecuritySettings): Authorizer {
  let authorizer = authorizers.get(settings);
  if (!authorizer) authorizers.set(settings, (authorizer = new Authorizer(settings)));
  return authorizer;
}

/**
 * The envelope a PUBLISH claims to be: JSON starting with `{`, or what a lenient reader (a BOM
 * dropped, UTF-16 decoded) would take for one, so that no reader sees another source than the
 * check (on non-Relais topics, where such payloads are not refused).
 */
export function claimedEnvelope(payload: Buffer | string): Record<string, unknown> | undefined {
  const plain = jsonObject(payload);
  if (plain || typeof payload === 'string' || payload.length < 2) return plain;
  const unusual = payload[0] === 0xef || payload[0] === 0xfe || payload[0] === 0xff || payload[0] === 0 || payload[1] === 0;
  return unusual ? leniently(payload) : undefined;
}

function claimsRouterRole(envelope: Record<string, unknown> | undefined): boolean {
  const payload = envelope?.payload;
  return typeof payload === 'object' && payload !== null && (payload as { role?: unknown }).role === 'router';
}
