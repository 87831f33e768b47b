// The GatewayDeployment reconciler: level-triggered, one key at a time.
// Renders the desired objects (pure), applies them with server-side apply under one field
// manager, prunes what is no longer desired, and reports status with observedGeneration.
// Fields it does not render (replicas when unmanaged, a rollout-restart annotation) stay
// with whoever set them, so `kubectl scale` and `kubectl rollout restart` keep working.
// It never takes over an object it does not own (no ownerReference to this
// GatewayDeployment, or for cluster-scoped objects not its labels): that is reported as
// Degraded/ConflictingObject. Every action and error is an Event on the GatewayDeployment,
// a JSON log line and a metric.

import { createHash } from 'node:crypto';
import type { KubeConnection } from '../../kube/connection.js';
import { KubeApiError, kubeRequest, objectPath, serverSideApply } from '../../kube/kube-request.js';
import { HttpsListWatchClient, type ListWatchClient } from '../../kube/list-watch.js';
import { ReflectorSet, type WatchedKind } from '../../kube/reflector.js';
import type { StoredObject } from '../../dataplane/config/resources.js';
import { ObjectStore } from '../../dataplane/store/object-store.js';
import { setCondition, type Condition } from './conditions.js';
import { EventRecorder, type EventType } from './events.js';
import { Logger } from './log.js';
import { OperatorMetrics, type ReconcileResult } from './metrics.js';
import { WorkQueue, type Priority } from './workqueue.js';
import { RENDERED_KINDS, renderGatewayObjects, type RenderedKind, type RenderOptions } from '../render/index.js';
import { validateGatewayDeployment } from '../api/validate.js';
import { API_VERSION, type GatewayDeployment } from '../api/types.js';
import { GATEWAY_LABEL, GATEWAY_NAMESPACE_LABEL, MANAGED_BY, MANAGED_BY_LABEL } from '../api/labels.js';

export const FIELD_MANAGER = 'portway-operator';
export const FINALIZER = 'portway.dev/cleanup';
/**
 * Holds spec.replicas for a moment when the operator stops rendering it (autoscaling turned
 * on, or replicas removed from the spec): see handOverReplicas.
 */
export const REPLICAS_HANDOVER_MANAGER = 'portway-operator-handover';

/**
 * Of an owned object, the cache keeps what reconcile reads: identity, resourceVersion (has
 * anyone written it since our apply?), labels and ownerReferences (whose is it?), and of
 * Deployments and Services what the GatewayDeployment's status reports. 1,000 gateways own
 * 7,000 objects: a few hundred bytes each instead of several KB.
 */
function slimOwned(obj: StoredObject): StoredObject {
  const m = obj.metadata as StoredObject['metadata'] & { ownerReferences?: Array<{ uid?: string }>; generation?: number };
  const slim: StoredObject & { spec?: unknown; status?: unknown } = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: {
      name: m.name,
      namespace: m.namespace,
      resourceVersion: m.resourceVersion,
      generation: m.generation,
      labels: m.labels,
      ownerReferences: m.ownerReferences?.map((r) => ({ uid: r.uid })),
    } as StoredObject['metadata'],
  };
  const o = obj as { spec?: { replicas?: number; selector?: unknown }; status?: Record<string, unknown> & { loadBalancer?: unknown } };
  if (obj.kind === 'Deployment') {
    const st = o.status ?? {};
    slim.spec = { replicas: o.spec?.replicas, selector: o.spec?.selector };
    slim.status = { observedGeneration: st.observedGeneration, replicas: st.replicas, readyReplicas: st.readyReplicas, updatedReplicas: st.updatedReplicas };
  } else if (obj.kind === 'Service') {
    slim.status = { loadBalancer: o.status?.loadBalancer };
  }
  return slim;
}

/** GatewayDeployments are cached whole (managedFields dropped): reconcile reads them from the cache. */
const GATEWAY_DEPLOYMENT: WatchedKind = { kind: 'GatewayDeployment', apiVersion: API_VERSION, plural: 'gatewaydeployments' };

