// Upstream metrics on the registry the proxy passes in (never prom-client's global one).
// Label children are resolved once per cluster so the request path only calls inc(); the
// per-request counter (requests by code class) counts in a plain field and is added to
// prom-client when the metrics are read, because a prom-client child hashes its label set
// on every inc().

import { Counter, Gauge, type Registry } from 'prom-client';

export const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'error'] as const;
export type CodeClass = (typeof CODE_CLASSES)[number];

interface Inc {
  inc(value?: number): void;
}
interface Set {
  set(value: number): void;
}

/** One cluster's metric children. */
export interface ClusterMetrics {
  requests: Record<CodeClass, Inc>;
  pendingOverflow: Inc;
  retryOverflow: Inc;
  ejectionsActive: Set;
  ejectionsTotal: Inc;
  connectFailures: Inc;
}

/** A counter child counted locally; `flush` adds the count to its prom-client counter. */
class PendingCount implements Inc {
  pending = 0;

  constructor(readonly labels: Record<string, string>) {}

  inc(value = 1): void {
    this.pending += value;
  }
}

export class UpstreamMetrics {
  private readonly rq: Counter<'cluster' | 'code_class'>;
  private readonly overflow: Counter<'cluster'>;
  private readonly retryOverflow: Counter<'cluster'>;
  private readonly ejectionsActive: Gauge<'cluster'>;
  private readonly ejectionsTotal: Counter<'cluster'>;
  private readonly connectFail: Counter<'cluster'>;
  private readonly clusters = new Map<string, ClusterMetrics>();
  /** The request counters of every cluster, flushed when the metrics are read. */
  private readonly pending = new Map<string, PendingCount[]>();

  /** `activeConnections` is read at scrape time only (summing undici pool stats). */
  constructor(registry: Registry, activeConnections: () => Iterable<[cluster: string, connections: number]>) {
    const registers = [registry];
    this.rq = new Counter({
      name: 'portway_upstream_rq_total',
      help: 'Requests completed by upstream clusters, by response code class ("error": no response).',
      labelNames: ['cluster', 'code_class'],
      registers,
      collect: () => this.flushRequests(),
    });
    // registry.resetMetrics(): counts not yet flushed go too.
    const resetRequests = this.rq.reset.bind(this.rq);
    this.rq.reset = () => {
      this.flushRequests();
      resetRequests();
    };
    this.overflow = new Counter({
      name: 'portway_upstream_rq_pending_overflow_total',
      help: 'Requests rejected by the cluster circuit breakers (pending requests, max requests, max connections): Envoy flag UO.',
      labelNames: ['cluster'],
      registers,
    });
    this.retryOverflow = new Counter({
      name: 'portway_upstream_rq_retry_overflow_total',
      help: 'Retries not attempted because the cluster reached maxRetries concurrent retries.',
      labelNames: ['cluster'],
      registers,
    });
    this.ejectionsActive = new Gauge({
      name: 'portway_upstream_ejections_active',
      help: 'Endpoints currently ejected by outlier detection.',
      labelNames: ['cluster'],
      registers,
    });
    this.ejectionsTotal = new Counter({
      name: 'portway_upstream_ejections_total',
      help: 'Outlier-detection ejections.',
      labelNames: ['cluster'],
      registers,
    });
    this.connectFail = new Counter({
      name: 'portway_upstream_cx_connect_fail_total',
      help: 'Upstream connection attempts that failed (refused, timed out, TLS handshake).',
      labelNames: ['cluster'],
      registers,
    });
    new Gauge({
      name: 'portway_upstream_cx_active',
      help: 'Open upstream connections.',
      labelNames: ['cluster'],
      registers,
      collect() {
        this.reset();
        for (const [cluster, n] of activeConnections()) this.set({ cluster }, n);
      },
    });
  }

  forCluster(cluster: string): ClusterMetrics {
    let m = this.clusters.get(cluster);
    if (m === undefined) {
      const requests = {} as Record<CodeClass, Inc>;
      const counts: PendingCount[] = [];
      for (const code_class of CODE_CLASSES) counts.push((requests[code_class] = new PendingCount({ cluster, code_class })));
      this.pending.set(cluster, counts);
      m = {
        requests,
        pendingOverflow: this.overflow.labels({ cluster }),
        retryOverflow: this.retryOverflow.labels({ cluster }),
        ejectionsActive: this.ejectionsActive.labels({ cluster }),
        ejectionsTotal: this.ejectionsTotal.labels({ cluster }),
        connectFailures: this.connectFail.labels({ cluster }),
      };
      this.clusters.set(cluster, m);
    }
    return m;
  }

  /** Drops a removed cluster's series so churning clusters do not grow the registry. */
  removeCluster(cluster: string): void {
    if (!this.clusters.delete(cluster)) return;
    this.pending.delete(cluster);
    for (const code_class of CODE_CLASSES) this.rq.remove({ cluster, code_class });
    for (const metric of [this.overflow, this.retryOverflow, this.ejectionsActive, this.ejectionsTotal, this.connectFail]) {
      metric.remove({ cluster });
    }
  }

  private flushRequests(): void {
    for (const counts of this.pending.values()) {
      for (const c of counts) {
        if (c.pending === 0) continue;
        this.rq.inc(c.labels, c.pending);
        c.pending = 0;
      }
    }
  }
}

export function codeClassOf(status: number | undefined): CodeClass {
  if (status === undefined || status < 100 || status > 599) return 'error';
  return CODE_CLASSES[Math.floor(status / 100) - 1]!;
}
