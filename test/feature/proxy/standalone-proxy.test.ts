// The proxy as users run it: `portway proxy --config DIR`, a real process, real sockets.
// Hot reload, bad input keeping the last good config, SIGTERM drain, and worker processes.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';
import { ingressGatewayYaml, localServiceEntryYaml, writeAtomically } from '../../support/standalone-config.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, host: string, path: string, agent?: Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function config(backend: EchoBackend, prefix: string): string {
  return `
${ingressGatewayYaml()}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: ["app.example.com"]
  gateways: ["istio-system/gw"]
  http:
  - match: [{uri: {prefix: ${prefix}}}]
    route: [{destination: {host: backend.example.internal}}]
  - match: [{uri: {prefix: /stable}}, {uri: {prefix: /delay}}]
    route: [{destination: {host: backend.example.internal}}]
---
${localServiceEntryYaml('backend', 'backend.example.internal', backend.port)}`;
}


describe('proxy process: standalone mode on YAML files', function () {
  this.timeout(60_000);
  let dir: string;
  let backend: EchoBackend;
  let proxy: ProxyProcess | undefined;
  let port: number;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portway-standalone-'));
    backend = await startEchoBackend('backend');
    port = await closedPort();
    writeFileSync(join(dir, 'app.yaml'), config(backend, '/v1'));
  });
  afterEach(async () => {
    await proxy?.stop('SIGKILL');
    proxy = undefined;
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (extra: string[] = []) => {
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--port-map', `80=${port}`, '--drain-duration', '3s', ...extra]);
    return proxy;
  };

  it('serves the routes in the files and answers 404 for unknown hosts and paths', async () => {
    await start();
    assert.equal((await get(port, 'app.example.com', '/v1/items')).status, 200);
    assert.equal(backend.requests.at(-1)?.url, '/v1/items');
    assert.equal((await get(port, 'app.example.com', '/v2/items')).status, 404);
    assert.equal((await get(port, 'other.example.com', '/v1/items')).status, 404);
  });

  it('applies an edited file within a second, with no failed request on a keep-alive connection', async () => {
    await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const failures: string[] = [];
    let stop = false;
    let sent = 0;
    const load = (async () => {
      while (!stop) {
        const r = await get(port, 'app.example.com', '/stable/x', agent).catch((e: Error) => ({ status: 0, body: e.message, headers: {} }));
        sent++;
        if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await get(port, 'app.example.com', '/v2/a')).status, 404);
    const changedAt = Date.now();
    writeAtomically(join(dir, 'app.yaml'), config(backend, '/v2'));
    let appliedAfter = -1;
    while (Date.now() - changedAt < 5000) {
      if ((await get(port, 'app.example.com', '/v2/a')).status === 200) {
        appliedAfter = Date.now() - changedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const sentAtSwitch = sent;
    const settle = Date.now();
    while (sent < sentAtSwitch + 3 && Date.now() - settle < 10_000) await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await load;
    agent.destroy();
    assert.ok(appliedAfter >= 0, 'the new route was never served');
    // Typically ~150 ms (fs.watch + 100 ms debounce); the bound leaves room for a loaded CI machine.
    assert.ok(appliedAfter < 3000, `the change took ${appliedAfter} ms to apply`);
    assert.equal((await get(port, 'app.example.com', '/v1/a')).status, 404, 'the old route is gone');
    assert.ok(sent >= 3, `only ${sent} requests were sent during the change`);
    assert.deepEqual(failures, []);
  });

  it('reports a broken file and an invalid object, and keeps serving the last good configuration', async () => {
    const p = await start();
    writeAtomically(join(dir, 'app.yaml'), 'apiVersion: v1\nkind: [broken');
    await p.waitForLog(/app\.yaml.*last good/);
    assert.equal((await get(port, 'app.example.com', '/v1/still-here')).status, 200);
    // A valid file with one invalid rule: the rule is reported by object and field, and the
    // VirtualService's last good version keeps serving whole (issue 13 item 15), not its new
    // version minus the invalid rule.
    writeAtomically(join(dir, 'app.yaml'), config(backend, '/v3').replace('- match: [{uri: {prefix: /stable}}', '- match: [{uri: {regex: "(unclosed"}}]\n    route: [{destination: {host: backend.example.internal}}]\n  - match: [{uri: {prefix: /stable}}'));
    const line = await p.waitForLog(/VirtualService default\/app.*spec\.http\[1\]\.match\[0\]\.uri.*RE2.*last good version keeps serving/);
    assert.match(line, /app\.yaml/);
    assert.equal((await get(port, 'app.example.com', '/v1/x')).status, 200);
    assert.equal((await get(port, 'app.example.com', '/v3/x')).status, 404);
    assert.equal((await get(port, 'app.example.com', '/stable/x')).status, 200);
  });

  it('drains on SIGTERM: readiness fails at once, in-flight requests finish with Connection: close, then it exits', async () => {
    const p = await start();
    const agent = new Agent({ keepAlive: true });
    assert.equal((await get(port, 'app.example.com', '/v1/warm', agent)).status, 200);
    const slow = get(port, 'app.example.com', '/delay/1000', agent);
    await new Promise((r) => setTimeout(r, 100));
    p.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const ready = await fetch(`http://127.0.0.1:${p.statusPort}/healthz/ready`);
    assert.equal(ready.status, 503);
    const during = await get(port, 'app.example.com', '/v1/during');
    assert.equal(during.status, 200, 'new connections are still served during the drain window');
    assert.equal(during.headers.connection, 'close');
    const r = await slow;
    assert.equal(r.status, 200);
    agent.destroy();
    assert.equal(await p.exited, 0);
  });

  it('serves from several worker processes with one translation (--concurrency 2)', async () => {
    const p = await start(['--concurrency', '2']);
    await p.waitForLog(/2 workers/);
    for (let i = 0; i < 20; i++) assert.equal((await get(port, 'app.example.com', `/v1/${i}`)).status, 200);
    writeAtomically(join(dir, 'app.yaml'), config(backend, '/v9'));
    const deadline = Date.now() + 3000;
    let ok = 0;
    while (Date.now() < deadline && ok < 20) {
      ok = (await get(port, 'app.example.com', '/v9/x')).status === 200 ? ok + 1 : 0;
    }
    assert.equal(ok, 20, 'every worker serves the new route');
    const metrics = await (await fetch(`http://127.0.0.1:${p.metricsPort}/stats/prometheus`)).text();
    assert.match(metrics, /portway_requests_total/);
    assert.equal(p.stderr.filter((l) => /translat/i.test(l) && /fail/i.test(l)).length, 0);
  });
});
