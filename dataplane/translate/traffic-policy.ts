// DestinationRule traffic policies: which rule applies to a host, how top-level,
// port-level and subset-level policies combine, and Envoy's defaults for what is unset.

import type { StoredObject } from '../config/resources.js';
import type {
  ConnectionPoolPolicy,
  LoadBalancerPolicy,
  OutlierDetectionPolicy,
  TrafficPolicy,
  UpstreamTlsPolicy,
} from '../snapshot/types.js';
import type { DiagnosticSink } from './diagnostics.js';
import { parseDuration } from './durations.js';
import { isVisibleTo } from './export-to.js';
import { hostCovers, normalizeHost, resolveShortName } from './hosts.js';

const UNLIMITED = 4_294_967_295;

/** Raw Istio TrafficPolicy sub-policies: each replaces the one below it as a whole. */
export interface RawTrafficPolicy {
  loadBalancer?: Record<string, unknown>;
  connectionPool?: { tcp?: Record<string, unknown>; http?: Record<string, unknown> };
  outlierDetection?: Record<string, unknown>;
  tls?: Record<string, unknown>;
  portLevelSettings?: Array<RawTrafficPolicy & { port?: { number?: number } }>;
}

export interface SelectedRule {
  rule: StoredObject;
  policy?: RawTrafficPolicy;
  subsets: Array<{ name: string; labels: Record<string, string>; trafficPolicy?: RawTrafficPolicy }>;
}

/**
 * The DestinationRule for a host as a gateway in `proxyNamespace` sees it: rules in the proxy's
 * namespace first, then the service's namespace, then the config root (istio-system).
 * Several rules in that namespace merge: the oldest wins a subset name and the top-level policy.
 */
export function selectDestinationRule(
  rules: readonly StoredObject[],
  host: string,
  proxyNamespace: string,
  serviceNamespace: string | undefined,
  rootNamespace = 'istio-system',
): SelectedRule | undefined {
  const matching = rules
    .filter((dr) => {
      const spec = (dr.spec ?? {}) as { host?: string; exportTo?: string[] };
      if (typeof spec.host !== 'string') return false;
      const ns = dr.metadata.namespace ?? 'default';
      const drHost = resolveShortName(spec.host, ns);
      return hostCovers(drHost, normalizeHost(host)) && isVisibleTo(spec.exportTo, ns, proxyNamespace);
    })
    .sort(byAge);
  for (const ns of [proxyNamespace, serviceNamespace, rootNamespace]) {
    if (!ns) continue;
    const inNs = matching.filter((dr) => (dr.metadata.namespace ?? 'default') === ns);
    if (inNs.length > 0) return mergeRules(mostSpecificFirst(inNs, host));
  }
  const rest = matching.filter((dr) => dr.metadata.namespace !== undefined);
  return rest.length > 0 ? mergeRules(mostSpecificFirst(rest, host)) : undefined;
}

function mostSpecificFirst(rules: StoredObject[], host: string): StoredObject[] {
  const exact = rules.filter((r) => normalizeHost((r.spec as { host: string }).host) === normalizeHost(host));
  return exact.length > 0 ? exact : rules;
}

function mergeRules(rules: StoredObject[]): SelectedRule {
  const subsets: SelectedRule['subsets'] = [];
  let policy: RawTrafficPolicy | undefined;
  for (const rule of rules) {
    const spec = (rule.spec ?? {}) as { trafficPolicy?: RawTrafficPolicy; subsets?: SelectedRule['subsets'] };
    policy ??= spec.trafficPolicy;
    for (const subset of spec.subsets ?? []) {
      if (subset?.name && !subsets.some((s) => s.name === subset.name)) subsets.push({ ...subset, labels: subset.labels ?? {} });
    }
  }
  return { rule: rules[0]!, policy, subsets };
}

export function byAge(a: StoredObject, b: StoredObject): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const na = `${a.metadata.namespace}/${a.metadata.name}`;
  const nb = `${b.metadata.namespace}/${b.metadata.name}`;
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/** Applies port-level settings, then the subset's own policy (with its port-level settings). */
export function effectiveRawPolicy(selected: SelectedRule | undefined, port: number, subset?: string): RawTrafficPolicy {
  const layered: RawTrafficPolicy = {};
  const overlay = (p: RawTrafficPolicy | undefined) => {
    if (!p) return;
    for (const key of ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const) {
      if (p[key] !== undefined) (layered as Record<string, unknown>)[key] = p[key];
    }
    const portLevel = p.portLevelSettings?.find((pl) => pl.port?.number === port);
    if (portLevel) overlay({ ...portLevel, portLevelSettings: undefined });
  };
  overlay(selected?.policy);
  if (subset) overlay(selected?.subsets.find((s) => s.name === subset)?.trafficPolicy);
  return layered;
}

