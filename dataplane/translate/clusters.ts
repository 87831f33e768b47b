// Upstream clusters, built on demand for the destinations that bound routes reference:
// a gateway only carries the clusters its servers can reach.

import type { StoredObject } from '../config/resources.js';
import type { Cluster, Endpoint, UpstreamProtocol } from '../snapshot/types.js';
import type { DiagnosticSink } from './diagnostics.js';
import type { ServiceRegistry } from './service-registry.js';
import { compileTrafficPolicy, effectiveRawPolicy, selectDestinationRule } from './traffic-policy.js';

export interface DestinationSpec {
  host: string;
  subset?: string;
  port?: number;
}

export type ClusterResolution = { ok: true; cluster: Cluster } | { ok: false; error: string };

export class ClusterBuilder {
  private readonly clusters = new Map<string, Cluster>();

  constructor(
    private readonly registry: ServiceRegistry,
    private readonly destinationRules: readonly StoredObject[],
    private readonly proxyNamespace: string,
    private readonly diagnostics: DiagnosticSink,
  ) {}

  /** The cluster for a route destination; `referrer` is the VirtualService (for visibility and messages). */
  resolve(dest: DestinationSpec, referrerNamespace: string, l4 = false): ClusterResolution {
    const service = this.registry.lookup(dest.host, referrerNamespace);
    let port = dest.port;
    if (port === undefined) {
      if (service && service.ports.length === 1) port = service.ports[0]!.number;
      else if (service && service.ports.length > 1) {
        return { ok: false, error: `destination.port is required: ${dest.host} has ${service.ports.length} ports` };
      } else port = 80;
    }
    const name = `outbound|${port}|${dest.subset ?? ''}|${dest.host}`;
    const existing = this.clusters.get(name);
    if (existing) return { ok: true, cluster: existing };

    const servicePort = service?.ports.find((p) => p.number === port);
    const selected = selectDestinationRule(this.destinationRules, dest.host, this.proxyNamespace, service?.namespace);
    let endpoints: Endpoint[] = service && servicePort ? service.endpointsFor(servicePort) : [];
    if (dest.subset) {
      const subset = selected?.subsets.find((s) => s.name === dest.subset);
      if (!subset) {
        endpoints = [];
      } else {
        const wanted = Object.entries(subset.labels);
        endpoints = endpoints.filter((ep) => wanted.every(([k, v]) => ep.labels[k] === v));
      }
    }
    const policy = compileTrafficPolicy(effectiveRawPolicy(selected, port, dest.subset), selected?.rule, this.diagnostics, this.proxyNamespace);
    let protocol: UpstreamProtocol = servicePort?.protocol ?? 'http1';
    if (l4) protocol = 'tcp';
    else if (protocol === 'tcp' || protocol === 'tls') protocol = 'http1';
    if (protocol === 'http1' && policy.connectionPool.h2UpgradePolicy === 'UPGRADE') protocol = 'h2c';
    const cluster: Cluster = {
      name,
      host: dest.host,
      port,
      subset: dest.subset,
      protocol,
      resolution: service?.resolution ?? 'static',
      endpoints,
      policy,
      origin: service?.origin,
    };
    this.clusters.set(name, cluster);
    if (dest.subset && !selected?.subsets.some((s) => s.name === dest.subset)) {
      return { ok: false, error: `subset ${JSON.stringify(dest.subset)} of ${dest.host} is not defined by any DestinationRule` };
    }
    return { ok: true, cluster };
  }

  hasService(host: string, referrerNamespace: string): boolean {
    return this.registry.lookup(host, referrerNamespace) !== undefined;
  }

  result(): ReadonlyMap<string, Cluster> {
    return this.clusters;
  }
}
