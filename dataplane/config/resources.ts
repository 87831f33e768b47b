// The Kubernetes and Istio objects Portway reads, as `kubectl apply` takes them.
// Only the fields Portway uses are typed; everything else passes through untouched.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  generation?: number;
  resourceVersion?: string;
  uid?: string;
}

export interface KubeObject<Spec = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Spec;
  [key: string]: unknown;
}

/** Where an object came from, for diagnostics ("examples/httpbin.yaml", "kubernetes"). */
export interface ObjectOrigin {
  source: string;
}

export type StoredObject = KubeObject & { origin?: ObjectOrigin };

export const ISTIO_NETWORKING_GROUP = 'networking.istio.io';

export type ConfigKind =
  | 'Gateway'
  | 'VirtualService'
  | 'DestinationRule'
  | 'ServiceEntry'
  | 'Service'
  | 'EndpointSlice'
  | 'Pod'
  | 'Secret'
  | 'ConfigMap';

export const CONFIG_KINDS: readonly ConfigKind[] = [
  'Gateway', 'VirtualService', 'DestinationRule', 'ServiceEntry', 'Service', 'EndpointSlice', 'Pod', 'Secret', 'ConfigMap',
];

export function objectKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? 'default'}/${name}`;
}

/** "namespace/name", the way Istio names objects in messages and references. */
export function namespacedName(obj: { metadata: ObjectMeta }): string {
  return `${obj.metadata.namespace ?? 'default'}/${obj.metadata.name}`;
}
