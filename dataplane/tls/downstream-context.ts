// Secure contexts for the TLS filter chains of a listener (Gateway servers with SIMPLE,
// MUTUAL or OPTIONAL_MUTUAL), built from the chain's DownstreamTls policy and the CURRENT
// material in the credential store, and rebuilt only when a credential's version changes:
// a rotated Secret is served from the next handshake on, open connections keep the context
// they started with, and no handshake pays for parsing PEM.
//
// Two ways to serve a chain (see DownstreamTlsChain):
//   - handshakeServer() (recommended): a tls.Server of the chain's own, never listening. The
//     listener reads the ClientHello (tls-termination.ts), picks the chain with
//     createSniSelector(...).select(sni) and hands the socket over. Everything in the policy
//     applies: both certificates of an RSA+ECDSA pair (OpenSSL picks by the client's
//     signature algorithms), min/max TLS version, ciphers, and the chain's own
//     client-certificate mode enforced by OpenSSL; clients without SNI reach the catch-all.
//   - contextProvider(), for one tls.Server shared by every chain of a port with
//     createSniSelector as its SNICallback. Node only swaps in the certificate, key and CA
//     store of the chosen context: only the LAST certificate of an RSA+ECDSA pair is served,
//     and TLS versions, ciphers and the client-certificate mode are the shared server's
//     (checked with Node 20 / OpenSSL 3.0). verifyPeer() then enforces the chain's mode, and
//     clients without SNI get the server's default context. Fine for one-certificate
//     SIMPLE chains with default versions and ciphers.
// ALPN is the serving code's choice (ALPNProtocols in serverOptions, or on the shared server).

import { constants as cryptoConstants } from 'node:crypto';
import tls from 'node:tls';
import type { DownstreamTls, DownstreamTlsMode } from '../snapshot/types.js';
import { errorText } from './certificate-material.js';
import { compileClientCertChecks, verifyDownstreamPeer, type PeerCertificateCheck } from './client-cert-checks.js';
import { describeCredentialKey, type CredentialStore, type StoredCredential } from './credential-store.js';
import { sessionIdContextFor, sessionTicketKeys } from './session-tickets.js';

const NO_RENEGOTIATION = cryptoConstants.SSL_OP_NO_RENEGOTIATION;

export interface SessionSettings {
  /** Distinct per chain and admission policy, so a session made on a SIMPLE chain is not resumed on a MUTUAL one. */
  sessionIdContext: string;
  /** 48 bytes; the same for every context of a chain so tickets survive rotation. */
  ticketKeys?: Buffer;
}

/**
 * Options for tls.createSecureContext / tls.Server#setSecureContext. Pure. `certificates`
 * are the chain's credentials in policy order; `ca` is the policy's caCredential, if any.
 */
export function downstreamSecureContextOptions(
  policy: DownstreamTls,
  certificates: readonly StoredCredential[],
  ca: StoredCredential | undefined,
  session: SessionSettings,
): tls.SecureContextOptions | Error {
  if (policy.mode === 'PASSTHROUGH') return new Error('PASSTHROUGH chains are not terminated');
  if (certificates.length === 0) return new Error('no server certificate configured');
  const byKeyType = new Map<string, string>();
  for (const c of certificates) {
    if (!c.material.certChain || !c.material.privateKey) return new Error(`${describeCredentialKey(c.key).source} has no certificate and private key`);
    const type = c.info.keyType ?? 'OTHER';
    const clash = byKeyType.get(type);
    // OpenSSL keeps one certificate per key type; a second one would silently replace the first.
    if (clash) return new Error(`${describeCredentialKey(clash).source} and ${describeCredentialKey(c.key).source} both hold ${type} keys; use one RSA and one ECDSA certificate`);
    byKeyType.set(type, c.key);
  }
  const options: tls.SecureContextOptions = {
    cert: certificates.map((c) => c.material.certChain!),
    key: certificates.map((c) => c.material.privateKey!),
    minVersion: policy.minProtocolVersion,
    maxVersion: policy.maxProtocolVersion ?? 'TLSv1.3',
    honorCipherOrder: true, // Envoy (BoringSSL) prefers the server's order too
    sessionIdContext: session.sessionIdContext,
    // No TLS 1.2 client-initiated renegotiation (node allows 3 per 10 minutes): each one is a
    // full handshake the client makes the server pay for; Envoy (BoringSSL) never allows it.
    secureOptions: NO_RENEGOTIATION,
  };
  if (session.ticketKeys) options.ticketKeys = session.ticketKeys;
  if (policy.ciphers) options.ciphers = policy.ciphers;
  if (policy.mode === 'MUTUAL' || policy.mode === 'OPTIONAL_MUTUAL') {
    const caSources = ca ? [ca] : certificates;
    const cas = caSources.map((c) => c.material.caCertificates).filter((p): p is string => !!p);
    if (cas.length === 0) {
      return new Error(`${policy.mode} needs CA certificates: caCertificates, cacert/ca.crt in the Secret, a "<name>-cacert" Secret, or caCertCredentialName`);
    }
    options.ca = cas;
    const crls = caSources.map((c) => c.material.crl).filter((p): p is string => !!p);
    if (crls.length > 0) options.crl = crls;
  }
  return options;
}

