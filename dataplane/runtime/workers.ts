// --concurrency N: one primary process watches and translates once; N workers serve.
// The primary sends every snapshot, and the Secrets and ConfigMaps its credentials are read
// from, to each worker over IPC (the objects again, alone, whenever they change);
// workers share the listening sockets through node:cluster. Readiness, metrics (aggregated
// across workers) and the config dump are served by the primary.

import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Registry } from 'prom-client';
import { serveSettings, type ProxyOptions } from '../../cli/proxy-command.js';
import { objectKey, type StoredObject } from '../config/resources.js';
import { startAdminServers } from '../admin/index.js';
import { ProxyState } from '../serve/proxy-state.js';
import { createDataPlane } from '../serve/data-plane.js';
import { snapshotFromWire, snapshotToWire, type WireSnapshot } from '../snapshot/wire.js';
import type { Snapshot } from '../snapshot/types.js';
import { FileSource } from '../source/file-source.js';
import { ObjectStore } from '../store/object-store.js';
import { ClusterManager } from '../upstream/index.js';
import { ConfigPipeline } from './config-pipeline.js';
import { workerTicketEnv } from '../tls/session-tickets.js';
import { createTlsSupport, credentialKeysOf, credentialObjectsOf } from './tls-support.js';
import { CLOSE_GRACE_MS, exitAfterClosing } from './process-exit.js';

type ToWorker =
  | { type: 'portway:snapshot'; wire: WireSnapshot; credentials: StoredObject[] }
  | { type: 'portway:credentials'; credentials: StoredObject[] }
  | { type: 'portway:drain'; durationMs: number; exitOnZeroConnections: boolean };
type ToPrimary = { type: 'portway:applied'; version: number; ok: boolean; unbound?: string[] } | { type: 'portway:hello' };

/** The kinds a worker's store holds: what credentials are read from. */
const CREDENTIAL_KINDS = new Set(['Secret', 'ConfigMap']);

