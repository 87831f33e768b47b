// The namespaced half of a gateway's permissions, only in the gateway's own namespace, as
// Istio's gateways have them: Secrets (TLS credentials) and ConfigMaps (a CA named by
// caCertCredentialName may be a ConfigMap).

import type { V1PolicyRule } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { namespacedMeta, type RenderedObject } from './metadata.js';

/** Exported for the Helm chart test: the operator must hold every rule it grants. */
export const GATEWAY_NAMESPACE_RULES: readonly V1PolicyRule[] = [{ apiGroups: [''], resources: ['secrets', 'configmaps'], verbs: ['get', 'list', 'watch'] }];

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
