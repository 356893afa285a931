/**
 * Enforcement in the embedded broker (docs/security.md "Identities and
 * enforcement"): Aedes's hooks call the identity store, through the Authenticator, and the
 * pure `decide()`.
 *
 * - CONNECT: a client certificate the TLS listener verified names the identity (its CN; it must
 *   be the one on record for that identity); otherwise username = identity, password = token,
 *   checked by the Authenticator (rate limits per address and identity, scrypt off the event
 *   loop and a few at a time, proved tokens remembered). The client id must be the identity or
 *   `<identity>~rt`.
 *   Refused with return code 4 (no/wrong credentials), 5 (revoked, identities unreadable, too
 *   many failures or attempts: docs/security.md "Failed authentications") or 2 (client id not
 *   the identity's), and a log line naming the identity tried and why, cut to a few hundred
 *   characters.
 * - SUBSCRIBE: denied filters get 0x80 in the SUBACK; the connection stays up.
 * - PUBLISH: a denied QoS 0/1 message is acknowledged as usual and dropped (3.1.1 has no
 *   negative PUBACK); a denied command gets a code-4 error response so its sender does not wait
 *   for its time-out. On a Relais topic, a payload that is not UTF-8 JSON without a BOM
 *   (protocol §3) is denied the same way, and so is an envelope whose `source` is not the
 *   connection's identity. A denied QoS 2 message closes the connection (Aedes's way; Relais
 *   never uses 2).
 * - Live connections (live-connections.ts): a revoked identity is disconnected, and a
 *   subscription the policy no longer allows is dropped, within a second of the change.
 *
 * Streams the process hands Aedes itself (`connectInProcess`, `accept`: the router inside
 * `relais start`) are trusted: no credentials, no policy.
 */
import type { Aedes } from 'aedes';
import type { TLSSocket } from 'node:tls';
import { BROKER_NOTICE_SOURCE } from '../protocol/broker-notice.js';
import { ResponseCode } from '../protocol/errors.js';
import { priorityOf } from '../protocol/envelope.js';
import { responseMessage } from '../protocol/messages.js';
import { parseTopic, responseTopic } from '../protocol/topics.js';
import { authenticatorFor, type Authentication, type AuthenticationLimits, type Throttled } from '../security/authenticator.js';
import { onSecurityChange, type SecurityFollower } from '../security/changes.js';
import { identityStoreOf, type IdentityStore } from '../security/identities.js';
import { DampedLog, quoted } from '../security/log-text.js';
import { verifiedPeerCertificate } from '../security/peer-certificate.js';
import { decide, hasRole, type Decision, type Policy } from '../security/policy.js';
import { LiveConnections, type LiveClient } from './live-connections.js';
import { isRelaisTopic, jsonObject, leniently, payloadEncodingProblem, sourceIsSurely, sourceKeyOf, type SourceKey } from './payload-check.js';

export interface BrokerSecurity {
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
  /** Limits on failed token checks (docs/security.md "Failed authentications"); shared by everyone checking this store's tokens. */
  authentication?: Partial<AuthenticationLimits>;
}

/** Denials since the broker started, by kind. `source` denials are also counted in `publish`. */
export interface DenialCounts {
  connect: number;
  subscribe: number;
  publish: number;
  source: number;
  /**
   * By the rule that decided (`builtin:source`, `rules[2] "..."`, `default-deny`), and for
   * CONNECT by reason (`connect:wrong token`). At most RULES_COUNTED rules; the others are
   * counted together under OTHER_RULES.
   */
  byRule: Map<string, number>;
}

/** Rules counted apart: a policy has few, but the count must stay bounded whatever the policy. */
export const RULES_COUNTED = 256;
export const OTHER_RULES = '(other rules)';

function countRule(byRule: Map<string, number>, rule: string): void {
  // A built-in check's detail (the claimed source, the encoding problem) is the sender's: counted under the rule alone.
  const key = rule.startsWith('builtin:') ? rule.split(' ')[0]! : rule;
  const counted = byRule.has(key) || byRule.size < RULES_COUNTED - 1 ? key : OTHER_RULES;
  byRule.set(counted, (byRule.get(counted) ?? 0) + 1);
}

/** The source of the error responses the broker itself sends for an untargeted command. */
export const BROKER_SOURCE = BROKER_NOTICE_SOURCE;

interface Who extends SourceKey {
  identity: string;
  roles: string[];
  /** What it proved at CONNECT (IdentityStore.standing checks it still holds). */
  credential: string;
  /** Decisions already made for this connection, by topic, under `policy`, and their topics' length. */
  decisions: { publish: Map<string, Decision>; subscribe: Map<string, Decision>; characters: number };
  policy?: Policy;
}

