// The upstream clusters of the running proxy: one ClusterRuntime per snapshot Cluster,
// carried across snapshots (pools, outlier state and balancer state survive an update),
// and the lease API the HTTP forwarder and the TCP proxy use.

import { promises as dns } from 'node:dns';
import type { Registry } from 'prom-client';
import type { Pool } from 'undici';
import type { Cluster } from '../snapshot/types.js';
import { ClusterRuntime, type Resolver, type TlsOptionsFor } from './cluster-runtime.js';
import type { Lease, LeaseContext, LeaseFailure, RetryPermit } from './lease.js';
import type { RandomSource } from './load-balancer.js';
import { UpstreamMetrics } from './metrics.js';

export type { Lease, LeaseContext, LeaseFailure, LeaseOutcome, RetryPermit, UpstreamError } from './lease.js';

export interface ClusterManagerOptions {
  /** Metrics go here (never prom-client's global registry). */
  registry: Registry;
  /** TLS origination options for a cluster whose policy.tls is SIMPLE or MUTUAL; undefined = not ready (UH). */
  tlsOptionsFor?: TlsOptionsFor;
  /** Resolves a DNS cluster's endpoint name to addresses (default: node:dns, IPv4 preferred). */
  resolver?: Resolver;
  /** Monotonic milliseconds (outlier detection). */
  now?: () => number;
  /** [0, 1) random source for the load balancers. */
  random?: RandomSource;
  /** DNS refresh period for DNS resolution clusters (default 30 s). */
  dnsRefreshInterval?: number;
  /** A DNS lookup slower than this fails (default 5 s). */
  dnsTimeout?: number;
  /** close(): pools still draining after this long are destroyed (default 10 s). */
  closeTimeout?: number;
}

export class ClusterManager {
  private readonly runtimes = new Map<string, ClusterRuntime>();
  private readonly metrics: UpstreamMetrics;
  private readonly draining = new Set<Pool>();
  private readonly now: () => number;
  private readonly random: RandomSource;
  private readonly resolver: Resolver;
  private readonly dnsRefreshInterval: number;
  private closed = false;

  constructor(private readonly opts: ClusterManagerOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    this.resolver = opts.resolver ?? resolveAddresses;
    this.dnsRefreshInterval = opts.dnsRefreshInterval ?? 30_000;
    this.metrics = new UpstreamMetrics(opts.registry, () => this.activeConnections());
  }

  /**
   * Applies a snapshot's clusters. Runtimes are kept by cluster name; inside one, hosts are
   * kept by address:port with their pools (replaced gracefully only when pool options change),
   * removed endpoints' pools drain, and removed clusters close.
   */
  update(clusters: ReadonlyMap<string, Cluster>): void {
    if (this.closed) return;
    for (const [name, runtime] of this.runtimes) {
      if (!clusters.has(name)) {
        runtime.close();
        this.runtimes.delete(name);
        this.metrics.removeCluster(name);
      }
    }
    for (const [name, cluster] of clusters) {
      const runtime = this.runtimes.get(name);
      if (runtime) runtime.update(cluster);
      else this.runtimes.set(name, this.createRuntime(cluster));
    }
  }

  private createRuntime(cluster: Cluster): ClusterRuntime {
    return new ClusterRuntime(cluster, {
      now: this.now,
      random: this.random,
      resolver: this.resolver,
      dnsRefreshInterval: this.dnsRefreshInterval,
      dnsTimeout: this.opts.dnsTimeout ?? 5_000,
      tlsOptionsFor: this.opts.tlsOptionsFor,
      metrics: this.metrics.forCluster(cluster.name),
      drain: (pool) => this.drain(pool),
    });
  }

  /**
   * One attempt on one endpoint. On success the caller must call `lease.done(outcome)` exactly
   * once, when the attempt is over (response fully read, error, or TCP connection closed).
   */
  lease(clusterName: string, ctx: LeaseContext): Lease | LeaseFailure {
    const runtime = this.runtimes.get(clusterName);
    if (runtime === undefined) {
      ctx.retry?.release();
      return { ok: false, flag: 'NR', message: `no cluster ${clusterName}` };
    }
    return runtime.lease(ctx);
  }

  /**
   * A slot in the cluster's maxRetries budget (concurrent retries). Undefined = no retry
   * allowed now (or no such cluster): answer with the attempt's own result. Pass the permit
   * as `ctx.retry` to the retry's lease(), which releases it when that attempt is done.
   */
  tryAcquireRetry(clusterName: string): RetryPermit | undefined {
    return this.runtimes.get(clusterName)?.tryAcquireRetry();
  }

  /** The runtime of a cluster, for the config dump, the admin page and tests. */
  runtime(clusterName: string): ClusterRuntime | undefined {
    return this.runtimes.get(clusterName);
  }

  clusterNames(): IterableIterator<string> {
    return this.runtimes.keys();
  }

  private *activeConnections(): Iterable<[string, number]> {
    for (const [name, runtime] of this.runtimes) yield [name, runtime.activeConnections()];
  }

  private drain(pool: Pool): void {
    if (this.draining.has(pool)) return;
    this.draining.add(pool);
    pool
      .close()
      .catch(() => undefined)
      .finally(() => this.draining.delete(pool));
  }

  /** Pools being drained (removed endpoints, replaced pools, closed clusters). */
  get drainingPools(): number {
    return this.draining.size;
  }

  /**
   * Closes every cluster: pools stop taking new requests, in-flight ones finish; pools still
   * busy after closeTimeout are destroyed.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const [name, runtime] of this.runtimes) {
      runtime.close();
      this.metrics.removeCluster(name);
    }
    this.runtimes.clear();
    const pools = [...this.draining];
    if (pools.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.opts.closeTimeout ?? 10_000);
      timer.unref();
    });
    const closed = Promise.all(pools.map((p) => p.close().catch(() => undefined)));
    const result = await Promise.race([closed.then(() => 'closed' as const), timeout]);
    clearTimeout(timer);
    if (result === 'timeout') await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}

/** node:dns lookup, IPv4 addresses when there are any (Envoy's V4_PREFERRED), sorted. */
export async function resolveAddresses(host: string): Promise<string[]> {
  const all = await dns.lookup(host, { all: true });
  const v4 = all.filter((a) => a.family === 4).map((a) => a.address);
  return (v4.length > 0 ? v4 : all.map((a) => a.address)).sort();
}