/** The kinds the renderer produces, watched by the managed-by label so changes requeue the owner. */
const OWNED_KINDS: WatchedKind[] = RENDERED_KINDS.map((k) => ({ kind: k.kind, apiVersion: k.apiVersion, plural: k.plural, labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}`, slim: slimOwned }));

function kindInfo(kind: string): RenderedKind {
  const k = RENDERED_KINDS.find((o) => o.kind === kind);
  if (!k) throw new Error(`the renderer produced a kind the operator does not manage: ${kind}`);
  return k;
}

export interface GatewayControllerOptions {
  connection: KubeConnection;
  /** How the caches list and watch (default: kube/list-watch.ts over `connection`). */
  listWatch?: ListWatchClient;
  render?: Partial<RenderOptions>;
  logger?: Logger;
  /** Names this replica in Events (reportingInstance). */
  identity?: string;
  resyncMs?: number;
  workers?: number;
  /** Retry interval while an object of the same name that it does not own blocks a gateway. */
  conflictRetryMs?: number;
  now?: () => Date;
}

interface LiveObject {
  metadata: StoredObject['metadata'] & {
    ownerReferences?: Array<{ uid: string }>;
    managedFields?: Array<{ manager?: string; operation?: string; fieldsV1?: Record<string, Record<string, unknown>> }>;
  };
  spec?: { replicas?: number };
}

export class GatewayController {
  readonly store = new ObjectStore();
  readonly metrics: OperatorMetrics;
  readonly events: EventRecorder;
  private readonly logger: Logger;
  // The token bucket bounds retries only: fresh keys are bounded by the workers.
  private readonly queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 60_000, qps: 50, burst: 200 });
  /** Per GatewayDeployment key: uid, generation and deletion when it was last queued as changed. */
  private readonly seenVersion = new Map<string, string>();
  private readonly reflectors: ReflectorSet;
  private resyncTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private watching = false;
  private cachesSynced = false;
  /** GatewayDeployment uids whose Deployment replicas this operator is known not to own. */
  private readonly replicasReleased = new Set<string>();
  /**
   * Per gateway key, per object: what our last apply left (see `writtenState`) and a digest of
   * what it applied. When the cached object is still in that state (nobody wrote it since)
   * and the rendered object is the same, the apply would be a no-op and is skipped: a spec
   * change costs one apply of the object that changed, not one per object. A write by someone
   * else changes the state, and its watch event brings us back to apply.
   */
  private readonly lastApplied = new Map<string, Map<string, { state: string; digest: string }>>();

  constructor(private readonly o: GatewayControllerOptions) {
    this.logger = o.logger ?? new Logger();
    this.metrics = new OperatorMetrics({ queueDepth: () => this.queue.length });
    this.events = new EventRecorder({
      connection: o.connection,
      component: FIELD_MANAGER,
      instance: o.identity,
      now: o.now,
      onError: (err, ev) => {
        this.metrics.errors.inc({ operation: 'event' });
        this.logger.warn('recording an event failed', { reason: ev.reason, error: err.message });
      },
    });
    this.reflectors = new ReflectorSet(this.store, [GATEWAY_DEPLOYMENT, ...OWNED_KINDS], {
      client: o.listWatch ?? new HttpsListWatchClient(o.connection, 'portway-operator'),
      log: this.logger.lines('warn', { component: 'reflector' }),
    });
    this.store.on('object', (obj: StoredObject, change?: 'deleted') => {
      const key = this.ownerKey(obj);
      if (key) this.queue.add(key, obj.kind === GATEWAY_DEPLOYMENT.kind ? this.gatewayPriority(key, obj, change) : 'normal');
    });
  }

  /**
   * A GatewayDeployment that is new, changed its spec or is being deleted goes ahead of
   * everything else: a user waits for it. The same generation seen again (its status written
   * by us, a relist after a watch expired) waits with the resync.
   */
  private gatewayPriority(key: string, obj: StoredObject, change?: 'deleted'): Priority {
    // A relist removes and adds back every object: the entry outlives the removal, and goes
    // when reconcile finds the object gone.
    if (change === 'deleted') return 'normal';
    const meta = obj.metadata as { uid?: string; generation?: number; deletionTimestamp?: string };
    const version = `${meta.uid}/${meta.generation}/${meta.deletionTimestamp ?? ''}`;
    if (this.seenVersion.get(key) === version) return 'low';
    this.seenVersion.set(key, version);
    return 'high';
  }

  /** True once every watched kind has been listed (what /readyz reports). */
  get isSynced(): boolean {
    return this.cachesSynced;
  }

  /** Fills the caches without reconciling: a standby replica keeps them warm to take over fast. */
  startWatching(): void {
    if (this.watching) return;
    this.watching = true;
    this.reflectors.start();
    void this.reflectors.synced.then(() => {
      this.cachesSynced = true;
      this.metrics.setSynced(true);
      this.logger.info('caches synced', { gatewaydeployments: this.store.list('GatewayDeployment').length });
    });
  }

  /** Watches (if not yet) and reconciles every GatewayDeployment once the caches are synced. */
  start(): void {
    this.startWatching();
    void this.reflectors.synced.then(() => {
      for (const gd of this.store.list('GatewayDeployment')) this.queue.add(`${gd.metadata.namespace}/${gd.metadata.name}`);
    });
    // Reconciles wait on the apiserver, not the CPU: a few in flight keep it busy.
    this.running = this.queue.run((key) => this.reconcileKey(key), this.o.workers ?? 4);
    // The periodic resync waits behind every change (lowest lane).
    this.resyncTimer = setInterval(() => {
      for (const gd of this.store.list('GatewayDeployment')) this.queue.add(`${gd.metadata.namespace}/${gd.metadata.name}`, 'low');
    }, this.o.resyncMs ?? 300_000);
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.reflectors.stop();
    this.queue.shutDown();
    await this.running;
  }

  get synced(): Promise<void> {
    return this.reflectors.synced;
  }

  private ownerKey(obj: StoredObject): string | undefined {
    if (obj.kind === 'GatewayDeployment') return `${obj.metadata.namespace}/${obj.metadata.name}`;
    const name = obj.metadata.labels?.[GATEWAY_LABEL];
    if (!name) return undefined;
    const ns = obj.metadata.namespace ?? obj.metadata.labels?.[GATEWAY_NAMESPACE_LABEL];
    return ns ? `${ns}/${name}` : undefined;
  }

  private async reconcileKey(key: string): Promise<void> {
    const done = this.metrics.startReconcile();
    const log = this.logger.child({ gatewaydeployment: key });
    try {
      const result = await this.reconcile(key);
      done(result);
      this.queue.forget(key);
      log.debug('reconciled', { result });
    } catch (err) {
      done('error');
      const delay = this.queue.addRateLimited(key);
      log.error('reconcile failed', { error: (err as Error).message, retryInMs: delay });
    }
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split('/') as [string, string];
    const kc = this.o.connection;
    const log = this.logger.child({ gatewaydeployment: key });
    const gdPath = objectPath(GATEWAY_DEPLOYMENT.apiVersion, GATEWAY_DEPLOYMENT.plural, namespace, name);
    // From the cache: every change reaches it through the watch, and one that has not yet is
    // followed by its event, which queues this key again. A spec change costs one request (the
    // apply of what changed), not a read first. Before the first list, from the API.
    let gd = this.store.get(GATEWAY_DEPLOYMENT.kind, namespace, name) as GatewayDeployment | undefined;
    if (!gd && !this.cachesSynced) gd = await this.readGateway(gdPath);
    let meta = gd?.metadata as (StoredObject['metadata'] & { deletionTimestamp?: string; finalizers?: string[] }) | undefined;
    if (gd && (meta?.deletionTimestamp || !meta?.finalizers?.includes(FINALIZER))) {
      // Finalizer writes are conditional on the resourceVersion, and the cache may not have
      // seen our last one yet: they start from the object as the API has it now.
      gd = await this.readGateway(gdPath);
      meta = gd?.metadata as typeof meta;
    }
    if (!gd || !meta) {
      this.lastApplied.delete(key);
      this.seenVersion.delete(key);
      return 'deleted'; // gone; GC removed the namespaced objects
    }
    if (meta.deletionTimestamp) {
      this.replicasReleased.delete(meta.uid ?? '');
      this.lastApplied.delete(key);
      await this.deleteClusterScoped(gd, namespace, name);
      if (meta.finalizers?.includes(FINALIZER)) {
        await kubeRequest(kc, {
          method: 'PATCH',
          path: gdPath,
          contentType: 'application/merge-patch+json',
          body: { metadata: { finalizers: meta.finalizers.filter((f) => f !== FINALIZER), resourceVersion: meta.resourceVersion } },
        });
        log.info('finalizer removed');
      }
      return 'deleted';
    }
    if (!meta.finalizers?.includes(FINALIZER)) {
      await kubeRequest(kc, {
        method: 'PATCH',
        path: gdPath,
        contentType: 'application/merge-patch+json',
        body: { metadata: { finalizers: [...(meta.finalizers ?? []), FINALIZER], resourceVersion: meta.resourceVersion } },
      });
    }

    const problems = validateGatewayDeployment(gd, this.o.render ?? {});
    if (problems.length > 0) {
      const message = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
      this.event(gd, 'Warning', 'InvalidSpec', message);
      log.warn('invalid spec', { error: message });
      await this.writeStatus(gd, { degraded: { reason: 'InvalidSpec', message } });
      return 'invalid';
    }

    const desired = renderGatewayObjects(gd, this.o.render ?? {});
    let applied = this.lastApplied.get(key);
    if (!applied) this.lastApplied.set(key, (applied = new Map()));
    const applyErrors: string[] = [];
    const conflicts: string[] = [];
    for (const obj of desired) {
      const info = kindInfo(obj.kind);
      const objNamespace = info.namespaced ? obj.metadata.namespace ?? namespace : undefined;
      const path = objectPath(info.apiVersion, info.plural, objNamespace, obj.metadata.name);
      const what = `${obj.kind} ${objNamespace ? `${objNamespace}/` : ''}${obj.metadata.name}`;
      const digest = createHash('sha256').update(JSON.stringify(obj)).digest('base64');
      const cached = this.store.get(obj.kind, objNamespace, obj.metadata.name);
      const last = applied.get(path);
      if (cached && last && last.digest === digest && last.state === writtenState(cached)) continue;
      try {
        // The cache only holds objects with the managed-by label: anything else of the same
        // name is read from the API before the apply could take it over.
        let existing = cached as LiveObject | undefined;
        if (!existing || !this.owns(gd, existing)) existing = await this.readIfExists<LiveObject>(path);
        if (existing && !this.owns(gd, existing)) {
          const message = `${what} exists and is not owned by this GatewayDeployment; it is left alone (delete it or rename the gateway)`;
          conflicts.push(message);
          this.event(gd, 'Warning', 'ConflictingObject', message);
          log.warn('conflicting object', { kind: obj.kind, name: obj.metadata.name });
          continue;
        }
        if (obj.kind === 'Deployment' && existing) await this.handOverReplicas(gd, obj as RenderedDeploymentLike, path, log);
        const startedAt = Math.floor(Date.now() / 1000) * 1000;
        const result = await serverSideApply<LiveObject>(kc, path, obj, FIELD_MANAGER, true);
        if (result.metadata.resourceVersion) applied.set(path, { state: writtenState(result as unknown as StoredObject), digest });
        if (!existing) {
          this.event(gd, 'Normal', 'Created', `created ${what}`);
          log.info('created', { kind: obj.kind, name: obj.metadata.name });
        } else if (result.metadata.resourceVersion !== existing.metadata.resourceVersion && this.changedByUs(result, startedAt)) {
          this.event(gd, 'Normal', 'Updated', `updated ${what}`);
          log.info('updated', { kind: obj.kind, name: obj.metadata.name });
        }
      } catch (err) {
        applied.delete(path);
        this.metrics.errors.inc({ operation: 'apply' });
        const message = `${what}: ${(err as Error).message}`;
        applyErrors.push(message);
        this.event(gd, 'Warning', 'ApplyFailed', message);
      }
    }
    await this.prune(gd, desired as StoredObject[], log);
    const degraded =
      conflicts.length > 0 ? { reason: 'ConflictingObject', message: conflicts.join('; ') }
      : applyErrors.length > 0 ? { reason: 'ApplyFailed', message: applyErrors.join('; ') }
      : undefined;
    await this.writeStatus(gd, degraded ? { degraded } : {});
    if (applyErrors.length > 0) throw new Error(applyErrors.join('; '));
    if (conflicts.length > 0) {
      // The blocking object carries none of our labels, so no watch event brings us back.
      this.queue.addAfter(key, this.o.conflictRetryMs ?? 30_000);
      return 'conflict';
    }
    return 'success';
  }

  /**
   * Ours: namespaced objects carry an ownerReference to this GatewayDeployment (its uid);
   * cluster-scoped ones, which cannot, carry the operator's labels naming it.
   */
  private owns(gd: GatewayDeployment, obj: LiveObject): boolean {
    if (obj.metadata.namespace) return (obj.metadata.ownerReferences ?? []).some((r) => r.uid === gd.metadata.uid);
    const labels = obj.metadata.labels ?? {};
    return labels[MANAGED_BY_LABEL] === MANAGED_BY && labels[GATEWAY_LABEL] === gd.metadata.name && labels[GATEWAY_NAMESPACE_LABEL] === gd.metadata.namespace;
  }

  /** Whether the apply changed the object: our field manager's timestamp moves only then. */
  private changedByUs(applied: LiveObject, startedAtMs: number): boolean {
    const entry = (applied.metadata.managedFields ?? []).find((m) => m.manager === FIELD_MANAGER && m.operation === 'Apply') as { time?: string } | undefined;
    return entry?.time === undefined || Date.parse(entry.time) >= startedAtMs;
  }

  /**
   * When the rendered Deployment stops setting spec.replicas (autoscaling turned on, or the
   * count left to `kubectl scale`), an apply without the field would delete it, as its only
   * owner, and the Deployment would fall back to 1 replica until the HPA scales it up again.
   * So the current count is first applied by a second field manager: with two owners, our
   * apply only drops our ownership, the count stays, and the HPA (or kubectl scale) takes it
   * over from there. This is the hand-over the Kubernetes server-side apply documentation
   * describes ("Transferring ownership").
   */
  private async handOverReplicas(gd: GatewayDeployment, obj: RenderedDeploymentLike, path: string, log: Logger): Promise<void> {
    const uid = gd.metadata.uid ?? '';
    if (obj.spec?.replicas !== undefined) {
      this.replicasReleased.delete(uid);
      return;
    }
    if (this.replicasReleased.has(uid)) return;
    const live = await this.readIfExists<LiveObject>(path);
    const ours = live?.metadata.managedFields?.some((m) => m.manager === FIELD_MANAGER && m.operation === 'Apply' && m.fieldsV1?.['f:spec']?.['f:replicas'] !== undefined);
    if (live && ours && live.spec?.replicas !== undefined) {
      await serverSideApply(this.o.connection, path, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace }, spec: { replicas: live.spec.replicas } }, REPLICAS_HANDOVER_MANAGER, true);
      const message = `Deployment ${obj.metadata.namespace}/${obj.metadata.name}: spec.replicas (${live.spec.replicas}) handed over to the autoscaler or kubectl scale`;
      this.event(gd, 'Normal', 'ReplicasHandedOver', message);
      log.info('replicas handed over', { replicas: live.spec.replicas });
    }
    this.replicasReleased.add(uid);
  }

  private async readGateway(path: string): Promise<GatewayDeployment | undefined> {
    try {
      return await this.readIfExists<GatewayDeployment>(path);
    } catch (err) {
      this.metrics.errors.inc({ operation: 'read' });
      throw err;
    }
  }

  private async readIfExists<T>(path: string): Promise<T | undefined> {
    try {
      return await kubeRequest<T>(this.o.connection, { method: 'GET', path });
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  private event(gd: GatewayDeployment, type: EventType, reason: string, message: string): void {
    this.metrics.events.inc({ type, reason });
    void this.events.record({ apiVersion: API_VERSION, kind: GATEWAY_DEPLOYMENT.kind, metadata: gd.metadata }, type, reason, message);
  }

  /** Deletes owned objects the renderer no longer produces (an HPA after autoscaling is turned off). */
  private async prune(gd: GatewayDeployment, desired: StoredObject[], log: Logger): Promise<void> {
    const want = new Set(desired.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`));
    const ns = gd.metadata.namespace!;
    for (const kind of RENDERED_KINDS) {
      if (!kind.namespaced) continue;
      for (const obj of this.store.list(kind.kind, ns)) {
        if (obj.metadata.labels?.[GATEWAY_LABEL] !== gd.metadata.name) continue;
        const owners = (obj.metadata as { ownerReferences?: Array<{ uid: string }> }).ownerReferences ?? [];
        if (!owners.some((r) => r.uid === gd.metadata.uid)) continue;
        if (want.has(`${obj.kind}/${ns}/${obj.metadata.name}`)) continue;
        await this.deleteIgnoringMissing(objectPath(kind.apiVersion, kind.plural, ns, obj.metadata.name));
        this.event(gd, 'Normal', 'Deleted', `deleted ${obj.kind} ${ns}/${obj.metadata.name}: no longer rendered`);
        log.info('deleted', { kind: obj.kind, name: obj.metadata.name });
      }
    }
  }

  private async deleteClusterScoped(gd: GatewayDeployment, namespace: string, name: string): Promise<void> {
    for (const kind of RENDERED_KINDS.filter((k) => !k.namespaced)) {
      for (const obj of this.store.list(kind.kind)) {
        const labels = obj.metadata.labels ?? {};
        if (labels[GATEWAY_LABEL] === name && labels[GATEWAY_NAMESPACE_LABEL] === namespace) {
          await this.deleteIgnoringMissing(objectPath(kind.apiVersion, kind.plural, undefined, obj.metadata.name));
          this.event(gd, 'Normal', 'Deleted', `deleted ${kind.kind} ${obj.metadata.name}: the GatewayDeployment is being deleted`);
        }
      }
    }
  }

  private async deleteIgnoringMissing(path: string): Promise<void> {
    try {
      await kubeRequest(this.o.connection, { method: 'DELETE', path });
    } catch (err) {
      if (!(err instanceof KubeApiError && err.statusCode === 404)) {
        this.metrics.errors.inc({ operation: 'delete' });
        throw err;
      }
    }
  }

  private async writeStatus(gd: GatewayDeployment, opts: { degraded?: { reason: string; message: string } }): Promise<void> {
    const ns = gd.metadata.namespace!;
    const name = gd.metadata.name!;
    const generation = gd.metadata.generation;
    const now = (this.o.now ?? (() => new Date()))();
    const deployment = this.store.get('Deployment', ns, name) as (StoredObject & { status?: any; spec?: any }) | undefined;
    const service = this.store.get('Service', ns, name) as (StoredObject & { status?: any }) | undefined;
    const ds = deployment?.status ?? {};
    const wanted = deployment?.spec?.replicas ?? ds.replicas ?? 0;
    const ready = ds.readyReplicas ?? 0;
    const updated = ds.updatedReplicas ?? 0;
    const deploymentCurrent = deployment !== undefined && (ds.observedGeneration ?? 0) >= (deployment.metadata.generation ?? 0);
    const rolledOut = deploymentCurrent && updated >= wanted && (ds.replicas ?? 0) === updated;
    const existing = ((gd as { status?: { conditions?: Condition[] } }).status?.conditions ?? []) as Condition[];
    let conditions = setCondition(existing, {
      type: 'Ready',
      status: ready > 0 && !opts.degraded ? 'True' : 'False',
      reason: opts.degraded ? opts.degraded.reason : ready > 0 ? 'MinimumReplicasAvailable' : 'NoReadyReplicas',
      message: `${ready}/${wanted} proxy replicas ready`,
      observedGeneration: generation,
    }, now);
    conditions = setCondition(conditions, {
      type: 'Progressing',
      status: rolledOut ? 'False' : 'True',
      reason: rolledOut ? 'RolloutComplete' : 'RollingOut',
      message: rolledOut ? 'every replica runs the latest template' : `${updated}/${wanted} replicas updated`,
      observedGeneration: generation,
    }, now);
    conditions = setCondition(conditions, {
      type: 'Degraded',
      status: opts.degraded ? 'True' : 'False',
      reason: opts.degraded?.reason ?? 'AsExpected',
      message: opts.degraded?.message ?? 'every object applied',
      observedGeneration: generation,
    }, now);
    const ingress: Array<{ ip?: string; hostname?: string }> = service?.status?.loadBalancer?.ingress ?? [];
    const selector = deployment?.spec?.selector?.matchLabels as Record<string, string> | undefined;
    const status = {
      observedGeneration: generation,
      replicas: ds.replicas ?? 0,
      readyReplicas: ready,
      selector: selector ? Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',') : undefined,
      addresses: ingress.map((i) => ({ type: i.ip ? 'IPAddress' : 'Hostname', value: i.ip ?? i.hostname })),
      conditions,
    };
    // Most reconciles (an owned object's status moved, a resync) change nothing here: no write,
    // no watch event, no work for the apiserver.
    if (canonicalJson(status) === canonicalJson((gd as { status?: unknown }).status ?? {})) return;
    try {
      await kubeRequest(this.o.connection, {
        method: 'PATCH',
        path: objectPath(GATEWAY_DEPLOYMENT.apiVersion, GATEWAY_DEPLOYMENT.plural, ns, name, 'status'),
        contentType: 'application/merge-patch+json',
        body: { status },
      });
    } catch (err) {
      this.metrics.errors.inc({ operation: 'status' });
      throw err;
    }
  }
}

/**
 * What the operator's apply decides of an object. With a generation (Deployment, HPA, PDB),
 * the generation (it moves with every spec change), the labels and the owners: the rest of
 * the metadata is not rendered, and status writes (a rollout, an HPA's readings) change none
 * of these, so they do not cost a no-op apply each. Without one, the resourceVersion.
 */
function writtenState(obj: StoredObject): string {
  const m = obj.metadata as StoredObject['metadata'] & { generation?: number; ownerReferences?: Array<{ uid?: string }> };
  if (m.generation === undefined) return `rv:${m.resourceVersion}`;
  return JSON.stringify([m.generation, m.labels ?? {}, (m.ownerReferences ?? []).map((r) => r.uid)]);
}

/** JSON with sorted keys and without undefined members, to compare objects as the apiserver stores them. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

type RenderedDeploymentLike = { metadata: { name: string; namespace?: string }; spec?: { replicas?: number } };
