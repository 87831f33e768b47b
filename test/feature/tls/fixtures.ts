// Shared pieces of the TLS feature tests: policies, chains over a store, metric reads.

import { Registry } from 'prom-client';
import type { DownstreamTls } from '../../../dataplane/snapshot/types.js';
import { CredentialStore } from '../../../dataplane/tls/credential-store.js';
import { DownstreamTlsChain } from '../../../dataplane/tls/downstream-context.js';
import type { IssuedCert } from '../../support/certs.js';

export function policy(overrides: Partial<DownstreamTls> = {}): DownstreamTls {
  return {
    mode: 'SIMPLE',
    credentials: [],
    subjectAltNames: [],
    verifyCertificateSpki: [],
    verifyCertificateHash: [],
    minProtocolVersion: 'TLSv1.2',
    ...overrides,
  };
}

export function newStore(): { store: CredentialStore; registry: Registry } {
  const registry = new Registry();
  return { store: new CredentialStore({ registry }), registry };
}

/** Puts a leaf (and optionally CA material) into the store; fails the test if refused. */
export function putCert(store: CredentialStore, key: string, leaf: IssuedCert, extra: { ca?: string; crl?: string } = {}): void {
  const r = store.update(key, { certChain: leaf.chain, privateKey: leaf.key, caCertificates: extra.ca, crl: extra.crl });
  if (!r.accepted) throw new Error(r.rejection.reason);
}

export function chain(store: CredentialStore, name: string, serverNames: string[], overrides: Partial<DownstreamTls>, serverOptions?: ConstructorParameters<typeof DownstreamTlsChain>[0]['serverOptions']): DownstreamTlsChain {
  return new DownstreamTlsChain({ name, serverNames, policy: policy(overrides), store, serverOptions });
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (m?.values ?? []) as Array<{ labels: Record<string, string>; value: number }>;
  return values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value;
}
