// The request metrics count in plain fields and reach the registry when it is read: the text
// must be what prom-client's own Counter and Histogram print for the same requests.

import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { ProxyMetrics } from '../../../dataplane/admin/metrics.js';
import { ProxyState } from '../../../dataplane/serve/proxy-state.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The same requests through prom-client's own metrics, as the proxy recorded them before. */
function reference(requests: Array<[port: string, host: string, route: string, code: number, seconds: number]>): Registry {
  const registry = new Registry();
  const counter = new Counter({ name: 'portway_requests_total', help: 'x', labelNames: ['gateway_port', 'host', 'route', 'code'], registers: [registry] });
  const histogram = new Histogram({ name: 'portway_request_duration_seconds', help: 'x', labelNames: ['gateway_port', 'host', 'route'], buckets: BUCKETS, registers: [registry] });
  for (const [port, host, route, code, seconds] of requests) {
    counter.labels(port, host, route, String(code)).inc();
    histogram.labels(port, host, route).observe(seconds);
  }
  return registry;
}

/** The metric's sample lines, without HELP/TYPE. */
async function samples(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.getSingleMetricAsString(name);
  return text.split('\n').filter((l) => !l.startsWith('#'));
}

describe('serve: request metrics', () => {
  const requests: Array<[string, string, string, number, number]> = [
    ['80', 'a.example.com:80', 'default/a.0', 200, 0.0004],
    ['80', 'a.example.com:80', 'default/a.0', 200, 0.003],
    ['80', 'a.example.com:80', 'default/a.0', 503, 0.2],
    ['80', 'b.example.com:80', 'default/b.0', 200, 75],
    ['80', '-', '-', 404, 0.001],
  ];

  it('prints what prom-client prints for the same requests, across flushes and snapshots', async () => {
    const registry = new Registry();
    const metrics = new ProxyMetrics(registry, new ProxyState(), { defaultMetrics: false });
    const series = new Map<string, ReturnType<ProxyMetrics['series']>>();
    const record = (r: [string, string, string, number, number], fresh = false) => {
      const key = r.slice(0, 3).join('|');
      // A new snapshot builds new series for the same labels: their counts add up.
      if (fresh || !series.has(key)) series.set(key, metrics.series(r[0], r[1], r[2]));
      series.get(key)!.record(r[3], r[4]);
    };
    record(requests[0]!);
    record(requests[1]!);
    await registry.metrics(); // a scrape in between
    record(requests[2]!, true);
    record(requests[3]!);
    record(requests[4]!);
    const expected = reference(requests);
    for (const name of ['portway_requests_total', 'portway_request_duration_seconds']) {
      assert.deepEqual(await samples(registry, name), await samples(expected, name), name);
    }
    // JSON (what worker aggregation reads) too.
    const json = (await registry.getMetricsAsJSON()).find((m) => m.name === 'portway_request_duration_seconds')!;
    const want = (await expected.getMetricsAsJSON()).find((m) => m.name === 'portway_request_duration_seconds')!;
    const plain = (values: Array<{ labels: object; value: number; metricName?: string }>) => values.map((v) => ({ labels: v.labels, value: v.value, metricName: v.metricName }));
    assert.deepEqual(plain(json.values), plain(want.values));
    assert.equal(json.type, want.type);
    assert.equal(json.aggregator, want.aggregator);
  });

  it('resetMetrics() drops counts not yet read, as it drops the rest', async () => {
    const registry = new Registry();
    const metrics = new ProxyMetrics(registry, new ProxyState(), { defaultMetrics: false });
    const s = metrics.series('80', 'h', 'r');
    s.record(200, 0.01);
    await registry.metrics();
    s.record(200, 0.01);
    registry.resetMetrics();
    assert.deepEqual(await samples(registry, 'portway_request_duration_seconds'), []);
    assert.deepEqual(await samples(registry, 'portway_requests_total'), []);
  });
});
