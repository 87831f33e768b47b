// The serving half of the proxy, composed: listeners + HTTP handler + upstream clusters +
// access log + metrics over one shared ProxyState. The caller (the proxy command) feeds it
// snapshots, calls drain() on SIGTERM and close() before exiting.

import type { Registry } from 'prom-client';
import { ProxyMetrics } from '../admin/metrics.js';
import type { Cluster, Snapshot } from '../snapshot/types.js';
import { createAccessLog, type AccessLog, type AccessLogOptions } from './http/access-log.js';
import { HttpRequestHandler } from './http/request-handler.js';
import { RequestInfo } from './http/request-info.js';
import type { Upstreams } from './http/upstreams.js';
import { resolveLimits, type ServeLimits } from './limits.js';
import { StreamMetrics } from './l4/stream-metrics.js';
import type { TcpProxyDeps } from './l4/tcp-proxy.js';
import { ListenerManager, type ApplyResult, type DrainOptions, type SecureServerFactory } from './listener-manager.js';
import { ProxyState } from './proxy-state.js';

export type { ApplyResult, DrainOptions, ListenerReport, SecureServerFactory } from './listener-manager.js';
export type { TlsTerminator, TlsTerminators } from './l4/stream-server.js';
export type { ServeLimits } from './limits.js';
export { ProxyState } from './proxy-state.js';
export { assignFilterChain } from './http/serving-table.js';
export type { HttpRequestHandler, ListenerBinding } from './http/request-handler.js';

/** The upstream layer as the data plane uses it (dataplane/upstream's ClusterManager). */
export interface ClusterSource extends Upstreams {
  update(clusters: ReadonlyMap<string, Cluster>): void;
}

export interface DataPlaneOptions {
  /** The proxy's metrics registry (also served by the admin metrics server). */
  registry: Registry;
  clusterManager: ClusterSource;
  /** Options for a new access log (default: text on stdout), or one already made. */
  accessLog?: AccessLogOptions | AccessLog;
  limits?: Partial<ServeLimits>;
  /** Shared with the admin servers; one is made when omitted. */
  state?: ProxyState;
  /** Terminates TLS on HTTPS and TLS listeners (dataplane/runtime/tls-support.ts); without it those needing termination are reported unsupported. */
  secureServer?: SecureServerFactory;
  /** Process metrics on the registry (default true; turn off when something else registers them). */
  defaultMetrics?: boolean;
  /** [0, 1) source for weighted splits, percentages and jitter (tests pin it). */
  random?: () => number;
  /** Errors caught on the request path (default: process warning). */
  onError?: (err: unknown, request: string) => void;
  /** A snapshot applied again because some of its listeners could not bind (see unboundListeners). */
  onBindRetried?: (result: ApplyResult) => void;
}

export interface DataPlane {
  /** Applies a snapshot: clusters first, then listeners; resolves with per-listener results. */
  apply(snapshot: Snapshot): Promise<ApplyResult>;
  /** Shutdown drain (see ListenerManager.drain). */
  drain(durationMs: number, options?: DrainOptions): Promise<void>;
  /** Closes every listener and flushes the access log. */
  close(): Promise<void>;
  readonly state: ProxyState;
  readonly metrics: ProxyMetrics;
  readonly listeners: ListenerManager;
  readonly accessLog: AccessLog;
  readonly limits: ServeLimits;
}

export function createDataPlane(options: DataPlaneOptions): DataPlane {
  const limits = resolveLimits(options.limits);
  const state = options.state ?? new ProxyState();
  const metrics = new ProxyMetrics(options.registry, state, { defaultMetrics: options.defaultMetrics });
  const accessLog = isAccessLog(options.accessLog) ? options.accessLog : createAccessLog(options.accessLog ?? { format: 'text' });
  const handler = new HttpRequestHandler({
    upstreams: options.clusterManager,
    limits,
    state,
    accessLog,
    random: options.random,
    onError: options.onError,
  });
  // TCP/TLS connections log to the same access log as HTTP requests (one line each at close).
  const tcp: TcpProxyDeps = { upstreams: options.clusterManager, metrics: new StreamMetrics(options.registry), random: options.random ?? Math.random, accessLog };
  const listeners = new ListenerManager({
    handler,
    state,
    limits,
    series: (port, host, route) => metrics.series(port, host, route),
    secureServer: options.secureServer,
    streams: tcp,
    onClientError: (record, serving) => {
      const info = new RequestInfo('-', '-', 'HTTP/1.1', '', '', '-', record.remote, '-', serving.unmatchedSeries);
      info.status = record.status;
      info.addFlag('DPE');
      info.details = `http1.codec_error{${record.code}}`;
      info.duration = Math.round(performance.now() - info.startMark);
      info.series.record(info.status, info.duration / 1000);
      if (accessLog.enabled) accessLog.log(info);
    },
  });
  let current: Snapshot | undefined;
  let bindRetry: NodeJS.Timeout | undefined;
  let closed = false;

  const dataPlane: DataPlane = {
    state,
    metrics,
    listeners,
    accessLog,
    limits,
    async apply(snapshot: Snapshot): Promise<ApplyResult> {
      // New clusters exist before any route points at them, and clusters only the old
      // snapshot uses stay until the listeners have switched: no request sees a missing cluster.
      const previous = current?.clusters;
      if (previous !== undefined) {
        const union = new Map(previous);
        for (const [name, cluster] of snapshot.clusters) union.set(name, cluster);
        options.clusterManager.update(union);
      } else {
        options.clusterManager.update(snapshot.clusters);
      }
      const result = await listeners.apply(snapshot);
      if (previous !== undefined) options.clusterManager.update(snapshot.clusters);
      current = snapshot;
      state.recordApplied(snapshot, result.ok);
      state.unboundListeners = unboundListeners(result);
      // A port taken by another process may be freed: try again while it is not bound (the
      // proxy is not ready meanwhile), as long as this snapshot is the one to serve.
      if (bindRetry === undefined && result.listeners.some((l) => l.status === 'failed' && l.code !== undefined)) {
        bindRetry = setTimeout(() => {
          bindRetry = undefined;
          if (!closed && !state.draining && current === snapshot) void dataPlane.apply(snapshot).then((r) => options.onBindRetried?.(r), () => undefined);
        }, BIND_RETRY_MS);
        bindRetry.unref();
      }
      return result;
    },
    drain: (durationMs: number, drainOptions?: DrainOptions) => listeners.drain(durationMs, drainOptions),
    async close(): Promise<void> {
      closed = true;
      clearTimeout(bindRetry);
      await listeners.close();
      await accessLog.flush();
    },
  };
  return dataPlane;
}

/** How often listeners that failed to bind (EADDRINUSE…) are tried again. */
const BIND_RETRY_MS = 1_000;

/** "name on addr:port: why" for each listener of an apply that could not bind. */
export function unboundListeners(result: ApplyResult): string[] {
  return result.listeners.filter((l) => l.status === 'failed').map((l) => `${l.name} on ${l.bindAddress}:${l.bindPort}: ${l.error ?? 'not bound'}`);
}

function isAccessLog(v: AccessLogOptions | AccessLog | undefined): v is AccessLog {
  return v !== undefined && typeof (v as AccessLog).log === 'function';
}
