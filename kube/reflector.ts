// A reflector: list a collection into the object store, then watch it from that
// resourceVersion. Robust by construction: a 410 relists, any other error restarts with
// jittered backoff, a silent watch is restarted by the client's idle watchdog, and while the
// apiserver is away the store simply stays as it was. Both programs use it: the proxy for the
// Istio objects it serves, the operator for GatewayDeployments and the objects it owns.

import type { KubeObject, ListWatchClient } from './list-watch.js';
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
  /**
   * List and watch metadata only (PartialObjectMetadata): the apiserver never sends spec or
   * status. The objects are stored under this kind and apiVersion all the same.
   */
  metadataOnly?: boolean;
  /**
   * Store only the objects this returns true for (others are dropped, or deleted from the store
   * when they stop qualifying). When its answer may change, call `ReflectorSet.relist(kind)`.
   */
  keep?: (obj: StoredObject) => boolean;
  /** List only after this kind has been listed once (`keep` depends on it). */
  after?: string;
  /**
   * What is lost without this kind. When set, a 403 on the first list counts as an empty,
   * synced collection (readiness does not wait for a permission that may never come: RBAC
   * copied from Istio's gateway Role grants Secrets only); the list is retried with backoff and
   * used as soon as the permission is granted.
   */
  optional?: string;
}

export interface ReflectorOptions {
  /** How to list and watch (kube/list-watch.ts over node:https). */
  client: ListWatchClient;
  log?: (line: string) => void;
  /** Inactivity limit after which a silent watch is restarted (default 60 s). */
  watchIdleMs?: number;
}

function collectionPath(kind: WatchedKind): string {
  const base = kind.apiVersion.includes('/') ? `/apis/${kind.apiVersion}` : `/api/${kind.apiVersion}`;
  return kind.namespace ? `${base}/namespaces/${kind.namespace}/${kind.plural}` : `${base}/${kind.plural}`;
}

/** The object as stored: managedFields and the last-applied annotation dropped. */
function withoutNoise(obj: KubeObject, kind: WatchedKind): StoredObject {
  const o = obj as unknown as StoredObject;
  const metadata = { ...o.metadata } as StoredObject['metadata'] & { managedFields?: unknown };
  delete metadata.managedFields;
  // A metadata-only answer names its items meta.k8s.io/v1 PartialObjectMetadata: store them as what they are.
  const apiVersion = kind.metadataOnly ? kind.apiVersion : (o.apiVersion ?? kind.apiVersion);
  const stored: StoredObject = { ...o, apiVersion, kind: kind.kind, metadata, origin: { source: 'kubernetes' } };
  if (stored.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']) {
    const annotations = { ...stored.metadata.annotations };
    delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
    stored.metadata = { ...stored.metadata, annotations };
  }
  return kind.slim ? { ...kind.slim(stored), origin: { source: 'kubernetes' } } : stored;
}

/**
 * Jittered exponential backoff (×0.5–1.5). An apiserver that is away or coming back (refused,
 * reset, timed out; 404 for custom resources and 5xx while it starts) is retried at most every
 * 5 s so a gateway converges soon after it is back; other answers (401, 403, 429, ...) back off
 * up to 30 s.
 */
export function retryDelayMs(failures: number, transient: boolean): number {
  const cap = transient ? 5_000 : 30_000;
  return Math.min(cap, 200 * 2 ** Math.min(Math.max(failures, 1), 8)) * (0.5 + Math.random());
}

function isTransient(err: unknown): boolean {
  const status = (err as { code?: unknown }).code;
  if (typeof status === 'number' && (status === 404 || status >= 500)) return true;
  return isConnectionError(err);
}

function isConnectionError(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown; name?: string } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|UND_ERR_SOCKET|UND_ERR_CONNECT_TIMEOUT|UND_ERR_CLOSED)$/.test(e.code)) return true;
    if (e.name === 'FetchError' || e.name === 'SocketError') return true;
  }
  return false;
}

/** Runs one reflector per kind; `synced` resolves once every kind has been listed once. */
export class ReflectorSet {
  private readonly reflectors: Reflector[];
  private resolveSynced!: () => void;
  readonly synced: Promise<void>;

  constructor(store: ObjectStore, kinds: WatchedKind[], options: ReflectorOptions) {
    this.synced = new Promise((r) => (this.resolveSynced = r));
    this.reflectors = kinds.map((k) => new Reflector(k, store, options.client, options, () => this.checkSynced(), (kind) => this.firstSync(kind)));
  }

  /** Lists `kind` again (its `keep` answers changed); a no-op before its first list. */
  relist(kind: string): void {
    this.reflectors.find((r) => r.kindName === kind)?.relist();
  }