function credentialObjectId(o: StoredObject): string {
  return objectKey(o.kind, o.metadata.namespace, o.metadata.name);
}

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} [${cluster.isPrimary ? 'primary' : `worker ${process.pid}`}] ${line}\n`);
}

export async function runProxyWorkers(options: ProxyOptions): Promise<number> {
  return cluster.isPrimary ? runPrimary(options) : runWorker(options);
}

async function runPrimary(options: ProxyOptions): Promise<number> {
  const store = new ObjectStore();
  const state = new ProxyState();
  const registry = new AggregatorRegistry();
  const pipeline = new ConfigPipeline(store, { namespace: options.namespace, labels: options.labels, portMap: options.portMap, bindAddress: options.bindAddress }, { log });
  const workers = new Set<Worker>();
  const applied = new Map<Worker, number>();
  // Per worker, its listeners that could not bind: the proxy is not ready while any.
  const unbound = new Map<Worker, string[]>();
  let latest: Extract<ToWorker, { type: 'portway:snapshot' }> | undefined;
  let latestSnapshot: Snapshot | undefined;
  let latestKeys = new Set<string>();
  let sentCredentials = '';

  const broadcast = (snapshot: Snapshot) => {
    latestSnapshot = snapshot;
    latestKeys = credentialKeysOf(snapshot);
    // Workers build TLS contexts from these (only the proxy's namespace is read here).
    const credentials = credentialObjectsOf(store, latestKeys);
    sentCredentials = JSON.stringify(credentials);
    latest = { type: 'portway:snapshot', wire: snapshotToWire(snapshot), credentials };
    for (const w of workers) w.send(latest);
  };
  store.on('change', () => {
    // A changed Secret or ConfigMap needs no new snapshot, but workers need the new bytes.
    if (!latest) return;
    const credentials = credentialObjectsOf(store, latestKeys);
    const text = JSON.stringify(credentials);
    if (text === sentCredentials) return;
    sentCredentials = text;
    latest = { ...latest, credentials };
    for (const w of workers) w.send({ type: 'portway:credentials', credentials } satisfies ToWorker);
  });
  pipeline.on('snapshot', broadcast);

  const fork = () => {
    // Every worker gets the same TLS ticket keys: a session resumes on whichever worker the
    // next connection lands.
    const w = cluster.fork(workerTicketEnv());
    workers.add(w);
    w.on('message', (m: ToPrimary) => {
      // A worker says hello once it listens for messages: anything sent earlier would be lost.
      if (m?.type === 'portway:hello') {
        if (latest) w.send(latest);
        return;
      }
      if (m?.type !== 'portway:applied' || !latestSnapshot) return;
      applied.set(w, m.version);
      // Ready once every worker serves this version (readiness then never flaps back).
      unbound.set(w, m.unbound ?? []);
      state.unboundListeners = [...new Set([...unbound.values()].flat())];
      if ([...workers].every((x) => (applied.get(x) ?? 0) >= latestSnapshot!.version)) state.recordApplied(latestSnapshot, m.ok);
    });
    w.on('exit', (code, signal) => {
      workers.delete(w);
      applied.delete(w);
      unbound.delete(w);
      if (!state.draining) {
        log(`worker ${w.process.pid} exited (${signal ?? code}); starting another`);
        fork();
      }
    });
  };
  for (let i = 0; i < options.concurrency; i++) fork();

  const admin = await startAdminServers({
    statusPort: options.statusPort,
    metricsPort: options.metricsPort,
    adminPort: options.adminPort,
    bindAddress: options.bindAddress,
    // The metrics server renders what every worker's registry holds, summed by prom-client.
    registry: { contentType: registry.contentType, metrics: () => registry.clusterMetrics().catch((err: Error) => { log(`metrics: ${err.message}`); throw err; }) } as unknown as Registry,
    getSnapshot: () => pipeline.snapshot,
    state,
  });
  let stopSource: () => void;
  if (options.source === 'files') {
    const files = new FileSource(store, {
      paths: options.configPaths,
      // As `kubectl apply` does: an object without a namespace is in "default", whatever the proxy's own.
      defaultNamespace: 'default',
      // Problems are also diagnostics (proxy-config diagnostics, the reload metric) until fixed.
      onRead: (problems) => pipeline.setSourceProblems(problems),
    });
    await files.start();
    stopSource = () => files.stop();
    pipeline.rebuild();
  } else {
    // Loaded only in cluster mode: the Kubernetes client is most of a standalone proxy's memory otherwise.
    const { createKubernetesSource } = await import('../source/kubernetes-source.js');
    const kube = createKubernetesSource(store, { namespace: options.namespace, labels: options.labels, log });
    kube.start();
    stopSource = () => kube.stop();
    void kube.synced.then(() => pipeline.rebuild());
  }
  log(`portway proxy with ${options.concurrency} workers; status :${admin.statusPort}, metrics :${admin.metricsPort}, admin 127.0.0.1:${admin.adminPort}`);

  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  state.startDraining();
  log(`draining for ${options.drainDurationMs} ms${options.exitOnZeroActiveConnections ? ', or until no connection is left' : ''}`);
  const exited = Promise.all([...workers].map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r())))));
  for (const w of workers) w.send({ type: 'portway:drain', durationMs: options.drainDurationMs, exitOnZeroConnections: options.exitOnZeroActiveConnections } satisfies ToWorker);
  // Each worker exits at the end of its window (after at most CLOSE_GRACE_MS of closing); one that
  // has not by then is killed, and the primary exits whatever it still has open.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, options.drainDurationMs + CLOSE_GRACE_MS + 2_000)))]);
  clearTimeout(timer);
  for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL');
  return exitAfterClosing(async () => {
    stopSource();
    pipeline.stop();
    await admin.close();
  }, log, 0);
}

async function runWorker(options: ProxyOptions): Promise<number> {
  const registry = new Registry();
  // Constructing an AggregatorRegistry is what makes a worker answer the primary's scrapes.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const credentialStore = new ObjectStore();
  const tls = createTlsSupport({ registry, store: credentialStore, namespace: options.namespace, log });
  const clusterManager = new ClusterManager({ registry, tlsOptionsFor: tls.upstreamTlsOptions });
  const dataPlane = createDataPlane({
    registry,
    clusterManager,
    accessLog: { format: options.accessLog },
    secureServer: tls.secureServerFactory,
    limits: serveSettings(options),
    // The primary's readiness follows every worker's listeners.
    onBindRetried: (result) => process.send?.({ type: 'portway:applied', version: result.version, ok: result.ok, unbound: dataPlane.state.unboundListeners } satisfies ToPrimary),
  });
  const replaceCredentials = (objects: StoredObject[]) => credentialStore.replaceWhere((o) => CREDENTIAL_KINDS.has(o.kind), objects);
  let applying = Promise.resolve();
  process.on('message', (m: ToWorker) => {
    // Both kinds of message go through one queue, so objects never arrive out of order.
    if (m?.type === 'portway:credentials') {
      // The feeder reacts to the store's change: new handshakes use the new material.
      applying = applying.then(() => replaceCredentials(m.credentials)).catch((err) => log(`error: applying credentials failed: ${(err as Error).stack ?? err}`));
    } else if (m?.type === 'portway:snapshot') {
      const snapshot = snapshotFromWire(m.wire);
      applying = applying.then(async () => {
        // The new objects first, then the new keys, then the old objects go: a key the current
        // snapshot still uses never looks deleted in between.
        const incoming = new Set(m.credentials.map(credentialObjectId));
        credentialStore.replaceWhere((o) => incoming.has(credentialObjectId(o)), m.credentials);
        tls.onSnapshot(snapshot);
        replaceCredentials(m.credentials);
        const result = await dataPlane.apply(snapshot);
        for (const e of result.errors) log(`error: listener ${e.listener}: ${e.message}`);
        process.send?.({ type: 'portway:applied', version: snapshot.version, ok: result.ok, unbound: dataPlane.state.unboundListeners } satisfies ToPrimary);
      }).catch((err) => log(`error: applying snapshot failed: ${(err as Error).stack ?? err}`));
    } else if (m?.type === 'portway:drain') {
      void dataPlane.drain(m.durationMs, { exitOnZeroConnections: m.exitOnZeroConnections }).then(() =>
        exitAfterClosing(async () => {
          await dataPlane.close();
          await clusterManager.close();
          tls.close();
        }, log, 0),
      );
    }
  });
  process.send?.({ type: 'portway:hello' } satisfies ToPrimary);
  // The primary owns signals: a worker ignores them and waits for the drain message.
  process.on('SIGTERM', () => undefined);
  process.on('SIGINT', () => undefined);
  // The drain message ends the process (exitAfterClosing).
  return new Promise<number>(() => undefined);
}
