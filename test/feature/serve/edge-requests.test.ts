// What Istio's gateway does to a request before routing it, through the data plane with real
// sockets: path normalization (meshConfig.pathNormalization, BASE by default), headers with
// underscores (allowed by default; drop/reject as options), and the trusted hops of
// gatewayTopology.numTrustedProxies for X-Forwarded-For, X-Forwarded-Proto, httpsRedirect
// and x-envoy-external-address.

import assert from 'node:assert/strict';
import { freePort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, exact, httpListener, match, prefix, route, virtualHost } from '../../support/snapshot-builder.js';
import type { ServeLimits } from '../../../dataplane/serve/data-plane.js';
import { gatewayYaml, httpRouteYaml, serviceEntryYaml, TlsProxy, yamlDocuments } from '../proxy-tls/harness.js';
import { send, serveHttp, startHarness, type Harness } from './harness.js';

const c = clusterName('public.default.svc.cluster.local');

/** /admin is closed by a direct response; /public and /bar go to the echo backend; so does everything else. */
async function gateway(echo: EchoBackend, limits: Partial<ServeLimits> = {}): Promise<{ h: Harness; port: number; redirectPort: number }> {
  const h = await startHarness({ limits, format: 'json' });
  const redirectPort = await freePort();
  const port = await serveHttp(h, {
    virtualHosts: [
      virtualHost(['*'], [
        route('default/gw.admin', { matches: [match({ uri: prefix('/admin') })], directResponse: { status: 403, body: 'admin is closed' } }),
        route('default/gw.public', { matches: [match({ uri: prefix('/public') })], to: c }),
        route('default/gw.bar', { matches: [match({ uri: prefix('/bar') })], to: c, requestHeaders: { set: [['x-route', 'bar']], add: [], remove: [] } }),
        route('default/gw.https-only', { matches: [match({ uri: prefix('/scheme'), scheme: exact('https') })], directResponse: { status: 200, body: 'https route' } }),
        route('default/gw.rest', { to: c }),
      ]),
    ],
    otherListeners: [httpListener({ port: redirectPort, gatewayPort: 8080, httpsRedirect: true, virtualHosts: [virtualHost(['*'], [route('default/gw.redirected', { to: c })])] })],
    clusters: [cluster(c, [echo])],
  });
  return { h, port, redirectPort };
}

describe('serve: path normalization before routing (Istio default BASE)', () => {
  let echo: EchoBackend;
  let g: Awaited<ReturnType<typeof gateway>>;
  before(async () => {
    echo = await startEchoBackend('public');
    g = await gateway(echo);
  });
  after(async () => {
    await g.h.close();
    await echo.close();
  });

  for (const path of ['/public/../admin', '/public/%2E%2E/admin', '/public/./../admin/users', '/public\\..\\admin', '/%61dmin']) {
    it(`${path} cannot reach past the /admin route: it is matched as /admin`, async () => {
      const before = echo.requests.length;
      const r = await send(g.port, { host: 'gw.example.com', path });
      assert.equal(r.status, 403, `${path} → ${r.status} ${r.body}`);
      assert.equal(r.body, 'admin is closed');
      assert.equal(echo.requests.length, before, 'nothing was forwarded');
    });
  }

  it('/foo/../bar routes as /bar and the upstream receives /bar (query string untouched)', async () => {
    const r = await send(g.port, { host: 'gw.example.com', path: '/foo/../bar?next=/a/../b' });
    assert.equal(r.status, 200);
    assert.equal(r.json().headers['x-route'], 'bar');
    assert.equal(r.json().url, '/bar?next=/a/../b');
    const line = (await g.h.logLines()).map((l) => JSON.parse(l)).find((l) => l.route_name === 'default/gw.bar');
    assert.equal(line?.path, '/bar?next=/a/../b');
  });

  it('what BASE leaves alone: %2F stays encoded, "//" stays, other escapes stay; unreserved escapes are decoded', async () => {
    assert.equal((await send(g.port, { host: 'gw.example.com', path: '/public/a%2Fb' })).json().url, '/public/a%2Fb');
    assert.equal((await send(g.port, { host: 'gw.example.com', path: '/public//x' })).json().url, '/public//x');
    assert.equal((await send(g.port, { host: 'gw.example.com', path: '/public/a%20b' })).json().url, '/public/a%20b');
    assert.equal((await send(g.port, { host: 'gw.example.com', path: '/public/%7Euser/./x' })).json().url, '/public/~user/x');
  });

  it('a path with %00 is refused with 400', async () => {
    const before = echo.requests.length;
    const r = await send(g.port, { host: 'gw.example.com', path: '/public/a%00b' });
    assert.equal(r.status, 400);
    assert.equal(echo.requests.length, before);
    const lines = (await g.h.logLines()).map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.response_code === 400 && l.response_code_details === 'path_normalization_failed'));
  });

  it('headers with underscores are forwarded (Istio leaves Envoy’s default, ALLOW)', async () => {
    const r = await send(g.port, { host: 'gw.example.com', path: '/public/u', headers: { 'x_custom_id': '7' } });
    assert.equal(r.status, 200);
    assert.equal(r.json().headers['x_custom_id'], '7');
  });
});