/** Compiles a raw policy with Envoy's defaults; bad fields are reported and fall back to the default. */
export function compileTrafficPolicy(raw: RawTrafficPolicy, rule: StoredObject | undefined, sink: DiagnosticSink, proxyNamespace: string): TrafficPolicy {
  const report = (field: string, message: string) => {
    if (rule) sink.error(rule, `spec.trafficPolicy.${field}`, message);
  };
  const duration = (value: unknown, field: string, fallback: number): number => {
    if (value === undefined) return fallback;
    const d = parseDuration(value);
    if (typeof d === 'number') return d;
    report(field, d.error);
    return fallback;
  };
  const count = (value: unknown, field: string, fallback: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) {
      report(field, 'must be a non-negative integer');
      return fallback;
    }
    return n;
  };

  const tcp = raw.connectionPool?.tcp ?? {};
  const http = raw.connectionPool?.http ?? {};
  const keepalive = tcp.tcpKeepalive as Record<string, unknown> | undefined;
  const connectionPool: ConnectionPoolPolicy = {
    maxConnections: count(tcp.maxConnections, 'connectionPool.tcp.maxConnections', UNLIMITED) || UNLIMITED,
    connectTimeout: duration(tcp.connectTimeout, 'connectionPool.tcp.connectTimeout', 10_000),
    tcpKeepalive: keepalive
      ? {
          time: keepalive.time === undefined ? undefined : duration(keepalive.time, 'connectionPool.tcp.tcpKeepalive.time', 7_200_000),
          interval: keepalive.interval === undefined ? undefined : duration(keepalive.interval, 'connectionPool.tcp.tcpKeepalive.interval', 75_000),
          probes: keepalive.probes === undefined ? undefined : count(keepalive.probes, 'connectionPool.tcp.tcpKeepalive.probes', 9),
        }
      : undefined,
    tcpIdleTimeout: tcp.idleTimeout === undefined ? undefined : duration(tcp.idleTimeout, 'connectionPool.tcp.idleTimeout', 3_600_000),
    http1MaxPendingRequests: count(http.http1MaxPendingRequests, 'connectionPool.http.http1MaxPendingRequests', UNLIMITED) || UNLIMITED,
    http2MaxRequests: count(http.http2MaxRequests, 'connectionPool.http.http2MaxRequests', UNLIMITED) || UNLIMITED,
    maxRequestsPerConnection: count(http.maxRequestsPerConnection, 'connectionPool.http.maxRequestsPerConnection', 0),
    maxRetries: count(http.maxRetries, 'connectionPool.http.maxRetries', UNLIMITED) || UNLIMITED,
    httpIdleTimeout: duration(http.idleTimeout, 'connectionPool.http.idleTimeout', 3_600_000),
    h2UpgradePolicy: (['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'].includes(String(http.h2UpgradePolicy)) ? http.h2UpgradePolicy : 'DEFAULT') as ConnectionPoolPolicy['h2UpgradePolicy'],
  };

  let outlierDetection: OutlierDetectionPolicy | undefined;
  const od = raw.outlierDetection;
  if (od) {
    const legacy = od.consecutiveErrors;
    outlierDetection = {
      consecutive5xxErrors: count(od.consecutive5xxErrors ?? legacy, 'outlierDetection.consecutive5xxErrors', 5),
      consecutiveGatewayErrors: count(od.consecutiveGatewayErrors, 'outlierDetection.consecutiveGatewayErrors', 0),
      interval: duration(od.interval, 'outlierDetection.interval', 10_000),
      baseEjectionTime: duration(od.baseEjectionTime, 'outlierDetection.baseEjectionTime', 30_000),
      maxEjectionPercent: Math.min(100, count(od.maxEjectionPercent, 'outlierDetection.maxEjectionPercent', 10)),
      minHealthPercent: Math.min(100, count(od.minHealthPercent, 'outlierDetection.minHealthPercent', 0)),
    };
  }

  return {
    loadBalancer: compileLoadBalancer(raw.loadBalancer, report),
    connectionPool,
    outlierDetection,
    tls: compileUpstreamTls(raw.tls, report, proxyNamespace),
  };
}

