// Timeouts, retries, circuit breakers, fault injection and mirroring against real backends.

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { closedPort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, match, prefix, route, snapshot, testTrafficPolicy, virtualHost } from '../../support/snapshot-builder.js';
import { send, serveHttp, startHarness, type Harness } from './harness.js';

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`never happened: ${what}`);
}

describe('serve: timeouts, retries, faults, mirrors', () => {
  let h: Harness;
  let good: EchoBackend;
  let failing: EchoBackend;
  let alsoFailing: EchoBackend;
  let shadow: EchoBackend;
  let slow: EchoBackend;
  let port: number;
  const host = 'svc.example.com';
  const cGood = clusterName('good');
  const cFlaky = clusterName('flaky');
  const cDeadAndGood = clusterName('dead-and-good');
  const cAllFailing = clusterName('all-failing');
  const cShadow = clusterName('shadow');
  const cDeadShadow = clusterName('dead-shadow');
  const cSlow = clusterName('slow');
  const cTiny = clusterName('tiny');
  const cEmpty = clusterName('empty');

  before(async () => {
    h = await startHarness({ limits: { attemptCountHeader: true } });
    good = await startEchoBackend('good');
    failing = await startEchoBackend('failing', { status: 503 });
    alsoFailing = await startEchoBackend('also-failing', { status: 503 });
    shadow = await startEchoBackend('shadow');
    slow = await startEchoBackend('slow');
    const dead = { address: '127.0.0.1', port: await closedPort() };
    const deadShadow = { address: '127.0.0.1', port: await closedPort() };
    const r = (name: string, path: string, spec: Parameters<typeof route>[1]) => route(`default/${name}`, { matches: [match({ uri: prefix(path) })], ...spec });
    port = await serveHttp(h, {
      virtualHosts: [
        virtualHost([host], [
          r('timeout', '/timeout', { to: cSlow, timeout: 150 }),
          r('flaky', '/flaky', { to: cFlaky }),
          r('dead', '/dead', { to: cDeadAndGood }),
          r('exhausted', '/exhausted', { to: cAllFailing, retries: { attempts: 2 } }),
          r('no-retry', '/no-retry', { to: cAllFailing, retries: { attempts: 0 } }),
          r('per-try', '/per-try', { to: cSlow, retries: { attempts: 1, perTryTimeout: 100, retryOn: ['5xx'] } }),
          r('abort-all', '/abort-all', { to: cGood, fault: { abort: { httpStatus: 503, percentage: 100 } } }),
          r('abort-none', '/abort-none', { to: cGood, fault: { abort: { httpStatus: 503, percentage: 0 } } }),
          r('abort-grpc', '/abort-grpc', { to: cGood, fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: 100 } } }),
          r('delay-all', '/delay-all', { to: cGood, fault: { delay: { fixedDelay: 30, percentage: 100 } } }),
          r('delay-none', '/delay-none', { to: cGood, fault: { delay: { fixedDelay: 30_000, percentage: 0 } } }),
          r('mirror', '/mirror', { to: cGood, mirrors: [{ cluster: cShadow, host: 'shadow', percentage: 100 }] }),
          r('mirror-dead', '/mirror-dead', { to: cGood, mirrors: [{ cluster: cDeadShadow, host: 'dead-shadow', percentage: 100 }] }),
          r('tiny', '/tiny', { to: cTiny }),
          r('empty', '/empty', { to: cEmpty }),
          r('missing', '/missing', { to: clusterName('not-in-snapshot') }),
        ]),
      ],
      clusters: [
        cluster(cGood, [good]),
        cluster(cFlaky, [failing, good]),
        cluster(cDeadAndGood, [dead, good]),
        cluster(cAllFailing, [failing, alsoFailing]),
        cluster(cShadow, [shadow]),
        cluster(cDeadShadow, [deadShadow]),
        cluster(cSlow, [slow]),
        cluster(cTiny, [slow], { connectionPool: { ...testTrafficPolicy().connectionPool, maxConnections: 1, http1MaxPendingRequests: 0 } }),
        cluster(cEmpty, []),
      ],
    });
  });
  after(async () => {
    await h.close();
    await Promise.all([good, failing, alsoFailing, shadow, slow].map((b) => b.close()));
  });

  const line = async (path: string) => (await h.logLines()).find((l) => l.includes(` ${path} HTTP/1.1"`)) ?? assert.fail(`no log line for ${path}`);

  it('route timeout: 504 with flag UT', async () => {
    const r = await send(port, { host, path: '/timeout/delay/5000' });
    assert.equal(r.status, 504);
    assert.equal(r.body, 'upstream request timeout');
    assert.match(await line('/timeout/delay/5000'), /" 504 UT upstream_response_timeout /);
  });
  it('per-try timeout: retried, then 504 UT with URX', async () => {
    const before = slow.requests.length;
    const r = await send(port, { host, path: '/per-try/delay/3000' });
    assert.equal(r.status, 504);
    await eventually(() => slow.requests.length >= before + 2, 'the slow backend saw the retry');
    assert.match(await line('/per-try/delay/3000'), /" 504 (UT,URX|URX,UT) /);
  });
  it('retries a 503 on another endpoint (Istio default policy) and succeeds', async () => {
    const agent = new Agent({ keepAlive: true });
    const failingBefore = failing.requests.length;
    for (let i = 0; i < 10; i++) {
      const r = await send(port, { host, path: `/flaky/${i}`, method: 'POST', body: `payload-${i}`, agent });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json().name, 'good');
      assert.equal(r.json().body, `payload-${i}`, 'the buffered body was replayed');
    }
    agent.destroy();
    assert.ok(failing.requests.length > failingBefore, 'the failing endpoint was tried');
    assert.ok(failing.requests.some((q) => q.body.startsWith('payload-')));
    // x-envoy-attempt-count: first tries say 1; the retry that reached the good endpoint says 2.
    assert.ok(failing.requests.slice(failingBefore).every((q) => q.headers['x-envoy-attempt-count'] === '1'));
    assert.ok(good.requests.some((q) => q.url.startsWith('/flaky/') && q.headers['x-envoy-attempt-count'] === '2'));
  });
  it('retries a connect failure to a dead endpoint and succeeds on another', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await send(port, { host, path: `/dead/${i}` });
      assert.equal(r.status, 200);
      assert.equal(r.json().name, 'good');
    }
  });
  it('retries exhausted: the last 503 is passed on with URX', async () => {
    const before = failing.requests.length + alsoFailing.requests.length;
    const r = await send(port, { host, path: '/exhausted' });
    assert.equal(r.status, 503);
    assert.equal(failing.requests.length + alsoFailing.requests.length - before, 3, 'one try and two retries');
    assert.match(await line('/exhausted'), /" 503 URX via_upstream /);
  });
  it('attempts 0: no retry', async () => {
    const before = failing.requests.length + alsoFailing.requests.length;
    const r = await send(port, { host, path: '/no-retry' });
    assert.equal(r.status, 503);
    assert.equal(failing.requests.length + alsoFailing.requests.length - before, 1);
  });
  it('circuit breaker overflow: 503 UO', async () => {
    const replies = await Promise.all([send(port, { host, path: '/tiny/delay/300' }), send(port, { host, path: '/tiny/delay/300' }), send(port, { host, path: '/tiny/delay/300' })]);
    const statuses = replies.map((r) => r.status).sort();
    assert.ok(statuses.includes(200), statuses.join());
    assert.ok(statuses.includes(503), statuses.join());
    assert.ok((await h.logLines()).some((l) => l.includes('"GET /tiny/delay/300 HTTP/1.1" 503 UO ')));
  });
  it('no endpoints: 503 UH; unknown cluster: 503 NC', async () => {
    const uh = await send(port, { host, path: '/empty' });
    assert.equal(uh.status, 503);
    assert.equal(uh.body, 'no healthy upstream');
    assert.match(await line('/empty'), /" 503 UH no_healthy_upstream /);
    const nc = await send(port, { host, path: '/missing' });
    assert.equal(nc.status, 503);
    assert.match(await line('/missing'), /" 503 NC cluster_not_found /);
  });
  it('fault abort at 100% answers at the gateway (FI); at 0% never', async () => {
    const before = good.requests.length;
    const a = await send(port, { host, path: '/abort-all' });
    assert.equal(a.status, 503);
    assert.equal(a.body, 'fault filter abort');
    assert.equal(good.requests.length, before);
    assert.match(await line('/abort-all'), /" 503 FI fault_filter_abort /);
    for (let i = 0; i < 5; i++) assert.equal((await send(port, { host, path: '/abort-none' })).status, 200);
  });
  it('fault abort with a gRPC status', async () => {
    const r = await send(port, { host, path: '/abort-grpc' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['grpc-status'], '14');
    assert.equal(r.headers['content-type'], 'application/grpc');
  });
  it('fault delay at 100% delays then forwards (DI); at 0% never', async () => {
    const d = await send(port, { host, path: '/delay-all' });
    assert.equal(d.status, 200);
    assert.match(await line('/delay-all'), /" 200 DI via_upstream /);
    const n = await send(port, { host, path: '/delay-none' });
    assert.equal(n.status, 200);
    assert.match(await line('/delay-none'), /" 200 - via_upstream /);
  });
  it('mirrors a copy (host with -shadow, body included) without affecting the response', async () => {
    const r = await send(port, { host, path: '/mirror/x?y=1', method: 'POST', body: 'copy me' });
    assert.equal(r.status, 200);
    assert.equal(r.json().name, 'good');
    await eventually(() => shadow.requests.some((q) => q.url === '/mirror/x?y=1'), 'the shadow backend got the copy');
    const copy = shadow.requests.find((q) => q.url === '/mirror/x?y=1')!;
    assert.equal(copy.headers.host, `${host}-shadow`);
    assert.equal(copy.body, 'copy me');
    assert.equal(copy.method, 'POST');
  });
  it('a dead mirror target does not affect the main request', async () => {
    const r = await send(port, { host, path: '/mirror-dead' });
    assert.equal(r.status, 200);
    assert.equal(r.json().name, 'good');
  });
});
