// Virtual host and route selection on compiled serving tables (no sockets).

import assert from 'node:assert/strict';
import { assignFilterChain, chainCoversHost, compileServingListener, selectChain, type ServingListener } from '../../../dataplane/serve/http/serving-table.js';
import { RequestView, selectRoute, selectVirtualHost } from '../../../dataplane/serve/http/route-selection.js';
import { NO_SERIES } from '../../../dataplane/serve/http/request-info.js';
import { hostWithoutPort } from '../../../dataplane/serve/http/headers.js';
import { exact, header, httpListener, match, prefix, regex, route, snapshot, virtualHost } from '../../support/snapshot-builder.js';
import type { Route, VirtualHost } from '../../../dataplane/snapshot/types.js';

function serving(vhs: VirtualHost[], servers?: string[]): ServingListener {
  const listener = httpListener({ port: 8080, gatewayPort: 80, virtualHosts: vhs, servers });
  return compileServingListener(snapshot({ listeners: [listener] }), listener, () => NO_SERIES);
}

function vhostFor(s: ServingListener, authority: string): string | undefined {
  return selectVirtualHost(s.plaintextChain!.table!, hostWithoutPort(authority))?.name;
}

interface Req {
  method?: string;
  path?: string;
  authority?: string;
  scheme?: string;
  headers?: Record<string, string>;
  gatewayPort?: number;
}

function routeFor(routes: Route[], req: Req, servers?: string[]): string | undefined {
  const s = serving([virtualHost(['*'], routes)], servers);
  const vh = s.plaintextChain!.table!.catchAll!;
  const authority = req.authority ?? 'example.com';
  const view = new RequestView(req.method ?? 'GET', req.path ?? '/', authority, hostWithoutPort(authority), req.scheme ?? 'http', { host: authority, ...req.headers }, req.gatewayPort ?? 80);
  return selectRoute(vh, view)?.name;
}

const to = 'outbound|80||svc';

describe('serve: virtual host selection', () => {
  const s = serving([
    virtualHost(['api.example.com'], [], { name: 'exact' }),
    virtualHost(['*.example.com'], [], { name: 'wild-short' }),
    virtualHost(['*.eu.example.com'], [], { name: 'wild-long' }),
    virtualHost(['*'], [], { name: 'catch-all' }),
  ]);

  it('prefers the exact host, ignoring case and port', () => {
    assert.equal(vhostFor(s, 'api.example.com'), 'exact');
    assert.equal(vhostFor(s, 'API.Example.COM:8080'), 'exact');
  });
  it('then the longest wildcard suffix', () => {
    assert.equal(vhostFor(s, 'www.example.com'), 'wild-short');
    assert.equal(vhostFor(s, 'shop.eu.example.com:80'), 'wild-long');
  });
  it('a wildcard does not match its bare domain; the catch-all takes it', () => {
    assert.equal(vhostFor(s, 'example.com'), 'catch-all');
    assert.equal(vhostFor(s, 'other.org'), 'catch-all');
  });
  it('no catch-all: no virtual host', () => {
    const only = serving([virtualHost(['a.com'], [], { name: 'a' })]);
    assert.equal(vhostFor(only, 'b.com'), undefined);
    assert.equal(vhostFor(only, 'a.com:9999'), 'a');
  });
  it('strips the port from IPv6 literals', () => {
    assert.equal(hostWithoutPort('[::1]:8080'), '[::1]');
    assert.equal(hostWithoutPort('[::1]'), '[::1]');
    assert.equal(hostWithoutPort('Host.Example:1'), 'host.example');
  });
});

