// The translator: the whole object store → one immutable snapshot for one proxy.
// Pure: no I/O, no clock except the timestamp passed in, same input → same output.

import type { ConfigSet } from '../store/object-store.js';
import type { CredentialRef, Snapshot } from '../snapshot/types.js';
import { ClusterBuilder } from './clusters.js';
import { DiagnosticSink } from './diagnostics.js';
import { parseGatewayServers, selectGateways, type ProxyIdentity } from './gateways.js';
import { buildListeners } from './listeners.js';
import { buildServiceRegistry } from './service-registry.js';
import { viewVirtualServices } from './virtual-services.js';

export type { ProxyIdentity } from './gateways.js';

export interface TranslateOptions {
  version: number;
  builtAt?: string;
}

export function translate(config: ConfigSet, identity: ProxyIdentity, options: TranslateOptions): Snapshot {
  const sink = new DiagnosticSink();
  const credentials = new Map<string, CredentialRef>();
  const registry = buildServiceRegistry(config, sink);
  const clusters = new ClusterBuilder(registry, config.DestinationRule, identity.namespace, sink);
  const servers = selectGateways(config.Gateway, identity).flatMap((gw) => parseGatewayServers(gw, identity, config.Service, sink, credentials));
  const { roots, delegates } = viewVirtualServices(config.VirtualService, sink);
  const listeners = buildListeners({ servers, roots, delegates, clusters, sink, bindAddress: identity.bindAddress ?? '0.0.0.0' });
  return {
    version: options.version,
    builtAt: options.builtAt ?? new Date(0).toISOString(),
    listeners,
    clusters: clusters.result(),
    credentials,
    diagnostics: sink.items,
  };
}
