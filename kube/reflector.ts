// A reflector: list a collection into the object store, then watch it from that
// resourceVersion. Robust by construction: a 410 relists, any other error restarts with
// jittered backoff, a silent watch is restarted by client-node's inactivity timer, and while
// the apiserver is away the store simply stays as it was.

import { KubeConfig, KubernetesObjectApi, Watch, type KubernetesObject } from '@kubernetes/client-node';
import type { StoredObject } from '../dataplane/config/resources.js';
import type { ObjectStore } from '../dataplane/store/object-store.js';

export interface WatchedKind {
  kind: string;
  apiVersion: string;
  /** Resource name, e.g. "gateways". */
  plural: string;
  /** Only this namespace (Secrets: the proxy's RBAC has no cluster-wide access). */
  namespace?: string;
  labelSelector?: string;
  /** Keep only what the consumers read (pods: labels), to bound memory. */
  slim?: (obj: StoredObject) => StoredObject;
}

export interface ReflectorOptions {
  kubeConfig: KubeConfig;
  log?: (line: string) => void;
  /** Inactivity limit after which a silent watch is restarted (default 60 s). */
  watchIdleMs?: number;
}

function collectionPath(kind: WatchedKind): string {
  const base = kind.apiVersion.includes('/') ? `/apis/${kind.apiVersion}` : `/api/${kind.apiVersion}`;
  return kind.namespace ? `${base}/namespaces/${kind.namespace}/${kind.plural}` : `${base}/${kind.plural}`;
}

/** The object as stored: managedFields and the last-applied annotation dropped. */
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

/** Runs one reflector per kind; `synced` resolves once every kind has been listed once. */
export class ReflectorSet {
  private readonly reflectors: Reflector[];
  private resolveSynced!: () => void;
  readonly synced: Promise<void>;

  constructor(store: ObjectStore, kinds: WatchedKind[], options: ReflectorOptions) {
    this.synced = new Promise((r) => (this.resolveSynced = r));
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

export class Reflector {
  private stopped = false;
  private abort?: AbortController;
  private failures = 0;
  synced = false;
  private readonly path: string;

  constructor(
    private readonly kind: WatchedKind,
    private readonly store: ObjectStore,
    private readonly options: ReflectorOptions,
    private readonly onSynced: () => void,
  ) {
    this.path = collectionPath(kind);
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
        this.kind.namespace,
        undefined, undefined, undefined, undefined, this.kind.labelSelector, 500, continueToken,
      );
      for (const item of page.items) items.push(withoutNoise(item, this.kind));
      continueToken = page.metadata?._continue;
      resourceVersion = page.metadata?.resourceVersion ?? '';
    } while (continueToken);
    const { kind, namespace } = this.kind;
    this.store.replaceWhere((o) => o.kind === kind && o.origin?.source === 'kubernetes' && (!namespace || o.metadata.namespace === namespace), items);
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
          { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 300, labelSelector: this.kind.labelSelector },
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