describe('serve: the alternatives (--path-normalization, --headers-with-underscores)', () => {
  let echo: EchoBackend;
  before(async () => (echo = await startEchoBackend('public')));
  after(async () => echo.close());

  it('NONE: the path is routed and forwarded as received', async () => {
    const g = await gateway(echo, { pathNormalization: 'NONE' });
    try {
      const r = await send(g.port, { host: 'gw.example.com', path: '/public/../admin' });
      assert.equal(r.status, 200);
      assert.equal(r.json().url, '/public/../admin');
    } finally {
      await g.h.close();
    }
  });

  it('MERGE_SLASHES and DECODE_AND_MERGE_SLASHES', async () => {
    const merge = await gateway(echo, { pathNormalization: 'MERGE_SLASHES' });
    const decode = await gateway(echo, { pathNormalization: 'DECODE_AND_MERGE_SLASHES' });
    try {
      assert.equal((await send(merge.port, { host: 'gw.example.com', path: '/public//a///b' })).json().url, '/public/a/b');
      assert.equal((await send(merge.port, { host: 'gw.example.com', path: '/public/a%2Fb' })).json().url, '/public/a%2Fb');
      assert.equal((await send(decode.port, { host: 'gw.example.com', path: '/public/a%2Fb' })).json().url, '/public/a/b');
      assert.equal((await send(decode.port, { host: 'gw.example.com', path: '/public%2F..%2Fadmin' })).status, 403);
    } finally {
      await merge.h.close();
      await decode.h.close();
    }
  });

  it('headers with underscores: reject answers 400, drop removes them before routing and forwarding', async () => {
    const reject = await gateway(echo, { headersWithUnderscores: 'REJECT_REQUEST' });
    const drop = await gateway(echo, { headersWithUnderscores: 'DROP_HEADER' });
    try {
      const before = echo.requests.length;
      const r = await send(reject.port, { host: 'gw.example.com', path: '/public/u', headers: { 'x_custom_id': '7' } });
      assert.equal(r.status, 400);
      assert.equal(echo.requests.length, before);
      assert.ok((await reject.h.logLines()).some((l) => JSON.parse(l).response_code_details === 'http1.unexpected_underscore'));
      assert.equal((await send(reject.port, { host: 'gw.example.com', path: '/public/u', headers: { 'x-custom-id': '7' } })).status, 200);

      const d = await send(drop.port, { host: 'gw.example.com', path: '/public/u', headers: { 'x_custom_id': '7', 'x-kept': 'yes' } });
      assert.equal(d.status, 200);
      assert.equal(d.json().headers['x_custom_id'], undefined);
      assert.equal(d.json().headers['x-kept'], 'yes');
    } finally {
      await reject.h.close();
      await drop.h.close();
    }
  });
});

