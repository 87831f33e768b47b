// Grants the gateway's Role to its ServiceAccount, in the gateway's namespace.

import type { RbacV1Subject, V1RoleRef } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { namespacedMeta, type RenderedObject } from './metadata.js';

export interface RenderedRoleBinding extends RenderedObject {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'RoleBinding';
  roleRef: V1RoleRef;
  subjects: RbacV1Subject[];
}

export function gatewaySubject(r: ResolvedGateway): RbacV1Subject {
  return { kind: 'ServiceAccount', name: r.name, namespace: r.namespace };
}

export function renderRoleBinding(r: ResolvedGateway): RenderedRoleBinding {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: namespacedMeta(r, r.name),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: r.name },
    subjects: [gatewaySubject(r)],
  };
}
