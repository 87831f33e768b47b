// The namespaced half of a gateway's permissions: Secrets (TLS credentials), and only in
// the gateway's own namespace, as Istio's gateways have them.

import type { V1PolicyRule } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { namespacedMeta, type RenderedObject } from './metadata.js';

/** Exported for the Helm chart test: the operator must hold every rule it grants. */
export const GATEWAY_NAMESPACE_RULES: readonly V1PolicyRule[] = [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }];

export interface RenderedRole extends RenderedObject {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'Role';
  rules: V1PolicyRule[];
}

export function renderRole(r: ResolvedGateway): RenderedRole {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: namespacedMeta(r, r.name),
    rules: structuredClone(GATEWAY_NAMESPACE_RULES) as V1PolicyRule[],
  };
}
