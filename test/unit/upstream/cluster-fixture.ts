// Builds snapshot Clusters for upstream tests with Istio's defaults, overridable per field.

import type { Cluster, ConnectionPoolPolicy, Endpoint, LoadBalancerPolicy, OutlierDetectionPolicy, TrafficPolicy } from '../../../dataplane/snapshot/types.js';

const UNLIMITED = 4_294_967_295;

export function connectionPool(overrides: Partial<ConnectionPoolPolicy> = {}): ConnectionPoolPolicy {
  return {
    maxConnections: UNLIMITED,
    connectTimeout: 10_000,
    http1MaxPendingRequests: UNLIMITED,
    http2MaxRequests: UNLIMITED,
    maxRequestsPerConnection: 0,
    maxRetries: UNLIMITED,
    httpIdleTimeout: 3_600_000,
    h2UpgradePolicy: 'DEFAULT',
    ...overrides,
  };
}

export function outlier(overrides: Partial<OutlierDetectionPolicy> = {}): OutlierDetectionPolicy {
  return {
    consecutive5xxErrors: 5,
    consecutiveGatewayErrors: 0,
    interval: 10_000,
    baseEjectionTime: 30_000,
    maxEjectionPercent: 10,
    minHealthPercent: 0,
    ...overrides,
  };
}

export function endpoint(address: string, port: number, weight = 1): Endpoint {
  return { address, port, weight, labels: {} };
}

export interface ClusterSpec {
  name?: string;
  endpoints: Endpoint[];
  protocol?: Cluster['protocol'];
  resolution?: Cluster['resolution'];
  loadBalancer?: LoadBalancerPolicy;
  connectionPool?: Partial<ConnectionPoolPolicy>;
  outlierDetection?: OutlierDetectionPolicy;
  tls?: TrafficPolicy['tls'];
}

export function makeCluster(spec: ClusterSpec): Cluster {
  return {
    name: spec.name ?? 'outbound|80||backend.default.svc.cluster.local',
    host: 'backend.default.svc.cluster.local',
    port: 80,
    protocol: spec.protocol ?? 'http1',
    resolution: spec.resolution ?? 'static',
    endpoints: spec.endpoints,
    policy: {
      loadBalancer: spec.loadBalancer ?? { kind: 'ROUND_ROBIN' },
      connectionPool: connectionPool(spec.connectionPool),
      outlierDetection: spec.outlierDetection,
      tls: spec.tls,
    },
  };
}

export function clusterMap(...clusters: Cluster[]): Map<string, Cluster> {
  return new Map(clusters.map((c) => [c.name, c]));
}
