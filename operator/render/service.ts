// The gateway Service: the ports Gateway servers name (`servers[].port.number`) and the
// targetPorts the proxy listens on. Ingress: LoadBalancer with externalTrafficPolicy Local
// (client IPs preserved); egress: ClusterIP.

import type { V1ServiceSpec } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { namespacedMeta, type RenderedObject } from './metadata.js';

export interface RenderedService extends RenderedObject {
  apiVersion: 'v1';
  kind: 'Service';
  spec: V1ServiceSpec;
}

export function renderService(r: ResolvedGateway): RenderedService {
  const s = r.service;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: namespacedMeta(r, r.name, s.annotations),
    spec: {
      type: s.type,
      selector: { ...r.selectorLabels },
      ports: s.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol, ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}) })),
      ...(s.externalTrafficPolicy ? { externalTrafficPolicy: s.externalTrafficPolicy } : {}),
      ...(s.loadBalancerClass !== undefined ? { loadBalancerClass: s.loadBalancerClass } : {}),
      ...(s.loadBalancerIP !== undefined ? { loadBalancerIP: s.loadBalancerIP } : {}),
      ...(s.loadBalancerSourceRanges !== undefined ? { loadBalancerSourceRanges: s.loadBalancerSourceRanges } : {}),
    },
  };
}
