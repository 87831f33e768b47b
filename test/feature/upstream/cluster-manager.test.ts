// ClusterManager against real HTTP backends on 127.0.0.1, requests sent through the leased
// undici dispatchers exactly as the forwarder sends them.

import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { ClusterManager } from '../../../dataplane/upstream/cluster-manager.js';
import { classifyUpstreamError } from '../../../dataplane/upstream/errors.js';
import { clusterMap, endpoint, makeCluster, outlier, type ClusterSpec } from '../../unit/upstream/cluster-fixture.js';
import { closedPort, get, ok, startBackend, waitFor, type Backend } from './backends.js';

const CTX = { headers: {}, sourceIp: '127.0.0.1' };

async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as Array<{ labels: Record<string, string>; value: number }> | undefined)?.find((v) =>
    Object.entries(labels).every(([k, val]) => v.labels[k] === val),
  );
  return v?.value ?? 0;
}

describe('upstream: clusters against real backends', () => {
  let backends: Backend[] = [];
  let registry: Registry;
  let mgr: ClusterManager;

  const cluster = (spec: Omit<ClusterSpec, 'endpoints'> & { endpoints?: ClusterSpec['endpoints'] }, bs: Backend[] = backends) =>
    makeCluster({ endpoints: bs.map((b) => endpoint('127.0.0.1', b.port)), ...spec });

  beforeEach(async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((n) => startBackend(n)));
    registry = new Registry();
    mgr = new ClusterManager({ registry, closeTimeout: 2000 });
  });

  afterEach(async () => {
    await mgr.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('round robin spreads requests evenly over three backends', async () => {
    const c = cluster({ loadBalancer: { kind: 'ROUND_ROBIN' } });
    mgr.update(clusterMap(c));
    const bodies: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await get(ok(mgr.lease(c.name, CTX)));
      assert.equal(res.status, 200);
      bodies.push(res.body);
    }
    assert.deepEqual(backends.map((b) => b.hits), [10, 10, 10]);
    assert.deepEqual(bodies.slice(0, 3).sort(), ['a', 'b', 'c']);
    assert.equal(await metricValue(registry, 'portway_upstream_rq_total', { cluster: c.name, code_class: '2xx' }), 30);
    // Keep-alive: connections were reused (undici may open a second one for back-to-back requests).
    for (const b of backends) assert.ok(b.connections <= 2, `${b.name}: ${b.connections} connections`);
    assert.ok((await metricValue(registry, 'portway_upstream_cx_active', { cluster: c.name })) >= 3);
  });

  it('ejects a failing backend, then sends it traffic again after baseEjectionTime', async () => {
    const failing = backends[1]!;
    failing.status = 503;
    const c = cluster({
      loadBalancer: { kind: 'ROUND_ROBIN' },
      outlierDetection: outlier({ consecutive5xxErrors: 2, maxEjectionPercent: 50, baseEjectionTime: 200, interval: 50 }),
    });
    mgr.update(clusterMap(c));
    while (failing.hits < 2) await get(ok(mgr.lease(c.name, CTX)));
    assert.equal(await metricValue(registry, 'portway_upstream_ejections_active', { cluster: c.name }), 1);
    assert.equal(await metricValue(registry, 'portway_upstream_ejections_total', { cluster: c.name }), 1);

    // Ejected: the failing backend gets nothing while it stays ejected.
    failing.status = 200;
    const before = failing.hits;
    const runtime = mgr.runtime(c.name)!;
    let sent = 0;
    while (runtime.detector.ejectedCount > 0) {
      const res = await get(ok(mgr.lease(c.name, CTX)));
      assert.notEqual(res.body, 'b');
      sent++;
    }
    assert.equal(failing.hits, before);
    assert.ok(sent > 0, 'requests were sent while the backend was ejected');

    // Returned by the interval sweep once baseEjectionTime passed: traffic flows again.
    await waitFor('the ejected backend to get traffic again', async () => {
      await get(ok(mgr.lease(c.name, CTX)));
      return failing.hits > before;
    });
    assert.equal(await metricValue(registry, 'portway_upstream_ejections_active', { cluster: c.name }), 0);
  });

  it('maxConnections 1 + http1MaxPendingRequests 1: the third concurrent request overflows (UO)', async () => {
    const [b] = backends;
    b!.holding = true;
    const c = cluster({ connectionPool: { maxConnections: 1, http1MaxPendingRequests: 1 } }, [b!]);
    mgr.update(clusterMap(c));
    const first = get(ok(mgr.lease(c.name, CTX)));
    const second = get(ok(mgr.lease(c.name, CTX)));
    const third = mgr.lease(c.name, CTX);
    assert.equal(third.ok, false);
    assert.equal(!third.ok && third.flag, 'UO');
    await waitFor('the first request to reach the backend', () => b!.hits === 1);
    b!.release();
    b!.holding = false;
    assert.deepEqual([(await first).status, (await second).status], [200, 200]);
    // The second request waited for the single connection instead of opening another.
    assert.equal(b!.maxInFlight, 1);
    assert.equal(b!.connections, 1);
    assert.equal(await metricValue(registry, 'portway_upstream_rq_pending_overflow_total', { cluster: c.name }), 1);
    ok(mgr.lease(c.name, CTX)).done({ status: 200 });
  });

  it('keeps an unchanged endpoint\'s pool (same connection) across update(), and replaces it when pool options change', async () => {
    const [b] = backends;
    const c1 = cluster({ loadBalancer: { kind: 'ROUND_ROBIN' } }, [b!]);
    mgr.update(clusterMap(c1));
    await get(ok(mgr.lease(c1.name, CTX)));
    await get(ok(mgr.lease(c1.name, CTX)));
    // undici may open a second connection for back-to-back requests; what matters is that
    // the update opens none.
    const connectionsBefore = b!.connections;
    const portsBefore = new Set(b!.requestPorts);
    // A new snapshot: other load balancer, outlier detection on, an extra endpoint.
    const c2 = makeCluster({
      endpoints: [endpoint('127.0.0.1', b!.port), endpoint('127.0.0.1', backends[1]!.port)],
      loadBalancer: { kind: 'LEAST_REQUEST' },
      outlierDetection: outlier(),
    });
    mgr.update(clusterMap(c2));
    for (let i = 0; i < 4; i++) await get(ok(mgr.lease(c2.name, { ...CTX, exclude: new Set([`127.0.0.1:${backends[1]!.port}`]) })));
    assert.equal(b!.hits, 6);
    assert.equal(b!.connections, connectionsBefore, 'the same connections kept serving');
    assert.ok(b!.requestPorts.slice(2).every((p) => portsBefore.has(p)));

    // Pool options changed (connect timeout): a new pool, and the old connection is closed.
    const c3 = makeCluster({ endpoints: [endpoint('127.0.0.1', b!.port)], connectionPool: { connectTimeout: 2000 } });
    mgr.update(clusterMap(c3));
    await get(ok(mgr.lease(c3.name, CTX)));
    assert.equal(b!.connections, connectionsBefore + 1);
    assert.ok(!portsBefore.has(b!.requestPorts.at(-1)!));
    await waitFor('the replaced pool to close its idle connections', () => b!.openSockets.size === 1);
  });

  it('lets a removed endpoint\'s in-flight request complete, then closes its pool', async () => {
    const [a, b] = backends;
    a!.holding = true;
    const c1 = cluster({}, [a!]);
    mgr.update(clusterMap(c1));
    const inFlight = get(ok(mgr.lease(c1.name, CTX)));
    await waitFor('the request to reach the backend', () => a!.hits === 1);
    mgr.update(clusterMap(cluster({}, [b!])));
    a!.release();
    const res = await inFlight;
    assert.deepEqual([res.status, res.body], [200, 'a']);
    await waitFor('the removed endpoint\'s connection to close', () => a!.openSockets.size === 0);
    for (let i = 0; i < 3; i++) assert.equal((await get(ok(mgr.lease(c1.name, CTX)))).body, 'b');
    assert.equal(a!.hits, 1);
  });

  it('maxRequestsPerConnection: 1 closes every connection, 2 allows two requests per connection', async () => {
    const [a, b] = backends;
    mgr.update(clusterMap(cluster({ name: 'one', connectionPool: { maxRequestsPerConnection: 1 } }, [a!]), cluster({ name: 'two', connectionPool: { maxRequestsPerConnection: 2 } }, [b!])));
    for (let i = 0; i < 3; i++) await get(ok(mgr.lease('one', CTX)));
    for (let i = 0; i < 6; i++) await get(ok(mgr.lease('two', CTX)));
    const perConnection = (ports: number[]) => [...ports.reduce((m, p) => m.set(p, (m.get(p) ?? 0) + 1), new Map<number, number>()).values()];
    assert.equal(a!.connections, 3);
    assert.deepEqual(perConnection(a!.requestPorts), [1, 1, 1]);
    assert.ok(perConnection(b!.requestPorts).every((n) => n <= 2), String(perConnection(b!.requestPorts)));
    assert.ok(perConnection(b!.requestPorts).some((n) => n === 2), 'keep-alive still used up to the limit');
    assert.ok(b!.connections >= 3);
  });

  it('reports a refused connection as connect-failure, counts it, and ejects the endpoint', async () => {
    const dead = await closedPort();
    const c = makeCluster({
      endpoints: [endpoint('127.0.0.1', dead), endpoint('127.0.0.1', backends[0]!.port)],
      outlierDetection: outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 50 }),
    });
    mgr.update(clusterMap(c));
    let refused: unknown;
    for (let i = 0; i < 2 && refused === undefined; i++) {
      await get(ok(mgr.lease(c.name, CTX))).catch((err) => (refused = err));
    }
    assert.ok(refused, 'one of the first two requests went to the dead endpoint');
    assert.equal(classifyUpstreamError(refused), 'connect-failure');
    assert.ok((await metricValue(registry, 'portway_upstream_cx_connect_fail_total', { cluster: c.name })) >= 1);
    for (let i = 0; i < 5; i++) assert.equal((await get(ok(mgr.lease(c.name, CTX)))).body, 'a');
  });

  it('close() lets in-flight requests finish', async () => {
    const [a] = backends;
    a!.holding = true;
    const c = cluster({}, [a!]);
    mgr.update(clusterMap(c));
    const inFlight = get(ok(mgr.lease(c.name, CTX)));
    await waitFor('the request to reach the backend', () => a!.hits === 1);
    const closing = mgr.close();
    a!.release();
    await closing;
    assert.equal((await inFlight).status, 200);
    assert.equal(mgr.lease(c.name, CTX).ok, false);
  });
});
