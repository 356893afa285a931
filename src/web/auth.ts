/**
 * The HTTP door (docs/http-api.md "Authentication and authorisation"): who sends an HTTP
 * request, and whether the policy lets them, asked of the Authorizer the broker's hooks ask
 * (security/authorizer.ts), and turned into HTTP: 401 with `WWW-Authenticate`, 429 with
 * `Retry-After`, 403 naming the topic and the rule. The API reaches the bus through a trusted
 * in-process connection, so each route says which topics it acts on for its caller
 * (route.ts); the caller proves an identity as at the broker (over HTTPS a client certificate
 * of the CA; else `Authorization: Bearer <identity>:<token>`, or Basic with the identity as
 * user name).
 *
 * Live effect (docs/security.md "Live revocation"): the sockets a caller authenticated on are
 * closed when its identity is revoked, and whoever holds something open for a caller (an event
 * stream) is told when the caller loses its identity or the right it holds. Every request
 * authenticates and is decided again under the identities and the policy of now.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { authorizerFor, isThrottled, type Admission, type BusAccess, type Principal, type SecuritySettings } from '../security/authorizer.js';
import { clipped, DampedLog, quoted } from '../security/log-text.js';
import { verifiedPeerCertificate } from '../security/peer-certificate.js';
import type { Operation } from '../security/policy.js';
import { ApiError, forbidden, unauthorised } from './errors.js';

/** An authenticated caller; `undefined` everywhere when security is off. */
export type Caller = Principal;

export interface Guard {
  /** Whether requests must authenticate (security on). */
  readonly secured: boolean;
  /** The caller of `request`; throws a 401 ApiError when security is on and it does not prove an identity, 429 while it must wait. */
  authenticate(request: FastifyRequest): Promise<Caller | undefined>;
  /** Throws a 403 ApiError unless `caller` may do each of `accesses` (always allowed when security is off). */
  authorise(caller: Caller | undefined, accesses: readonly BusAccess[]): void;
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

export function makeGuard(security: SecuritySettings | undefined, log: (line: string) => void): Guard {
  if (!security) {
    return { secured: false, authenticate: async () => undefined, authorise: () => {}, allows: () => true, follow: () => () => {} };
  }
  const authorizer = authorizerFor(security);
  const throttledLog = new DampedLog(log);

  /** The caller an admission names, or the HTTP error of its refusal (logged with the identity tried, never a token). */
  const callerOf = (admission: Admission, request: FastifyRequest, tried: string): Principal => {
    if (admission.ok) return admission.principal;
    const route = clipped(request.url.split('?')[0] ?? '');
    if (isThrottled(admission)) {
      const seconds = Math.ceil(admission.retryAfterMs / 1000);
      throttledLog.line(`${admission.reason} ${admission.detail}`, `refused ${request.method} ${route} for ${tried}: ${admission.reason} (${admission.detail}; checked again in ${seconds} s)`);
      throw new ApiError(429, 'too_many_attempts', `${admission.reason} (${admission.detail}): try again in ${seconds} s`, { 'retry-after': String(seconds) });
    }
    if (admission.reason === 'identity reserved') {
      // The API acts on behalf of its caller (protocol §11.2): never as one of the process's own clients.
      log(`refused ${request.method} ${route} for ${tried}: reserved for this process's own clients`);
      throw unauthorised(`${tried} is reserved for this process's own clients`);
    }
    log(`refused ${request.method} ${route} for ${tried}: ${admission.reason}`);
    if (tried.startsWith('certificate')) throw unauthorised(`${tried} refused: ${admission.reason}`);
    throw unauthorised(`${tried} refused: ${admission.reason === 'identity file unreadable' ? 'the identities cannot be read' : 'unknown identity, wrong token or revoked'}`);
  };

  // What is followed for live effect: the sockets callers authenticated on, and open streams.
  // The security is watched only while there is something to follow.
  const sockets = new Map<Socket, Caller>();
  const streams = new Set<{ caller: Caller; holds: () => boolean; lost: (reason: string) => void }>();
  let unwatch: (() => void) | undefined;
  const watch = () => {
    unwatch ??= authorizer.onChange((change) => {
      const standings = new Map<Caller, ReturnType<typeof authorizer.standing>>();
      const standingOf = (caller: Caller) => {
        if (!standings.has(caller)) standings.set(caller, authorizer.standing(caller));
        return standings.get(caller);
      };
      for (const stream of [...streams]) {
        const standing = change.identities ? standingOf(stream.caller) : undefined;
        if (standing && !standing.ok) stream.lost(standing.reason);
        else {
          if (standing?.ok) authorizer.refresh(stream.caller, standing.roles);
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
    unwatch?.();
    unwatch = undefined;
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
      const socket = request.raw.socket;
      // Over HTTPS, a client certificate the CA signed names the caller, as at the broker.
      const certificate = socket instanceof TLSSocket ? verifiedPeerCertificate(socket) : undefined;
      if (certificate) {
        return followSocket(socket, callerOf(authorizer.admitCertificate(certificate.name, certificate.fingerprint), request, `certificate identity ${quoted(certificate.name)}`));
      }
      const given = credentials(request.headers.authorization);
      if (!given) throw unauthorised('an identity is required: Authorization: Bearer <identity>:<token> (or Basic with the identity as user name)');
      return followSocket(socket, callerOf(await authorizer.admitToken(given.name, given.token, request.ip), request, `identity ${quoted(given.name)}`));
    },
    authorise(caller, accesses) {
      const denied = authorizer.firstDenied(caller, accesses);
      if (!denied) return;
      const { access, decision } = denied;
      log(`denied ${access.operation} on ${quoted(access.topic)} for identity ${caller?.identity ?? '(none)'} over HTTP: ${decision.rule}`);
      throw forbidden(`identity ${caller?.identity ?? '(none)'} may not ${access.operation} on ${access.topic} (${decision.rule})`);
    },
    allows: (caller, operation, topic) => authorizer.decide(caller, operation, topic).allow,
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
      // It was allowed under the policy it was decided under: a change since is seen.
      authorizer.followDecisionsOf(caller);
      return () => {
        done = true;
        streams.delete(stream);
        unwatchIfIdle();
      };
    },
  };
}
