/**
 * Client certificates on a TLS socket (docs/security.md "Certificates"): shared by the broker's
 * TLS listeners, its CONNECT check, and the web server's HTTPS.
 */
import type tls from 'node:tls';

/** Why a client's certificate is refused (its verification error, e.g. CERT_HAS_EXPIRED), or undefined: none sent, or it verified. */
export function presentedButUnverified(socket: tls.TLSSocket): string | undefined {
  if (socket.authorized) return undefined;
  const certificate = socket.getPeerCertificate();
  if (!certificate || Object.keys(certificate).length === 0) return undefined;
  const error = socket.authorizationError as unknown as Error | string | null;
  const subject = typeof certificate.subject?.CN === 'string' ? `CN ${JSON.stringify(certificate.subject.CN)}: ` : '';
  return `${subject}${typeof error === 'string' ? error : (error?.message ?? 'not verified')}`;
}

/** The identity (CN) and fingerprint of a client certificate TLS verified against the CA, if any. */
export function verifiedPeerCertificate(conn: tls.TLSSocket | undefined): { name: string; fingerprint: string } | undefined {
  if (!conn?.authorized) return undefined;
  const certificate = conn.getPeerCertificate();
  const name = certificate.subject?.CN;
  return typeof name === 'string' && certificate.fingerprint256 ? { name, fingerprint: certificate.fingerprint256 } : undefined;
}
