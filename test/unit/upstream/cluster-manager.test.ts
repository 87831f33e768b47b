// ClusterManager without sockets: admission (circuit breakers), leases, outlier state driven
// through done(), hash cookies, DNS bookkeeping and metrics. No request is sent.

import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { ClusterManager, type Lease, type LeaseFailure } from '../../../dataplane/upstream/cluster-manager.js';
import { connectionsPerEndpoint, gateLimitsFor, poolSettingsFor } from '../../../dataplane/upstream/connection-pool.js';
import { seededRandom } from '../../../dataplane/upstream/load-balancer.js';
import { classifyUpstreamError } from '../../../dataplane/upstream/errors.js';
import { clusterMap, endpoint, makeCluster, outlier } from './cluster-fixture.js';

const CTX = { headers: {}, sourceIp: '192.0.2.1' };

function ok(l: Lease | LeaseFailure): Lease {
  assert.equal(l.ok, true, l.ok ? '' : `${l.flag}: ${l.message}`);
  return l as Lease;
}

function failure(l: Lease | LeaseFailure): LeaseFailure {
  assert.equal(l.ok, false);
  return l as LeaseFailure;
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as Array<{ labels: Record<string, string>; value: number }> | undefined)?.find((v) =>
    Object.entries(labels).every(([k, val]) => v.labels[k] === val),
  );
  return v?.value;
}

