// The proxy's own Prometheus metrics, on a registry the proxy owns (never prom-client's
// global one): requests by gateway port / virtual host / route / code, request duration,
// downstream connections and the configuration state.
//
// The request path does not call prom-client: its label children hash the whole label set on
// every inc()/observe() (a few percent of a core at proxy rates). A RouteSeries counts in
// plain fields instead and the counts are added to the metrics when they are read (scrape,
// getMetricsAsJSON, worker aggregation): `collect()` on the counter, `get()` on the histogram.

import { collectDefaultMetrics, Counter, Gauge, type Metric, type Registry } from 'prom-client';
import type { ProxyState } from '../serve/proxy-state.js';

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type RequestLabels = 'gateway_port' | 'host' | 'route' | 'code';
type DurationLabels = 'gateway_port' | 'host' | 'route';
type LabelValues<T extends string> = Record<T, string>;
/** One value of a metric as prom-client's registries read it. */
interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export interface ProxyMetricsOptions {
  /** Process metrics (CPU, memory, event loop lag, GC); on by default. */
  defaultMetrics?: boolean;
}

export class ProxyMetrics {
  readonly requests: Counter<RequestLabels>;
  readonly duration: DurationHistogram;
  /** Series with counts not yet added to the metrics. */
  private dirty: RouteSeries[] = [];

  constructor(
    readonly registry: Registry,
    state: ProxyState,
    options: ProxyMetricsOptions = {},
  ) {
    const registers = [registry];
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
    const flush = () => this.flush();
    this.requests = new Counter({
      name: 'portway_requests_total',
      help: 'Downstream HTTP requests by gateway port, virtual host, route and response code ("0": no response was sent).',
      labelNames: ['gateway_port', 'host', 'route', 'code'],
      registers,
      collect: flush,
    });
    // registry.resetMetrics(): counts not yet flushed go too.
    const resetRequests = this.requests.reset.bind(this.requests);
    this.requests.reset = () => {
      this.flush();
      resetRequests();
    };
    this.duration = new DurationHistogram(
      'portway_request_duration_seconds',
      'Downstream HTTP request duration, from the request head to the last response byte.',
      DURATION_BUCKETS,
      flush,
    );
    registry.registerMetric(this.duration as unknown as Metric);
    new Gauge({
      name: 'portway_downstream_cx_active',
      help: 'Open downstream connections on the gateway listeners.',
      registers,
      collect() {
        this.set(state.activeConnections);
      },
    });
    new Gauge({
      name: 'portway_config_generation',
      help: 'Version of the configuration snapshot being served (0 before the first).',
      registers,
      collect() {
        this.set(state.generation);
      },
    });
    new Gauge({
      name: 'portway_config_last_reload_success',
      help: '1 if the latest configuration change was applied, 0 if it failed (the previous snapshot keeps serving).',
      registers,
      collect() {
        this.set(state.lastReloadSuccess ? 1 : 0);
      },
    });
    new Gauge({
      name: 'portway_config_rejected_objects',
      help: 'Configuration objects rejected (with an error diagnostic) in the serving snapshot.',
      registers,
      collect() {
        this.set(state.rejectedObjects);
      },
    });
  }

  series(gatewayPort: string, host: string, route: string): RouteSeries {
    return new RouteSeries(this, { gateway_port: gatewayPort, host, route });
  }

  /** Called by a series on its first count since the last flush. */
  markDirty(series: RouteSeries): void {
    this.dirty.push(series);
  }

  /** Adds every series' pending counts to the metrics. */
  private flush(): void {
    const dirty = this.dirty;
    if (dirty.length === 0) return;
    this.dirty = [];
    for (const s of dirty) s.flushInto(this.requests, this.duration);
  }
}

/**
 * The counts of one (gateway port, virtual host, route) since the last flush. Series of an
 * older snapshot with the same labels flush into the same metric children, so nothing is
 * lost across snapshots.
 */
export class RouteSeries {
  private dirty = false;
  private codes: number[] = [];
  private codeCounts: number[] = [];
  /** Per duration bucket (the last one is +Inf); allocated on the first request. */
  private buckets: Float64Array | undefined;
  private sum = 0;
  private count = 0;

  constructor(
    private readonly metrics: ProxyMetrics,
    private readonly labels: LabelValues<DurationLabels>,
  ) {}

  record(code: number, seconds: number): void {
    if (!this.dirty) {
      this.dirty = true;
      this.metrics.markDirty(this);
    }
    const codes = this.codes;
    let i = 0;
    while (i < codes.length && codes[i] !== code) i++;
    if (i === codes.length) {
      codes.push(code);
      this.codeCounts.push(1);
    } else {
      this.codeCounts[i]!++;
    }
    const bounds = DURATION_BUCKETS;
    let b = 0;
    while (b < bounds.length && seconds > bounds[b]!) b++;
    (this.buckets ??= new Float64Array(bounds.length + 1))[b]!++;
    this.sum += seconds;
    this.count++;
  }

  flushInto(requests: Counter<RequestLabels>, duration: DurationHistogram): void {
    this.dirty = false;
    for (let i = 0; i < this.codes.length; i++) {
      const n = this.codeCounts[i]!;
      if (n > 0) requests.inc({ ...this.labels, code: String(this.codes[i]) }, n);
      this.codeCounts[i] = 0;
    }
    if (this.count > 0 && this.buckets !== undefined) {
      duration.add(this.labels, this.buckets, this.sum, this.count);
      this.buckets.fill(0);
      this.sum = 0;
      this.count = 0;
    }
  }
}

interface HistogramEntry {
  labels: LabelValues<DurationLabels>;
  /** Per bucket, not cumulative; the last one is +Inf. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram in prom-client's metric shape (what Registry and AggregatorRegistry read:
 * name, help, type, aggregator, get(), reset()), fed in bulk by RouteSeries.flushInto.
 * Its values are those prom-client's Histogram reports: per label set the cumulative
 * buckets (`le`), `+Inf`, `_sum` and `_count`.
 */
export class DurationHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly DurationLabels[] = ['gateway_port', 'host', 'route'];
  private readonly entries = new Map<string, HistogramEntry>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly upperBounds: readonly number[],
    private readonly collect: () => void,
  ) {}

  add(labels: LabelValues<DurationLabels>, buckets: Float64Array, sum: number, count: number): void {
    const key = `${labels.gateway_port}\u0000${labels.host}\u0000${labels.route}`;
    let e = this.entries.get(key);
    if (e === undefined) this.entries.set(key, (e = { labels, buckets: new Float64Array(this.upperBounds.length + 1), sum: 0, count: 0 }));
    for (let i = 0; i < buckets.length; i++) e.buckets[i]! += buckets[i]!;
    e.sum += sum;
    e.count += count;
  }

  async get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }> {
    this.collect();
    const values: MetricValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const e of this.entries.values()) {
      let acc = 0;
      // `le` first, as prom-client's Histogram prints it.
      for (let i = 0; i < this.upperBounds.length; i++) {
        acc += e.buckets[i]!;
        values.push({ labels: { le: this.upperBounds[i]!, ...e.labels }, value: acc, metricName: bucketName });
      }
      values.push({ labels: { le: '+Inf', ...e.labels }, value: e.count, metricName: bucketName });
      values.push({ labels: { ...e.labels }, value: e.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...e.labels }, value: e.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.collect();
    this.entries.clear();
  }
}
