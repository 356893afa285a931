/**
 * Who sends an HTTP request, and whether the policy lets them (docs/http-api.md
 * "Authentication"). The API reaches the bus through a trusted in-process connection, so it
 * checks here what the broker checks for a network client (src/broker/enforce.ts): the same
 * identities (over HTTPS a client certificate of the CA; else `Authorization: Bearer
 * <identity>:<token>`, or Basic with the identity as user name) and the same `decide()` for every topic the request makes the API publish on.
 */
import { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { verifiedPeerCertificate } from '../security/peer-certificate.js';
import type { BrokerSecurity } from '../broker/enforce.js';
import { IdentityStore } from '../security/identities.js';
import { decide, type Operation, type Policy } from '../security/policy.js';
import { forbidden, unauthorised } from './errors.js';

/** An authenticated caller; `undefined` everywhere when security is off. */
export interface Caller {
  identity: string;
  roles: string[];
}

export interface Guard {
  /** Whether requests must authenticate (security on). */
  readonly secured: boolean;
  /** The caller of `request`; throws a 401 ApiError when security is on and it does not prove an identity. */
  authenticate(request: FastifyRequest): Promise<Caller | undefined>;
  /** Throws a 403 ApiError unless `caller` may do `operation` on each of `topics` (always allowed when security is off). */
  authorise(caller: Caller | undefined, operation: Operation, ...topics: string[]): void;
  /** Whether `caller` may do `operation` on `topic`, without throwing. */
  allows(caller: Caller | undefined, operation: Operation, topic: string): boolean;
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

export function makeGuard(security: BrokerSecurity | undefined, log: (line: string) => void): Guard {
  if (!security) {
    return { secured: false, authenticate: async () => undefined, authorise: () => {}, allows: () => true };
  }
  const store = typeof security.identities === 'string' ? new IdentityStore(security.identities) : security.identities;
  const policy = (): Policy => (typeof security.policy === 'function' ? security.policy() : security.policy);
  const allows = (caller: Caller | undefined, operation: Operation, topic: string) =>
    decide(policy(), caller ? { identity: caller.identity, roles: caller.roles } : {}, operation, topic).allow;
  /** The API acts on behalf of its caller (protocol §11.2): never as one of the process's own clients. */
  const callerOf = (verdict: { name: string; roles: string[] }, request: FastifyRequest): Caller => {
    if (!security.inProcessOnly?.includes(verdict.name)) return { identity: verdict.name, roles: verdict.roles };
    log(`refused ${request.method} ${request.url.split('?')[0]} for identity ${JSON.stringify(verdict.name)}: reserved for this process's own clients`);
    throw unauthorised(`identity ${JSON.stringify(verdict.name)} is reserved for this process's own clients`);
  };
  return {
    secured: true,
    async authenticate(request) {
      // Over HTTPS, a client certificate the CA signed names the caller, as at the broker.
      const socket = request.raw.socket;
      const certificate = socket instanceof TLSSocket ? verifiedPeerCertificate(socket) : undefined;
      if (certificate) {
        const verdict = store.verifyCertificate(certificate.name, certificate.fingerprint);
        if (verdict.ok) return callerOf(verdict, request);
        log(`refused ${request.method} ${request.url.split('?')[0]} for certificate identity ${JSON.stringify(certificate.name)}: ${verdict.reason}`);
        throw unauthorised(`certificate identity ${JSON.stringify(certificate.name)} refused: ${verdict.reason}`);
      }
      const given = credentials(request.headers.authorization);
      if (!given) throw unauthorised('an identity is required: Authorization: Bearer <identity>:<token> (or Basic with the identity as user name)');
      const verdict = await store.verify(given.name, given.token);
      if (!verdict.ok) {
        // The identity tried and why, never the token (as the broker logs a refused CONNECT).
        log(`refused ${request.method} ${request.url.split('?')[0]} for identity ${JSON.stringify(given.name)}: ${verdict.reason}`);
        throw unauthorised(`identity ${JSON.stringify(given.name)} refused: ${verdict.reason === 'identity file unreadable' ? 'the identities cannot be read' : 'unknown identity, wrong token or revoked'}`);
      }
      return callerOf(verdict, request);
    },
    authorise(caller, operation, ...topics) {
      for (const topic of topics) {
        const decision = decide(policy(), caller ? { identity: caller.identity, roles: caller.roles } : {}, operation, topic);
        if (decision.allow) continue;
        log(`denied ${operation} on ${JSON.stringify(topic)} for identity ${caller?.identity ?? '(none)'} over HTTP: ${decision.rule}`);
        throw forbidden(`identity ${caller?.identity ?? '(none)'} may not ${operation} on ${topic} (${decision.rule})`);
      }
    },
    allows,
  };
}
