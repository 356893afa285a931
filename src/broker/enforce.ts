/**
 * Enforcement in the embedded broker (docs/security.md "Identities and enforcement"): Aedes's
 * public hooks ask the Authorizer (security/authorizer.ts), the one check the HTTP API asks too,
 * and turn its answers into MQTT.
 *
 * - CONNECT: a client certificate the TLS listener verified names the identity (its CN; it must
 *   be the one on record for that identity); otherwise username = identity, password = token.
 *   The client id must be the identity or one of its sessions `<identity>~<session>`, each
 *   with its lane `~rt` (protocol §2.1, §6.2), and no more sessions at once than the policy's
 *   `sessions.max` for the identity (sessions.ts).
 *   Refused with return code 4 (no/wrong credentials), 5 (revoked, identities unreadable, too
 *   many failures or attempts: docs/security.md "Failed authentications") or 2 (client id not
 *   the identity's, sessions off or at their limit), and a log line naming the identity tried
 *   and why, cut to a few hundred characters.
 * - SUBSCRIBE: denied filters get 0x80 in the SUBACK; the connection stays up.
 * - PUBLISH: a denied QoS 0/1 message is acknowledged as usual and dropped (drop-denied.ts:
 *   3.1.1 has no negative PUBACK); a denied command gets the broker's denial reply (protocol
 *   §5.3) so its sender does not wait for its time-out. What is denied besides the topic (the
 *   payload's encoding, a `source` other than the identity, a presence claiming role "router")
 *   is the Authorizer's `decidePublish`. A denied QoS 2 message closes the connection (Aedes's
 *   way; Relais never uses 2).
 * - Live connections (live-connections.ts): a revoked identity is disconnected, a subscription
 *   the policy no longer allows is dropped, and the sessions beyond a lowered `sessions.max`
 *   (the latest first) are disconnected, within a second of the change.
 *
 * Streams the process hands Aedes itself (`connectInProcess`, `accept`: the router inside
 * `relais start`) are trusted: no credentials, no policy. Except a link's (`connectInProcess`
 * with an identity, protocol §13.2): admitted as the other end's identity with role `site`,
 * then decided like a network client.
 * - Speaking for others (site-claims.ts, security/site-claim.ts): a principal with role `site`
 *   may use as `source` the ids no client of this broker has and no other site claimed.
 * - `relais/sites/#`, which every identity may read (protocol §13.4), delivers the links'
 *   statuses, rosters and probes; the action traffic under it (`relais/sites/get`) goes only to
 *   a connection holding another subscription that matches it.
 */
import type { Aedes } from 'aedes';
import type { TLSSocket } from 'node:tls';
import { BROKER_NOTICE_SOURCE } from '../protocol/broker-notice.js';
import { denialReply } from '../protocol/broker-denial.js';
import { authorizerFor, isThrottled, type Principal, type Refusal, type SecuritySettings } from '../security/authorizer.js';
import { DampedLog, quoted } from '../security/log-text.js';
import { envelopeHead, jsonObject } from '../security/payload-check.js';
import { verifiedPeerCertificate } from '../security/peer-certificate.js';
import { covers, isSitesWideFilter, type Decision } from '../security/policy.js';
import { SITE_CLAIM_RULE, SITE_ROLE } from '../security/site-claim.js';
import { identityOfClientId, parseClientId, parseTopic, PRESENCE_FILTER } from '../protocol/topics.js';
import { parseSiteTopic, SITES_ROOT } from '../protocol/sites.js';
import { emptyForDrop, readsDropped } from './drop-denied.js';
import { LiveConnections, type LiveClient } from './live-connections.js';
import { SessionCount } from './sessions.js';
import { SiteClaims, SITE_CLAIM_LIMITS } from './site-claims.js';

/** The broker's security: the Authorizer's settings (security/authorizer.ts). */
export type BrokerSecurity = SecuritySettings;

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

/** A filter that would read the broker's dropped messages (drop-denied.ts). */
const DROPPED_READ: Decision = Object.freeze({ allow: false, rule: 'builtin:dropped' });

const SITES_PREFIX = `${SITES_ROOT}/`;
const PRESENCE_PREFIX = PRESENCE_FILTER.slice(0, -1);

/** Whether one of `client`'s subscriptions other than a sites-wide filter (policy.ts) matches `topic`. */
function readsBesidesSitesWide(client: LiveClient, topic: string): boolean {
  const levels = topic.split('/');
  for (const filter of Object.keys(client.subscriptions)) {
    const filterLevels = filter.split('/');
    if (!isSitesWideFilter(filterLevels) && covers(filterLevels, levels)) return true;
  }
  return false;
}

