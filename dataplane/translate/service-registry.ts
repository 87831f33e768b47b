// The services a gateway can send traffic to: Kubernetes Services with their EndpointSlices
// (pod labels from Pods, for subsets) and ServiceEntries, indexed by host name.

import type { StoredObject } from '../config/resources.js';
import type { ConfigSet } from '../store/object-store.js';
import type { Endpoint, UpstreamProtocol } from '../snapshot/types.js';
import type { DiagnosticSink } from './diagnostics.js';
import { hostCovers, normalizeHost, validHostPattern } from './hosts.js';
import { isVisibleTo } from './export-to.js';

export interface ServicePort {
  number: number;
  name: string;
  protocol: UpstreamProtocol;
}

export interface RegisteredService {
  host: string;
  namespace: string;
  origin: string; // "Service ns/name" | "ServiceEntry ns/name"
  ports: ServicePort[];
  resolution: 'static' | 'dns';
  /** Endpoints for one of `ports` (by service port number). */
  endpointsFor(port: ServicePort): Endpoint[];
  exportTo: string[];
}

export interface ServiceRegistry {
  /** The service for a host, as visible from `fromNamespace`; exact names first, then wildcard ServiceEntry hosts. */
  lookup(host: string, fromNamespace: string): RegisteredService | undefined;
}

/** Service port protocol from appProtocol or the Istio port-name convention ("http2-web"). */
export function portProtocol(name: string | undefined, appProtocol: string | undefined, declared?: string): UpstreamProtocol {
  const hint = (appProtocol ?? declared ?? name ?? '').toLowerCase();
  const word = hint.split('-')[0]!;
  if (word === 'http2' || word === 'grpc' || word === 'h2c' || hint === 'kubernetes.io/h2c') return 'h2c';
  if (word === 'tcp' || word === 'mongo' || word === 'redis' || word === 'mysql') return 'tcp';
  if (word === 'tls' || word === 'https') return 'tls';
  return 'http1';
}

export function buildServiceRegistry(config: ConfigSet, diagnostics: DiagnosticSink, clusterDomain = 'cluster.local'): ServiceRegistry {
  const exact = new Map<string, RegisteredService[]>();
  const wildcard: RegisteredService[] = [];
  const add = (svc: RegisteredService) => {
    if (svc.host.startsWith('*')) wildcard.push(svc);
    else exact.set(svc.host, [...(exact.get(svc.host) ?? []), svc]);
  };

  const podLabels = new Map<string, Record<string, string>>();
  for (const pod of config.Pod) podLabels.set(`${pod.metadata.namespace ?? 'default'}/${pod.metadata.name}`, pod.metadata.labels ?? {});
  const slicesByService = new Map<string, StoredObject[]>();
  for (const slice of config.EndpointSlice) {
    const svcName = slice.metadata.labels?.['kubernetes.io/service-name'];
    if (!svcName) continue;
    const key = `${slice.metadata.namespace ?? 'default'}/${svcName}`;
    slicesByService.set(key, [...(slicesByService.get(key) ?? []), slice]);
  }

  for (const svc of config.Service) add(kubernetesService(svc, slicesByService, podLabels, clusterDomain));
  for (const se of config.ServiceEntry) for (const s of serviceEntryServices(se, diagnostics)) add(s);

  return {
    lookup(host: string, fromNamespace: string): RegisteredService | undefined {
      const h = normalizeHost(host);
      const candidates = (exact.get(h) ?? []).filter((s) => isVisibleTo(s.exportTo, s.namespace, fromNamespace));
      if (candidates.length > 0) {
        // A Service in the caller's namespace wins, then the oldest definition (stable order).
        return candidates.find((s) => s.namespace === fromNamespace) ?? candidates[0];
      }
      let best: RegisteredService | undefined;
      for (const s of wildcard) {
        if (!hostCovers(s.host, h) || !isVisibleTo(s.exportTo, s.namespace, fromNamespace)) continue;
        if (!best || s.host.length > best.host.length) best = s;
      }
      return best;
    },
  };
}

interface K8sServiceSpec {
  type?: string;
  externalName?: string;
  ports?: Array<{ name?: string; port: number; targetPort?: number | string; protocol?: string; appProtocol?: string }>;
}

