// The in-cluster source of the proxy: reflectors for what a gateway reads, feeding the
// object store. Secrets and ConfigMaps (CAs named by caCertCredentialName) are read only in
// the proxy's own namespace, as its Role allows; Pods as metadata only (their labels are all
// it reads). The reflectors list and watch over node:https (kube/list-watch.ts):
// @kubernetes/client-node is never loaded by the proxy (it would cost about 80 MB of RSS).

import type { StoredObject } from '../config/resources.js';
import type { ObjectStore } from '../store/object-store.js';
import { selectorMatches } from '../translate/gateways.js';
import { normalizeGatewayRef } from '../translate/http-routes.js';
import { connectionFromEnvironment, HttpsListWatchClient, type ListWatchClient } from '../../kube/list-watch.js';
import { ReflectorSet, type WatchedKind } from '../../kube/reflector.js';

const ISTIO = 'networking.istio.io/v1';

/**
 * The Gateways (as "ns/name") whose selector matches this proxy's labels: only VirtualServices
 * that name one of them can bind here. A gateway must not grow with unrelated config, so the
 * store keeps only those (and host-less ones, which can be delegates); when this set changes,
 * VirtualServices are listed again.
 */
export class BindableGateways {
  private names = new Set<string>();

  constructor(private readonly labels: Record<string, string>) {}

  /** Recomputes the set from the store's Gateways; true when it changed. */
  update(gateways: readonly StoredObject[]): boolean {
    const next = new Set<string>();
    for (const gw of gateways) {
      if (selectorMatches((gw.spec as { selector?: Record<string, string> } | undefined)?.selector, this.labels)) next.add(`${gw.metadata.namespace ?? 'default'}/${gw.metadata.name}`);
    }
    const changed = next.size !== this.names.size || [...next].some((n) => !this.names.has(n));
    this.names = next;
    return changed;
  }

  /** Whether a VirtualService can bind to a Gateway of this proxy, now or as a delegate. */
  canBind(vs: StoredObject): boolean {
    const spec = (vs.spec ?? {}) as { hosts?: unknown; gateways?: unknown; http?: unknown };
    if (!Array.isArray(spec.hosts) || spec.hosts.length === 0) return true;
    const ns = vs.metadata.namespace ?? 'default';
    const named = (refs: unknown) => Array.isArray(refs) && refs.some((g) => this.names.has(normalizeGatewayRef(String(g), ns) ?? ''));
    if (named(spec.gateways)) return true;
    for (const rule of Array.isArray(spec.http) ? spec.http : []) {
      for (const m of Array.isArray(rule?.match) ? rule.match : []) if (named(m?.gateways)) return true;
    }
    return false;
  }
}

export function gatewayWatchedKinds(namespace: string, bindable?: BindableGateways): WatchedKind[] {
  return [
    { kind: 'Gateway', apiVersion: ISTIO, plural: 'gateways' },
    bindable
      ? { kind: 'VirtualService', apiVersion: ISTIO, plural: 'virtualservices', after: 'Gateway', keep: (vs) => bindable.canBind(vs) }
      : { kind: 'VirtualService', apiVersion: ISTIO, plural: 'virtualservices' },
    { kind: 'DestinationRule', apiVersion: ISTIO, plural: 'destinationrules' },
    { kind: 'ServiceEntry', apiVersion: ISTIO, plural: 'serviceentries' },
    { kind: 'Service', apiVersion: 'v1', plural: 'services' },
    { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', plural: 'endpointslices' },
    {
      kind: 'Pod',
      apiVersion: 'v1',
      plural: 'pods',
      // Only labels are read (DestinationRule subsets, Service selectors over EndpointSlices):
      // the apiserver sends metadata only, never a pod's spec (env values, commands) or status.
      metadataOnly: true,
      slim: (pod) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, labels: pod.metadata.labels } }),
    },
    { kind: 'Secret', apiVersion: 'v1', plural: 'secrets', namespace },
    // Optional: a Role written for Istio's gateway grants Secrets only.
    { kind: 'ConfigMap', apiVersion: 'v1', plural: 'configmaps', namespace, slim: caConfigMap, optional: 'caCertCredentialName can name Secrets only' },
  ];
}

/** The ConfigMap keys a CA is read from (dataplane/tls/secret-formats.ts: caFromConfigMap). */
const CA_CONFIG_MAP_KEYS = new Set(['ca.crt', 'cacert']);

/**
 * A ConfigMap as the store keeps it: only the CA keys keep their values; other keys stay as
 * empty strings, so a ConfigMap without a CA is still reported with the keys it has, while
 * unrelated ConfigMaps of the namespace (often large) cost next to no memory, and a change
 * to their values is no change to the store (no rebuild, nothing sent to workers).
 */
export function caConfigMap(cm: StoredObject): StoredObject {
  const only = (values: unknown) => {
    if (values === null || typeof values !== 'object') return undefined;
    return Object.fromEntries(Object.entries(values as Record<string, unknown>).map(([k, v]) => [k, CA_CONFIG_MAP_KEYS.has(k) ? v : '']));
  };
  const o = cm as StoredObject & { data?: unknown; binaryData?: unknown };
  const slim: StoredObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cm.metadata.name, namespace: cm.metadata.namespace } };
  const data = only(o.data);
  const binaryData = only(o.binaryData);
  if (data) slim.data = data;
  if (binaryData) slim.binaryData = binaryData;
  return slim;
}

export interface KubernetesSourceOptions {
  namespace: string;
  /** The proxy's labels: with them, only VirtualServices that can bind to its Gateways are kept. */
  labels?: Record<string, string>;
  log?: (line: string) => void;
  watchIdleMs?: number;
  /** Default: credentials from $KUBECONFIG, ~/.kube/config or the pod's ServiceAccount. */
  client?: ListWatchClient;
}

export function createKubernetesSource(store: ObjectStore, options: KubernetesSourceOptions): ReflectorSet {
  const client = options.client ?? new HttpsListWatchClient(connectionFromEnvironment());
  const bindable = options.labels ? new BindableGateways(options.labels) : undefined;
  const reflectors = new ReflectorSet(store, gatewayWatchedKinds(options.namespace, bindable), { client, log: options.log, watchIdleMs: options.watchIdleMs });
  if (bindable) {
    store.on('object', (obj: StoredObject) => {
      if (obj.kind === 'Gateway' && bindable.update(store.list('Gateway'))) reflectors.relist('VirtualService');
    });
  }
  return reflectors;
}