/** Lines logged once per key (bounded: past MAX_KEYS, the keys are forgotten and each may be logged once more). */
class OnceLog {
  private static readonly MAX_KEYS = 10_000;
  private readonly logged = new Set<string>();
  constructor(private readonly log: (line: string) => void) {}
  line(key: string, line: string): void {
    if (this.logged.has(key)) return;
    if (this.logged.size >= OnceLog.MAX_KEYS) this.logged.clear();
    this.logged.add(key);
    this.log(`${line} (logged once for this site and id)`);
  }
}

/** The source of the error responses the broker itself sends for an untargeted command (protocol §5.3). */
export const BROKER_SOURCE = BROKER_NOTICE_SOURCE;

interface PublishPacket {
  cmd: 'publish';
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup?: boolean;
}

type Done = (error: (Error & { returnCode?: number }) | null, ok?: boolean) => void;

/** Aedes's public hooks (its docs/Aedes.md, "Handler: ..."). */
type AedesHooks = {
  authenticate: (client: LiveClient, username: string | undefined, password: Buffer | undefined, done: Done) => void;
  authorizeSubscribe: (client: LiveClient | null, subscription: { topic: string; qos: number }, done: (error: Error | null, subscription?: unknown) => void) => void;
  authorizePublish: (client: LiveClient | null, packet: PublishPacket, done: (error?: Error | null) => void) => void;
  authorizeForward: (client: LiveClient, packet: PublishPacket) => PublishPacket | null | undefined;
  clients: Record<string, LiveClient | undefined>;
  publish: (packet: Omit<PublishPacket, 'cmd'> & { cmd: 'publish' }, done?: (error?: Error) => void) => void;
};

export interface Connections {
  /** In-process streams, trusted. */
  trusted: WeakSet<object>;
  /** The TLS socket under a connection: itself, or the one under a wss:// stream. */
  tlsPeers: WeakMap<object, TLSSocket>;
  /** Where a network connection comes from, as logged (`10.0.0.7:50412`, `websocket 10.0.0.7:50412`, `unix socket`). */
  addresses: WeakMap<object, string>;
  /** In-process streams of a link, by the identity of the link's other end: not trusted (protocol §13.2). */
  links: WeakMap<object, string>;
}

/** The address failed authentications are counted by: the peer's IP without its port (or `unix socket`). */
export function peerOf(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.replace(/^[a-z]+ (?=[^ ]+:\d+$)/, '').replace(/:\d+$/, '');
}

/** The CONNACK return code of a refusal (MQTT 3.1.1 §3.2.2.3): 4 bad credentials, 5 not authorised. */
function returnCodeOf(refusal: Refusal): 4 | 5 {
  switch (refusal.reason) {
    case 'unknown identity':
    case 'wrong token':
    case 'no token':
    case 'certificate not on record':
      return 4;
    default:
      return 5;
  }
}

/** Why, in a log line: the reason, or what the Authorizer said of it. */
function refusalText(refusal: Refusal): string {
  if (refusal.reason === 'identity file unreadable') return `${refusal.reason}: ${refusal.detail ?? ''}`;
  if (refusal.reason === 'identity reserved' || refusal.reason === 'identities not verified') return refusal.detail;
  return refusal.reason;
}

