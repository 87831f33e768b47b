// The live side of one cluster: its hosts (endpoint + pool + outlier state), load balancer,
// circuit breakers and, for DNS clusters, the resolved addresses. Built from snapshot
// Clusters and updated in place so pools and health survive a new snapshot.

import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Dispatcher, Pool } from 'undici';
import type { Cluster, Endpoint, UpstreamTlsPolicy } from '../snapshot/types.js';
import {
  AdmissionGate,
  createEndpointPool,
  gateLimitsFor,
  poolSettingsFor,
  samePoolSettings,
  type EndpointPool,
  type PoolSettings,
} from './connection-pool.js';
import type { Lease, LeaseContext, LeaseFailure, LeaseOutcome, RetryPermit } from './lease.js';
import { createLoadBalancer, hash32, hashCookieHeader, hashKeyOf, type LbHost, type LoadBalancer, type RandomSource } from './load-balancer.js';
import { codeClassOf, type ClusterMetrics } from './metrics.js';
import { OutlierDetector, outlierCode, type OutlierHost } from './outlier-detection.js';

export type Resolver = (host: string) => Promise<string[]>;
export type TlsOptionsFor = (policy: UpstreamTlsPolicy, cluster: Cluster) => ConnectionOptions | undefined;

export interface RuntimeDeps {
  now: () => number;
  random: RandomSource;
  resolver: Resolver;
  dnsRefreshInterval: number;
  /** A lookup that takes longer counts as failed (the last good answer stays). */
  dnsTimeout: number;
  tlsOptionsFor?: TlsOptionsFor;
  metrics: ClusterMetrics;
  /** Closes a pool gracefully (in-flight requests finish); the manager tracks it until done. */
  drain(pool: Pool): void;
}

export interface UpstreamHost extends LbHost {
  readonly key: string;
  weight: number;
  endpoint: Endpoint;
  readonly origin: string;
  readonly outlier: OutlierHost;
  pool: EndpointPool | undefined;
  removed: boolean;
}

export class ClusterRuntime {
  cluster: Cluster;
  hosts: UpstreamHost[] = [];
  private byKey = new Map<string, UpstreamHost>();
  private lb: LoadBalancer<UpstreamHost>;
  private lbPolicyJson = '';
  readonly detector: OutlierDetector;
  readonly gate: AdmissionGate;
  private settings: PoolSettings;
  private tls: ConnectionOptions | undefined;
  /** TLS origination is configured but its credentials are not available yet. */
  private tlsMissing = false;
  private availableCount = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepInterval = 0;
  private closed = false;
  /** Cookie values are salted so they do not reveal client addresses. */
  private readonly cookieSalt = randomBytes(8).toString('hex');

  // DNS resolution clusters: name -> sorted addresses (last good answer).
  private dnsNames: string[] = [];
  private readonly resolved = new Map<string, string[]>();
  private dnsTimer: NodeJS.Timeout | undefined;
  private dnsRound = 0;
  private readonly dnsAppliedRound = new Map<string, number>();

  constructor(
    cluster: Cluster,
    private readonly deps: RuntimeDeps,
  ) {
    this.cluster = cluster;
    this.detector = new OutlierDetector(cluster.policy.outlierDetection, deps.now, {
      onEject: () => {
        deps.metrics.ejectionsTotal.inc();
        this.refreshAvailability();
      },
      onUneject: () => this.refreshAvailability(),
    });
    this.gate = new AdmissionGate(gateLimitsFor(cluster));
    this.settings = poolSettingsFor(cluster, cluster.endpoints.length, undefined);
    this.lb = createLoadBalancer(cluster.policy.loadBalancer, [], deps.random);
    this.update(cluster);
  }

  get name(): string {
    return this.cluster.name;
  }

  /** Applies a new snapshot's version of this cluster, keeping what did not change. */
  update(cluster: Cluster): void {
    this.cluster = cluster;
    const policy = cluster.policy;
    this.tls = undefined;
    this.tlsMissing = false;
    if (policy.tls && policy.tls.mode !== 'DISABLE') {
      if (this.deps.tlsOptionsFor) {
        this.tls = this.deps.tlsOptionsFor(policy.tls, cluster);
        this.tlsMissing = this.tls === undefined;
      } else {
        this.tls = {};
      }
      if (this.tls) this.tls = withServername(this.tls, policy.tls, cluster);
    }
    this.detector.setPolicy(policy.outlierDetection);
    this.scheduleSweep();
    this.gate.limits = gateLimitsFor(cluster);
    if (cluster.resolution === 'dns') this.updateDnsNames();
    else this.stopDns();
    this.rebuildHosts();
  }

