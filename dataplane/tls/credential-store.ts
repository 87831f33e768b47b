// The live certificate material of the proxy, keyed by credential key (CredentialRef.key:
// "secret:<ns>/<name>", "ca:<ns>/<name>", "file:<cert>|<key>|<ca>|<crl>"). It plays the role
// of Envoy's SDS: sources (Secret reflector, file watcher) push material in, the TLS contexts
// read the current material at handshake time, so a rotation needs no new snapshot.
//
// A bad update never replaces good material: it is rejected, recorded with the credential's
// namespace/name and the reason, and counted; the last good material keeps serving.

import { EventEmitter } from 'node:events';
import { Counter, Gauge, type Registry } from 'prom-client';
import { inspectMaterial, type CertificateMaterial, type MaterialInfo } from './certificate-material.js';

export interface StoredCredential {
  readonly key: string;
  /** Unique across the store and increasing: caches key built contexts on it. */
  readonly version: number;
  readonly material: Readonly<CertificateMaterial>;
  readonly info: MaterialInfo;
  readonly updatedAt: Date;
}

export interface CredentialRejection {
  key: string;
  /** "Secret ns/name", "files /a.crt, /a.key", as people name the source. */
  source: string;
  namespace?: string;
  name?: string;
  reason: string;
  at: Date;
  /** Whether older good material is still being served for this key. */
  keptPrevious: boolean;
}

export type CredentialUpdate =
  | { accepted: true; credential: StoredCredential; changed: boolean }
  | { accepted: false; rejection: CredentialRejection };

export interface CredentialStoreEvents {
  /** The material of `key` changed or was removed. */
  change: [key: string];
  rejected: [rejection: CredentialRejection];
}

export interface CredentialStoreOptions {
  registry: Registry;
  now?: () => Date;
}

export class CredentialStore extends EventEmitter<CredentialStoreEvents> {
  private readonly credentials = new Map<string, StoredCredential>();
  private readonly rejections = new Map<string, CredentialRejection>();
  private readonly rejectionsTotal: Counter<'credential'>;
  private readonly expiry: Gauge<'credential'>;
  private readonly now: () => Date;
  private nextVersion = 1;

  constructor(options: CredentialStoreOptions) {
    super();
    this.now = options.now ?? (() => new Date());
    const registers = [options.registry];
    this.rejectionsTotal = new Counter({
      name: 'portway_credential_rejections_total',
      help: 'Certificate material rejected (bad PEM, key not matching the certificate, missing data); the last good material keeps serving.',
      labelNames: ['credential'],
      registers,
    });
    this.expiry = new Gauge({
      name: 'portway_credential_expiry_timestamp_seconds',
      help: 'When the served certificate of a credential expires (the first CA to expire for CA-only credentials), as a Unix timestamp.',
      labelNames: ['credential'],
      registers,
    });
  }

  /** Validates and stores material; on failure keeps what was there. */
  update(key: string, material: CertificateMaterial): CredentialUpdate {
    const current = this.credentials.get(key);
    if (current && sameMaterial(current.material, material)) {
      this.rejections.delete(key);
      return { accepted: true, credential: current, changed: false };
    }
    const check = inspectMaterial(material, this.now());
    if (!check.ok) return { accepted: false, rejection: this.reject(key, check.error) };
    const credential: StoredCredential = {
      key,
      version: this.nextVersion++,
      material: Object.freeze({ ...material }),
      info: check.info,
      updatedAt: this.now(),
    };
    this.credentials.set(key, credential);
    this.rejections.delete(key);
    if (check.info.notAfter) this.expiry.set({ credential: key }, Math.floor(check.info.notAfter.getTime() / 1000));
    this.emit('change', key);
    return { accepted: true, credential, changed: true };
  }

  /** Records that a source could not produce material for `key` (e.g. a Secret without the expected keys). */
  reject(key: string, reason: string): CredentialRejection {
    const rejection: CredentialRejection = {
      key,
      ...describeCredentialKey(key),
      reason,
      at: this.now(),
      keptPrevious: this.credentials.has(key),
    };
    this.rejections.set(key, rejection);
    this.rejectionsTotal.inc({ credential: key });
    this.emit('rejected', rejection);
    return rejection;
  }

  /** The Secret or files are gone: handshakes needing them fail from now on. */
  remove(key: string): boolean {
    const existed = this.credentials.delete(key);
    this.rejections.delete(key);
    if (existed) {
      this.expiry.remove({ credential: key });
      this.emit('change', key);
    }
    return existed;
  }

  get(key: string): StoredCredential | undefined {
    return this.credentials.get(key);
  }

  /** The reason the latest update of `key` was refused, until a good update arrives. */
  lastRejection(key: string): CredentialRejection | undefined {
    return this.rejections.get(key);
  }

  /** "Secret ns/name is not available (rejected: …)": why a user of `key` cannot serve. */
  unavailableReason(key: string): string {
    const rejection = this.rejections.get(key);
    return `${describeCredentialKey(key).source} is not available${rejection ? ` (rejected: ${rejection.reason})` : ''}`;
  }

  keys(): string[] {
    return [...this.credentials.keys()];
  }
}

/** Who to blame for a credential key, in the words of its source. */
export function describeCredentialKey(key: string): { source: string; namespace?: string; name?: string } {
  const ref = /^(secret|ca):([^/]*)\/(.+)$/.exec(key);
  if (ref) {
    const [, kind, namespace, name] = ref as unknown as [string, string, string, string];
    return { source: `${kind === 'ca' ? 'CA Secret/ConfigMap' : 'Secret'} ${namespace}/${name}`, namespace, name };
  }
  if (key.startsWith('file:')) {
    const files = key.slice('file:'.length).split('|').filter(Boolean);
    return { source: `files ${files.join(', ')}` };
  }
  return { source: key };
}

function sameMaterial(a: CertificateMaterial, b: CertificateMaterial): boolean {
  return a.certChain === b.certChain && a.privateKey === b.privateKey && a.caCertificates === b.caCertificates && a.crl === b.crl;
}
