// The in-cluster source of the proxy: reflectors for what a gateway reads, feeding the
// object store. Secrets are read only in the proxy's own namespace.

import { KubeConfig } from '@kubernetes/client-node';
import type { ObjectStore } from '../store/object-store.js';
import { ReflectorSet, type WatchedKind } from '../../kube/reflector.js';

const ISTIO = 'networking.istio.io/v1';

export function gatewayWatchedKinds(namespace: string): WatchedKind[] {
  return [
    { kind: 'Gateway', apiVersion: ISTIO, plural: 'gateways' },
    { kind: 'VirtualService', apiVersion: ISTIO, plural: 'virtualservices' },
    { kind: 'DestinationRule', apiVersion: ISTIO, plural: 'destinationrules' },
    { kind: 'ServiceEntry', apiVersion: ISTIO, plural: 'serviceentries' },
    { kind: 'Service', apiVersion: 'v1', plural: 'services' },
    { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', plural: 'endpointslices' },
    {
      kind: 'Pod',
      apiVersion: 'v1',
      plural: 'pods',
      slim: (pod) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, labels: pod.metadata.labels } }),
    },
    { kind: 'Secret', apiVersion: 'v1', plural: 'secrets', namespace },
  ];
}

export interface KubernetesSourceOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  log?: (line: string) => void;
  watchIdleMs?: number;
}

export function createKubernetesSource(store: ObjectStore, options: KubernetesSourceOptions): ReflectorSet {
  return new ReflectorSet(store, gatewayWatchedKinds(options.namespace), options);
}

export function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
