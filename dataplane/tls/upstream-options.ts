// TLS origination to upstreams (DestinationRule trafficPolicy.tls SIMPLE / MUTUAL): node
// tls.ConnectionOptions usable with tls.connect (TCP clusters) and as undici's `connect`
// option (HTTP clusters). The secure context is built once per credential version and
// shared, so a connection does not re-parse CA bundles.
//
// Verification follows Istio: the server chain must verify against caCertificates (Node's
// bundled Mozilla roots when unset, Node's stand-in for "system CAs"); with subjectAltNames
// the certificate must carry one of them (instead of matching the SNI), otherwise its name
// must match the SNI; insecureSkipVerify turns both off.

import { isIP } from 'node:net';
import tls from 'node:tls';
import type { UpstreamTlsPolicy } from '../snapshot/types.js';
import { errorText, type CertificateMaterial } from './certificate-material.js';
import type { CredentialStore } from './credential-store.js';
import { compileSanMatcher, parseSubjectAltNames } from './subject-alt-names.js';

export interface UpstreamTlsMaterial {
  /** The policy's credential: client cert/key (MUTUAL) and possibly a CA. */
  client?: CertificateMaterial;
  /** The policy's caCredential; wins over a CA in `client`. */
  ca?: CertificateMaterial;
}

/** Context options for origination. Pure. */
export function upstreamSecureContextOptions(policy: UpstreamTlsPolicy, material: UpstreamTlsMaterial): tls.SecureContextOptions | Error {
  if (policy.mode === 'DISABLE') return new Error('TLS origination is disabled (mode DISABLE)');
  const options: tls.SecureContextOptions = { minVersion: 'TLSv1.2' };
  if (policy.mode === 'MUTUAL') {
    if (!material.client?.certChain || !material.client.privateKey) return new Error('MUTUAL needs a client certificate and private key');
    options.cert = material.client.certChain;
    options.key = material.client.privateKey;
  }
  const ca = material.ca?.caCertificates ?? material.client?.caCertificates;
  if (ca) options.ca = ca; // unset: Node's default root store
  return options;
}

type IdentityCheck = (hostname: string, cert: tls.PeerCertificate) => Error | undefined;

/**
 * Connection options around a built context. `serverName` is the upstream's name (the
 * cluster host or the request authority), sent as SNI unless the policy sets `sni`.
 */
export function upstreamConnectionOptions(
  policy: UpstreamTlsPolicy,
  secureContext: tls.SecureContext,
  serverName: string,
  identityCheck: IdentityCheck | undefined = identityCheckFor(policy),
): tls.ConnectionOptions {
  const options: tls.ConnectionOptions = { secureContext, rejectUnauthorized: !policy.insecureSkipVerify };
  const sni = policy.sni || serverName;
  // RFC 6066 forbids IP addresses in SNI (Node warns); the name check then runs against the address.
  if (sni && !isIP(sni)) options.servername = sni;
  // Unset: Node's own check of the certificate against the SNI (or the address).
  if (identityCheck) options.checkServerIdentity = identityCheck;
  return options;
}

function identityCheckFor(policy: UpstreamTlsPolicy): IdentityCheck | undefined {
  if (policy.insecureSkipVerify) return () => undefined;
  return policy.subjectAltNames.length > 0 ? subjectAltNameCheck(policy.subjectAltNames) : undefined;
}

/** Builds the context and the connection options in one go (see UpstreamTls for the cached form). */
export function upstreamTlsOptions(policy: UpstreamTlsPolicy, material: UpstreamTlsMaterial, serverName: string): tls.ConnectionOptions | Error {
  const context = buildUpstreamContext(policy, material);
  return context instanceof Error ? context : upstreamConnectionOptions(policy, context, serverName);
}

function buildUpstreamContext(policy: UpstreamTlsPolicy, material: UpstreamTlsMaterial): tls.SecureContext | Error {
  const contextOptions = upstreamSecureContextOptions(policy, material);
  if (contextOptions instanceof Error) return contextOptions;
  try {
    return tls.createSecureContext(contextOptions);
  } catch (err) {
    return new Error(`building the upstream TLS context failed: ${errorText(err)}`);
  }
}

/** A checkServerIdentity accepting a certificate that carries one of `expected` as a SAN. */
export function subjectAltNameCheck(expected: readonly string[]): IdentityCheck {
  const matches = compileSanMatcher(expected);
  return (_hostname, cert) => {
    if (matches(parseSubjectAltNames(cert.subjectaltname))) return undefined;
    const err = new Error(`upstream certificate SANs (${cert.subjectaltname ?? 'none'}) match none of subjectAltNames [${expected.join(', ')}]`);
    return Object.assign(err, { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  };
}

/**
 * Origination for one policy, reading the credential store. The context is rebuilt only
 * when a credential rotates, and the same options object is handed out for the same
 * server name until then, so pools comparing options by identity are not rebuilt.
 */
export class UpstreamTls {
  private readonly identityCheck: IdentityCheck | undefined;
  private cached: { versions: string; context: tls.SecureContext | Error; byServerName: Map<string, tls.ConnectionOptions> } | undefined;

  constructor(
    readonly policy: UpstreamTlsPolicy,
    private readonly store: CredentialStore,
  ) {
    this.identityCheck = identityCheckFor(policy);
  }

  /** Options for connecting to `serverName`, or why origination cannot happen now (Envoy: UH). */
  options(serverName: string): tls.ConnectionOptions | Error {
    const client = this.policy.credential ? this.store.get(this.policy.credential) : undefined;
    const ca = this.policy.caCredential ? this.store.get(this.policy.caCredential) : undefined;
    if (this.policy.credential && !client) return new Error(this.store.unavailableReason(this.policy.credential));
    if (this.policy.caCredential && !ca) return new Error(this.store.unavailableReason(this.policy.caCredential));
    const versions = `${client?.version ?? ''},${ca?.version ?? ''}`;
    if (this.cached?.versions !== versions) {
      const context = buildUpstreamContext(this.policy, { client: client?.material, ca: ca?.material });
      this.cached = { versions, context, byServerName: new Map() };
    }
    const { context, byServerName } = this.cached;
    if (context instanceof Error) return context;
    let options = byServerName.get(serverName);
    if (!options) {
      options = upstreamConnectionOptions(this.policy, context, serverName, this.identityCheck);
      if (byServerName.size >= 1024) byServerName.clear(); // authorities come from requests: stay bounded
      byServerName.set(serverName, options);
    }
    return options;
  }
}