  /** The endpoints in effect: the cluster's, with DNS names replaced by their addresses. */
  private currentEndpoints(): Endpoint[] {
    if (this.cluster.resolution !== 'dns') return this.cluster.endpoints;
    const out: Endpoint[] = [];
    for (const ep of this.cluster.endpoints) {
      if (isIP(ep.address)) {
        out.push(ep);
        continue;
      }
      for (const address of this.resolved.get(ep.address) ?? []) out.push({ ...ep, address, ref: ep.ref ?? ep.address });
    }
    return out;
  }

  private rebuildHosts(): void {
    if (this.closed) return;
    const endpoints = this.currentEndpoints();
    const settings = poolSettingsFor(this.cluster, endpoints.length, this.tls);
    const settingsChanged = !samePoolSettings(settings, this.settings);
    this.settings = settings;

    const next: UpstreamHost[] = [];
    const nextByKey = new Map<string, UpstreamHost>();
    let setChanged = false;
    for (const endpoint of endpoints) {
      const key = endpointKey(endpoint);
      if (nextByKey.has(key)) continue; // the same address twice: one host
      let host = this.byKey.get(key);
      if (host === undefined) {
        host = {
          key,
          weight: Math.max(1, endpoint.weight || 1),
          endpoint,
          origin: originOf(endpoint, settings.scheme),
          outlier: this.detector.add(key),
          pool: undefined,
          active: 0,
          available: true,
          removed: false,
        };
        setChanged = true;
      } else {
        const weight = Math.max(1, endpoint.weight || 1);
        if (weight !== host.weight) setChanged = true;
        host.weight = weight;
        host.endpoint = endpoint;
        if (host.origin !== originOf(endpoint, settings.scheme)) {
          // Scheme changed (TLS origination turned on or off): a new host, new pool.
          this.retire(host);
          host = { ...host, origin: originOf(endpoint, settings.scheme), outlier: this.detector.add(key), pool: undefined, active: 0, removed: false };
          setChanged = true;
        } else if (settingsChanged && host.pool) {
          this.deps.drain(host.pool.pool);
          host.pool = undefined;
        }
      }
      next.push(host);
      nextByKey.set(key, host);
    }
    for (const [key, host] of this.byKey) {
      if (!nextByKey.has(key)) {
        this.retire(host);
        setChanged = true;
      } else if (nextByKey.get(key) !== host) {
        setChanged = true;
      }
    }
    // Endpoints listed in another order are the same set: the balancer (and a maglev table) stays.

    this.hosts = next;
    this.byKey = nextByKey;
    const lbPolicyJson = JSON.stringify(this.cluster.policy.loadBalancer);
    if (setChanged || lbPolicyJson !== this.lbPolicyJson) {
      this.lb = createLoadBalancer(this.cluster.policy.loadBalancer, next, this.deps.random);
      this.lbPolicyJson = lbPolicyJson;
    }
    this.refreshAvailability();
  }

  /** Takes a host out of service: its pool drains, its outlier state goes. */
  private retire(host: UpstreamHost): void {
    host.removed = true;
    host.available = false;
    this.detector.remove(host.outlier);
    if (host.pool) this.deps.drain(host.pool.pool);
    host.pool = undefined;
  }

  private refreshAvailability(): void {
    const panic = this.detector.inPanic();
    let available = 0;
    for (const h of this.hosts) {
      h.available = panic || !h.outlier.ejected;
      if (h.available) available++;
    }
    this.availableCount = available;
    this.deps.metrics.ejectionsActive.set(this.detector.ejectedCount);
  }

  private scheduleSweep(): void {
    const interval = this.detector.interval;
    if (interval === this.sweepInterval && (this.sweepTimer !== undefined) === (interval !== undefined)) return;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.sweepInterval = interval ?? 0;
    if (interval !== undefined && !this.closed) {
      this.sweepTimer = setInterval(() => this.sweepOutliers(), Math.max(1, interval));
      this.sweepTimer.unref();
    }
  }

  /** The outlier interval sweep (a timer runs it; exposed for tests with a fake clock). */
  sweepOutliers(): void {
    if (this.detector.sweep()) this.refreshAvailability();
  }

  // -------------------------------------------------------------------------------------
  // The request path.

