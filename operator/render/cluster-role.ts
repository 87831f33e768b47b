// The cluster-wide half of a gateway's permissions: read the Istio networking resources
// (a Gateway in any namespace may select this gateway's pods, and VirtualServices bind
// across namespaces), the Services and EndpointSlices they route to, and pods for the
// labels DestinationRule subsets match. Read-only; RBAC cannot narrow pods to metadata,
// so the proxy asks for PartialObjectMetadata itself.

import type { V1PolicyRule } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { clusterScopedName } from '../api/labels.js';
import { clusterScopedMeta, type RenderedObject } from './metadata.js';

/** Exported for the Helm chart test: the operator must hold every rule it grants. */
export const GATEWAY_CLUSTER_RULES: readonly V1PolicyRule[] = [
  { apiGroups: ['networking.istio.io'], resources: ['gateways', 'virtualservices', 'destinationrules', 'serviceentries'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['services', 'pods'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
];

export interface RenderedClusterRole extends RenderedObject {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'ClusterRole';
  rules: V1PolicyRule[];
}

export function renderClusterRole(r: ResolvedGateway): RenderedClusterRole {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: clusterScopedMeta(r, clusterScopedName(r.namespace, r.name)),
    rules: structuredClone(GATEWAY_CLUSTER_RULES) as V1PolicyRule[],
  };
}