/** The tls.Server / TLSSocket verification settings for one mode. */
export function clientCertVerification(mode: DownstreamTlsMode): { requestCert: boolean; rejectUnauthorized: boolean } {
  switch (mode) {
    case 'MUTUAL':
      // OpenSSL then refuses a client without a certificate (alert certificate_required).
      // Node drops one whose certificate does not verify right after the handshake, without
      // an error event: the reason does not reach the logs, but nothing reaches the routes.
      return { requestCert: true, rejectUnauthorized: true };
    case 'OPTIONAL_MUTUAL':
      // Node would also drop clients that send no certificate; verifyPeer() rejects bad ones.
      return { requestCert: true, rejectUnauthorized: false };
    default:
      return { requestCert: false, rejectUnauthorized: false };
  }
}

/**
 * Settings for one tls.Server shared by chains with possibly different modes: certificates
 * are requested if any chain wants them and rejected in the handshake only if every chain is
 * MUTUAL; otherwise verifyPeer() decides per chain after the handshake.
 */
export function listenerClientCertVerification(modes: Iterable<DownstreamTlsMode>): { requestCert: boolean; rejectUnauthorized: boolean } {
  const all = [...modes];
  return {
    requestCert: all.some((m) => m === 'MUTUAL' || m === 'OPTIONAL_MUTUAL'),
    rejectUnauthorized: all.length > 0 && all.every((m) => m === 'MUTUAL'),
  };
}

export interface DownstreamTlsChainOptions {
  name: string;
  /** SNI names (exact or "*.suffix"); empty = any. */
  serverNames: readonly string[];
  policy: DownstreamTls;
  store: CredentialStore;
  /** 48 bytes; the proxy's shared keys (session-tickets.ts) when unset. */
  ticketKeys?: Buffer;
  /** Extra settings for handshakeServer(): ALPNProtocols, handshakeTimeout, … */
  serverOptions?: tls.TlsOptions;
}

type Resolved = { versions: string; options: tls.SecureContextOptions | Error };

/** One terminating filter chain: its contexts, kept current with the credential store. */
export class DownstreamTlsChain {
  readonly name: string;
  readonly serverNames: readonly string[];
  readonly policy: DownstreamTls;
  private readonly store: CredentialStore;
  private readonly session: SessionSettings;
  private readonly serverOptions: tls.TlsOptions;
  private readonly checks: PeerCertificateCheck | Error;
  private resolved: Resolved | undefined;
  /** The last context built, the versions it was built from, and the versions that failed since. */
  private context: { versions: string; value: tls.SecureContext } | undefined;
  private contextFailedFor: string | undefined;
  private server: tls.Server | undefined;
  private serverVersions: string | undefined;
  private serverFailedFor: string | undefined;
  private lastError: string | undefined;

  constructor(options: DownstreamTlsChainOptions) {
    this.name = options.name;
    this.serverNames = options.serverNames;
    this.policy = options.policy;
    this.store = options.store;
    this.serverOptions = options.serverOptions ?? {};
    this.session = {
      sessionIdContext: sessionIdContextFor(options.name, options.policy),
      ticketKeys: options.ticketKeys ?? sessionTicketKeys(),
    };
    this.checks = compileClientCertChecks(options.policy);
  }

