// Redirect targets, rewrites and weighted picks: pure functions.

import assert from 'node:assert/strict';
import { httpsRedirectLocation, redirectLocation } from '../../../dataplane/serve/http/redirect.js';
import { rewritePath } from '../../../dataplane/serve/http/rewrite.js';
import { shadowHost } from '../../../dataplane/serve/http/mirror.js';
import { compileRoute, pickDestination } from '../../../dataplane/serve/http/serving-table.js';
import { NO_SERIES } from '../../../dataplane/serve/http/request-info.js';
import { exact, match, prefix, regex, route } from '../../support/snapshot-builder.js';

describe('serve: redirect locations (Envoy RedirectAction semantics)', () => {
  const r = (a: Partial<Parameters<typeof redirectLocation>[0]>, authority = 'example.com', path = '/old?q=1', scheme = 'http', gatewayPort = 80) =>
    redirectLocation({ kind: 'redirect', code: 301, ...a }, scheme, authority, path, gatewayPort);

  it('uri replaces the path and keeps the query string', () => assert.equal(r({ uri: '/new' }), 'http://example.com/new?q=1'));
  it("a uri with its own query string replaces the request's", () => assert.equal(r({ uri: '/new?x=2' }), 'http://example.com/new?x=2'));
  it('authority replaces the host (and its port)', () => assert.equal(r({ authority: 'other.org' }, 'example.com:8080'), 'http://other.org/old?q=1'));
  it('keeps a non-default request port', () => assert.equal(r({ uri: '/n' }, 'example.com:8080', '/o'), 'http://example.com:8080/n'));
  it('scheme change drops the old default port', () => assert.equal(r({ scheme: 'https' }, 'example.com:80', '/o'), 'https://example.com/o'));
  it('port replaces the port; a default port for the scheme is left out', () => {
    assert.equal(r({ port: 8443, scheme: 'https' }, 'example.com:8080', '/o'), 'https://example.com:8443/o');
    assert.equal(r({ port: 443, scheme: 'https' }, 'example.com', '/o'), 'https://example.com/o');
  });
  it('derivePort FROM_REQUEST_PORT uses the gateway port', () => assert.equal(r({ derivePort: 'FROM_REQUEST_PORT' }, 'example.com', '/o', 'http', 8000), 'http://example.com:8000/o'));
  it('derivePort FROM_PROTOCOL_DEFAULT leaves the port to the scheme', () => assert.equal(r({ derivePort: 'FROM_PROTOCOL_DEFAULT', scheme: 'https' }, 'example.com:80', '/o'), 'https://example.com/o'));
  it('httpsRedirect keeps host and path, drops the plaintext port', () => assert.equal(httpsRedirectLocation('Example.com:8080', '/a?b=1'), 'https://example.com/a?b=1'));
});

describe('serve: path rewrites', () => {
  it('uri replaces the matched prefix and keeps the rest and the query', () => {
    assert.equal(rewritePath({ uri: '/v2' }, match({ uri: prefix('/v1') }), '/v1/users?id=1'), '/v2/users?id=1');
    assert.equal(rewritePath({ uri: '/' }, match({ uri: prefix('/api/') }), '/api/x'), '/x');
  });
  it('uri replaces the whole path for exact and regex matches', () => {
    assert.equal(rewritePath({ uri: '/new' }, match({ uri: exact('/old') }), '/old?x=1'), '/new?x=1');
    assert.equal(rewritePath({ uri: '/new' }, match({ uri: regex('/o.*') }), '/old/deep'), '/new');
  });
  it('without a uri match the route is a "/" prefix route', () => assert.equal(rewritePath({ uri: '/base/' }, undefined, '/x?y'), '/base/x?y'));
  it('uriRegexRewrite substitutes with \\1 groups', () => {
    const r = route('r', { to: 'c', rewrite: { uriRegex: { match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1' } } });
    assert.equal(rewritePath(r.rewrite!, undefined, '/service/foo/v1/api?x=1'), '/v1/api/instance/foo?x=1');
  });
});

describe('serve: mirror host', () => {
  it('puts -shadow before the port', () => {
    assert.equal(shadowHost('example.com'), 'example.com-shadow');
    assert.equal(shadowHost('example.com:8080'), 'example.com-shadow:8080');
  });
});

describe('serve: weighted destinations', () => {
  it('draws by cumulative weight', () => {
    const r = compileRoute(route('r', { to: [{ cluster: 'a', weight: 10 }, { cluster: 'b', weight: 30 }, { cluster: 'c', weight: 60 }] }), new Set(), { clusters: new Map() }, NO_SERIES)!;
    assert.deepEqual(r.cumulativeWeights, [10, 40, 100]);
    assert.equal(pickDestination(r, 0)!.cluster, 'a');
    assert.equal(pickDestination(r, 0.0999)!.cluster, 'a');
    assert.equal(pickDestination(r, 0.1)!.cluster, 'b');
    assert.equal(pickDestination(r, 0.3999)!.cluster, 'b');
    assert.equal(pickDestination(r, 0.4)!.cluster, 'c');
    assert.equal(pickDestination(r, 0.9999)!.cluster, 'c');
  });
  it('drops zero-weight destinations', () => {
    const r = compileRoute(route('r', { to: [{ cluster: 'a', weight: 0 }, { cluster: 'b', weight: 5 }] }), new Set(), { clusters: new Map() }, NO_SERIES)!;
    assert.deepEqual(r.destinations.map((d) => d.cluster), ['b']);
  });
});
