// The GatewayDeployment reconciler: level-triggered, one key at a time.
// Renders the desired objects (pure), applies them with server-side apply under one field
// manager, prunes what is no longer desired, and reports status with observedGeneration.
// Fields it does not render (replicas when unmanaged, a rollout-restart annotation) stay
// with whoever set them, so `kubectl scale` and `kubectl rollout restart` keep working.

import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, kubeRequest, objectPath, serverSideApply } from '../../kube/kube-request.js';
import { ReflectorSet, type WatchedKind } from '../../kube/reflector.js';
import type { StoredObject } from '../../dataplane/config/resources.js';
import { ObjectStore } from '../../dataplane/store/object-store.js';
import { setCondition, type Condition } from './conditions.js';
import { WorkQueue } from './workqueue.js';
import { RENDERED_KINDS, renderGatewayObjects, type RenderedKind, type RenderOptions } from '../render/index.js';
import { validateGatewayDeployment } from '../api/validate.js';
import { API_VERSION, type GatewayDeployment } from '../api/types.js';
import { GATEWAY_LABEL, GATEWAY_NAMESPACE_LABEL, MANAGED_BY, MANAGED_BY_LABEL } from '../api/labels.js';

export const FIELD_MANAGER = 'portway-operator';
export const FINALIZER = 'portway.dev/cleanup';

const GATEWAY_DEPLOYMENT: WatchedKind = { kind: 'GatewayDeployment', apiVersion: API_VERSION, plural: 'gatewaydeployments' };

/** The kinds the renderer produces, watched by the managed-by label so changes requeue the owner. */
const OWNED_KINDS: WatchedKind[] = RENDERED_KINDS.map((k) => ({ kind: k.kind, apiVersion: k.apiVersion, plural: k.plural, labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` }));

function kindInfo(kind: string): RenderedKind {
  const k = RENDERED_KINDS.find((o) => o.kind === kind);
  if (!k) throw new Error(`the renderer produced a kind the operator does not manage: ${kind}`);
  return k;
}

export interface GatewayControllerOptions {
  kubeConfig: KubeConfig;
  render?: Partial<RenderOptions>;
  log?: (line: string) => void;
  resyncMs?: number;
  workers?: number;
  now?: () => Date;
}

export class GatewayController {
  readonly store = new ObjectStore();
  private readonly queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 60_000 });
  private readonly reflectors: ReflectorSet;
  private resyncTimer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(private readonly o: GatewayControllerOptions) {
    this.reflectors = new ReflectorSet(this.store, [GATEWAY_DEPLOYMENT, ...OWNED_KINDS], { kubeConfig: o.kubeConfig, log: o.log });
    this.store.on('object', (obj: StoredObject) => {
      const key = this.ownerKey(obj);
      if (key) this.queue.add(key);
    });
  }

  /** Starts watching at once (caches warm) and reconciling when `leading` resolves. */
  start(): void {
    this.reflectors.start();
    void this.reflectors.synced.then(() => {
      for (const gd of this.store.list('GatewayDeployment')) this.queue.add(`${gd.metadata.namespace}/${gd.metadata.name}`);
    });
    this.running = this.queue.run((key) => this.reconcileKey(key), this.o.workers ?? 2);
    this.resyncTimer = setInterval(() => {
      for (const gd of this.store.list('GatewayDeployment')) this.queue.add(`${gd.metadata.namespace}/${gd.metadata.name}`);
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
    try {
      await this.reconcile(key);
      this.queue.forget(key);
    } catch (err) {
      const delay = this.queue.addRateLimited(key);
      this.log(`reconcile ${key} failed (retry in ${delay} ms): ${(err as Error).message}`);
    }
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const kc = this.o.kubeConfig;
    const gdPath = objectPath(GATEWAY_DEPLOYMENT.apiVersion, GATEWAY_DEPLOYMENT.plural, namespace, name);
    let gd: GatewayDeployment;
    try {
      // Read through the API, not the cache: status writes need the latest generation.
      gd = await kubeRequest<GatewayDeployment>(kc, { method: 'GET', path: gdPath });
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) return; // gone; GC removed the namespaced objects
      throw err;
    }
    const meta = gd.metadata as StoredObject['metadata'] & { deletionTimestamp?: string; finalizers?: string[] };
    if (meta.deletionTimestamp) {
      await this.deleteClusterScoped(namespace, name);
      if (meta.finalizers?.includes(FINALIZER)) {
        await kubeRequest(kc, {
          method: 'PATCH',
          path: gdPath,
          contentType: 'application/merge-patch+json',
          body: { metadata: { finalizers: meta.finalizers.filter((f) => f !== FINALIZER), resourceVersion: meta.resourceVersion } },
        });
      }
      return;
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
      await this.writeStatus(gd, { degraded: { reason: 'InvalidSpec', message: problems.map((p) => `${p.field}: ${p.message}`).join('; ') } });
      return;
    }

    const desired = renderGatewayObjects(gd, this.o.render ?? {});
    const applyErrors: string[] = [];
    for (const obj of desired) {
      const info = kindInfo(obj.kind);
      const path = objectPath(info.apiVersion, info.plural, info.namespaced ? obj.metadata?.namespace ?? namespace : undefined, obj.metadata!.name!);
      try {
        await serverSideApply(kc, path, obj, FIELD_MANAGER, true);
      } catch (err) {
        applyErrors.push(`${obj.kind} ${obj.metadata?.name}: ${(err as Error).message}`);
      }
    }
    await this.prune(gd, desired as StoredObject[]);
    await this.writeStatus(gd, applyErrors.length > 0 ? { degraded: { reason: 'ApplyFailed', message: applyErrors.join('; ') } } : {});
    if (applyErrors.length > 0) throw new Error(applyErrors.join('; '));
  }

  /** Deletes owned objects the renderer no longer produces (an HPA after autoscaling is turned off). */
  private async prune(gd: GatewayDeployment, desired: StoredObject[]): Promise<void> {
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
      }
    }
  }

  private async deleteClusterScoped(namespace: string, name: string): Promise<void> {
    for (const kind of RENDERED_KINDS.filter((k) => !k.namespaced)) {
      for (const obj of this.store.list(kind.kind)) {
        const labels = obj.metadata.labels ?? {};
        if (labels[GATEWAY_LABEL] === name && labels[GATEWAY_NAMESPACE_LABEL] === namespace) {
          await this.deleteIgnoringMissing(objectPath(kind.apiVersion, kind.plural, undefined, obj.metadata.name));
        }
      }
    }
  }

  private async deleteIgnoringMissing(path: string): Promise<void> {
    try {
      await kubeRequest(this.o.kubeConfig, { method: 'DELETE', path });
    } catch (err) {
      if (!(err instanceof KubeApiError && err.statusCode === 404)) throw err;
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
    await kubeRequest(this.o.kubeConfig, {
      method: 'PATCH',
      path: objectPath(GATEWAY_DEPLOYMENT.apiVersion, GATEWAY_DEPLOYMENT.plural, ns, name, 'status'),
      contentType: 'application/merge-patch+json',
      body: { status },
    });
  }

  private log(line: string): void {
    (this.o.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}
