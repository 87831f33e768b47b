// The translator: the whole object store → one immutable snapshot for one proxy.
// Pure: no I/O, no clock except the timestamp passed in, same input → same output.

import type { StoredObject } from '../config/resources.js';
import type { ConfigSet } from '../store/object-store.js';
import type { CredentialRef, Snapshot } from '../snapshot/types.js';
import { ClusterBuilder } from './clusters.js';
import { DiagnosticSink } from './diagnostics.js';
import { parseGatewayServers, selectGateways, type ProxyIdentity } from './gateways.js';
import { buildListeners } from './listeners.js';
import { buildServiceRegistry } from './service-registry.js';
import { reportUnboundHosts, viewVirtualServices } from './virtual-services.js';
import { reportUnknownFields } from './unknown-fields.js';

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
  const selected = selectGateways(config.Gateway, identity);
  if (selected.length === 0) warnNoGatewaySelects(config.Gateway, identity, sink);
  const servers = selected.flatMap((gw) => parseGatewayServers(gw, identity, config.Service, sink, credentials));
  const { roots, delegates } = viewVirtualServices(config.VirtualService, sink);
  reportUnboundHosts(roots, config.Gateway, servers, sink);
  reportUnknownFields(config, sink);
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

/**
 * A proxy that no Gateway selects has no listener: almost always a label mismatch, so it is a
 * warning on the proxy itself (kind "Proxy", named by its labels), logged and listed by
 * `portway proxy-config diagnostics`, naming the Gateways that exist and what they select.
 */
function warnNoGatewaySelects(gateways: readonly StoredObject[], identity: ProxyIdentity, sink: DiagnosticSink): void {
  const labels = Object.entries(identity.labels).map(([k, v]) => `${k}=${v}`).join(',');
  const proxy: StoredObject = { apiVersion: 'portway.dev/v1alpha1', kind: 'Proxy', metadata: { name: labels || '(no labels)', namespace: identity.namespace } };
  const shown = gateways.slice(0, 5).map((gw) => {
    const selector = (gw.spec as { selector?: Record<string, string> } | undefined)?.selector ?? {};
    return `${gw.metadata.namespace ?? 'default'}/${gw.metadata.name} selects {${Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',')}}`;
  });
  const more = gateways.length > shown.length ? `, and ${gateways.length - shown.length} more` : '';
  const found = gateways.length === 0 ? 'there is no Gateway in the configuration' : `${shown.join('; ')}${more}`;
  sink.warning(proxy, 'labels', `no Gateway selects this proxy's labels {${labels}}, so it has no listener: ${found}`);
}