/**
 * Decisions kept per connection (then forgotten all at once): its topics are few in practice.
 * Bounded in number and in the characters of their topics (a topic may be 64 KiB).
 */
const DECISIONS_KEPT = 1024;
const DECISION_CHARACTERS_KEPT = 64 * 1024;

interface Client extends LiveClient {
  will?: unknown;
}

interface PublishPacket {
  cmd: 'publish';
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup?: boolean;
}

type AedesHooks = {
  authenticate: (client: Client, username: string | undefined, password: Buffer | undefined, done: (error: (Error & { returnCode?: number }) | null, ok?: boolean) => void) => void;
  authorizeSubscribe: (client: Client | null, subscription: { topic: string; qos: number }, done: (error: Error | null, subscription?: unknown) => void) => void;
  authorizePublish: (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => void;
  publish: (packet: PublishPacket, client: Client | null, done?: (error?: Error) => void) => void;
};

const DROP = Symbol('relais denied');

export interface Connections {
  /** In-process streams, trusted. */
  trusted: WeakSet<object>;
  /** The TLS socket under a connection: itself, or the one under a wss:// stream. */
  tlsPeers: WeakMap<object, TLSSocket>;
  /** Where a network connection comes from, as logged (`10.0.0.7:50412`, `websocket 10.0.0.7:50412`, `unix socket`). */
  addresses: WeakMap<object, string>;
}

/** The address failed authentications are counted by: the peer's IP without its port (or `unix socket`). */
export function peerOf(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.replace(/^[a-z]+ (?=[^ ]+:\d+$)/, '').replace(/:\d+$/, '');
}

/** Installs the hooks on `aedes`; returns the denial counters. */
export function enforce(aedes: Aedes, security: BrokerSecurity, connections: Connections, log: (line: string) => void): DenialCounts {
  const { trusted, tlsPeers, addresses } = connections;
  const broker = aedes as unknown as AedesHooks;
  const store = identityStoreOf(security.identities);
  const authenticator = authenticatorFor(store, security.authentication);
  const policy = typeof security.policy === 'function' ? security.policy : () => security.policy as Policy;
  const who = new WeakMap<object, Who>();
  const denials: DenialCounts = { connect: 0, subscribe: 0, publish: 0, source: 0, byRule: new Map() };

  // Follows the security for live effect (set up below, once the hooks are in place).
  let follower: SecurityFollower | undefined;
  const judge = (subject: Who | undefined, operation: 'publish' | 'subscribe', topic: string): Decision => {
    if (!subject) return { allow: false, rule: 'builtin:anonymous' };
    // decide() is pure: a connection's decision on a topic holds until the policy changes.
    const current = policy();
    const kept = subject.decisions;
    if (subject.policy !== current || kept.publish.size + kept.subscribe.size >= DECISIONS_KEPT || kept.characters >= DECISION_CHARACTERS_KEPT) {
      if (subject.policy !== current) follower?.decidedUnder(current);
      kept.publish.clear();
      kept.subscribe.clear();
      kept.characters = 0;
      subject.policy = current;
    }
    let decision = kept[operation].get(topic);
    if (!decision) {
      decision = decide(current, { identity: subject.identity, roles: subject.roles }, operation, topic);
      kept[operation].set(topic, decision);
      kept.characters += topic.length;
    }
    return decision;
  };

  const live = new LiveConnections<Who>(
    (subject, filter) => judge(subject, 'subscribe', filter),
    (subject, client) => describe(subject, client),
    log,
    (decision) => {
      denials.subscribe++;
      countRule(denials.byRule, decision.rule);
    },
  );

  const refuse = (done: Parameters<AedesHooks['authenticate']>[3], returnCode: 2 | 4 | 5, line: string, reason: string) => {
    denials.connect++;
    countRule(denials.byRule, `connect:${reason}`);
    log(line);
    done(Object.assign(new Error(line), { returnCode }), false);
  };

  /** A refusal without a check: counted each time, logged once a second per reason (a flood must not flood the log). */
  const throttledLog = new DampedLog(log);
  const refuseThrottled = (done: Parameters<AedesHooks['authenticate']>[3], verdict: Throttled, tried: string, clientId: string) => {
    const line = `refused CONNECT of ${tried} (client id ${clientId}): ${verdict.reason} (${verdict.detail}; checked again in ${Math.ceil(verdict.retryAfterMs / 1000)} s)`;
    denials.connect++;
    countRule(denials.byRule, `connect:${verdict.reason}`);
    throttledLog.line(`${verdict.reason} ${verdict.detail}`, line);
    done(Object.assign(new Error(line), { returnCode: 5 }), false);
  };

  broker.authenticate = (client, username, password, done) => {
    if (trusted.has(client.conn)) return done(null, true);
    const clientId = quoted(client.id);
    const admit = (verdict: Authentication, tried: string) => {
      if (!verdict.ok) {
        if (verdict.reason === 'too many failures' || verdict.reason === 'too many attempts at once') return refuseThrottled(done, verdict, tried, clientId);
        const why = verdict.reason === 'identity file unreadable' ? `${verdict.reason}: ${verdict.detail ?? ''}` : verdict.reason;
        return refuse(done, verdict.reason === 'revoked' || verdict.reason === 'identity file unreadable' ? 5 : 4, `refused CONNECT of ${tried} (client id ${clientId}): ${why}`, verdict.reason);
      }
      if (security.inProcessOnly?.includes(verdict.name)) {
        return refuse(done, 5, `refused CONNECT of ${tried} (client id ${clientId}): ${verdict.name} is reserved for this process's own clients`, 'identity reserved');
      }
      // Identity binding (protocol §7.5, §6.2): nobody else's id, whatever its credentials.
      if (client.id !== verdict.name && client.id !== `${verdict.name}~rt`) {
        return refuse(done, 2, `refused CONNECT of ${tried} (client id ${clientId}): the client id must be the identity or ${verdict.name}~rt`, 'client id not the identity');
      }
      // Revoked (or changed) while its token was being checked: as if checked after.
      const standing = store.standing(verdict.name, verdict.credential);
      if (standing && !standing.ok) return refuse(done, 5, `refused CONNECT of ${tried} (client id ${clientId}): ${standing.reason}`, standing.reason);
      const subject: Who = { identity: verdict.name, roles: standing?.roles ?? verdict.roles, credential: verdict.credential, ...sourceKeyOf(verdict.name), decisions: { publish: new Map(), subscribe: new Map(), characters: 0 } };
      who.set(client.conn, subject);
      live.add(client, subject, (listener) => (client.conn as NodeJS.EventEmitter).once('close', listener));
      done(null, true);
    };
    // A certificate the TLS listener verified against the CA names the identity (its CN).
    const certificate = verifiedPeerCertificate(tlsPeers.get(client.conn));
    if (certificate) {
      const tried = `certificate identity ${quoted(certificate.name)}`;
      if (username !== undefined && username !== certificate.name) {
        return refuse(done, 4, `refused CONNECT of ${tried} (client id ${clientId}): the username ${quoted(username)} is not the certificate's identity`, 'username not the certificate identity');
      }
      return admit(store.verifyCertificate(certificate.name, certificate.fingerprint), tried);
    }
    const tried = username === undefined ? 'no identity (no username)' : `identity ${quoted(username)}`;
    authenticator.verifyToken(username, password, peerOf(addresses.get(client.conn))).then(
      (verdict) => admit(verdict, tried),
      (error: Error) => refuse(done, 5, `refused CONNECT of ${tried} (client id ${clientId}): ${error.message}`, 'identities not verified'),
    );
  };

  broker.authorizeSubscribe = (client, subscription, done) => {
    if (!client || trusted.has(client.conn)) return done(null, subscription);
    const subject = who.get(client.conn);
    const decision = judge(subject, 'subscribe', subscription.topic);
    if (decision.allow) return done(null, subscription);
    denials.subscribe++;
    countRule(denials.byRule, decision.rule);
    log(`denied subscribe to ${quoted(subscription.topic)} for ${describe(subject, client)}: ${decision.rule}`);
    done(null, null); // 0x80 in the SUBACK, connection kept
  };

  const publish = broker.publish.bind(aedes) as AedesHooks['publish'];
  broker.publish = (packet, client, done) => {
    if ((packet as PublishPacket & { [DROP]?: true })[DROP]) return void done?.();
    publish(packet, client, done);
  };

  broker.authorizePublish = (client, packet, done) => {
    if (!client || trusted.has(client.conn)) return done(null);
    if (packet.topic.startsWith('$SYS/')) return done(new Error('$SYS/ topic is reserved'));
    const subject = who.get(client.conn);
    let decision = judge(subject, 'publish', packet.topic);
    let envelope: Record<string, unknown> | undefined;
    if (decision.allow && subject) {
      // protocol §3: one encoding, so that no reader sees another source than this check.
      const problem = isRelaisTopic(packet.topic) ? payloadEncodingProblem(packet.payload) : undefined;
      if (problem) {
        decision = { allow: false, rule: `builtin:encoding (${problem})` };
        envelope = leniently(packet.payload);
      } else if (!sourceIsSurely(packet.payload, subject)) {
        envelope = claimedEnvelope(packet.payload);
        if (envelope && typeof envelope.source === 'string' && envelope.source !== subject.identity) {
          denials.source++;
          decision = { allow: false, rule: `builtin:source (the envelope says ${quoted(envelope.source)})` };
        }
      }
      // Handlers take a cancel relayed for a requester from a presence that says role "router"
      // (protocol §11.5): only an identity of the policy's router role may say it.
      if (decision.allow && parseTopic(packet.topic).kind === 'presence' && claimsRouterRole(envelope ?? claimedEnvelope(packet.payload)) && !hasRole(policy(), subject, 'router')) {
        decision = { allow: false, rule: 'builtin:router-role (a presence saying role "router" from an identity without that role)' };
      }
    }
    if (decision.allow) return done(null);
    denials.publish++;
    countRule(denials.byRule, decision.rule);
    log(`denied publish on ${quoted(packet.topic)} for ${describe(subject, client)}: ${decision.rule}`);
    if (packet.qos === 2) return done(new Error(`publish on ${packet.topic} not authorised (${decision.rule})`));
    (packet as PublishPacket & { [DROP]?: true })[DROP] = true;
    done(null);
    if (subject) answerDeniedCommand(packet, envelope ?? jsonObject(packet.payload), subject.identity, decision);
  };

  /** A denied command: a code-4 error response on `<action>/response/<sender>`, so it is not left waiting. */
  const answerDeniedCommand = (packet: PublishPacket, envelope: Record<string, unknown> | undefined, identity: string, decision: Decision) => {
    const topic = parseTopic(packet.topic);
    if (topic.kind !== 'request' || !envelope || envelope.type !== 'command' || typeof envelope.token !== 'string') return;
    const target = topic.target ?? (typeof envelope.destination === 'string' && envelope.destination !== '*' ? envelope.destination : undefined);
    const priority = priorityOf(envelope.priority);
    const answer = responseMessage(
      { source: target ?? BROKER_SOURCE, destination: identity, token: envelope.token, priority },
      { step: 'error', code: ResponseCode.NOT_AUTHORIZED, error: { name: 'NotAuthorizedError', message: `not authorised to publish on ${packet.topic} (${decision.rule})` } },
    );
    publish({ cmd: 'publish', topic: responseTopic(topic.action, identity), payload: Buffer.from(JSON.stringify(answer)), qos: 1, retain: false, dup: false }, null, () => {});
  };

  // A subscription granted under a policy that changed before it was in place: decided again.
  (aedes as unknown as NodeJS.EventEmitter).on('subscribe', (subscriptions: Array<{ topic: string }>, client: Client) => {
    const subject = client && who.get(client.conn);
    if (subject && !client.closed) live.recheck(client, subject, subscriptions.map(({ topic }) => topic));
  });

  // Live effect: within a second of a change, on every connection already open.
  follower = onSecurityChange(store, security.policy, (change) => {
    for (const { client, subject } of live.entries()) {
      if (change.identities) {
        const standing = store.standing(subject.identity, subject.credential);
        if (standing && !standing.ok) {
          live.disconnect(client, subject, standing.reason);
          continue;
        }
        if (standing && !sameRoles(standing.roles, subject.roles)) {
          subject.roles = standing.roles;
          subject.policy = undefined; // its decisions were made for its old roles
          live.recheck(client, subject);
          continue;
        }
      }
      if (change.policy) live.recheck(client, subject);
    }
  });
  (aedes as unknown as NodeJS.EventEmitter).once('closed', () => follower?.stop());

  return denials;
}

function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((role, i) => role === b[i]);
}

/**
 * The envelope a PUBLISH claims to be: JSON starting with `{`, or what a lenient reader (a BOM
 * dropped, UTF-16 decoded) would take for one, so that no reader sees another source than the
 * check (on non-Relais topics, where such payloads are not refused).
 */
function claimedEnvelope(payload: Buffer | string): Record<string, unknown> | undefined {
  const plain = jsonObject(payload);
  if (plain || typeof payload === 'string' || payload.length < 2) return plain;
  const unusual = payload[0] === 0xef || payload[0] === 0xfe || payload[0] === 0xff || payload[0] === 0 || payload[1] === 0;
  return unusual ? leniently(payload) : undefined;
}

function claimsRouterRole(envelope: Record<string, unknown> | undefined): boolean {
  const payload = envelope?.payload;
  return typeof payload === 'object' && payload !== null && (payload as { role?: unknown }).role === 'router';
}

function describe(subject: Who | undefined, client: { id: string }): string {
  if (!subject) return `unauthenticated client ${quoted(client.id)}`;
  return client.id === subject.identity ? `identity ${subject.identity}` : `identity ${subject.identity} (client id ${client.id})`;
}