describe('serve: route selection', () => {
  it('the first matching route wins, in order', () => {
    const routes = [route('r.specific', { matches: [match({ uri: prefix('/api/v2') })], to }), route('r.api', { matches: [match({ uri: prefix('/api') })], to }), route('r.all', { to })];
    assert.equal(routeFor(routes, { path: '/api/v2/x' }), 'r.specific');
    assert.equal(routeFor(routes, { path: '/api/v1' }), 'r.api');
    assert.equal(routeFor(routes, { path: '/other' }), 'r.all');
  });
  it('match blocks are ORed, conditions inside a block ANDed', () => {
    const routes = [route('r', { matches: [match({ uri: exact('/a'), method: exact('POST') }), match({ uri: exact('/b') })], to })];
    assert.equal(routeFor(routes, { path: '/a', method: 'POST' }), 'r');
    assert.equal(routeFor(routes, { path: '/a', method: 'GET' }), undefined);
    assert.equal(routeFor(routes, { path: '/b', method: 'GET' }), 'r');
  });
  it('uri exact and regex ignore the query string; prefix compares the whole path', () => {
    assert.equal(routeFor([route('r', { matches: [match({ uri: exact('/a') })], to })], { path: '/a?x=1' }), 'r');
    assert.equal(routeFor([route('r', { matches: [match({ uri: regex('/a/[0-9]+') })], to })], { path: '/a/12?x=1' }), 'r');
    assert.equal(routeFor([route('r', { matches: [match({ uri: regex('/a/[0-9]+') })], to })], { path: '/a/12/x' }), undefined, 'regex is whole-string');
    assert.equal(routeFor([route('r', { matches: [match({ uri: prefix('/a?x') })], to })], { path: '/a?x=1' }), 'r');
  });
  it('ignoreUriCase applies to exact and prefix', () => {
    assert.equal(routeFor([route('r', { matches: [match({ uri: prefix('/API', true) })], to })], { path: '/api/x' }), 'r');
    assert.equal(routeFor([route('r', { matches: [match({ uri: exact('/Login', true) })], to })], { path: '/LOGIN' }), 'r');
    assert.equal(routeFor([route('r', { matches: [match({ uri: exact('/Login') })], to })], { path: '/LOGIN' }), undefined);
  });
  it('scheme, method and authority', () => {
    assert.equal(routeFor([route('r', { matches: [match({ scheme: exact('https') })], to })], { scheme: 'http' }), undefined);
    assert.equal(routeFor([route('r', { matches: [match({ scheme: exact('http') })], to })], { scheme: 'http' }), 'r');
    assert.equal(routeFor([route('r', { matches: [match({ method: regex('GET|HEAD') })], to })], { method: 'HEAD' }), 'r');
    assert.equal(routeFor([route('r', { matches: [match({ authority: prefix('shop.') })], to })], { authority: 'shop.example.com:8080' }), 'r');
    assert.equal(routeFor([route('r', { matches: [match({ authority: exact('shop.example.com') })], to })], { authority: 'shop.example.com:8080' }), undefined, 'authority is the header as sent');
  });
  it('headers: exact, prefix, regex, presence; cookies through the cookie header', () => {
    const r = (h: ReturnType<typeof header>) => [route('r', { matches: [match({ headers: [h] })], to })];
    assert.equal(routeFor(r(header('x-user', exact('jason'))), { headers: { 'x-user': 'jason' } }), 'r');
    assert.equal(routeFor(r(header('x-user', exact('jason'))), { headers: { 'x-user': 'json' } }), undefined);
    assert.equal(routeFor(r(header('x-user', prefix('ja'))), { headers: { 'x-user': 'jason' } }), 'r');
    assert.equal(routeFor(r(header('x-present')), { headers: { 'x-present': '' } }), 'r');
    assert.equal(routeFor(r(header('x-present')), {}), undefined);
    assert.equal(routeFor(r(header('cookie', regex('^(.*?; ?)?(user=jason)(;.*)?$'))), { headers: { cookie: 'a=1; user=jason; b=2' } }), 'r');
    assert.equal(routeFor(r(header('cookie', regex('^(.*?; ?)?(user=jason)(;.*)?$'))), { headers: { cookie: 'user=bob' } }), undefined);
  });
  it('withoutHeaders excludes requests that carry the header (or the value)', () => {
    const routes = [route('r', { matches: [match({ withoutHeaders: [header('x-canary')] })], to })];
    assert.equal(routeFor(routes, {}), 'r');
    assert.equal(routeFor(routes, { headers: { 'x-canary': '1' } }), undefined);
    const byValue = [route('r', { matches: [match({ withoutHeaders: [header('x-env', exact('prod'))] })], to })];
    assert.equal(routeFor(byValue, { headers: { 'x-env': 'dev' } }), 'r');
    assert.equal(routeFor(byValue, { headers: { 'x-env': 'prod' } }), undefined);
  });
  it('queryParams: exact, regex, presence', () => {
    const routes = [route('r', { matches: [match({ queryParams: [{ name: 'v', matcher: exact('2') }, { name: 'debug' }] })], to })];
    assert.equal(routeFor(routes, { path: '/x?v=2&debug' }), 'r');
    assert.equal(routeFor(routes, { path: '/x?v=2' }), undefined);
    assert.equal(routeFor(routes, { path: '/x?v=3&debug=1' }), undefined);
    assert.equal(routeFor([route('r', { matches: [match({ queryParams: [{ name: 'id', matcher: regex('[0-9]+') }] })], to })], { path: '/?id=42' }), 'r');
  });
  it('port compares with the gateway port of the listener', () => {
    const routes = [route('r80', { matches: [match({ port: 80 })], to }), route('r443', { matches: [match({ port: 443 })], to })];
    assert.equal(routeFor(routes, { gatewayPort: 80 }), 'r80');
    assert.equal(routeFor(routes, { gatewayPort: 443 }), 'r443');
  });
  it("gateways: a block applies only when one of the chain's servers belongs to a listed gateway", () => {
    const routes = [
      route('r.internal', { matches: [match({ uri: prefix('/'), gateways: ['istio-system/internal'] })], to }),
      route('r.public', { matches: [match({ uri: prefix('/'), gateways: ['istio-system/public'] })], to }),
    ];
    assert.equal(routeFor(routes, {}, ['istio-system/public#0']), 'r.public');
    assert.equal(routeFor(routes, {}, ['istio-system/internal#1', 'istio-system/public#0']), 'r.internal');
    assert.equal(routeFor(routes, {}, ['other/gw#0']), undefined);
  });
  it('a route with no blocks matches everything', () => {
    assert.equal(routeFor([route('r', { to })], { path: '/anything', method: 'DELETE' }), 'r');
  });
});