describe('serve: trusted hops (gatewayTopology.numTrustedProxies)', () => {
  let echo: EchoBackend;
  before(async () => (echo = await startEchoBackend('public')));
  after(async () => echo.close());
  const lb = { 'x-forwarded-for': '203.0.113.7, 198.51.100.2', 'x-forwarded-proto': 'https' };

  it('0 (the default): the gateway is the edge: XFF appended, XFP overwritten, external address = the peer, httpsRedirect always', async () => {
    const g = await gateway(echo);
    try {
      const seen = (await send(g.port, { host: 'gw.example.com', path: '/public/edge', headers: lb })).json().headers;
      assert.equal(seen['x-forwarded-for'], '203.0.113.7, 198.51.100.2, 127.0.0.1');
      assert.equal(seen['x-forwarded-proto'], 'http');
      assert.equal(seen['x-envoy-external-address'], '127.0.0.1');
      // A client cannot forge its way past the scheme match or the redirect.
      const scheme = await send(g.port, { host: 'gw.example.com', path: '/scheme', headers: lb });
      assert.equal(scheme.json().url, '/scheme', 'the scheme: https route did not match a plaintext request');
      const r = await send(g.redirectPort, { host: 'gw.example.com', path: '/login', headers: lb });
      assert.equal(r.status, 301);
      assert.equal(r.headers.location, 'https://gw.example.com/login');
      const line = (await g.h.logLines()).map((l) => JSON.parse(l)).find((l) => l.path === '/public/edge');
      assert.match(String(line?.downstream_remote_address), /^127\.0\.0\.1:\d+$/);
      // A forged x-envoy-external-address is replaced; Envoy's internal headers are sanitized (an
      // external client cannot order retries or timeouts from an Envoy behind the gateway).
      const forged = (
        await send(g.port, {
          host: 'gw.example.com',
          path: '/public/f',
          headers: { 'x-envoy-external-address': '1.2.3.4', 'x-envoy-internal': 'true', 'x-envoy-retry-on': '5xx', 'x-envoy-upstream-rq-timeout-ms': '1', 'x-envoy-app-specific': 'kept' },
        })
      ).json().headers;
      assert.equal(forged['x-envoy-external-address'], '127.0.0.1');
      assert.equal(forged['x-envoy-internal'], undefined);
      assert.equal(forged['x-envoy-retry-on'], undefined);
      assert.equal(forged['x-envoy-upstream-rq-timeout-ms'], undefined);
      assert.equal(forged['x-envoy-app-specific'], 'kept');
    } finally {
      await g.h.close();
    }
  });

  it('1: the client is the last X-Forwarded-For entry; the load balancer’s X-Forwarded-Proto is kept, so httpsRedirect does not loop', async () => {
    const g = await gateway(echo, { numTrustedProxies: 1 });
    try {
      const seen = (await send(g.port, { host: 'gw.example.com', path: '/public/behind-lb', headers: lb })).json().headers;
      assert.equal(seen['x-forwarded-for'], '203.0.113.7, 198.51.100.2, 127.0.0.1');
      assert.equal(seen['x-forwarded-proto'], 'https');
      assert.equal(seen['x-envoy-external-address'], '198.51.100.2');
      assert.equal((await send(g.port, { host: 'gw.example.com', path: '/scheme', headers: lb })).body, 'https route');

      const forwarded = await send(g.redirectPort, { host: 'gw.example.com', path: '/login', headers: lb });
      assert.equal(forwarded.status, 200, 'an https request from the load balancer is served, not redirected again');
      assert.equal(forwarded.json().url, '/login');
      const plain = await send(g.redirectPort, { host: 'gw.example.com', path: '/login', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'http' } });
      assert.equal(plain.status, 301);
      const noProto = await send(g.redirectPort, { host: 'gw.example.com', path: '/login' });
      assert.equal(noProto.status, 301, 'without X-Forwarded-Proto the listener’s scheme (http) counts');

      const line = (await g.h.logLines()).map((l) => JSON.parse(l)).find((l) => l.path === '/public/behind-lb');
      assert.equal(line?.downstream_remote_address, '198.51.100.2:0');
      assert.equal(line?.x_forwarded_for, '203.0.113.7, 198.51.100.2, 127.0.0.1');
    } finally {
      await g.h.close();
    }
  });

  it('2: the second entry from the right; fewer entries than trusted hops: the peer', async () => {
    const g = await gateway(echo, { numTrustedProxies: 2 });
    try {
      assert.equal((await send(g.port, { host: 'gw.example.com', path: '/public/2', headers: lb })).json().headers['x-envoy-external-address'], '203.0.113.7');
      const short = await send(g.port, { host: 'gw.example.com', path: '/public/short', headers: { 'x-forwarded-for': '203.0.113.7' } });
      assert.equal(short.json().headers['x-envoy-external-address'], '127.0.0.1');
    } finally {
      await g.h.close();
    }
  });
});

describe('portway proxy --num-trusted-proxies (real proxy process)', function () {
  this.timeout(60_000);
  let echo: EchoBackend;
  let env: TlsProxy;
  before(async () => {
    echo = await startEchoBackend('app');
    const config = yamlDocuments(
      gatewayYaml([{ port: 80, name: 'http', protocol: 'HTTP', hosts: ['*'], tls: '{httpsRedirect: true}' }]),
      httpRouteYaml('app', ['*'], 'app.internal'),
      serviceEntryYaml('app.internal', 80, 'HTTP', echo.port),
    );
    env = await TlsProxy.launch([80], (e) => e.write('config.yaml', config), ['--num-trusted-proxies', '1']);
  });
  after(async () => {
    await env?.close();
    await echo?.close();
  });

  it('behind a TLS-terminating load balancer: served (no redirect loop), client address from X-Forwarded-For, /a/../b normalized', async () => {
    const r = await send(env.port(80), { host: 'app.example.com', path: '/a/../b', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' } });
    assert.equal(r.status, 200);
    assert.equal(r.json().url, '/b');
    assert.equal(r.json().headers['x-envoy-external-address'], '203.0.113.7');
    assert.equal(r.json().headers['x-forwarded-proto'], 'https');
    const plain = await send(env.port(80), { host: 'app.example.com', path: '/b', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'http' } });
    assert.equal(plain.status, 301);
    assert.equal(plain.headers.location, 'https://app.example.com/b');
  });
});
