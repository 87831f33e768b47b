// Checks on a downstream client certificate beyond chain verification, from a Gateway
// server's tls block: subjectAltNames, verifyCertificateSpki, verifyCertificateHash. As in
// Envoy, the SAN check and the pin check are ANDed, and a certificate passes the pins when
// it matches either an SPKI pin or a certificate hash. Expected values are compiled once per
// policy; the per-connection check is a few set lookups and two hashes.

import { createHash, type X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { DownstreamTlsMode } from '../snapshot/types.js';
import { compileSanMatcher, subjectAltNamesOf } from './subject-alt-names.js';

export interface ClientCertPolicy {
  subjectAltNames: readonly string[];
  verifyCertificateSpki: readonly string[];
  verifyCertificateHash: readonly string[];
}

/** null when the certificate passes, else why it does not. */
export type PeerCertificateCheck = (cert: X509Certificate) => string | null;

/** Compiles the expected names and pins; an Error names a malformed pin. */
export function compileClientCertChecks(policy: ClientCertPolicy): PeerCertificateCheck | Error {
  const spkiPins = new Set<string>();
  for (const pin of policy.verifyCertificateSpki) {
    const bytes = Buffer.from(pin, 'base64');
    if (bytes.length !== 32 || bytes.toString('base64') !== pin.replace(/\s/g, '')) {
      return new Error(`verifyCertificateSpki entry ${JSON.stringify(pin)} is not a base64 SHA-256 digest`);
    }
    spkiPins.add(bytes.toString('base64'));
  }
  const hashPins = new Set<string>();
  for (const pin of policy.verifyCertificateHash) {
    const hex = pin.replace(/:/g, '').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex)) return new Error(`verifyCertificateHash entry ${JSON.stringify(pin)} is not a hex SHA-256 digest`);
    hashPins.add(hex);
  }
  const matchSans = policy.subjectAltNames.length > 0 ? compileSanMatcher(policy.subjectAltNames) : undefined;
  const pinned = spkiPins.size > 0 || hashPins.size > 0;

  return (cert) => {
    if (matchSans && !matchSans(subjectAltNamesOf(cert))) {
      return `client certificate SANs (${cert.subjectAltName ?? 'none'}) match none of subjectAltNames`;
    }
    if (pinned && !spkiPins.has(spkiSha256(cert)) && !hashPins.has(certificateSha256(cert))) {
      return 'client certificate matches neither verifyCertificateSpki nor verifyCertificateHash';
    }
    return null;
  };
}

/** Base64 SHA-256 of the DER SubjectPublicKeyInfo (the verifyCertificateSpki form). */
export function spkiSha256(cert: X509Certificate): string {
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

/** Lower-case hex SHA-256 of the DER certificate (the verifyCertificateHash form, without colons). */
export function certificateSha256(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('hex');
}

/**
 * The client-certificate verdict for an established server-side TLS socket:
 *   MUTUAL           a certificate is required and must verify against the chain's CA
 *   OPTIONAL_MUTUAL  none is fine; one that was sent must verify
 *   SIMPLE           whatever was sent is ignored
 * followed by `check` for any certificate that was sent. Needed when one tls.Server serves
 * chains with different modes (it must then request certificates without rejecting them);
 * also cheap to call when OpenSSL has already enforced the mode.
 */
export function verifyDownstreamPeer(socket: TLSSocket, mode: DownstreamTlsMode, check?: PeerCertificateCheck): string | null {
  if (mode !== 'MUTUAL' && mode !== 'OPTIONAL_MUTUAL') return null;
  const cert = socket.getPeerX509Certificate();
  if (!cert) return mode === 'MUTUAL' ? 'client certificate required' : null;
  if (!socket.authorized) return `client certificate rejected: ${String(socket.authorizationError ?? 'not verified')}`;
  return check ? check(cert) : null;
}