function compileLoadBalancer(lb: Record<string, unknown> | undefined, report: (field: string, message: string) => void): LoadBalancerPolicy {
  if (!lb) return { kind: 'LEAST_REQUEST' };
  const ch = lb.consistentHash as Record<string, unknown> | undefined;
  if (ch) {
    const ringHash = ch.ringHash as { minimumRingSize?: number } | undefined;
    const algorithm = ch.maglev ? 'maglev' : 'ringHash';
    const minimumRingSize = Number(ringHash?.minimumRingSize ?? ch.minimumRingSize ?? 1024) || 1024;
    const cookie = ch.httpCookie as { name?: string; path?: string; ttl?: string } | undefined;
    if (typeof ch.httpHeaderName === 'string') return { kind: 'CONSISTENT_HASH', hashOn: { kind: 'header', name: ch.httpHeaderName.toLowerCase() }, algorithm, minimumRingSize };
    if (cookie?.name) {
      const ttl = cookie.ttl === undefined ? undefined : parseDuration(cookie.ttl);
      if (ttl !== undefined && typeof ttl !== 'number') report('loadBalancer.consistentHash.httpCookie.ttl', ttl.error);
      return {
        kind: 'CONSISTENT_HASH',
        hashOn: { kind: 'cookie', name: cookie.name, path: cookie.path, ttl: typeof ttl === 'number' ? ttl : undefined },
        algorithm,
        minimumRingSize,
      };
    }
    if (ch.useSourceIp === true) return { kind: 'CONSISTENT_HASH', hashOn: { kind: 'sourceIp' }, algorithm, minimumRingSize };
    if (typeof ch.httpQueryParameterName === 'string') return { kind: 'CONSISTENT_HASH', hashOn: { kind: 'queryParameter', name: ch.httpQueryParameterName }, algorithm, minimumRingSize };
    report('loadBalancer.consistentHash', 'must set one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName');
    return { kind: 'LEAST_REQUEST' };
  }
  const simple = lb.simple ?? 'UNSPECIFIED';
  switch (simple) {
    case 'ROUND_ROBIN':
    case 'LEAST_REQUEST':
    case 'RANDOM':
    case 'PASSTHROUGH':
      return { kind: simple as "ROUND_ROBIN" | "LEAST_REQUEST" | "RANDOM" | "PASSTHROUGH" };
    case 'UNSPECIFIED':
    case 'LEAST_CONN':
      return { kind: 'LEAST_REQUEST' };
    default:
      report('loadBalancer.simple', `unknown load balancer ${JSON.stringify(simple)}`);
      return { kind: 'LEAST_REQUEST' };
  }
}

function compileUpstreamTls(tls: Record<string, unknown> | undefined, report: (field: string, message: string) => void, proxyNamespace: string): UpstreamTlsPolicy | undefined {
  if (!tls) return undefined;
  const mode = String(tls.mode ?? 'DISABLE');
  if (mode === 'DISABLE') return undefined;
  if (mode === 'ISTIO_MUTUAL') {
    report('tls.mode', 'ISTIO_MUTUAL needs mesh identities, which Portway does not issue; use SIMPLE or MUTUAL');
    return undefined;
  }
  if (mode !== 'SIMPLE' && mode !== 'MUTUAL') {
    report('tls.mode', `unknown TLS mode ${JSON.stringify(mode)}`);
    return undefined;
  }
  let credential: string | undefined;
  let caCredential: string | undefined;
  if (typeof tls.credentialName === 'string') {
    credential = secretCredentialKey(proxyNamespace, tls.credentialName);
  } else if (tls.clientCertificate || tls.privateKey) {
    credential = fileCredentialKey({ cert: tls.clientCertificate as string, key: tls.privateKey as string });
  }
  if (typeof tls.caCertificates === 'string') caCredential = fileCredentialKey({ ca: tls.caCertificates });
  if (mode === 'MUTUAL' && !credential) report('tls', 'MUTUAL needs credentialName, or clientCertificate and privateKey');
  return {
    mode,
    credential,
    caCredential,
    sni: typeof tls.sni === 'string' ? tls.sni : undefined,
    subjectAltNames: Array.isArray(tls.subjectAltNames) ? (tls.subjectAltNames as string[]) : [],
    insecureSkipVerify: tls.insecureSkipVerify === true,
  };
}

export function secretCredentialKey(namespace: string, name: string): string {
  return `secret:${namespace}/${name}`;
}

export function fileCredentialKey(files: { cert?: string; key?: string; ca?: string; crl?: string }): string {
  return `file:${files.cert ?? ''}|${files.key ?? ''}|${files.ca ?? ''}|${files.crl ?? ''}`;
}
