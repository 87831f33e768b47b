// `portway proxy`, assembled: a source fills the object store, the pipeline translates it
// into snapshots, the data plane serves them, the admin servers expose readiness, metrics
// and the config dump. SIGTERM drains and exits.

import { Registry } from 'prom-client';
import { serveSettings, type ProxyOptions } from '../cli/proxy-command.js';
import { startAdminServers, type AdminServers } from './admin/index.js';
import { ConfigPipeline } from './runtime/config-pipeline.js';
import { createDataPlane, type DataPlane, type DrainOptions } from './serve/data-plane.js';
import { FileSource } from './source/file-source.js';
import { ObjectStore } from './store/object-store.js';
import { ClusterManager } from './upstream/index.js';
import type { Snapshot } from './snapshot/types.js';
import { createTlsSupport } from './runtime/tls-support.js';
import { exitAfterClosing } from './runtime/process-exit.js';

export interface RunningProxy {
  store: ObjectStore;
  pipeline: ConfigPipeline;
  dataPlane: DataPlane;
  admin: AdminServers;
  registry: Registry;
  /** Resolves when the first snapshot is serving. */
  ready: Promise<void>;
  drain(durationMs: number, options?: DrainOptions): Promise<void>;
  close(): Promise<void>;
}

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/** Starts every part of a proxy in this process and returns handles (tests use this directly). */
export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const registry = new Registry();
  const store = new ObjectStore();
  const tls = createTlsSupport({ registry, store, namespace: options.namespace, log });
  const clusterManager = new ClusterManager({ registry, tlsOptionsFor: tls.upstreamTlsOptions });
  const dataPlane = createDataPlane({
    registry,
    clusterManager,
    accessLog: { format: options.accessLog },
    secureServer: tls.secureServerFactory,
    limits: serveSettings(options),
  });
  const pipeline = new ConfigPipeline(store, {
    namespace: options.namespace,
    labels: options.labels,
    portMap: options.portMap,
    bindAddress: options.bindAddress,
  }, { log });

  let applying = Promise.resolve();
  const apply = (snapshot: Snapshot) => {
    // Snapshots apply in order; a newer one waits for the one being applied.
    applying = applying.then(async () => {
      tls.onSnapshot(snapshot);
      const result = await dataPlane.apply(snapshot);
      for (const e of result.errors) log(`error: listener ${e.listener}: ${e.message}`);
    }).catch((err) => log(`error: applying snapshot ${snapshot.version} failed: ${(err as Error).stack ?? err}`));
    return applying;
  };
  pipeline.on('snapshot', (s) => void apply(s));
  pipeline.on('error', () => dataPlane.state.recordReloadFailure());

  const admin = await startAdminServers({
    statusPort: options.statusPort,
    metricsPort: options.metricsPort,
    adminPort: options.adminPort,
    // Status and metrics follow the listeners' address (a pod IP when several proxies share a host).
    bindAddress: options.bindAddress,
    registry,
    getSnapshot: () => pipeline.snapshot,
    state: dataPlane.state,
  });

  let stopSource: () => void;
  let ready: Promise<void>;
  if (options.source === 'files') {
    const files = new FileSource(store, {
      paths: options.configPaths,
      // As `kubectl apply` does: an object without a namespace is in "default", whatever the proxy's own.
      defaultNamespace: 'default',
      // Problems are also diagnostics (proxy-config diagnostics, the reload metric) until fixed;
      // the pipeline logs them once, and logs when they are resolved.
      onRead: (problems) => pipeline.setSourceProblems(problems),
    });
    await files.start();
    stopSource = () => files.stop();
    const first = pipeline.rebuild();
    ready = first ? apply(first) : Promise.resolve();
  } else {
    // Loaded only in cluster mode: the Kubernetes client is most of a standalone proxy's memory otherwise.
    const { createKubernetesSource } = await import('./source/kubernetes-source.js');
    const kube = createKubernetesSource(store, { namespace: options.namespace, labels: options.labels, log });
    kube.start();
    stopSource = () => kube.stop();
    // Readiness waits for a full first sync: a partial view must never be served.
    ready = kube.synced.then(() => {
      const first = pipeline.rebuild();
      return first ? apply(first) : undefined;
    });
  }

  return {
    store,
    pipeline,
    dataPlane,
    admin,
    registry,
    ready,
    drain: (ms, drainOptions) => dataPlane.drain(ms, drainOptions),
    async close() {
      stopSource();
      pipeline.stop();
      await dataPlane.close();
      await clusterManager.close();
      tls.close();
      await admin.close();
    },
  };
}

/** Runs until SIGTERM/SIGINT: drains for the drain duration, then exits (the process, whatever is left open). */
export async function runProxy(options: ProxyOptions): Promise<number> {
  // SIGHUP's default action kills the process (it did, resetting every request in flight).
  // Envoy ignores it; so does Portway, saying so: the config files are watched already, and
  // Kubernetes objects are watched (workers ignore it too: they run this first).
  process.on('SIGHUP', () => log('SIGHUP ignored, as Envoy does: configuration changes are picked up on their own (files and Kubernetes objects are watched); SIGTERM drains and exits'));
  if (options.concurrency > 1) {
    const { runProxyWorkers } = await import('./runtime/workers.js');
    return runProxyWorkers(options);
  }
  let proxy: RunningProxy;
  try {
    proxy = await startProxy(options);
  } catch (err) {
    log(`error: cannot start the proxy: ${(err as Error).message}`);
    return 1;
  }
  await proxy.ready;
  log(`portway proxy serving snapshot ${proxy.pipeline.snapshot?.version ?? 0}; status :${proxy.admin.statusPort}, metrics :${proxy.admin.metricsPort}, admin 127.0.0.1:${proxy.admin.adminPort}`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log(`draining for ${options.drainDurationMs} ms${options.exitOnZeroActiveConnections ? ', or until no connection is left' : ''}`);
  await proxy.drain(options.drainDurationMs, { exitOnZeroConnections: options.exitOnZeroActiveConnections });
  return exitAfterClosing(() => proxy.close(), log, 0);
}
