/**
 * Who sends an HTTP request, and whether the policy lets them (docs/http-api.md
 * "Authentication"). The API reaches the bus through a trusted in-process connection, so it
 * checks here what the broker checks for a network client (src/broker/enforce.ts): the same
 * identities (over HTTPS a client certificate of the CA; else `Authorization: Bearer
 * <identity>:<token>`, or Basic with the identity as user name), through the same
 * Authenticator (rate limits per address and identity: a throttled caller gets 429 with
 * Retry-After; proved tokens remembered), and the same `decide()` for every topic the request
 * makes the API publish on.
 *
 * Live effect (docs/security.md "Live revocation"): the sockets a caller authenticated on are
 * closed when its identity is revoked, and whoever holds something open for a caller (an event
 * stream) is told when the caller loses its identity or the right it holds.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { verifiedPeerCertificate } from '../security/peer-certificate.js';
import type { BrokerSecurity } from '../broker/enforce.js';
import { authenticatorFor } from '../security/authenticator.js';
import { onSecurityChange, type SecurityFollower } from '../security/changes.js';
import { identityStoreOf } from '../security/identities.js';
import { clipped, DampedLog, quoted } from '../security/log-text.js';
import { decide, type Operation, type Policy } from '../security/policy.js';
import { ApiError, forbidden, unauthorised } from './errors.js';

/** An authenticated caller; `undefined` everywhere when security is off. */
export interface Caller {
  identity: string;
  roles: string[];
  /** What it proved (IdentityStore.standing checks it still holds). */
  credential?: string;
}

export interface Guard {
  /** Whether requests must authenticate (security on). */
  readonly secured: boolean;
  /** The caller of `request`; throws a 401 ApiError when security is on and it does not prove an identity, 429 while it must wait. */
  authenticate(request: FastifyRequest): Promise<Caller | undefined>;
  /** Throws a 403 ApiError unless `caller` may do `operation` on each of `topics` (always allowed when security is off). */
  authorise(caller: Caller | undefined, operation: Operation, ...topics: string[]): void;
  /** Whether `caller` may do `operation` on `topic`, without throwing. */
  allows(caller: Caller | undefined, operation: Operation, topic: string): boolean;
  /**
   * Calls `lost(reason)` once, within a second of `caller` losing its identity (revoked, removed,
   * issued new credentials) or, after a change of the policy or its roles, of `holds()` turning
   * false; returns how to stop. Nothing happens when security is off.
   */
  follow(caller: Caller | undefined, holds: () => boolean, lost: (reason: string) => void): () => void;
}

/** The identity and token an `Authorization` header carries, if it carries one. */
export function credentials(header: string | undefined): { name: string; token: string } | undefined {
  if (!header) return undefined;
  const [scheme, value = ''] = header.trim().split(/\s+/, 2);
  let pair: string;
  if (scheme?.toLowerCase() === 'bearer') pair = value;
  else if (scheme?.toLowerCase() === 'basic') pair = Buffer.from(value, 'base64').toString('utf8');
  else return undefined;
  const colon = pair.indexOf(':');
  if (colon <= 0 || colon === pair.length - 1) return undefined;
  return { name: pair.slice(0, colon), token: pair.slice(colon + 1) };
}

/** A revoked caller's socket is closed after this long (what it carries, such as an event stream, ends first with a reason). */
const SOCKET_GRACE_MS = 250;

