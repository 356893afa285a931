/**
 * Enforcement in the embedded broker (issue 7 §2-§4, docs/security.md "Identities and
 * enforcement"): Aedes's hooks call the identity store and the pure `decide()`.
 *
 * - CONNECT: a client certificate the TLS listener verified names the identity (its CN; it must
 *   be the one on record for that identity); otherwise username = identity, password = token
 *   (IdentityStore.verify). The file is read afresh each time, so revocations apply at once. The
 *   client id must be the identity or `<identity>~rt`.
 *   Refused with return code 4 (no/wrong credentials), 5 (revoked, identities unreadable) or
 *   2 (client id not the identity's), and a log line naming the identity tried and why.
 * - SUBSCRIBE: denied filters get 0x80 in the SUBACK; the connection stays up.
 * - PUBLISH: a denied QoS 0/1 message is acknowledged as usual and dropped (3.1.1 has no
 *   negative PUBACK); a denied command gets a code-4 error response so its sender does not wait
 *   for its time-out. A JSON envelope whose `source` is not the connection's identity is denied
 *   the same way. A denied QoS 2 message closes the connection (Aedes's way; Relais never uses 2).
 *
 * Streams the process hands Aedes itself (`connectInProcess`, `accept`: the router inside
 * `relais start`) are trusted: no credentials, no policy.
 */
import type { Aedes } from 'aedes';
import type { TLSSocket } from 'node:tls';
import { verifiedPeerCertificate } from '../security/peer-certificate.js';
import { ResponseCode } from '../protocol/errors.js';
import { responseMessage } from '../protocol/messages.js';
import { parseTopic, responseTopic } from '../protocol/topics.js';
import { IdentityStore, type Verification } from '../security/identities.js';
import { decide, type Decision, type Policy } from '../security/policy.js';

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
  // The source rule quotes the claimed source, chosen by the sender: counted under the rule alone.
  const key = rule.startsWith('builtin:source') ? 'builtin:source' : rule;
  const counted = byRule.has(key) || byRule.size < RULES_COUNTED - 1 ? key : OTHER_RULES;
  byRule.set(counted, (byRule.get(counted) ?? 0) + 1);
}

/** The source of the error responses the broker itself sends for an untargeted command. */
export const BROKER_SOURCE = 'relais-broker';

interface Who {
  identity: string;
  roles: string[];
  /** `"source":"<identity>"`, for the fast path of the source check: as text, and as bytes. */
  sourceKey: string;
  sourceKeyBytes: Buffer;
  /** Decisions already made for this connection, by topic, under `policy`. */
  decisions: { publish: Map<string, Decision>; subscribe: Map<string, Decision> };
  policy?: Policy;
}

/** Decisions kept per connection (then forgotten all at once): its topics are few in practice. */
const DECISIONS_KEPT = 1024;