describe('upstream cluster manager (no sockets)', () => {
  let registry: Registry;
  let mgr: ClusterManager;
  let clock: { t: number };

  beforeEach(() => {
    registry = new Registry();
    clock = { t: 0 };
    mgr = new ClusterManager({ registry, now: () => clock.t, random: seededRandom(1), resolver: async () => [] });
  });
  afterEach(() => mgr.close());

  it('answers NR for an unknown cluster and UH for a cluster without endpoints', () => {
    mgr.update(clusterMap(makeCluster({ endpoints: [] })));
    assert.equal(failure(mgr.lease('nope', CTX)).flag, 'NR');
    const f = failure(mgr.lease(makeCluster({ endpoints: [] }).name, CTX));
    assert.equal(f.flag, 'UH');
    assert.match(f.message, /no endpoints/);
  });

  it('HTTP/1: requests beyond maxConnections wait, beyond http1MaxPendingRequests overflow (UO)', async () => {
    const c = makeCluster({ endpoints: [endpoint('10.0.0.1', 80)], connectionPool: { maxConnections: 2, http1MaxPendingRequests: 1 } });
    mgr.update(clusterMap(c));
    const leases = [ok(mgr.lease(c.name, CTX)), ok(mgr.lease(c.name, CTX)), ok(mgr.lease(c.name, CTX))];
    const f = failure(mgr.lease(c.name, CTX));
    assert.equal(f.flag, 'UO');
    assert.equal(await metric(registry, 'portway_upstream_rq_pending_overflow_total', { cluster: c.name }), 1);
    leases[0]!.done({ status: 200 });
    leases[0]!.done({ status: 200 }); // done() twice counts once
    ok(mgr.lease(c.name, CTX));
    assert.equal(failure(mgr.lease(c.name, CTX)).flag, 'UO');
  });

  it('http2MaxRequests caps requests in flight for HTTP/1 and h2c alike', () => {
    const h1 = makeCluster({ name: 'h1', endpoints: [endpoint('10.0.0.1', 80)], connectionPool: { http2MaxRequests: 2 } });
    const h2 = makeCluster({ name: 'h2', protocol: 'h2c', endpoints: [endpoint('10.0.0.1', 81)], connectionPool: { http2MaxRequests: 3, maxConnections: 1, http1MaxPendingRequests: 1 } });
    assert.equal(gateLimitsFor(h1).maxInFlight, 2);
    assert.equal(gateLimitsFor(h2).maxInFlight, 3, 'HTTP/2 multiplexes: pending limits do not apply');
    mgr.update(clusterMap(h1, h2));
    ok(mgr.lease('h1', CTX));
    ok(mgr.lease('h1', CTX));
    assert.equal(failure(mgr.lease('h1', CTX)).flag, 'UO');
    for (let i = 0; i < 3; i++) ok(mgr.lease('h2', CTX));
    assert.equal(failure(mgr.lease('h2', CTX)).flag, 'UO');
  });

  it('TCP clusters admit maxConnections connections', () => {
    const c = makeCluster({ protocol: 'tcp', endpoints: [endpoint('10.0.0.1', 5432)], connectionPool: { maxConnections: 1 } });
    mgr.update(clusterMap(c));
    const l = ok(mgr.lease(c.name, CTX));
    assert.equal(failure(mgr.lease(c.name, CTX)).flag, 'UO');
    l.done({});
    ok(mgr.lease(c.name, CTX));
  });

  it('maxRetries bounds concurrent retries; a failed lease gives its permit back', () => {
    const c = makeCluster({ endpoints: [endpoint('10.0.0.1', 80)], connectionPool: { maxRetries: 1 } });
    mgr.update(clusterMap(c));
    const permit = mgr.tryAcquireRetry(c.name)!;
    assert.ok(permit);
    assert.equal(mgr.tryAcquireRetry(c.name), undefined);
    const l = ok(mgr.lease(c.name, { ...CTX, retry: permit }));
    assert.equal(mgr.tryAcquireRetry(c.name), undefined);
    l.done({ status: 200 });
    const again = mgr.tryAcquireRetry(c.name)!;
    assert.ok(again);
    assert.equal(failure(mgr.lease('missing', { ...CTX, retry: again })).flag, 'NR');
    assert.ok(mgr.tryAcquireRetry(c.name), 'the NR failure released the permit');
    assert.equal(mgr.tryAcquireRetry('missing'), undefined);
  });

  it('retries avoid endpoints already tried', () => {
    const c = makeCluster({ endpoints: [endpoint('10.0.0.1', 80), endpoint('10.0.0.2', 80), endpoint('10.0.0.3', 80)], loadBalancer: { kind: 'RANDOM' } });
    mgr.update(clusterMap(c));
    for (let i = 0; i < 50; i++) {
      const first = ok(mgr.lease(c.name, CTX));
      const exclude = new Set([first.endpointKey]);
      const second = ok(mgr.lease(c.name, { ...CTX, exclude }));
      assert.notEqual(second.endpointKey, first.endpointKey);
      exclude.add(second.endpointKey);
      const third = ok(mgr.lease(c.name, { ...CTX, exclude }));
      assert.ok(!exclude.has(third.endpointKey));
      for (const l of [first, second, third]) l.done({ status: 200 });
    }
  });

  it('ejects an endpoint after consecutive 5xx reported through done(), and returns it after the sweep', async () => {
    const c = makeCluster({
      endpoints: [endpoint('10.0.0.1', 80), endpoint('10.0.0.2', 80), endpoint('10.0.0.3', 80)],
      outlierDetection: outlier({ consecutive5xxErrors: 2, maxEjectionPercent: 50, baseEjectionTime: 1000, interval: 100 }),
    });
    mgr.update(clusterMap(c));
    for (let i = 0; i < 6; i++) {
      const l = ok(mgr.lease(c.name, CTX));
      l.done(l.endpointKey === '10.0.0.2:80' ? { error: 'connect-failure' } : { status: 200 });
    }
    assert.equal(await metric(registry, 'portway_upstream_ejections_active', { cluster: c.name }), 1);
    assert.equal(await metric(registry, 'portway_upstream_ejections_total', { cluster: c.name }), 1);
    for (let i = 0; i < 20; i++) {
      const l = ok(mgr.lease(c.name, CTX));
      assert.notEqual(l.endpointKey, '10.0.0.2:80');
      l.done({ status: 200 });
    }
    clock.t += 1000;
    mgr.runtime(c.name)!.sweepOutliers();
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const l = ok(mgr.lease(c.name, CTX));
      seen.add(l.endpointKey);
      l.done({ status: 200 });
    }
    assert.ok(seen.has('10.0.0.2:80'));
    assert.equal(await metric(registry, 'portway_upstream_ejections_active', { cluster: c.name }), 0);
  });

  it('answers UH when every endpoint is ejected, and uses them all in panic (minHealthPercent)', () => {
    const strict = makeCluster({ name: 'strict', endpoints: [endpoint('10.0.0.1', 80)], outlierDetection: outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 100 }) });
    const panicky = makeCluster({
      name: 'panicky',
      endpoints: [endpoint('10.0.0.1', 80), endpoint('10.0.0.2', 80)],
      outlierDetection: outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 60 }),
    });
    mgr.update(clusterMap(strict, panicky));
    ok(mgr.lease('strict', CTX)).done({ status: 503 });
    const f = failure(mgr.lease('strict', CTX));
    assert.equal(f.flag, 'UH');
    assert.match(f.message, /ejected/);

    const l = ok(mgr.lease('panicky', CTX));
    l.done({ status: 503 });
    // One of two healthy is 50% < 60%: panic, both endpoints take traffic.
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const x = ok(mgr.lease('panicky', CTX));
      seen.add(x.endpointKey);
      x.done({ error: 'other' });
    }
    assert.equal(seen.size, 2);
  });

  it('keeps outlier state and load-balancer position for unchanged endpoints across update()', () => {
    const eps = [endpoint('10.0.0.1', 80), endpoint('10.0.0.2', 80), endpoint('10.0.0.3', 80)];
    const od = outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 50, baseEjectionTime: 60_000 });
    mgr.update(clusterMap(makeCluster({ endpoints: eps, outlierDetection: od })));
    const first = ok(mgr.lease(makeCluster({ endpoints: eps }).name, CTX));
    first.done({ status: 500 });
    // New snapshot: same endpoints, a different connection pool policy and one more endpoint.
    const c2 = makeCluster({ endpoints: [...eps, endpoint('10.0.0.4', 80)], outlierDetection: od, connectionPool: { connectTimeout: 5000 } });
    mgr.update(clusterMap(c2));
    for (let i = 0; i < 12; i++) {
      const l = ok(mgr.lease(c2.name, CTX));
      assert.notEqual(l.endpointKey, first.endpointKey, 'still ejected after the update');
      l.done({ status: 200 });
    }
  });

  it('generates a hash cookie when the request has none, and the cookie then pins the endpoint', () => {
    const c = makeCluster({
      endpoints: [1, 2, 3, 4, 5].map((i) => endpoint(`10.0.0.${i}`, 80)),
      loadBalancer: { kind: 'CONSISTENT_HASH', hashOn: { kind: 'cookie', name: 'sticky', path: '/', ttl: 3_600_000 }, algorithm: 'ringHash', minimumRingSize: 1024 },
    });
    mgr.update(clusterMap(c));
    const first = ok(mgr.lease(c.name, { headers: {}, sourceIp: '198.51.100.9', sourcePort: 40000 }));
    assert.match(first.setCookie ?? '', /^sticky=[0-9a-f]{16}; Path=\/; Max-Age=3600; HttpOnly$/);
    const value = first.setCookie!.split(';')[0]!.split('=')[1]!;
    for (let i = 0; i < 10; i++) {
      const l = ok(mgr.lease(c.name, { headers: { cookie: `sticky=${value}` }, sourceIp: `203.0.113.${i}` }));
      assert.equal(l.setCookie, undefined);
      assert.equal(l.endpointKey, first.endpointKey);
      l.done({ status: 200 });
    }
    // No ttl: no cookie is generated.
    const noTtl = makeCluster({
      name: 'nottl',
      endpoints: [endpoint('10.0.0.1', 80)],
      loadBalancer: { kind: 'CONSISTENT_HASH', hashOn: { kind: 'cookie', name: 'sticky' }, algorithm: 'maglev', minimumRingSize: 1024 },
    });
    mgr.update(clusterMap(c, noTtl));
    assert.equal(ok(mgr.lease('nottl', CTX)).setCookie, undefined);
  });

  it('pins a header hash across snapshots while the endpoint set is unchanged', () => {
    const lb = { kind: 'CONSISTENT_HASH', hashOn: { kind: 'header', name: 'x-user' }, algorithm: 'maglev', minimumRingSize: 1024 } as const;
    const eps = [1, 2, 3, 4].map((i) => endpoint(`10.0.0.${i}`, 80));
    mgr.update(clusterMap(makeCluster({ endpoints: eps, loadBalancer: lb })));
    const name = makeCluster({ endpoints: eps }).name;
    const picks = Array.from({ length: 50 }, (_, u) => ok(mgr.lease(name, { headers: { 'x-user': `u${u}` }, sourceIp: '1.1.1.1' })).endpointKey);
    mgr.update(clusterMap(makeCluster({ endpoints: [...eps].reverse(), loadBalancer: lb, connectionPool: { maxRetries: 3 } })));
    const again = Array.from({ length: 50 }, (_, u) => ok(mgr.lease(name, { headers: { 'x-user': `u${u}` }, sourceIp: '1.1.1.1' })).endpointKey);
    assert.deepEqual(again, picks);
  });

  it('DNS clusters: UH until the first answer, then the resolved addresses; a failed refresh keeps them', async () => {
    let answer: () => Promise<string[]> = () => new Promise(() => {}); // never answers
    const names: string[] = [];
    const dnsMgr = new ClusterManager({
      registry: new Registry(),
      resolver: (host) => {
        names.push(host);
        return answer();
      },
      dnsRefreshInterval: 3_600_000,
    });
    try {
      const c = makeCluster({ resolution: 'dns', endpoints: [endpoint('api.example.com', 443)] });
      dnsMgr.update(clusterMap(c));
      const f = failure(dnsMgr.lease(c.name, CTX));
      assert.equal(f.flag, 'UH');
      assert.match(f.message, /DNS resolution pending/);
      assert.deepEqual(names, ['api.example.com']);

      answer = async () => ['192.0.2.20', '192.0.2.10'];
      await dnsMgr.runtime(c.name)!.resolveNow();
      const keys = new Set([0, 1, 2, 3].map(() => ok(dnsMgr.lease(c.name, CTX)).endpointKey));
      assert.deepEqual([...keys].sort(), ['192.0.2.10:443', '192.0.2.20:443']);
      const l = ok(dnsMgr.lease(c.name, CTX));
      assert.equal(l.origin, `http://${l.endpoint.address}:443`);
      assert.equal(l.endpoint.ref, 'api.example.com');

      answer = async () => {
        throw new Error('SERVFAIL');
      };
      await dnsMgr.runtime(c.name)!.resolveNow();
      ok(dnsMgr.lease(c.name, CTX));
      assert.equal(dnsMgr.runtime(c.name)!.hosts.length, 2);
    } finally {
      await dnsMgr.close();
    }
  });

  it('TLS origination: https origin, SNI from the policy, UH while the credentials are missing', () => {
    const calls: string[] = [];
    let ready = false;
    const tlsMgr = new ClusterManager({
      registry: new Registry(),
      tlsOptionsFor: (policy, cluster) => {
        calls.push(`${policy.mode} ${cluster.name}`);
        return ready ? { ca: 'PEM' } : undefined;
      },
    });
    const c = makeCluster({ endpoints: [endpoint('10.0.0.1', 443)], tls: { mode: 'SIMPLE', sni: 'api.example.com', subjectAltNames: [], insecureSkipVerify: false } });
    tlsMgr.update(clusterMap(c));
    assert.equal(failure(tlsMgr.lease(c.name, CTX)).flag, 'UH');
    ready = true;
    tlsMgr.update(clusterMap(c));
    const l = ok(tlsMgr.lease(c.name, CTX));
    assert.equal(l.origin, 'https://10.0.0.1:443');
    assert.deepEqual(calls, [`SIMPLE ${c.name}`, `SIMPLE ${c.name}`]);
    void tlsMgr.close();
  });

  it('splits maxConnections across endpoints and maps maxRequestsPerConnection for undici', () => {
    assert.equal(connectionsPerEndpoint(10, 3), 4);
    assert.equal(connectionsPerEndpoint(1, 3), 1);
    assert.equal(connectionsPerEndpoint(4_294_967_295, 3), null);
    const s = (n: number) => poolSettingsFor(makeCluster({ endpoints: [], connectionPool: { maxRequestsPerConnection: n } }), 1, undefined);
    assert.deepEqual([s(0).maxRequestsPerClient, s(0).closeAfterEachRequest], [0, false]);
    assert.deepEqual([s(1).maxRequestsPerClient, s(1).closeAfterEachRequest], [0, true]);
    assert.deepEqual([s(5).maxRequestsPerClient, s(5).closeAfterEachRequest], [4, false]);
  });

  it('counts requests by code class and drops a removed cluster\'s series', async () => {
    const c = makeCluster({ endpoints: [endpoint('10.0.0.1', 80)] });
    mgr.update(clusterMap(c));
    ok(mgr.lease(c.name, CTX)).done({ status: 204 });
    ok(mgr.lease(c.name, CTX)).done({ status: 503 });
    ok(mgr.lease(c.name, CTX)).done({ error: 'reset' });
    assert.equal(await metric(registry, 'portway_upstream_rq_total', { cluster: c.name, code_class: '2xx' }), 1);
    assert.equal(await metric(registry, 'portway_upstream_rq_total', { cluster: c.name, code_class: '5xx' }), 1);
    assert.equal(await metric(registry, 'portway_upstream_rq_total', { cluster: c.name, code_class: 'error' }), 1);
    mgr.update(new Map());
    assert.equal(await metric(registry, 'portway_upstream_rq_total', { cluster: c.name }), undefined);
    assert.equal(failure(mgr.lease(c.name, CTX)).flag, 'NR');
  });

  it('classifies undici and socket errors for done()', () => {
    assert.equal(classifyUpstreamError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 'connect-failure');
    assert.equal(classifyUpstreamError(Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), 'connect-failure');
    assert.equal(classifyUpstreamError(Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' })), 'reset');
    assert.equal(classifyUpstreamError(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' })), 'timeout');
    assert.equal(classifyUpstreamError(new DOMException('aborted', 'AbortError')), 'other');
  });
});
