// The proxy's own Prometheus metrics, on a registry the proxy owns (never prom-client's
// global one): requests by gateway port / virtual host / route / code, request duration,
// downstream connections and the configuration state. Label children are looked up once
// per route and snapshot (RouteSeries), not per request.

import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ProxyState } from '../serve/proxy-state.js';

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type RequestLabels = 'gateway_port' | 'host' | 'route' | 'code';
type DurationLabels = 'gateway_port' | 'host' | 'route';

export interface ProxyMetricsOptions {
  /** Process metrics (CPU, memory, event loop lag, GC); on by default. */
  defaultMetrics?: boolean;
}

export class ProxyMetrics {
  readonly requests: Counter<RequestLabels>;
  readonly duration: Histogram<DurationLabels>;

  constructor(
    readonly registry: Registry,
    state: ProxyState,
    options: ProxyMetricsOptions = {},
  ) {
    const registers = [registry];
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
    this.requests = new Counter({
      name: 'portway_requests_total',
      help: 'Downstream HTTP requests by gateway port, virtual host, route and response code ("0": no response was sent).',
      labelNames: ['gateway_port', 'host', 'route', 'code'],
      registers,
    });
    this.duration = new Histogram({
      name: 'portway_request_duration_seconds',
      help: 'Downstream HTTP request duration, from the request head to the last response byte.',
      labelNames: ['gateway_port', 'host', 'route'],
      buckets: DURATION_BUCKETS,
      registers,
    });
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
    return new RouteSeries(this, gatewayPort, host, route);
  }
}

/** The metric children of one (gateway port, virtual host, route): one Map lookup per request. */
export class RouteSeries {
  private readonly byCode = new Map<number, Counter.Internal>();
  private readonly histogram: Histogram.Internal<DurationLabels>;

  constructor(
    private readonly metrics: ProxyMetrics,
    private readonly gatewayPort: string,
    private readonly host: string,
    private readonly route: string,
  ) {
    this.histogram = metrics.duration.labels(gatewayPort, host, route);
  }

  record(code: number, seconds: number): void {
    let counter = this.byCode.get(code);
    if (counter === undefined) {
      counter = this.metrics.requests.labels(this.gatewayPort, this.host, this.route, String(code));
      this.byCode.set(code, counter);
    }
    counter.inc();
    this.histogram.observe(seconds);
  }
}
