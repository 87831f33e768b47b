// Readiness, metrics and the config dump of a serving proxy, and `portway proxy-config`.

import assert from 'node:assert/strict';
import { startAdminServers, type AdminServers } from '../../../dataplane/admin/index.js';
import { runProxyConfig } from '../../../dataplane/admin/proxy-config.js';
import { closedPort, freePort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, exact, header, httpListener, match, prefix, regex, route, snapshot, virtualHost } from '../../support/snapshot-builder.js';
import { send, startHarness, type Harness } from './harness.js';

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const write = process.stdout.write.bind(process.stdout);
  const ewrite = process.stderr.write.bind(process.stderr);
  const log = console.log;
  const error = console.error;
  process.stdout.write = ((c: string | Uint8Array) => ((out += c.toString()), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((err += c.toString()), true)) as typeof process.stderr.write;
  console.log = (...a: unknown[]) => void (out += `${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => void (err += `${a.join(' ')}\n`);
  try {
    return { code: await fn(), out, err };
  } finally {
    process.stdout.write = write;
    process.stderr.write = ewrite;
    console.log = log;
    console.error = error;
  }
}

describe('admin: readiness, metrics, config dump', () => {
  let h: Harness;
  let admin: AdminServers;
  let echo: EchoBackend;
  let port: number;
  const c = clusterName('echo.default.svc.cluster.local', 8080);
  const url = (p: number, path: string) => `http://127.0.0.1:${p}${path}`;

  before(async () => {
    h = await startHarness();
    echo = await startEchoBackend('echo');
    port = await freePort();
    admin = await startAdminServers({ statusPort: 0, metricsPort: 0, adminPort: 0, registry: h.registry, getSnapshot: () => h.dataPlane.state.snapshot, state: h.dataPlane.state, bindAddress: '127.0.0.1' });
  });
  after(async () => {
    await admin.close();
    await h.close();
    await echo.close();
  });

  it('is not ready before the first snapshot', async () => {
    const r = await fetch(url(admin.statusPort, '/healthz/ready'));
    assert.equal(r.status, 503);
    assert.equal((await fetch(url(admin.adminPort, '/config_dump'))).status, 503);
  });

  it('is ready once a snapshot is applied', async () => {
    const snap = snapshot({
      version: 7,
      listeners: [
        httpListener({
          port,
          gatewayPort: 80,
          virtualHosts: [
            virtualHost(['echo.example.com'], [
              route('default/echo.api', { matches: [match({ uri: regex('/api/v[0-9]+/.*'), headers: [header('x-team', exact('blue'))] })], to: c }),
              route('default/echo.0', { matches: [match({ uri: prefix('/') })], to: c }),
            ]),
          ],
        }),
      ],
      clusters: [cluster(c, [echo])],
      diagnostics: [{ severity: 'error', kind: 'VirtualService', namespace: 'default', name: 'broken', field: 'spec.http[0].route', message: 'at least one destination is required' }],
    });
    (snap.credentials as Map<string, unknown>).set('istio-system/gw-cert', { key: 'istio-system/gw-cert', kind: 'secret', namespace: 'istio-system', name: 'gw-cert' });
    await h.apply(snap);
    const r = await fetch(url(admin.statusPort, '/healthz/ready'));
    assert.equal(r.status, 200);
  });

  it('counts requests by gateway port, virtual host, route and code', async () => {
    assert.equal((await send(port, { host: 'echo.example.com', path: '/hello' })).status, 200);
    assert.equal((await send(port, { host: 'echo.example.com', path: '/hello' })).status, 200);
    assert.equal((await send(port, { host: 'nobody.example.com', path: '/' })).status, 404);
    const text = await (await fetch(url(admin.metricsPort, '/stats/prometheus'))).text();
    assert.match(text, /portway_requests_total\{gateway_port="80",host="echo\.example\.com:80",route="default\/echo\.0",code="200"\} 2/);
    assert.match(text, /portway_requests_total\{gateway_port="80",host="-",route="-",code="404"\} 1/);
    assert.match(text, /portway_request_duration_seconds_count\{gateway_port="80",host="echo\.example\.com:80",route="default\/echo\.0"\} 2/);
    assert.match(text, /portway_config_generation 7/);
    assert.match(text, /portway_config_last_reload_success 1/);
    assert.match(text, /portway_config_rejected_objects 1/);
    assert.match(text, /portway_downstream_cx_active \d+/);
    assert.match(text, /portway_upstream_rq_total/, 'the upstream layer shares the registry');
  });

  it('dumps the serving snapshot: listeners, routes with regex sources, clusters with endpoints, secrets without key material', async () => {
    const dump = (await (await fetch(url(admin.adminPort, '/config_dump'))).json()) as any;
    assert.equal(dump.version, 7);
    assert.equal(dump.listeners[0].bindPort, port);
    const vh = dump.routes[0].virtualHosts[0];
    assert.equal(vh.name, 'echo.example.com:80');
    assert.deepEqual(vh.routes[0].matches[0].uri, { kind: 'regex', source: '/api/v[0-9]+/.*' });
    assert.deepEqual(vh.routes[0].matches[0].headers[0], { name: 'x-team', matcher: { kind: 'exact', value: 'blue', ignoreCase: false } });
    assert.equal(dump.clusters[0].name, c);
    assert.deepEqual(dump.clusters[0].endpoints.map((e: any) => `${e.address}:${e.port}`), [echo.hostPort]);
    assert.deepEqual(dump.secrets, [{ key: 'istio-system/gw-cert', kind: 'secret', namespace: 'istio-system', name: 'gw-cert' }]);
    assert.doesNotMatch(JSON.stringify(dump), /PRIVATE KEY|BEGIN CERTIFICATE/);
    assert.equal(dump.diagnostics[0].name, 'broken');
  });

  it('selects sections with ?resource=', async () => {
    const clusters = (await (await fetch(url(admin.adminPort, '/config_dump?resource=clusters'))).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(clusters).sort(), ['builtAt', 'clusters', 'version']);
    assert.equal((await fetch(url(admin.adminPort, '/config_dump?resource=bogus'))).status, 400);
  });

  it('binds the admin server to 127.0.0.1 only', () => {
    const addr = admin.servers.admin.address() as { address: string };
    assert.equal(addr.address, '127.0.0.1');
  });

  it('portway proxy-config prints tables from the admin port', async () => {
    const routes = await capture(() => runProxyConfig(['routes', '--admin', `127.0.0.1:${admin.adminPort}`]));
    assert.equal(routes.code, 0, routes.err);
    assert.match(routes.out, /^ROUTE TABLE\s+VIRTUAL HOST\s+DOMAINS\s+MATCH/);
    assert.match(routes.out, /echo\.example\.com:80\s+echo\.example\.com\s+~\/api\/v\[0-9\]\+\/\.\* header x-team=blue\s+default\/echo\s+default\/echo\.api/);
    const clusters = await capture(() => runProxyConfig(['clusters', '--admin', `http://127.0.0.1:${admin.adminPort}`]));
    assert.match(clusters.out, new RegExp(`${c.replace(/\|/g, '\\|')}\\s+echo\\.default\\.svc\\.cluster\\.local\\s+8080`));
    const json = await capture(() => runProxyConfig(['listeners', '-o', 'json', '--admin', `http://127.0.0.1:${admin.adminPort}`]));
    assert.equal(JSON.parse(json.out)[0].bindPort, port);
  });

  it('portway proxy-config: usage errors exit 2, an unreachable proxy exits 1', async () => {
    assert.equal((await capture(() => runProxyConfig(['everything']))).code, 2);
    const down = await capture(async () => runProxyConfig(['routes', '--admin', `http://127.0.0.1:${await closedPort()}`]));
    assert.equal(down.code, 1);
    assert.match(down.err, /cannot read/);
  });

  it('is not ready while draining', async () => {
    void h.dataPlane.drain(1_000);
    const r = await fetch(url(admin.statusPort, '/healthz/ready'));
    assert.equal(r.status, 503);
    assert.equal(await r.text(), 'draining\n');
  });
});