function kubernetesService(
  svc: StoredObject,
  slicesByService: Map<string, StoredObject[]>,
  podLabels: Map<string, Record<string, string>>,
  clusterDomain: string,
): RegisteredService {
  const ns = svc.metadata.namespace ?? 'default';
  const spec = (svc.spec ?? {}) as K8sServiceSpec;
  const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({
    number: Number(p.port),
    name: p.name ?? '',
    protocol: portProtocol(p.name, p.appProtocol),
  }));
  const slices = slicesByService.get(`${ns}/${svc.metadata.name}`) ?? [];
  const exportTo = (svc.metadata.annotations?.['networking.istio.io/exportTo'] ?? '*').split(',').map((s) => s.trim());
  const externalName = spec.type === 'ExternalName' ? spec.externalName : undefined;
  return {
    host: `${svc.metadata.name}.${ns}.svc.${clusterDomain}`,
    namespace: ns,
    origin: `Service ${ns}/${svc.metadata.name}`,
    ports,
    resolution: externalName ? 'dns' : 'static',
    exportTo,
    endpointsFor(port: ServicePort): Endpoint[] {
      if (externalName) return [{ address: externalName, port: port.number, labels: {}, weight: 1 }];
      const endpoints: Endpoint[] = [];
      for (const slice of slices) {
        const slicePorts = (slice.ports ?? []) as Array<{ name?: string; port?: number }>;
        const slicePort = slicePorts.find((sp) => (sp.name ?? '') === port.name);
        if (!slicePort?.port) continue;
        const items = (slice.endpoints ?? []) as Array<{
          addresses?: string[];
          conditions?: { ready?: boolean };
          targetRef?: { kind?: string; name?: string; namespace?: string };
          zone?: string;
        }>;
        for (const ep of items) {
          if (ep.conditions?.ready === false) continue;
          const labels = ep.targetRef?.kind === 'Pod' ? podLabels.get(`${ep.targetRef.namespace ?? ns}/${ep.targetRef.name}`) ?? {} : {};
          for (const address of ep.addresses ?? []) {
            endpoints.push({ address, port: slicePort.port, labels, weight: 1, zone: ep.zone, ref: ep.targetRef?.name });
          }
        }
      }
      return endpoints;
    },
  };
}

interface ServiceEntrySpec {
  hosts?: string[];
  ports?: Array<{ number: number; protocol?: string; name?: string; targetPort?: number }>;
  resolution?: string;
  location?: string;
  endpoints?: Array<{ address?: string; ports?: Record<string, number>; labels?: Record<string, string>; weight?: number; locality?: string }>;
  exportTo?: string[];
}

function serviceEntryServices(se: StoredObject, diagnostics: DiagnosticSink): RegisteredService[] {
  const ns = se.metadata.namespace ?? 'default';
  const spec = (se.spec ?? {}) as ServiceEntrySpec;
  const resolution = spec.resolution ?? 'NONE';
  if (!Array.isArray(spec.hosts) || spec.hosts.length === 0) {
    diagnostics.error(se, 'spec.hosts', 'at least one host is required');
    return [];
  }
  if (!['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'].includes(resolution)) {
    diagnostics.error(se, 'spec.resolution', `unknown resolution ${JSON.stringify(resolution)}`);
    return [];
  }
  const ports: Array<ServicePort & { targetPort?: number }> = [];
  (spec.ports ?? []).forEach((p, i) => {
    if (!Number.isInteger(p.number) || p.number < 1 || p.number > 65535) {
      diagnostics.error(se, `spec.ports[${i}].number`, 'must be a port number 1-65535');
      return;
    }
    ports.push({ number: p.number, name: p.name ?? '', protocol: portProtocol(p.name, undefined, p.protocol), targetPort: p.targetPort });
  });
  const endpoints = spec.endpoints ?? [];
  if (resolution === 'STATIC' && endpoints.length === 0) diagnostics.warning(se, 'spec.endpoints', 'STATIC resolution without endpoints: no traffic can reach these hosts');
  const result: RegisteredService[] = [];
  spec.hosts.forEach((rawHost, i) => {
    const host = normalizeHost(rawHost);
    if (!validHostPattern(host)) {
      diagnostics.error(se, `spec.hosts[${i}]`, `invalid host ${JSON.stringify(rawHost)}`);
      return;
    }
    const dns = resolution !== 'STATIC';
    result.push({
      host,
      namespace: ns,
      origin: `ServiceEntry ${ns}/${se.metadata.name}`,
      ports,
      resolution: dns ? 'dns' : 'static',
      exportTo: spec.exportTo ?? ['*'],
      endpointsFor(port: ServicePort): Endpoint[] {
        const declared = ports.find((p) => p.number === port.number);
        const defaultPort = declared?.targetPort ?? port.number;
        if (endpoints.length === 0) {
          // DNS (or NONE) with no endpoints: the host itself is resolved, as Istio does.
          return dns && !host.startsWith('*') ? [{ address: host, port: defaultPort, labels: {}, weight: 1 }] : [];
        }
        return endpoints
          .filter((ep) => typeof ep.address === 'string' && !ep.address.startsWith('unix://'))
          .map((ep) => ({
            address: ep.address!,
            port: (port.name && ep.ports?.[port.name]) || defaultPort,
            labels: ep.labels ?? {},
            weight: ep.weight && ep.weight > 0 ? ep.weight : 1,
            zone: ep.locality,
          }));
      },
    });
  });
  return result;
}
