// Grants the gateway's ClusterRole to its ServiceAccount. Cluster-scoped, so it has no
// ownerReference: the reconciler deletes it (by its labels) while the GatewayDeployment's
// finalizer holds the deletion, then removes the finalizer.

import type { RbacV1Subject, V1RoleRef } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { clusterScopedName } from '../api/labels.js';
import { clusterScopedMeta, type RenderedObject } from './metadata.js';
import { gatewaySubject } from './role-binding.js';

export interface RenderedClusterRoleBinding extends RenderedObject {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'ClusterRoleBinding';
  roleRef: V1RoleRef;
  subjects: RbacV1Subject[];
}

export function renderClusterRoleBinding(r: ResolvedGateway): RenderedClusterRoleBinding {
  const name = clusterScopedName(r.namespace, r.name);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: clusterScopedMeta(r, name),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
    subjects: [gatewaySubject(r)],
  };
}
