// What every rendered object shares: its shape for server-side apply, the labels the
// operator finds it by, and the ownerReference that lets the garbage collector delete it
// with its GatewayDeployment.

import type { V1OwnerReference } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { GATEWAY_NAMESPACE_LABEL, ownedObjectLabels } from '../api/labels.js';
import { API_VERSION, KIND } from '../api/types.js';

export interface RenderedMeta {
  name: string;
  namespace?: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: V1OwnerReference[];
}

/** A desired object, complete enough to server-side apply as is. */
export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: RenderedMeta;
  [field: string]: unknown;
}

/**
 * controller: true marks the GatewayDeployment as the one managing the object;
 * blockOwnerDeletion: true makes a foreground deletion of the GatewayDeployment wait for it.
 */
export function ownerReference(r: ResolvedGateway): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: r.name, uid: r.uid, controller: true, blockOwnerDeletion: true };
}

/** Metadata of a namespaced object: same namespace as the GatewayDeployment, owned by it. */
export function namespacedMeta(r: ResolvedGateway, name: string, annotations?: Record<string, string>): RenderedMeta {
  return {
    name,
    namespace: r.namespace,
    labels: ownedObjectLabels(r.name),
    ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
    ownerReferences: [ownerReference(r)],
  };
}

/**
 * Metadata of a cluster-scoped object. A namespaced owner cannot own it (the garbage
 * collector would treat the reference as unresolvable), so it carries no ownerReference:
 * the reconciler deletes it, found by these labels, before it removes its finalizer from
 * the GatewayDeployment.
 */
export function clusterScopedMeta(r: ResolvedGateway, name: string): RenderedMeta {
  return { name, labels: { ...ownedObjectLabels(r.name), [GATEWAY_NAMESPACE_LABEL]: r.namespace } };
}