  lease(ctx: LeaseContext): Lease | LeaseFailure {
    const failure = this.unavailable();
    if (failure !== undefined) {
      ctx.retry?.release();
      return failure;
    }
    if (!this.gate.tryEnter()) {
      ctx.retry?.release();
      this.deps.metrics.pendingOverflow.inc();
      return { ok: false, flag: 'UO', message: `upstream overflow: ${this.gate.inFlight} in flight to ${this.cluster.name}` };
    }
    let hash: number | undefined;
    let setCookie: string | undefined;
    const lbPolicy = this.cluster.policy.loadBalancer;
    if (lbPolicy.kind === 'CONSISTENT_HASH') {
      const key = hashKeyOf(lbPolicy.hashOn, ctx);
      if (key !== undefined) {
        hash = hash32(key);
      } else if (lbPolicy.hashOn.kind === 'cookie' && lbPolicy.hashOn.ttl !== undefined) {
        // Envoy generates the cookie from the downstream address and hashes on it.
        const value = this.cookieValueFor(ctx);
        hash = hash32(value);
        setCookie = hashCookieHeader(lbPolicy.hashOn.name, value, lbPolicy.hashOn.ttl, lbPolicy.hashOn.path);
      }
    }
    const host = this.lb.pick(hash, ctx.exclude);
    if (host === undefined) {
      this.gate.leave();
      ctx.retry?.release();
      return { ok: false, flag: 'UH', message: `no healthy upstream for ${this.cluster.name}` };
    }
    host.active++;
    return new UpstreamLease(this, host, setCookie, ctx.retry);
  }

  private unavailable(): LeaseFailure | undefined {
    if (this.closed) return { ok: false, flag: 'NR', message: `cluster ${this.cluster.name} was removed` };
    if (this.tlsMissing) return { ok: false, flag: 'UH', message: `TLS credentials for ${this.cluster.name} are not available` };
    if (this.hosts.length === 0) {
      const pending = this.cluster.resolution === 'dns' && this.dnsNames.some((n) => !this.resolved.has(n));
      return {
        ok: false,
        flag: 'UH',
        message: pending ? `DNS resolution pending for ${this.cluster.name}` : `no endpoints for ${this.cluster.name}`,
      };
    }
    if (this.availableCount === 0) return { ok: false, flag: 'UH', message: `all endpoints of ${this.cluster.name} are ejected` };
    return undefined;
  }

  private cookieValueFor(ctx: LeaseContext): string {
    const seed = `${this.cookieSalt}|${ctx.sourceIp}|${ctx.sourcePort ?? this.deps.random()}`;
    return hash32(seed).toString(16).padStart(8, '0') + hash32(seed, 0x5bd1e995).toString(16).padStart(8, '0');
  }

  /** The pool of a host, created on first use. */
  dispatcherFor(host: UpstreamHost): Dispatcher {
    if (host.pool === undefined) {
      // For a host removed after it was leased, finish() closes this pool after the last lease.
      host.pool = createEndpointPool(host.origin, this.settings);
      this.watchPool(host.pool.pool);
    }
    return host.pool.dispatcher;
  }

  /** Counts a failed raw (TCP proxy) connection attempt. */
  connectFailed(): void {
    this.deps.metrics.connectFailures.inc();
  }

  private watchPool(pool: Pool): void {
    const failures = this.deps.metrics.connectFailures;
    pool.on('connectionError', () => failures.inc());
  }

  finish(host: UpstreamHost, outcome: LeaseOutcome): void {
    this.gate.leave();
    if (host.active > 0) host.active--;
    if (outcome.status !== undefined || outcome.error !== undefined) this.deps.metrics.requests[codeClassOf(outcome.status)].inc();
    if (host.removed) {
      // A host that left the cluster: close its pool once its last lease is done.
      if (host.active === 0 && host.pool) {
        this.deps.drain(host.pool.pool);
        host.pool = undefined;
      }
      return;
    }
    const code = outlierCode(outcome);
    if (code !== undefined) this.detector.record(host.outlier, code);
  }

