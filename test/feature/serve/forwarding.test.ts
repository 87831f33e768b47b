// What the proxy changes on the way through: forwarding headers, hop-by-hop headers, header
// operations, rewrites, and the answers it gives itself (redirect, direct response,
// httpsRedirect, CORS).

import assert from 'node:assert/strict';
import { freePort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, exact, httpListener, match, ops, prefix, regex, route, virtualHost } from '../../support/snapshot-builder.js';
import { send, serveHttp, startHarness, type Harness } from './harness.js';

describe('serve: forwarding and local answers', () => {
  let h: Harness;
  let echo: EchoBackend;
  let port: number;
  let redirectPort: number;
  let stickyPort: number;
  const c = clusterName('echo.default.svc.cluster.local');
  const cSticky = clusterName('sticky.default.svc.cluster.local');

  before(async () => {
    h = await startHarness();
    echo = await startEchoBackend('echo');
    redirectPort = await freePort();
    stickyPort = await freePort();
    port = await serveHttp(h, {
      gatewayPort: 80,
      virtualHosts: [
        virtualHost(['echo.example.com'], [
          route('default/echo.ops', {
            matches: [match({ uri: prefix('/ops') })],
            to: [{ cluster: c, requestHeaders: ops({ set: { 'x-dest': 'd', 'x-both': 'from-dest' } }), responseHeaders: ops({ add: { 'x-dest-resp': '1' } }) }],
            requestHeaders: ops({ set: { 'x-route': 'r', 'x-both': 'from-route' }, add: { 'x-multi': 'added' }, remove: ['x-remove-me'] }),
            responseHeaders: ops({ set: { 'x-route-resp': 'yes' }, remove: ['x-echo-name'] }),
          }),
          route('default/echo.rewrite-prefix', { matches: [match({ uri: prefix('/old/') })], rewrite: { uri: '/new/' }, to: c }),
          route('default/echo.rewrite-exact', { matches: [match({ uri: exact('/exact') })], rewrite: { uri: '/replaced', authority: 'internal.svc' }, to: c }),
          route('default/echo.rewrite-regex', { matches: [match({ uri: regex('/service/.*') })], rewrite: { uriRegex: { match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1' } }, to: c }),
          route('default/echo.redirect', { matches: [match({ uri: prefix('/moved') })], redirect: { uri: '/here', code: 302 } }),
          route('default/echo.redirect-host', { matches: [match({ uri: prefix('/elsewhere') })], redirect: { authority: 'other.example.com', scheme: 'https' } }),
          route('default/echo.direct', { matches: [match({ uri: prefix('/direct') })], directResponse: { status: 418, body: 'short and stout' } }),
          route('default/echo.cors', {
            matches: [match({ uri: prefix('/cors') })],
            to: c,
            cors: { allowOrigins: [exact('https://app.example.com'), regex('https://.*\\.trusted\\.org')], allowMethods: ['GET', 'POST'], allowHeaders: ['x-token'], exposeHeaders: ['x-echo-name'], maxAge: 3600_000, allowCredentials: true },
          }),
          route('default/echo.cors-ignore', { matches: [match({ uri: prefix('/strict-cors') })], to: c, cors: { allowOrigins: [exact('https://app.example.com')], unmatchedPreflights: 'IGNORE' } }),
          route('default/echo.0', { to: c }),
        ]),
      ],
      otherListeners: [
        httpListener({ port: redirectPort, gatewayPort: 8000, httpsRedirect: true, virtualHosts: [virtualHost(['*'], [route('default/unused.0', { to: c })])] }),
        httpListener({ port: stickyPort, virtualHosts: [virtualHost(['*'], [route('default/sticky.0', { to: cSticky })])] }),
      ],
      clusters: [
        cluster(c, [echo]),
        cluster(cSticky, [echo], { loadBalancer: { kind: 'CONSISTENT_HASH', hashOn: { kind: 'cookie', name: 'sticky', path: '/', ttl: 60_000 }, algorithm: 'ringHash', minimumRingSize: 1024 } }),
      ],
    });
  });
  after(async () => {
    await h.close();
    await echo.close();
  });

  it('keeps Host, appends X-Forwarded-For, sets X-Forwarded-Proto, generates x-request-id', async () => {
    const r = await send(port, { host: 'echo.example.com', path: '/x', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' } });
    assert.equal(r.status, 200);
    const seen = r.json().headers;
    assert.equal(seen.host, 'echo.example.com');
    assert.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.match(seen['x-request-id'], /^[0-9a-f-]{36}$/);
    assert.match(String(r.headers['x-envoy-upstream-service-time']), /^\d+$/);
  });
  it('keeps an incoming x-request-id and logs it', async () => {
    const r = await send(port, { host: 'echo.example.com', path: '/rid', headers: { 'x-request-id': 'req-123' } });
    assert.equal(r.json().headers['x-request-id'], 'req-123');
    const lines = await h.logLines();
    assert.ok(lines.some((l) => l.includes('"GET /rid HTTP/1.1" 200 - via_upstream') && l.includes('"req-123"') && l.includes(`"${echo.hostPort}" ${c}`)), lines.join('\n'));
  });
  it('strips hop-by-hop headers and headers named in Connection, both ways', async () => {
    const r = await send(port, {
      host: 'echo.example.com',
      path: '/response-headers?connection=x-upstream-private&x-upstream-private=1&keep-alive=timeout%3D99&proxy-authenticate=Basic&x-public=ok',
      headers: { connection: 'keep-alive, x-client-private', 'x-client-private': 'secret', 'keep-alive': 'timeout=5', 'proxy-authorization': 'Basic Zm9v', te: 'deflate', 'x-public': 'yes' },
    });
    assert.equal(r.status, 200);
    const seen = r.json().headers;
    for (const name of ['x-client-private', 'keep-alive', 'proxy-authorization', 'te']) assert.equal(seen[name], undefined, `${name} reached the upstream`);
    assert.equal(seen['x-public'], 'yes');
    assert.equal(r.headers['x-upstream-private'], undefined);
    assert.equal(r.headers['proxy-authenticate'], undefined);
    assert.notEqual(r.headers['keep-alive'], 'timeout=99');
    assert.equal(r.headers['x-public'], 'ok');
  });
  it('applies destination and route header operations (the route wins on conflicts)', async () => {
    const r = await send(port, { host: 'echo.example.com', path: '/ops', headers: { 'x-remove-me': '1', 'x-multi': 'orig' } });
    const seen = r.json().headers;
    assert.equal(seen['x-dest'], 'd');
    assert.equal(seen['x-route'], 'r');
    assert.equal(seen['x-both'], 'from-route');
    assert.equal(seen['x-multi'], 'orig, added');
    assert.equal(seen['x-remove-me'], undefined);
    assert.equal(r.headers['x-dest-resp'], '1');
    assert.equal(r.headers['x-route-resp'], 'yes');
    assert.equal(r.headers['x-echo-name'], undefined);
  });
  it('rewrites the matched prefix, the whole path for exact matches, the authority, and by regex', async () => {
    const p = await send(port, { host: 'echo.example.com', path: '/old/a/b?x=1' });
    assert.equal(p.json().url, '/new/a/b?x=1');
    assert.equal(p.json().headers['x-envoy-original-path'], '/old/a/b?x=1');
    const e = await send(port, { host: 'echo.example.com', path: '/exact?y=2' });
    assert.equal(e.json().url, '/replaced?y=2');
    assert.equal(e.json().headers.host, 'internal.svc');
    const g = await send(port, { host: 'echo.example.com', path: '/service/foo/v1/api' });
    assert.equal(g.json().url, '/v1/api/instance/foo');
    const lines = await h.logLines();
    assert.ok(lines.some((l) => l.includes('"GET /old/a/b?x=1 HTTP/1.1" 200')), 'the access log shows the original path');
  });
  it('redirects, keeping the query string', async () => {
    const r = await send(port, { host: 'echo.example.com', path: '/moved?a=1' });
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, 'http://echo.example.com/here?a=1');
    const o = await send(port, { host: 'echo.example.com:80', path: '/elsewhere/x' });
    assert.equal(o.status, 301);
    assert.equal(o.headers.location, 'https://other.example.com/elsewhere/x');
  });
  it('answers a direct response', async () => {
    const r = await send(port, { host: 'echo.example.com', path: '/direct' });
    assert.equal(r.status, 418);
    assert.equal(r.body, 'short and stout');
    assert.equal(r.headers['content-type'], 'text/plain');
  });
  it('httpsRedirect: every request gets a 301 to https', async () => {
    const before = echo.requests.length;
    const r = await send(redirectPort, { host: 'secure.example.com:8000', path: '/login?next=/home', method: 'POST', body: 'x' });
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'https://secure.example.com/login?next=/home');
    const u = await send(redirectPort, { host: 'unknown-host.org', path: '/' });
    assert.equal(u.status, 301);
    assert.equal(echo.requests.length, before, 'nothing was forwarded');
  });
  it('CORS: answers a matching preflight at the gateway', async () => {
    const before = echo.requests.length;
    const r = await send(port, { host: 'echo.example.com', path: '/cors/x', method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(r.headers['access-control-allow-methods'], 'GET,POST');
    assert.equal(r.headers['access-control-allow-headers'], 'x-token');
    assert.equal(r.headers['access-control-max-age'], '3600');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(echo.requests.length, before);
  });
  it('CORS: actual requests from an allowed origin get the allow and expose headers; others get none', async () => {
    const ok = await send(port, { host: 'echo.example.com', path: '/cors/y', headers: { origin: 'https://a.trusted.org' } });
    assert.equal(ok.headers['access-control-allow-origin'], 'https://a.trusted.org');
    assert.equal(ok.headers['access-control-expose-headers'], 'x-echo-name');
    const no = await send(port, { host: 'echo.example.com', path: '/cors/y', headers: { origin: 'https://evil.example' } });
    assert.equal(no.status, 200);
    assert.equal(no.headers['access-control-allow-origin'], undefined);
  });
  it('CORS: unmatched preflights are forwarded, or answered empty with IGNORE', async () => {
    const before = echo.requests.length;
    const fwd = await send(port, { host: 'echo.example.com', path: '/cors/z', method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    assert.equal(fwd.json().method, 'OPTIONS');
    assert.equal(echo.requests.length, before + 1);
    const ign = await send(port, { host: 'echo.example.com', path: '/strict-cors', method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    assert.equal(ign.status, 200);
    assert.equal(ign.headers['access-control-allow-origin'], undefined);
    assert.equal(echo.requests.length, before + 1, 'the IGNORE preflight was not forwarded');
  });
  it('adds the consistent-hash cookie the lease generated, next to the upstream cookies', async () => {
    const r = await send(stickyPort, { host: 'sticky.example.com', path: '/response-headers?set-cookie=app%3D1' });
    assert.equal(r.status, 200);
    const cookies = r.headers['set-cookie'] ?? [];
    assert.ok(cookies.includes('app=1'), cookies.join(' | '));
    assert.ok(cookies.some((v) => /^sticky=[0-9a-f]+; Path=\/; Max-Age=60/.test(v)), cookies.join(' | '));
    const again = await send(stickyPort, { host: 'sticky.example.com', headers: { cookie: 'sticky=abc' } });
    assert.equal(again.headers['set-cookie'], undefined, 'a client that has the cookie gets no new one');
  });
  it('streams request bodies of every size to the upstream', async () => {
    const small = 'a'.repeat(1000);
    const r1 = await send(port, { host: 'echo.example.com', path: '/post', method: 'POST', body: small, headers: { 'content-type': 'text/plain' } });
    assert.equal(r1.json().body, small);
    const big = 'b'.repeat(300_000); // above the replay buffer: streamed
    const r2 = await send(port, { host: 'echo.example.com', path: '/post', method: 'POST', body: big });
    assert.equal(r2.json().body.length, big.length);
    const chunked = await send(port, { host: 'echo.example.com', path: '/post', method: 'PUT', body: 'chunk', headers: { 'transfer-encoding': 'chunked' } });
    assert.equal(chunked.json().body, 'chunk');
    // Re-framed by the proxy: chunked, or a Content-Length when the whole body had arrived.
    assert.ok(chunked.json().headers['transfer-encoding'] === 'chunked' || chunked.json().headers['content-length'] === '5');
    const lines = await h.logLines();
    assert.ok(lines.some((l) => /"POST \/post HTTP\/1\.1" 200 - via_upstream - "-" 300000 /.test(l)), 'bytes received are logged');
  });
});
