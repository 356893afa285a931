/**
 * Why a command could not connect, in one line that names the fix: the broker's certificate
 * not trusted (pass --ca), the client id refused (certificate identities connect with their CN
 * as client id, docs/security.md), the token refused or missing, nothing listening. The
 * library's error says what happened; this adds what to do about it, in the CLI's words.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { RelaisError } from '../library.js';

/** What the command connected with: the flags the advice may name. */
export interface AttemptedConnection {
  broker: string;
  id?: string;
  ca?: string;
  cert?: string;
  /** Whether a token was given (RELAIS_TOKEN or --token-file): never its value. */
  token: boolean;
}

/** TLS verification failures that another CA file fixes (Node's OpenSSL codes). */
const UNTRUSTED_CERTIFICATE = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT']);

/** CONNACK return codes of MQTT 3.1.1 (protocol §1.1). */
const CONNACK = { IDENTIFIER_REJECTED: 2, BAD_USERNAME_OR_PASSWORD: 4, NOT_AUTHORIZED: 5 } as const;

/** What Node 24 appends to a certificate verification failure (Node 20 does not). */
const NODE_SYSTEM_CA_ADVICE = /; if the root CA is installed locally, try running Node\.js with --use-system-ca/;

/** `relais: <the library's message> → <the fix>`, or the message alone when no fix is known. */
export function connectionFailureLine(error: unknown, attempt: AttemptedConnection): string {
  const message = error instanceof Error ? error.message : String(error);
  const fix = connectionFix(error, attempt);
  // Node 24 adds its own advice to an untrusted certificate's message; the fix named replaces it.
  return fix === undefined ? message : `${message.replace(NODE_SYSTEM_CA_ADVICE, '')} → ${fix}`;
}

function connectionFix(error: unknown, attempt: AttemptedConnection): string | undefined {
  const code = causeCode(error);
  const message = error instanceof Error ? error.message : String(error);
  if ((typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code)) || /self[- ]signed certificate|unable to verify the first certificate|unable to get local issuer/.test(message)) {
    return attempt.ca === undefined
      ? "pass --ca <ca.crt>, the CA that signed the broker's certificate (RELAIS_CA, or in a context: relais context add)"
      : `the broker's certificate is not signed by --ca ${attempt.ca}: pass the CA that signed it (relais init wrote it as ca.crt)`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return "connect with a host name the broker's certificate was issued for (relais init --name <host> adds one)";
  if (code === 'CERT_HAS_EXPIRED') return "the broker's certificate has expired: issue it again";
  if (code === CONNACK.IDENTIFIER_REJECTED || /Identifier rejected/.test(message)) {
    const identity = attempt.cert === undefined ? undefined : certificateIdentity(attempt.cert);
    if (identity !== undefined) return `the client id must be your identity or a session of it: --id ${identity} or --id ${identity}~<session> (the CN of --cert; the broker's log says when the policy's sessions.max is reached)`;
    return "the client id must be your identity or a session of it (--id <identity> or --id <identity>~<session>; the broker's log says when the policy's sessions.max is reached)";
  }
  if (code === CONNACK.BAD_USERNAME_OR_PASSWORD || /Bad username or password/.test(message)) {
    if (!attempt.token) return 'set RELAIS_TOKEN or --token-file to the token of your identity, with --id <identity> (or connect with --cert/--key over mqtts://)';
    return `the broker refused the token of ${attempt.id ?? 'this identity'}: check RELAIS_TOKEN or --token-file (a token is shown once by relais identity add; revoked ones stop working)`;
  }
  if (code === CONNACK.NOT_AUTHORIZED || /Not authorized/.test(message)) return `the broker does not let ${attempt.id ?? 'this client'} connect: its identity may be revoked or unknown (relais identity ls)`;
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(message)) return `is a broker running at ${withoutPassword(attempt.broker)}? (relais start)`;
  if (code === 'ENOENT' && /^unix:/.test(attempt.broker)) return `no broker socket there: is relais start running with that data directory?`;
  if (code === 'ENOTFOUND' || /ENOTFOUND/.test(message)) return 'that host name is not known: check --broker';
  if (code === 'EPROTO' || /wrong version number|packet length too long/.test(message)) return 'the port does not speak TLS: use mqtt:// for a plain port, mqtts:// for the TLS one';
  if (/no answer within|closed before CONNACK/.test(message) && /^mqtt:/.test(attempt.broker)) return 'the broker did not answer in MQTT: if this port is its TLS listener, use mqtts://';
  if (/disconnected before secure TLS connection/.test(message) && /^mqtts:/.test(attempt.broker)) return 'no TLS there: if this port is a plain listener, use mqtt://';
  return undefined;
}

/** The broker list as it may be shown: a password in a URL masked, as the library's messages do. */
function withoutPassword(brokers: string): string {
  return brokers
    .split(',')
    .map((broker) => {
      try {
        const url = new URL(broker.trim());
        if (url.password === '') return broker.trim();
        url.password = '***';
        return url.toString().replace(/\/$/, '');
      } catch {
        return broker.trim();
      }
    })
    .join(',');
}

/** The code of the error behind the library's (TLS or socket error codes are strings, CONNACK refusals numbers). */
function causeCode(error: unknown): string | number | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 4; current = current.cause, depth += 1) {
    if (current instanceof RelaisError) {
      // Its own code is the library's (NOT_SENT); a refusal's CONNACK code is in its details.
      const returnCode = (current.details as { returnCode?: unknown } | undefined)?.returnCode;
      if (typeof returnCode === 'number') return returnCode;
      continue;
    }
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') return code;
  }
  return undefined;
}

/** The CN of a PEM certificate (the identity it carries, docs/security.md), or undefined. */
export function certificateIdentity(file: string): string | undefined {
  try {
    const subject = new X509Certificate(fs.readFileSync(file)).subject;
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(subject)?.[1];
    return cn !== undefined && /^[A-Za-z0-9_:@.-]+$/.test(cn) ? cn : undefined;
  } catch {
    return undefined;
  }
}
