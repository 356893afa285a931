/**
 * A small certificate authority for `relais init` and `relais identity add --cert`
 * (docs/security.md "Certificates"): ECDSA P-256 keys and X.509 certificates made with
 * @peculiar/x509 on Node's WebCrypto, never by shelling out to openssl. P-256 because every TLS
 * 1.3 stack speaks it (Node, OpenSSL under Mosquitto, browsers).
 */
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { webcrypto, X509Certificate as NodeCertificate, randomBytes } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as never);
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface PemPair {
  /** The certificate, PEM. */
  cert: string;
  /** Its private key, PKCS#8 PEM. Secret: write it with mode 0600. */
  key: string;
}

export interface IssuedCertificate extends PemPair {
  /** SHA-256 of the DER certificate, as Node writes it (`AB:CD:…`): what the identities file records. */
  fingerprint: string;
  serial: string;
  notAfter: Date;
}

export interface Validity {
  /** Default: now (one minute back, for clocks a little apart). */
  notBefore?: Date;
  /** Default: notBefore + `days`. */
  notAfter?: Date;
  days?: number;
}

export class PkiError extends Error {
  override readonly name = 'PkiError';
}

export async function createCertificateAuthority(commonName: string, validity: Validity = {}): Promise<PemPair> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }],
    ...period(validity, 3650),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await privateKeyPem(keys.privateKey) };
}

export interface LeafRequest extends Validity {
  /** The certificate's CN: for a client, its Relais identity (docs/security.md). */
  commonName: string;
  usage: 'server' | 'client';
  /** Names a server answers to (DNS names and IP addresses); a client's get none. */
  hosts?: readonly string[];
}

/** A certificate signed by the CA `ca` (its PEM pair, as createCertificateAuthority returns it). */
export async function issueCertificate(ca: PemPair, request: LeafRequest): Promise<IssuedCertificate> {
  const caCert = parseCertificate(ca.cert, 'the CA certificate');
  const caKey = await importPrivateKey(ca.key);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const hosts = request.hosts ?? [];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [request.commonName] }],
    issuer: caCert.subject,
    ...period(request, request.usage === 'server' ? 825 : 365),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([request.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      ...(hosts.length > 0 ? [new x509.SubjectAlternativeNameExtension(hosts.map((host) => (isIpAddress(host) ? { type: 'ip' as const, value: host } : { type: 'dns' as const, value: host })))] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pem = cert.toString('pem');
  const node = new NodeCertificate(pem);
  return { cert: pem, key: await privateKeyPem(keys.privateKey), fingerprint: node.fingerprint256, serial: node.serialNumber, notAfter: new Date(node.validTo) };
}

function period(validity: Validity, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const notBefore = validity.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = validity.notAfter ?? new Date(notBefore.getTime() + (validity.days ?? defaultDays) * DAY_MS);
  return { notBefore, notAfter };
}

/** 16 random bytes, first bit clear: a positive serial, unpredictable (RFC 5280 §4.1.2.2). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return bytes.toString('hex');
}

function parseCertificate(pem: string, what: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (error) {
    throw new PkiError(`${what} is not a PEM certificate: ${(error as Error).message}`);
  }
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  try {
    const der = x509.PemConverter.decode(pem)[0];
    if (!der) throw new Error('no PEM block');
    return await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
  } catch (error) {
    throw new PkiError(`the CA key is not a PKCS#8 P-256 private key: ${(error as Error).message}`);
  }
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function isIpAddress(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}