export function makeGuard(security: BrokerSecurity | undefined, log: (line: string) => void): Guard {
  if (!security) {
    return { secured: false, authenticate: async () => undefined, authorise: () => {}, allows: () => true, follow: () => () => {} };
  }
  const store = identityStoreOf(security.identities);
  const authenticator = authenticatorFor(store, security.authentication);
  const throttledLog = new DampedLog(log);
  const policy = (): Policy => (typeof security.policy === 'function' ? security.policy() : security.policy);
  const allows = (caller: Caller | undefined, operation: Operation, topic: string) =>
    decide(policy(), caller ? { identity: caller.identity, roles: caller.roles } : {}, operation, topic).allow;
  /** The API acts on behalf of its caller (protocol §11.2): never as one of the process's own clients. */
  const callerOf = (verdict: { name: string; roles: string[]; credential?: Caller['credential'] }, request: FastifyRequest): Caller => {
    if (!security.inProcessOnly?.includes(verdict.name)) return { identity: verdict.name, roles: verdict.roles, ...(verdict.credential !== undefined && { credential: verdict.credential }) };
    log(`refused ${request.method} ${clipped(request.url.split('?')[0] ?? '')} for identity ${quoted(verdict.name)}: reserved for this process's own clients`);
    throw unauthorised(`identity ${JSON.stringify(verdict.name)} is reserved for this process's own clients`);
  };

  // What is followed for live effect: the sockets callers authenticated on, and open streams.
  // The security is watched only while there is something to follow.
  const sockets = new Map<Socket, Caller>();
  const streams = new Set<{ caller: Caller; holds: () => boolean; lost: (reason: string) => void }>();
  let follower: SecurityFollower | undefined;
  const watch = () => {
    follower ??= onSecurityChange(store, security.policy, (change) => {
      const standings = new Map<Caller, ReturnType<typeof store.standing>>();
      const standingOf = (caller: Caller) => {
        if (!standings.has(caller)) standings.set(caller, caller.credential === undefined ? undefined : store.standing(caller.identity, caller.credential));
        return standings.get(caller);
      };
      for (const stream of [...streams]) {
        const standing = change.identities ? standingOf(stream.caller) : undefined;
        if (standing && !standing.ok) stream.lost(standing.reason);
        else {
          if (standing?.ok) stream.caller.roles = standing.roles;
          if (!stream.holds()) stream.lost('no longer allowed by the policy');
        }
      }
      if (!change.identities) return;
      for (const [socket, caller] of sockets) {
        const standing = standingOf(caller);
        if (!standing || standing.ok) continue;
        sockets.delete(socket);
        log(`closed a connection of identity ${caller.identity} (${socket.remoteAddress}:${socket.remotePort}): ${standing.reason}`);
        // After a moment: an event stream on it says why first (above).
        setTimeout(() => socket.destroy(), SOCKET_GRACE_MS).unref();
      }
    });
  };
  const unwatchIfIdle = () => {
    if (sockets.size > 0 || streams.size > 0) return;
    follower?.stop();
    follower = undefined;
  };
  const followSocket = (socket: Socket, caller: Caller): Caller => {
    if (socket.destroyed) return caller;
    const known = sockets.has(socket);
    sockets.set(socket, caller); // a keep-alive socket: its latest caller
    if (!known) {
      watch();
      socket.once('close', () => {
        sockets.delete(socket);
        unwatchIfIdle();
      });
    }
    return caller;
  };

  return {
    secured: true,
    async authenticate(request) {
      const route = request.url.split('?')[0]!;
      const socket = request.raw.socket;
      // Over HTTPS, a client certificate the CA signed names the caller, as at the broker.
      const certificate = socket instanceof TLSSocket ? verifiedPeerCertificate(socket) : undefined;
      if (certificate) {
        const verdict = store.verifyCertificate(certificate.name, certificate.fingerprint);
        if (verdict.ok) return followSocket(socket, callerOf(verdict, request));
        log(`refused ${request.method} ${clipped(route)} for certificate identity ${quoted(certificate.name)}: ${verdict.reason}`);
        throw unauthorised(`certificate identity ${JSON.stringify(certificate.name)} refused: ${verdict.reason}`);
      }
      const given = credentials(request.headers.authorization);
      if (!given) throw unauthorised('an identity is required: Authorization: Bearer <identity>:<token> (or Basic with the identity as user name)');
      const verdict = await authenticator.verifyToken(given.name, given.token, request.ip);
      if (!verdict.ok) {
        if (verdict.reason === 'too many failures' || verdict.reason === 'too many attempts at once') {
          const seconds = Math.ceil(verdict.retryAfterMs / 1000);
          throttledLog.line(`${verdict.reason} ${verdict.detail}`, `refused ${request.method} ${clipped(route)} for identity ${quoted(given.name)}: ${verdict.reason} (${verdict.detail}; checked again in ${seconds} s)`);
          throw new ApiError(429, 'too_many_attempts', `${verdict.reason} (${verdict.detail}): try again in ${seconds} s`, { 'retry-after': String(seconds) });
        }
        // The identity tried and why, never the token (as the broker logs a refused CONNECT).
        log(`refused ${request.method} ${clipped(route)} for identity ${quoted(given.name)}: ${verdict.reason}`);
        throw unauthorised(`identity ${quoted(given.name)} refused: ${verdict.reason === 'identity file unreadable' ? 'the identities cannot be read' : 'unknown identity, wrong token or revoked'}`);
      }
      return followSocket(socket, callerOf(verdict, request));
    },
    authorise(caller, operation, ...topics) {
      for (const topic of topics) {
        const decision = decide(policy(), caller ? { identity: caller.identity, roles: caller.roles } : {}, operation, topic);
        if (decision.allow) continue;
        log(`denied ${operation} on ${quoted(topic)} for identity ${caller?.identity ?? '(none)'} over HTTP: ${decision.rule}`);
        throw forbidden(`identity ${caller?.identity ?? '(none)'} may not ${operation} on ${topic} (${decision.rule})`);
      }
    },
    allows,
    follow(caller, holds, lost) {
      if (!caller) return () => {};
      let done = false;
      const stream = {
        caller,
        holds,
        lost: (reason: string) => {
          if (done) return;
          done = true;
          streams.delete(stream);
          lost(reason);
        },
      };
      streams.add(stream);
      watch();
      // It was allowed under the policy of now: if the change to it is not seen yet, it will be.
      follower?.decidedUnder(policy());
      return () => {
        done = true;
        streams.delete(stream);
        unwatchIfIdle();
      };
    },
  };
}
