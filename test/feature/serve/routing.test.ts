// Requests through a real listener reach the virtual host and route they should.

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, exact, header, match, prefix, regex, route, virtualHost } from '../../support/snapshot-builder.js';
import { send, serveHttp, startHarness, type Harness } from './harness.js';

describe('serve: routing over real sockets', () => {
  let h: Harness;
  const backends: Record<string, EchoBackend> = {};
  let port: number;
  const c = (name: string) => clusterName(`${name}.default.svc.cluster.local`);

  before(async () => {
    h = await startHarness();
    for (const name of ['exact', 'wild', 'all', 'v1', 'v2', 'hdr', 'query', 'method', 'regex', 'noprobe']) backends[name] = await startEchoBackend(name);
    port = await serveHttp(h, {
      gatewayPort: 80,
      virtualHosts: [
        virtualHost(['api.example.com'], [
          route('default/api.hdr', { matches: [match({ headers: [header('x-version', exact('v2'))] })], to: c('hdr') }),
          route('default/api.query', { matches: [match({ uri: prefix('/search'), queryParams: [{ name: 'q' }] })], to: c('query') }),
          route('default/api.method', { matches: [match({ method: exact('DELETE') })], to: c('method') }),
          route('default/api.regex', { matches: [match({ uri: regex('/items/[0-9]+') })], to: c('regex') }),
          route('default/api.noprobe', { matches: [match({ uri: prefix('/probe'), withoutHeaders: [header('x-probe')] })], to: c('noprobe') }),
          route('default/api.v1', { matches: [match({ uri: prefix('/v1') })], to: c('v1') }),
          route('default/api.exact', { matches: [match({ uri: exact('/') })], to: c('exact') }),
        ]),
        virtualHost(['*.example.com'], [route('default/wild.0', { to: c('wild') })]),
        virtualHost(['split.example.com'], [route('default/split.0', { to: [{ cluster: c('v1'), weight: 25 }, { cluster: c('v2'), weight: 75 }] })]),
        virtualHost(['*'], [route('default/all.0', { matches: [match({ uri: prefix('/known') })], to: c('all') })]),
      ],
      clusters: Object.entries(backends).map(([name, b]) => cluster(c(name), [b])),
    });
  });
  after(async () => {
    await h.close();
    await Promise.all(Object.values(backends).map((b) => b.close()));
  });

  const backendOf = async (host: string, path = '/', headers: Record<string, string> = {}, method = 'GET') => {
    const r = await send(port, { host, path, headers, method });
    return r.status === 200 ? r.json().name : r.status;
  };

  it('selects the virtual host by exact host, without the port and case-insensitively', async () => {
    assert.equal(await backendOf('api.example.com', '/'), 'exact');
    assert.equal(await backendOf('API.Example.com:80', '/'), 'exact');
  });
  it('falls back to the wildcard host, then the catch-all', async () => {
    assert.equal(await backendOf('shop.example.com', '/anything'), 'wild');
    assert.equal(await backendOf('unknown.org', '/known/x'), 'all');
  });
  it('route order and each match kind', async () => {
    assert.equal(await backendOf('api.example.com', '/v1/users', { 'x-version': 'v2' }), 'hdr', 'header match listed first wins');
    assert.equal(await backendOf('api.example.com', '/v1/users'), 'v1');
    assert.equal(await backendOf('api.example.com', '/search?q=cats'), 'query');
    assert.equal(await backendOf('api.example.com', '/search?page=2'), 404);
    assert.equal(await backendOf('api.example.com', '/v1/x', {}, 'DELETE'), 'method');
    assert.equal(await backendOf('api.example.com', '/items/42'), 'regex');
    assert.equal(await backendOf('api.example.com', '/items/42x'), 404);
    assert.equal(await backendOf('api.example.com', '/probe'), 'noprobe');
    assert.equal(await backendOf('api.example.com', '/probe', { 'x-probe': '1' }), 404);
  });
  it('404 with response flag NR when no route or no virtual host matches', async () => {
    const noRoute = await send(port, { host: 'api.example.com', path: '/nothing-here' });
    assert.equal(noRoute.status, 404);
    const noHost = await send(port, { host: 'unknown.org', path: '/elsewhere' });
    assert.equal(noHost.status, 404);
    const lines = await h.logLines();
    assert.ok(lines.some((l) => l.includes('"GET /nothing-here HTTP/1.1" 404 NR route_not_found')), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('"GET /elsewhere HTTP/1.1" 404 NR route_not_found')), lines.join('\n'));
  });
  it('splits by weight (2,000 requests, 25/75 within ±5 points)', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 20 });
    const counts: Record<string, number> = {};
    const total = 2000;
    for (let i = 0; i < total; i += 100) {
      const replies = await Promise.all(Array.from({ length: 100 }, () => send(port, { host: 'split.example.com', agent })));
      for (const r of replies) {
        assert.equal(r.status, 200);
        const name = r.json().name as string;
        counts[name] = (counts[name] ?? 0) + 1;
      }
    }
    agent.destroy();
    assert.equal((counts.v1 ?? 0) + (counts.v2 ?? 0), total);
    const v1Share = ((counts.v1 ?? 0) / total) * 100;
    assert.ok(Math.abs(v1Share - 25) <= 5, `v1 got ${v1Share}%`);
  });
});