/** Installs the hooks on `aedes`; returns the denial counters. */
export function enforce(aedes: Aedes, security: BrokerSecurity, connections: Connections, log: (line: string) => void): DenialCounts {
  const { trusted, tlsPeers, addresses, links } = connections;
  const broker = aedes as unknown as AedesHooks;
  const authorizer = authorizerFor(security);
  const who = new WeakMap<object, Principal>();
  const denials: DenialCounts = { connect: 0, subscribe: 0, publish: 0, source: 0, byRule: new Map() };
  /** The authenticated connections of each identity, by session (sessions.ts). */
  const sessions = new SessionCount<LiveClient>();
  const isOpen = (clientId: string) => {
    const client = broker.clients[clientId];
    return client !== undefined && !client.closed;
  };
  // An id is local when a connection of its own or of its identity (any session, protocol §2.1) is open here.
  const siteClaims = new SiteClaims((clientId) => isOpen(clientId) || isOpen(`${clientId}~rt`) || sessions.connected(identityOfClientId(clientId)), log, SITE_CLAIM_LIMITS, Date.now, (id) => {
    if (!security.identitiesStayLocal) return false;
    const record = authorizer.store.lookUp(identityOfClientId(id))?.record;
    return record !== undefined && !record.roles.includes(SITE_ROLE);
  });
  const speaking = (speaker: Principal, id: string) => siteClaims.check(speaker.identity, id);
  /** Who published a retained presence (a Last Will too): a site principal (`site`), or a client of this broker's, whose id becomes local. */
  const noteRetainedPresence = (packet: PublishPacket, site: string | undefined) => {
    if (!packet.retain || !packet.topic.startsWith(PRESENCE_PREFIX)) return;
    const parsed = parseTopic(packet.topic);
    if (parsed.kind === 'presence') siteClaims.retainedPresence(parsed.clientId, site, packet.payload.length === 0);
  };
  /** A refused claim is logged once per site and id (a link repeats it at each message). */
  const claimLog = new OnceLog(log);

  const live = new LiveConnections<Principal>(
    (principal, filter) => authorizer.decide(principal, 'subscribe', filter),
    (principal, client) => describe(principal, client),
    log,
    (decision) => {
      denials.subscribe++;
      countRule(denials.byRule, decision.rule);
    },
  );

  const refuse = (done: Done, returnCode: 2 | 4 | 5, line: string, reason: string) => {
    denials.connect++;
    countRule(denials.byRule, `connect:${reason}`);
    log(line);
    done(Object.assign(new Error(line), { returnCode }), false);
  };

  /** A refusal without a check: counted each time, logged once a second per reason (a flood must not flood the log). */
  const throttledLog = new DampedLog(log);

  broker.authenticate = (client, username, password, done) => {
    if (trusted.has(client.conn)) return done(null, true);
    const clientId = quoted(client.id);
    const admit = (admission: Awaited<ReturnType<typeof authorizer.admitToken>>, tried: string) => {
      if (!admission.ok) {
        if (isThrottled(admission)) {
          const line = `refused CONNECT of ${tried} (client id ${clientId}): ${admission.reason} (${admission.detail}; checked again in ${Math.ceil(admission.retryAfterMs / 1000)} s)`;
          denials.connect++;
          countRule(denials.byRule, `connect:${admission.reason}`);
          throttledLog.line(`${admission.reason} ${admission.detail}`, line);
          return done(Object.assign(new Error(line), { returnCode: 5 }), false);
        }
        return refuse(done, returnCodeOf(admission), `refused CONNECT of ${tried} (client id ${clientId}): ${refusalText(admission)}`, admission.reason);
      }
      let { principal } = admission;
      // Identity binding (protocol §2.1, §6.2, §7.5): nobody else's id, whatever its credentials.
      const parts = parseClientId(client.id);
      if ('problem' in parts || parts.identity !== principal.identity) {
        return refuse(done, 2, `refused CONNECT of ${tried} (client id ${clientId}): the client id must be the identity, ${principal.identity}~<session> or either's ~rt`, 'client id not the identity');
      }
      if (parts.session !== undefined) {
        const limit = authorizer.sessionLimit(principal);
        const refusal = sessions.refusal(principal.identity, parts.session, limit);
        if (refusal) return refuse(done, 2, `refused CONNECT of ${tried} (client id ${clientId}): ${refusal}`, limit === 0 ? 'sessions off' : 'too many sessions');
        principal = authorizer.withSession(principal, parts.session);
      }
      who.set(client.conn, principal);
      sessions.add(principal.identity, parts.session, client);
      live.add(client, principal, (listener) =>
        (client.conn as NodeJS.EventEmitter).once('close', () => {
          sessions.remove(principal.identity, parts.session, client);
          listener();
        }),
      );
      done(null, true);
    };
    // A link's in-process stream: this process named the identity; the identities say whether it still stands.
    const linkIdentity = links.get(client.conn);
    if (linkIdentity !== undefined) return admit(authorizer.admitLink(linkIdentity), `link identity ${quoted(linkIdentity)}`);
    // A certificate the TLS listener verified against the CA names the identity (its CN).
    const certificate = verifiedPeerCertificate(tlsPeers.get(client.conn));
    if (certificate) {
      const tried = `certificate identity ${quoted(certificate.name)}`;
      if (username !== undefined && username !== certificate.name) {
        return refuse(done, 4, `refused CONNECT of ${tried} (client id ${clientId}): the username ${quoted(username)} is not the certificate's identity`, 'username not the certificate identity');
      }
      return admit(authorizer.admitCertificate(certificate.name, certificate.fingerprint), tried);
    }
    const tried = username === undefined ? 'no identity (no username)' : `identity ${quoted(username)}`;
    void authorizer.admitToken(username, password, peerOf(addresses.get(client.conn))).then((admission) => admit(admission, tried));
  };

  broker.authorizeSubscribe = (client, subscription, done) => {
    if (!client || trusted.has(client.conn)) return done(null, subscription);
    const principal = who.get(client.conn);
    // What the broker drops is no one's to read (drop-denied.ts).
    const decision = readsDropped(subscription.topic) ? DROPPED_READ : authorizer.decide(principal, 'subscribe', subscription.topic);
    if (decision.allow) return done(null, subscription);
    denials.subscribe++;
    countRule(denials.byRule, decision.rule);
    log(`denied subscribe to ${quoted(subscription.topic)} for ${describe(principal, client)}: ${decision.rule}`);
    done(null, null); // 0x80 in the SUBACK, connection kept
  };

  broker.authorizePublish = (client, packet, done) => {
    if (!client || trusted.has(client.conn)) {
      noteRetainedPresence(packet, undefined);
      return done(null);
    }
    if (packet.topic.startsWith('$SYS/')) return done(new Error('$SYS/ topic is reserved'));
    const principal = who.get(client.conn);
    const { decision, envelope, speaking: spoken } = authorizer.decidePublish(principal, packet.topic, packet.payload, speaking);
    if (decision.allow) {
      // Recorded here, as it is allowed: the next PUBLISH (of any connection) is decided knowing it.
      if (spoken && principal) siteClaims.claim(principal.identity, spoken.ids);
      noteRetainedPresence(packet, spoken && principal ? principal.identity : undefined);
      return done(null);
    }
    denials.publish++;
    const claimRefused = decision.rule.startsWith(SITE_CLAIM_RULE);
    if (decision.rule.startsWith('builtin:source') || claimRefused) denials.source++;
    countRule(denials.byRule, decision.rule);
    const line = `denied publish on ${quoted(packet.topic)} for ${describe(principal, client)}: ${decision.rule}`;
    if (claimRefused && principal) claimLog.line(`${principal.identity} ${decision.rule}`, line);
    else log(line);
    if (packet.qos === 2) return done(new Error(`publish on ${packet.topic} not authorised (${decision.rule})`));
    const { topic, payload } = packet;
    emptyForDrop(packet);
    done(null);
    // A site's command is answered to the requester it carried, when that is one it may speak for.
    if (principal) answerDenied(topic, envelope ?? jsonObject(envelopeHead(payload)), spoken?.requester ?? principal.clientId, decision);
  };

  // relais/sites/# is every identity's (protocol §13.4); the action traffic under it is not:
  // such a message goes only to a connection holding another subscription that matches it.
  const forward = broker.authorizeForward;
  broker.authorizeForward = (client, packet) => {
    if (packet.topic.startsWith(SITES_PREFIX) && !trusted.has(client.conn) && parseSiteTopic(packet.topic) === undefined && !readsBesidesSitesWide(client, packet.topic)) return null;
    return forward.call(aedes, client, packet);
  };

  /** A denied command: the broker's denial reply (protocol §5.3), so it is not left waiting. */
  const answerDenied = (topic: string, envelope: Record<string, unknown> | undefined, identity: string, decision: Decision) => {
    const reply = denialReply(topic, envelope, identity, decision.rule);
    if (reply) broker.publish({ cmd: 'publish', topic: reply.topic, payload: Buffer.from(JSON.stringify(reply.message)), qos: 1, retain: false, dup: false }, () => {});
  };

  // A subscription granted under a policy that changed before it was in place: decided again.
  (aedes as unknown as NodeJS.EventEmitter).on('subscribe', (subscriptions: Array<{ topic: string }>, client: LiveClient) => {
    const principal = client && who.get(client.conn);
    if (principal && !client.closed) live.recheck(client, principal, subscriptions.map(({ topic }) => topic));
  });

  // Live effect: within a second of a change, on every connection already open.
  const stop = authorizer.onChange((change) => {
    for (const { client, subject: principal } of live.entries()) {
      if (change.identities) {
        const standing = authorizer.standing(principal);
        if (standing && !standing.ok) {
          live.disconnect(client, principal, standing.reason);
          continue;
        }
        if (standing && authorizer.refresh(principal, standing.roles)) {
          live.recheck(client, principal); // its decisions were made for its old roles
          continue;
        }
      }
      if (change.policy) live.recheck(client, principal);
    }
    // A lower sessions.max (or new roles) cuts the sessions beyond it, the latest first.
    if (change.policy || change.identities) {
      for (const { client, subject: principal } of live.entries()) {
        if (principal.session !== undefined && sessions.beyondLimit(principal.identity, principal.session, authorizer.sessionLimit(principal))) {
          live.disconnect(client, principal, 'sessions over the limit');
        }
      }
    }
  });
  (aedes as unknown as NodeJS.EventEmitter).once('closed', stop);

  return denials;
}

function describe(principal: Principal | undefined, client: { id: string }): string {
  if (!principal) return `unauthenticated client ${quoted(client.id)}`;
  return client.id === principal.identity ? `identity ${principal.identity}` : `identity ${principal.identity} (client id ${client.id})`;
}