interface Client {
  id: string;
  conn: object;
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

/**
 * Installs the hooks on `aedes`; returns the denial counters. `trusted` holds the in-process
 * streams; `tlsPeers` maps a connection to its TLS socket (itself, or the one under a wss:// stream).
 */
export function enforce(aedes: Aedes, security: BrokerSecurity, connections: { trusted: WeakSet<object>; tlsPeers: WeakMap<object, TLSSocket> }, log: (line: string) => void): DenialCounts {
  const { trusted, tlsPeers } = connections;
  const broker = aedes as unknown as AedesHooks;
  const store = typeof security.identities === 'string' ? new IdentityStore(security.identities) : security.identities;
  const policy = typeof security.policy === 'function' ? security.policy : () => security.policy as Policy;
  const who = new WeakMap<object, Who>();
  const denials: DenialCounts = { connect: 0, subscribe: 0, publish: 0, source: 0, byRule: new Map() };

  const refuse = (done: Parameters<AedesHooks['authenticate']>[3], returnCode: 2 | 4 | 5, line: string, reason: string) => {
    denials.connect++;
    countRule(denials.byRule, `connect:${reason}`);
    log(line);
    done(Object.assign(new Error(line), { returnCode }), false);
  };

  broker.authenticate = (client, username, password, done) => {
    if (trusted.has(client.conn)) return done(null, true);
    const clientId = JSON.stringify(client.id);
    const admit = (verdict: Verification, tried: string) => {
      if (!verdict.ok) {
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
      const sourceKey = `"source":${JSON.stringify(verdict.name)}`;
      who.set(client.conn, { identity: verdict.name, roles: verdict.roles, sourceKey, sourceKeyBytes: Buffer.from(sourceKey), decisions: { publish: new Map(), subscribe: new Map() } });
      done(null, true);
    };
    // A certificate the TLS listener verified against the CA names the identity (its CN).
    const certificate = verifiedPeerCertificate(tlsPeers.get(client.conn));
    if (certificate) {
      const tried = `certificate identity ${JSON.stringify(certificate.name)}`;
      if (username !== undefined && username !== certificate.name) {
        return refuse(done, 4, `refused CONNECT of ${tried} (client id ${clientId}): the username ${JSON.stringify(username)} is not the certificate's identity`, 'username not the certificate identity');
      }
      return admit(store.verifyCertificate(certificate.name, certificate.fingerprint), tried);
    }
    const tried = username === undefined ? 'no identity (no username)' : `identity ${JSON.stringify(username)}`;
    store.verify(username, password).then(
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
    log(`denied subscribe to ${JSON.stringify(subscription.topic)} for ${describe(subject, client)}: ${decision.rule}`);
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
    if (decision.allow && subject && !sourceIsSurely(packet.payload, subject)) {
      envelope = jsonObject(packet.payload);
      if (envelope && typeof envelope.source === 'string' && envelope.source !== subject.identity) {
        denials.source++;
        decision = { allow: false, rule: `builtin:source (the envelope says ${JSON.stringify(envelope.source)})` };
      }
    }
    if (decision.allow) return done(null);
    denials.publish++;
    countRule(denials.byRule, decision.rule);
    log(`denied publish on ${JSON.stringify(packet.topic)} for ${describe(subject, client)}: ${decision.rule}`);
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
    const priority = envelope.priority === 'realtime' || envelope.priority === 'high' || envelope.priority === 'low' ? envelope.priority : 'normal';
    const answer = responseMessage(
      { source: target ?? BROKER_SOURCE, destination: identity, token: envelope.token, priority },
      { step: 'error', code: ResponseCode.NOT_AUTHORIZED, error: { name: 'NotAuthorizedError', message: `not authorised to publish on ${packet.topic} (${decision.rule})` } },
    );
    publish({ cmd: 'publish', topic: responseTopic(topic.action, identity), payload: Buffer.from(JSON.stringify(answer)), qos: 1, retain: false, dup: false }, null, () => {});
  };

  const judge = (subject: Who | undefined, operation: 'publish' | 'subscribe', topic: string): Decision => {
    if (!subject) return { allow: false, rule: 'builtin:anonymous' };
    // decide() is pure: a connection's decision on a topic holds until the policy changes.
    const current = policy();
    const decisions = subject.decisions[operation];
    if (subject.policy !== current) {
      subject.decisions.publish.clear();
      subject.decisions.subscribe.clear();
      subject.policy = current;
    } else if (decisions.size >= DECISIONS_KEPT) decisions.clear();
    let decision = decisions.get(topic);
    if (!decision) {
      decision = decide(current, { identity: subject.identity, roles: subject.roles }, operation, topic);
      decisions.set(topic, decision);
    }
    return decision;
  };

  return denials;
}


function describe(subject: Who | undefined, client: Client): string {
  if (!subject) return `unauthenticated client ${JSON.stringify(client.id)}`;
  return client.id === subject.identity ? `identity ${subject.identity}` : `identity ${subject.identity} (client id ${client.id})`;
}

/**
 * True when `payload` cannot carry a `source` other than the identity's, without parsing it:
 * no backslash (so no escaped key like "sour\u0063e", and no `"` inside a string value), and
 * `"source"` occurs exactly once, as `"source":"<identity>"` (the library writes it so). A
 * nested `source` alone would also be allowed by the full check. Anything else is parsed.
 */
function sourceIsSurely(payload: Buffer | string, subject: Pick<Who, 'sourceKey' | 'sourceKeyBytes'>): boolean {
  if (typeof payload === 'string') {
    const at = payload.indexOf(SOURCE);
    if (at < 0 || !payload.startsWith(subject.sourceKey, at)) return false;
    const next = at + subject.sourceKey.length;
    return isEndOfValue(payload.charCodeAt(next)) && payload.indexOf(SOURCE, next) < 0 && payload.indexOf('\\') < 0;
  }
  // Byte needles, not strings: Buffer#indexOf(string) encodes its needle at every call (it
  // was the larger part of the check's cost, measured by a profile of the broker).
  const key = subject.sourceKeyBytes;
  const at = payload.indexOf(SOURCE_BYTES);
  if (at < 0 || at + key.length >= payload.length || payload.compare(key, 0, key.length, at, at + key.length) !== 0) return false;
  const next = at + key.length;
  return isEndOfValue(payload[next]) && payload.indexOf(SOURCE_BYTES, next) < 0 && payload.indexOf(BACKSLASH) < 0;
}

const SOURCE = '"source"';
const SOURCE_BYTES = Buffer.from(SOURCE);
const BACKSLASH = 0x5c;

/** After `"source":"<identity>"`: a comma, a closing brace or a space (not a longer name). */
function isEndOfValue(code: number | undefined): boolean {
  return code === 0x2c || code === 0x7d || code === 0x20;
}

/** The payload as a JSON object, when it is one (an envelope); else undefined. */
function jsonObject(payload: Buffer | string): Record<string, unknown> | undefined {
  // JSON may start with white space: a receiver's JSON.parse takes it, so this check must too.
  let first = 0;
  const at = (i: number) => (typeof payload === 'string' ? payload.charCodeAt(i) : payload[i]);
  while (first < payload.length && (at(first) === 0x20 || at(first) === 0x09 || at(first) === 0x0a || at(first) === 0x0d)) first++;
  if (at(first) !== 0x7b) return undefined;
  const text = typeof payload === 'string' ? payload : payload.toString('utf8');
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
