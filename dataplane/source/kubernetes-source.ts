// The in-cluster source: one reflector (list, then watch) per kind, feeding the object store.
// Robust by construction: a 410 relists, any other error restarts with jittered backoff, a
// silent watch is restarted by client-node's inactivity timer, and while the apiserver is
// away the store (and so the serving snapshot) simply stays as it was.

import { KubeConfig, KubernetesObjectApi, Watch, type KubernetesObject } from '@kubernetes/client-node';
import type { ConfigKind, StoredObject } from '../config/resources.js';
import type { ObjectStore } from '../store/object-store.js';

export interface WatchedKind {
  kind: ConfigKind;
  apiVersion: string;
  /** Collection path without a namespace, e.g. "/apis/networking.istio.io/v1/gateways". */
  plural: string;
  /** Only the proxy's own namespace (Secrets: the proxy's RBAC has no cluster-wide access). */
  ownNamespaceOnly?: boolean;
  /** Keep only what the translators read (pods: labels), to bound memory. */
  slim?: (obj: StoredObject) => StoredObject;
}

const ISTIO = 'networking.istio.io/v1';

export const GATEWAY_WATCHED_KINDS: WatchedKind[] = [
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
  { kind: 'Secret', apiVersion: 'v1', plural: 'secrets', ownNamespaceOnly: true },
];

export interface KubernetesSourceOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  kinds?: WatchedKind[];
  log?: (line: string) => void;
  /** Inactivity limit after which a silent watch is restarted (default 60 s). */
  watchIdleMs?: number;
}

function collectionPath(kind: WatchedKind, namespace: string): string {
  const base = kind.apiVersion.includes('/') ? `/apis/${kind.apiVersion}` : `/api/${kind.apiVersion}`;
  return kind.ownNamespaceOnly ? `${base}/namespaces/${namespace}/${kind.plural}` : `${base}/${kind.plural}`;
}

function withoutNoise(obj: KubernetesObject, kind: WatchedKind): StoredObject {
  const o = obj as StoredObject;
  const metadata = { ...o.metadata } as StoredObject['metadata'] & { managedFields?: unknown };
  delete metadata.managedFields;
  const stored: StoredObject = { ...o, apiVersion: o.apiVersion ?? kind.apiVersion, kind: kind.kind, metadata, origin: { source: 'kubernetes' } };
  if (stored.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']) {
    const annotations = { ...stored.metadata.annotations };
    delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
    stored.metadata = { ...stored.metadata, annotations };
  }
  return kind.slim ? { ...kind.slim(stored), origin: { source: 'kubernetes' } } : stored;
}

class Reflector {
  private stopped = false;
  private abort?: AbortController;
  private failures = 0;
  synced = false;
  private readonly path: string;

  constructor(
    private readonly kind: WatchedKind,
    private readonly store: ObjectStore,
    private readonly options: KubernetesSourceOptions,
    private readonly onSynced: () => void,
  ) {
    this.path = collectionPath(kind, options.namespace);
  }

  async run(): Promise<void> {
    let resourceVersion = '';
    while (!this.stopped) {
      try {
        if (!resourceVersion) resourceVersion = await this.list();
        resourceVersion = await this.watch(resourceVersion);
        this.failures = 0;
      } catch (err) {
        if (this.stopped) return;
        this.failures++;
        const gone = (err as { code?: number; statusCode?: number }).code === 410 || (err as { statusCode?: number }).statusCode === 410;
        if (gone) {
          resourceVersion = '';
          continue;
        }
        const delay = Math.min(30_000, 200 * 2 ** Math.min(this.failures, 8)) * (0.5 + Math.random());
        this.log(`watch ${this.kind.kind}: ${(err as Error).message ?? err}; retrying in ${Math.round(delay)} ms`);
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async list(): Promise<string> {
    const api = KubernetesObjectApi.makeApiClient(this.options.kubeConfig);
    const items: StoredObject[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      const page = await api.list(
        this.kind.apiVersion,
        this.kind.kind,
        this.kind.ownNamespaceOnly ? this.options.namespace : undefined,
        undefined, undefined, undefined, undefined, undefined, 500, continueToken,
      );
      for (const item of page.items) items.push(withoutNoise(item, this.kind));
      continueToken = page.metadata?._continue;
      resourceVersion = page.metadata?.resourceVersion ?? '';
    } while (continueToken);
    const kind = this.kind.kind;
    const ns = this.options.namespace;
    const ownOnly = this.kind.ownNamespaceOnly;
    this.store.replaceWhere((o) => o.kind === kind && o.origin?.source === 'kubernetes' && (!ownOnly || o.metadata.namespace === ns), items);
    if (!this.synced) {
      this.synced = true;
      this.onSynced();
    }
    return resourceVersion;
  }

  /** Resolves with the last resourceVersion when the watch ends normally; rejects on errors. */
  private watch(resourceVersion: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const watch = new Watch(this.options.kubeConfig);
      // client-node aborts a watch that is silent this long: our watchdog for stuck watches.
      (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = this.options.watchIdleMs ?? 60_000;
      let rv = resourceVersion;
      let failed: unknown;
      watch
        .watch(
          this.path,
          { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 300 },
          (phase, obj: KubernetesObject & { code?: number; message?: string }) => {
            if (phase === 'ERROR') {
              failed = Object.assign(new Error(obj?.message ?? 'watch error'), { code: obj?.code });
              this.abort?.abort();
              return;
            }
            const next = obj?.metadata?.resourceVersion;
            if (next) rv = next;
            if (phase === 'BOOKMARK') return;
            const stored = withoutNoise(obj, this.kind);
            if (phase === 'DELETED') this.store.delete(this.kind.kind, stored.metadata.namespace, stored.metadata.name);
            else this.store.upsert(stored);
          },
          (err) => {
            if (failed) reject(failed);
            else if (err && (err as Error).name !== 'AbortError' && (err as Error).name !== 'TimeoutError') reject(err);
            else resolve(rv);
          },
        )
        .then((controller) => {
          this.abort = controller;
          if (this.stopped) controller.abort();
        }, reject);
    });
  }

  private log(line: string): void {
    (this.options.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}

export class KubernetesSource {
  private readonly reflectors: Reflector[];
  private resolveSynced!: () => void;
  /** Resolves once every kind has been listed once (readiness waits for it). */
  readonly synced: Promise<void>;

  constructor(store: ObjectStore, options: KubernetesSourceOptions) {
    this.synced = new Promise((r) => (this.resolveSynced = r));
    const kinds = options.kinds ?? GATEWAY_WATCHED_KINDS;
    this.reflectors = kinds.map((k) => new Reflector(k, store, options, () => this.checkSynced()));
  }

  start(): void {
    for (const r of this.reflectors) void r.run();
  }

  stop(): void {
    for (const r of this.reflectors) r.stop();
  }

  private checkSynced(): void {
    if (this.reflectors.every((r) => r.synced)) this.resolveSynced();
  }
}

export function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