describe('serve: filter chain by SNI (TLS listeners)', () => {
  const tlsServing = () => {
    const mk = (name: string, serverNames: string[]) => ({ name, servers: [`istio-system/gw#${name}`], serverNames, httpsRedirect: false, http: httpListener({ port: 1, virtualHosts: [] }).filterChains[0]!.http });
    const listener = { name: 'l', bindAddress: '0.0.0.0', bindPort: 8443, gatewayPort: 443, protocol: 'HTTPS' as const, filterChains: [mk('a', ['a.example.com']), mk('wild', ['*.example.com']), mk('any', [])] };
    return compileServingListener(snapshot({ listeners: [listener] }), listener, () => NO_SERIES);
  };
  it('exact name, then wildcard, then the chain for any name', () => {
    const s = tlsServing();
    assert.equal(selectChain(s, 'A.example.com')!.chain.name, 'a');
    assert.equal(selectChain(s, 'b.example.com')!.chain.name, 'wild');
    assert.equal(selectChain(s, 'other.org')!.chain.name, 'any');
    assert.equal(selectChain(s, undefined)!.chain.name, 'any');
  });
  it('a chain the TLS module assigned to the connection wins over SNI matching', () => {
    const s = tlsServing();
    const socket = {};
    assignFilterChain(socket, 'wild');
    assert.equal(selectChain(s, 'a.example.com', socket)!.chain.name, 'wild');
    assert.equal(selectChain(s, 'a.example.com', {})!.chain.name, 'a');
  });
  it('a Host the SNI-selected chain does not cover is misdirected', () => {
    const s = tlsServing();
    assert.equal(chainCoversHost(selectChain(s, 'a.example.com')!, 'a.example.com'), true);
    assert.equal(chainCoversHost(selectChain(s, 'a.example.com')!, 'b.example.com'), false);
    assert.equal(chainCoversHost(selectChain(s, 'x.example.com')!, 'y.example.com'), true);
    assert.equal(chainCoversHost(selectChain(s, 'other.org')!, 'anything.net'), true);
  });
});