  tryAcquireRetry(): RetryPermit | undefined {
    if (!this.gate.tryAcquireRetry()) {
      this.deps.metrics.retryOverflow.inc();
      return undefined;
    }
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.gate.releaseRetry();
      },
    };
  }

  /** Settings for a raw TCP/TLS connection to a host (the TCP proxy's path). */
  get connectSettings(): { settings: PoolSettings; tls: ConnectionOptions | undefined; idleTimeout: number | undefined } {
    return { settings: this.settings, tls: this.tls, idleTimeout: this.cluster.policy.connectionPool.tcpIdleTimeout };
  }

  /** Open connections across this cluster's pools (scrape time only). */
  activeConnections(): number {
    let n = 0;
    for (const h of this.hosts) if (h.pool) n += h.pool.pool.stats.connected;
    return n;
  }

  // -------------------------------------------------------------------------------------
  // DNS resolution clusters.

  private updateDnsNames(): void {
    const names = [...new Set(this.cluster.endpoints.map((e) => e.address).filter((a) => !isIP(a)))].sort();
    for (const name of this.resolved.keys()) {
      if (!names.includes(name)) {
        this.resolved.delete(name);
        this.dnsAppliedRound.delete(name);
      }
    }
    const added = names.some((n) => !this.dnsNames.includes(n));
    this.dnsNames = names;
    if (names.length === 0) {
      this.stopDns();
      return;
    }
    if (added) this.resolveInBackground();
    if (this.dnsTimer === undefined && !this.closed) {
      this.dnsTimer = setInterval(() => this.resolveInBackground(), Math.max(1, this.deps.dnsRefreshInterval));
      this.dnsTimer.unref();
    }
  }

  private stopDns(): void {
    if (this.dnsTimer) clearInterval(this.dnsTimer);
    this.dnsTimer = undefined;
    this.dnsNames = [];
    this.resolved.clear();
    this.dnsAppliedRound.clear();
  }

  private lookup(name: string): Promise<string[]> {
    try {
      return Promise.resolve(this.deps.resolver(name));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private resolveInBackground(): void {
    this.resolveNow().catch(() => undefined);
  }

  /**
   * Resolves every name; a failed, empty or timed-out answer keeps the last good one.
   * Rounds may overlap (a hung lookup must not block the next refresh): per name, an answer
   * from an older round never replaces one from a newer round. Resolves when applied.
   */
  async resolveNow(): Promise<void> {
    const round = ++this.dnsRound;
    const names = this.dnsNames;
    const answers = await Promise.allSettled(names.map((n) => withTimeout(this.lookup(n), this.deps.dnsTimeout)));
    if (this.closed) return;
    let changed = false;
    names.forEach((name, i) => {
      const answer = answers[i]!;
      if (answer.status !== 'fulfilled' || answer.value.length === 0 || !this.dnsNames.includes(name)) return;
      if ((this.dnsAppliedRound.get(name) ?? 0) > round) return;
      this.dnsAppliedRound.set(name, round);
      const addresses = [...new Set(answer.value)].sort();
      const previous = this.resolved.get(name);
      if (previous === undefined || previous.join(',') !== addresses.join(',')) {
        this.resolved.set(name, addresses);
        changed = true;
      }
    });
    if (changed) this.rebuildHosts();
  }

  // -------------------------------------------------------------------------------------

  /** Stops timers and drains every pool; leases still out complete on their pools. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.dnsTimer) clearInterval(this.dnsTimer);
    this.sweepTimer = this.dnsTimer = undefined;
    for (const h of this.hosts) this.retire(h);
    this.hosts = [];
    this.byKey.clear();
    this.availableCount = 0;
  }
}

class UpstreamLease implements Lease {
  readonly ok = true;
  private dispatcherCache: Dispatcher | undefined;
  private finished = false;

  constructor(
    readonly runtime: ClusterRuntime,
    readonly host: UpstreamHost,
    readonly setCookie: string | undefined,
    private readonly retry: RetryPermit | undefined,
  ) {}

  get endpoint(): Endpoint {
    return this.host.endpoint;
  }

  get endpointKey(): string {
    return this.host.key;
  }

  get origin(): string {
    return this.host.origin;
  }

  get dispatcher(): Dispatcher {
    return (this.dispatcherCache ??= this.runtime.dispatcherFor(this.host));
  }

  done(outcome: LeaseOutcome): void {
    if (this.finished) return;
    this.finished = true;
    this.runtime.finish(this.host, outcome);
    this.retry?.release();
  }
}

export function isUpstreamLease(lease: Lease): lease is UpstreamLease {
  return lease instanceof UpstreamLease;
}

export function endpointKey(endpoint: Pick<Endpoint, 'address' | 'port'>): string {
  return `${endpoint.address}:${endpoint.port}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function originOf(endpoint: Endpoint, scheme: 'http' | 'https'): string {
  const host = isIP(endpoint.address) === 6 ? `[${endpoint.address}]` : endpoint.address;
  return `${scheme}://${host}:${endpoint.port}`;
}

/** SNI: the DestinationRule's `sni`, else the cluster's host name (never an IP). */
function withServername(tls: ConnectionOptions, policy: UpstreamTlsPolicy, cluster: Cluster): ConnectionOptions {
  if (tls.servername !== undefined) return tls;
  const servername = policy.sni ?? (isIP(cluster.host) ? undefined : cluster.host);
  return servername === undefined ? tls : { ...tls, servername };
}
