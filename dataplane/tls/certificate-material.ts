// Certificate material (PEM strings) and its validation: what a Secret, a ConfigMap or a set
// of files holds once decoded, checked before the proxy serves it. Validation catches what
// would otherwise only fail at handshake time (bad PEM, a key that is not the certificate's,
// an encrypted key, a CRL OpenSSL cannot read) so the last good material can keep serving.

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';

export interface CertificateMaterial {
  /** Leaf certificate first, then intermediates (PEM). */
  certChain?: string;
  privateKey?: string;
  /** Trusted CAs for verifying peers (PEM, one or more certificates). */
  caCertificates?: string;
  /** Certificate revocation list(s) for the CAs (PEM). */
  crl?: string;
}

export type KeyType = 'RSA' | 'EC' | 'ED25519' | 'ED448' | 'RSA-PSS' | 'DSA' | 'OTHER';

/** What validation learned about accepted material (for logs, metrics and context building). */
export interface MaterialInfo {
  /** Key algorithm of the leaf; undefined for CA-only material. */
  keyType?: KeyType;
  /** Leaf subject and SANs (Node's `subjectAltName` text), for logs. */
  subject?: string;
  subjectAltName?: string;
  /** When the leaf expires; for CA-only material, when the first CA expires. */
  notAfter?: Date;
  /** Expired material is still accepted (Envoy serves it too) but flagged. */
  expired: boolean;
  caCount: number;
  hasCrl: boolean;
}

export type MaterialCheck = { ok: true; info: MaterialInfo } | { ok: false; error: string };

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Validates material; never throws. Every field present must be usable. */
export function inspectMaterial(material: CertificateMaterial, now: Date = new Date()): MaterialCheck {
  const { certChain, privateKey, caCertificates, crl } = material;
  if (!certChain && !privateKey && !caCertificates && !crl) return fail('no certificate, private key or CA certificate');
  if (privateKey && !certChain) return fail('private key without a certificate chain');
  if (certChain && !privateKey) return fail('certificate chain without a private key');

  const info: MaterialInfo = { expired: false, caCount: 0, hasCrl: false };
  if (certChain && privateKey) {
    const chain = parseCertificates(certChain, 'certificate chain');
    if (typeof chain === 'string') return fail(chain);
    const key = parsePrivateKey(privateKey);
    if (typeof key === 'string') return fail(key);
    const leaf = chain[0]!;
    if (!leaf.checkPrivateKey(key)) return fail(`private key does not match the certificate (${leaf.subject.replace(/\n/g, ', ')})`);
    info.keyType = keyTypeOf(key);
    info.subject = leaf.subject.replace(/\n/g, ', ');
    info.subjectAltName = leaf.subjectAltName;
    info.notAfter = new Date(leaf.validTo);
  }
  if (caCertificates) {
    const cas = parseCertificates(caCertificates, 'CA certificates');
    if (typeof cas === 'string') return fail(cas);
    info.caCount = cas.length;
    if (!info.notAfter) info.notAfter = new Date(Math.min(...cas.map((c) => Date.parse(c.validTo))));
  }
  if (crl) {
    const problem = checkCrl(crl);
    if (problem) return fail(problem);
    info.hasCrl = true;
  }
  info.expired = info.notAfter !== undefined && info.notAfter.getTime() <= now.getTime();
  return { ok: true, info };
}

/** Every PEM certificate in `pem`, in order, or a reason naming `what`. */
export function parseCertificates(pem: string, what: string): X509Certificate[] | string {
  const blocks = pem.match(CERTIFICATE_BLOCK);
  if (!blocks) return `${what}: no PEM CERTIFICATE block`;
  const certificates: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block));
    } catch (err) {
      return `${what}: certificate ${i + 1} does not parse (${errorText(err)})`;
    }
  }
  return certificates;
}

function parsePrivateKey(pem: string): KeyObject | string {
  // Encrypted keys would need a passphrase from somewhere; Istio does not support them either.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) return 'private key is encrypted (passphrases are not supported)';
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) return 'private key: no PEM PRIVATE KEY block';
  try {
    return createPrivateKey(pem);
  } catch (err) {
    return `private key does not parse (${errorText(err)})`;
  }
}

function checkCrl(pem: string): string | undefined {
  if (!pem.includes('-----BEGIN X509 CRL-----')) return 'CRL: no PEM X509 CRL block';
  // Node has no CRL parser; loading it into a throwaway context is the check OpenSSL will
  // apply later. `ca: []` keeps Node from loading its root store for nothing.
  try {
    createSecureContext({ ca: [], crl: pem });
    return undefined;
  } catch (err) {
    return `CRL does not parse (${errorText(err)})`;
  }
}

function keyTypeOf(key: KeyObject): KeyType {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RSA';
    case 'rsa-pss':
      return 'RSA-PSS';
    case 'ec':
      return 'EC';
    case 'ed25519':
      return 'ED25519';
    case 'ed448':
      return 'ED448';
    case 'dsa':
      return 'DSA';
    default:
      return 'OTHER';
  }
}

function fail(error: string): MaterialCheck {
  return { ok: false, error };
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
