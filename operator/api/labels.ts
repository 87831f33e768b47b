// The labels that tie a gateway's objects to its GatewayDeployment. They are API: the
// operator's informers filter on them, the scale subresource publishes the selector, and
// the Deployment selector built from them can never change once created (it is immutable).

/** Selects a gateway's pods (Deployment, Service and PDB selectors) and marks every object it owns. */
export const GATEWAY_LABEL = 'portway.dev/gateway';
/** On cluster-scoped objects only: they have no namespace of their own to say whose they are. */
export const GATEWAY_NAMESPACE_LABEL = 'portway.dev/gateway-namespace';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'portway-operator';

/** The pod selector of a gateway: one label, so it stays the same whatever `spec.labels` says. */
export function gatewayPodSelector(name: string): Record<string, string> {
  return { [GATEWAY_LABEL]: name };
}

/** A selector in the string form the scale subresource wants (`status.selector`). */
export function selectorString(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Labels on every object the operator renders for a gateway. */
export function ownedObjectLabels(name: string): Record<string, string> {
  return { [MANAGED_BY_LABEL]: MANAGED_BY, [GATEWAY_LABEL]: name };
}

/**
 * Names a cluster-scoped object of a gateway (ClusterRole, ClusterRoleBinding). Namespace and
 * name are both DNS labels and cannot contain ':', so no two gateways share a name, which
 * `portway-gateway-<namespace>-<name>` would not guarantee (a-b/c and a/b-c).
 */
export function clusterScopedName(namespace: string, name: string): string {
  return `portway-gateway:${namespace}:${name}`;
}
