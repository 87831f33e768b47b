// GatewayDeployment → the objects that run it. Pure: plain data in, plain data out, the same
// output for the same input. A reconciler server-side-applies each object in the order
// given (identity and permissions before the pods that need them) and deletes the objects
// of RENDERED_KINDS it owns that are no longer in the list (an HPA after autoscaling is
// turned off).

import { applyDefaults, type RenderOptions, type ResolvedGateway } from '../api/defaults.js';
import { assertValidGatewayDeployment } from '../api/validate.js';
import type { GatewayDeployment } from '../api/types.js';
import { renderClusterRoleBinding } from './cluster-role-binding.js';
import { renderClusterRole } from './cluster-role.js';
import { renderDeployment } from './deployment.js';
import { renderHorizontalPodAutoscaler } from './horizontal-pod-autoscaler.js';
import type { RenderedObject } from './metadata.js';
import { renderPodDisruptionBudget } from './pod-disruption-budget.js';
import { renderRoleBinding } from './role-binding.js';
import { renderRole } from './role.js';
import { renderService } from './service.js';
import { renderServiceAccount } from './service-account.js';

export type { RenderOptions, ResolvedGateway } from '../api/defaults.js';
export type { RenderedMeta, RenderedObject } from './metadata.js';
export { renderProxyContainer, renderProxyPodTemplate, PROXY_CONTAINER_NAME } from './pod-template.js';
export { GATEWAY_CLUSTER_RULES } from './cluster-role.js';
export { GATEWAY_NAMESPACE_RULES } from './role.js';

export interface RenderedKind {
  apiVersion: string;
  kind: string;
  /** The REST resource name. */
  plural: string;
  namespaced: boolean;
}

/** Every kind the renderer can produce, in apply order: what the operator watches, prunes and needs RBAC for. */
export const RENDERED_KINDS: readonly RenderedKind[] = [
  { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', plural: 'roles', namespaced: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', plural: 'rolebindings', namespaced: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', plural: 'clusterroles', namespaced: false },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', namespaced: false },
  { apiVersion: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments', namespaced: true },
  { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', plural: 'horizontalpodautoscalers', namespaced: true },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', namespaced: true },
];

/** Renders from a GatewayDeployment whose defaults are already applied. */
export function renderResolvedGateway(r: ResolvedGateway): RenderedObject[] {
  const objects: Array<RenderedObject | undefined> = [
    renderServiceAccount(r),
    renderRole(r),
    renderRoleBinding(r),
    renderClusterRole(r),
    renderClusterRoleBinding(r),
    renderService(r),
    renderDeployment(r),
    renderHorizontalPodAutoscaler(r),
    renderPodDisruptionBudget(r),
  ];
  // Deep copies: the output shares nothing with the input or with itself, so a caller may
  // change an object (add a field manager's annotation, strip a field) without side effects.
  return objects.filter((o): o is RenderedObject => o !== undefined).map((o) => structuredClone(o));
}

/**
 * The desired objects of a GatewayDeployment (as read from the API: namespace and uid set).
 * Throws InvalidGatewayDeploymentError, listing every field problem, when the object is
 * invalid; call validateGatewayDeployment first to report them in status instead.
 */
export function renderGatewayObjects(gd: GatewayDeployment, options: RenderOptions = {}): RenderedObject[] {
  assertValidGatewayDeployment(gd, options);
  return renderResolvedGateway(applyDefaults(gd, options));
}
