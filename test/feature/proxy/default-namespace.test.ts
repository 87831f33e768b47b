// Objects without a namespace in standalone files are in "default", as `kubectl apply` puts
// them, not in the proxy's --namespace (issue 13 item 16): a VirtualService written without
// one names its route "default/<name>…" and resolves short host names in "default".

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';
import { eventually } from '../proxy-tls/harness.js';

describe('proxy process: objects without a namespace in files', function () {
  this.timeout(60_000);
  let dir: string;
  let proxy: ProxyProcess | undefined;
  let backend: EchoBackend;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portway-nsless-'));
    backend = await startEchoBackend('backend');
  });
  afterEach(function () {
    printLogsIfFailed(this, [proxy]);
  });
  after(async () => {
    await proxy?.stop('SIGKILL');
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('go to "default", whatever the proxy’s --namespace', async () => {
    const port = await closedPort();
    writeFileSync(
      join(dir, 'app.yaml'),
      `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*/*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app}
spec:
  hosts: [app.example.com]
  gateways: [istio-system/gw]
  http: [{route: [{destination: {host: backend}}]}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: ${backend.port}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-1, namespace: default, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{name: http, port: ${backend.port}}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
`,
    );
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--port-map', `80=${port}`, '--access-log', 'json']);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/x', headers: { host: 'app.example.com' }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    await eventually('the access log line', async () => proxy!.stdout.some((l) => l.includes('"route_name"')));
    const line = JSON.parse(proxy.stdout.find((l) => l.includes('"route_name"'))!) as { route_name: string };
    assert.match(line.route_name, /^default\/app/);
  });
});