  private firstSync(kind: string): Promise<void> {
    const r = this.reflectors.find((x) => x.kindName === kind);
    return r ? r.firstSync : Promise.resolve();
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
  private abort?: () => void;
  private failures = 0;
  synced = false;
  private relistRequested = false;
  /** 410s in a row (reset once a watch is connected). */
  private gone = 0;
  private resolveFirstSync!: () => void;
  readonly firstSync = new Promise<void>((r) => (this.resolveFirstSync = r));
  /** The last failure was the apiserver not answering at all. */
  private lastFailureUnreachable = false;
  /** An optional kind is forbidden to us (logged once, until a list succeeds). */
  private forbidden = false;
  private readonly path: string;

  constructor(
    private readonly kind: WatchedKind,
    private readonly store: ObjectStore,
    private readonly client: ListWatchClient,
    private readonly options: ReflectorOptions,
    private readonly onSynced: () => void,
    private readonly waitFor: (kind: string) => Promise<void> = () => Promise.resolve(),
  ) {
    this.path = collectionPath(kind);
  }

  get kindName(): string {
    return this.kind.kind;
  }

  relist(): void {
    if (!this.synced) return;
    this.relistRequested = true;
    this.abort?.();
  }

  async run(): Promise<void> {
    let resourceVersion = '';
    if (this.kind.after) await this.waitFor(this.kind.after);
    while (!this.stopped) {
      try {
        if (!resourceVersion) resourceVersion = await this.list();
        resourceVersion = await this.watch(resourceVersion);
        if (this.relistRequested) {
          this.relistRequested = false;
          resourceVersion = '';
        }
        this.failures = 0;
      } catch (err) {
        if (this.stopped) return;
        const gone = (err as { code?: number; statusCode?: number }).code === 410 || (err as { statusCode?: number }).statusCode === 410;
        if (gone) {
          // The history after our resourceVersion was compacted: only a fresh list is correct.
          this.log(`watch ${this.kind.kind}: 410 Gone (resourceVersion ${resourceVersion || '-'} is too old); relisting`);
          resourceVersion = '';
          // Relist at once; only a relist that keeps ending in 410 waits (it must not spin).
          this.gone++;
          if (this.gone > 1) await this.sleep(retryDelayMs(this.gone - 1, true));
          continue;
        }
        // An apiserver that answers again starts a fresh backoff: just after a restart it
        // answers 403 until its RBAC caches are filled, and the backoff grown while it was
        // away must not keep this kind stale for half a minute after that.
        const unreachable = isConnectionError(err);
        this.failures = this.lastFailureUnreachable && !unreachable ? 1 : this.failures + 1;
        this.lastFailureUnreachable = unreachable;
        const delay = retryDelayMs(this.failures, isTransient(err));
        if (this.kind.optional && !resourceVersion && (err as { code?: unknown }).code === 403) {
          if (!this.forbidden) {
            this.forbidden = true;
            this.log(`list ${this.path}: 403 Forbidden; going on without ${this.kind.plural} (${this.kind.optional}) and retrying: ${(err as Error).message ?? err}`);
          }
          this.markSynced();
        } else {
          this.log(`watch ${this.kind.kind}: ${(err as Error).message ?? err}; retrying in ${Math.round(delay)} ms`);
        }
        await this.sleep(delay);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort?.();
  }

  private async list(): Promise<string> {
    const client = this.client;
    const items: StoredObject[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      const page = await client.list(this.path, {
        labelSelector: this.kind.labelSelector,
        limit: 500,
        continueToken,
        metadataOnly: this.kind.metadataOnly,
      });
      for (const item of page.items) {
        const stored = withoutNoise(item, this.kind);
        if (!this.kind.keep || this.kind.keep(stored)) items.push(stored);
      }
      continueToken = page.continueToken;
      resourceVersion = page.resourceVersion;
    } while (continueToken);
    const { kind, namespace } = this.kind;
    this.store.replaceWhere((o) => o.kind === kind && o.origin?.source === 'kubernetes' && (!namespace || o.metadata.namespace === namespace), items);
    if (this.forbidden) {
      this.forbidden = false;
      this.log(`list ${this.path}: allowed now; ${this.kind.plural} are read`);
    }
    this.markSynced();
    return resourceVersion;
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.resolveFirstSync();
    this.onSynced();
  }

  /** Resolves with the last resourceVersion when the watch ends normally; rejects on errors (410 included). */
  private async watch(resourceVersion: string): Promise<string> {
    const client = this.client;
    let rv = resourceVersion;
    await client.watch(
      this.path,
      // The idle limit is the watchdog for a watch that went silent (bookmarks arrive every minute or so).
      { resourceVersion: rv, labelSelector: this.kind.labelSelector, timeoutSeconds: 300, idleMs: this.options.watchIdleMs ?? 60_000, metadataOnly: this.kind.metadataOnly },
      (phase, obj) => {
        const next = obj.metadata?.resourceVersion;
        if (next) rv = next;
        if (phase === 'BOOKMARK') return;
        const stored = withoutNoise(obj, this.kind);
        if (phase === 'DELETED' || (this.kind.keep && !this.kind.keep(stored))) this.store.delete(this.kind.kind, stored.metadata.namespace, stored.metadata.name);
        else this.store.upsert(stored);
      },
      (abort) => {
        // Connected: the next failure starts the backoff from the beginning again.
        this.failures = 0;
        this.lastFailureUnreachable = false;
        this.gone = 0;
        this.abort = abort;
        if (this.stopped || this.relistRequested) abort();
      },
    );
    return rv;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms).unref());
  }

  private log(line: string): void {
    (this.options.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}