  /**
   * The context for a handshake starting now, or why this chain cannot serve one. A missing
   * credential fails the chain; material that cannot be combined (MUTUAL without a CA, two
   * RSA keys) keeps the last good context serving and is reported in `error`.
   */
  readonly contextProvider = (): tls.SecureContext | Error => {
    const resolved = this.resolve();
    if (resolved instanceof Error) return resolved;
    const { versions, options } = resolved;
    if (this.context?.versions === versions) return this.context.value;
    if (this.contextFailedFor !== versions) {
      const built = options instanceof Error ? options : attempt(() => tls.createSecureContext(options));
      if (!(built instanceof Error)) {
        this.context = { versions, value: built };
        this.contextFailedFor = undefined;
        this.lastError = undefined;
        return built;
      }
      this.contextFailedFor = versions;
      this.lastError = `TLS chain ${this.name}: ${built.message}`;
    }
    return this.context?.value ?? new Error(this.lastError);
  };

  /**
   * A tls.Server holding this chain's context and client-certificate mode; give it sockets
   * with handOverToTlsServer (it emits 'connection') and listen for 'secureConnection' and
   * 'tlsClientError'. Updated in place on rotation; open connections are not disturbed.
   * Same failure rules as contextProvider.
   */
  handshakeServer(): tls.Server | Error {
    const resolved = this.resolve();
    if (resolved instanceof Error) return resolved;
    const { versions, options } = resolved;
    if (this.server && this.serverVersions === versions) return this.server;
    if (this.serverFailedFor !== versions) {
      const applied = options instanceof Error ? options : attempt(() => this.applyToServer(options));
      if (!(applied instanceof Error)) {
        this.serverVersions = versions;
        this.serverFailedFor = undefined;
        this.lastError = undefined;
        return applied;
      }
      this.serverFailedFor = versions;
      this.lastError = `TLS chain ${this.name}: ${applied.message}`;
    }
    return this.server ?? new Error(this.lastError);
  }

  /** After the handshake: null to serve the connection, else why to close it. */
  verifyPeer(socket: tls.TLSSocket): string | null {
    if (this.checks instanceof Error) return this.checks.message;
    return verifyDownstreamPeer(socket, this.policy.mode, this.checks);
  }

  /** Why the current material is not being served (an older context may still be), if it is not. */
  get error(): string | undefined {
    return this.lastError;
  }

  private applyToServer(options: tls.SecureContextOptions): tls.Server {
    if (this.server) this.server.setSecureContext(options);
    else this.server = tls.createServer({ ...this.serverOptions, ...options, ...clientCertVerification(this.policy.mode) });
    return this.server;
  }

  /** The store's current credentials for this chain and the context options built from them (cached per versions). */
  private resolve(): Resolved | Error {
    if (this.checks instanceof Error) return this.failWith(this.checks.message);
    const certificates: StoredCredential[] = [];
    for (const key of this.policy.credentials) {
      const credential = this.store.get(key);
      if (!credential) return this.failWith(this.store.unavailableReason(key));
      certificates.push(credential);
    }
    let ca: StoredCredential | undefined;
    if (this.policy.caCredential && this.policy.mode !== 'SIMPLE') {
      ca = this.store.get(this.policy.caCredential);
      if (!ca) return this.failWith(this.store.unavailableReason(this.policy.caCredential));
    }
    const versions = [...certificates, ...(ca ? [ca] : [])].map((c) => c.version).join(',');
    if (this.resolved?.versions !== versions) {
      this.resolved = { versions, options: downstreamSecureContextOptions(this.policy, certificates, ca, this.session) };
    }
    return this.resolved;
  }

  private failWith(reason: string): Error {
    this.lastError = `TLS chain ${this.name}: ${reason}`;
    return new Error(this.lastError);
  }
}

function attempt<T>(build: () => T): T | Error {
  try {
    return build();
  } catch (err) {
    return new Error(`building the TLS context failed: ${errorText(err)}`);
  }
}
