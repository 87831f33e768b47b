// Config files as hostile input, on a real `portway proxy --config DIR` process (issue 13
// items 1 and 2): a file the proxy cannot take is reported for that file, the last good
// configuration keeps serving, and the process neither dies nor stops serving while it reads.

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { unusedPort } from '../../support/ports.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';
import { billionLaughs } from '../../support/hostile-yaml.js';

function get(port: number, host: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A Gateway, a ServiceEntry for the backend and a VirtualService whose `routes` rules share one anchor. */
function gatewayConfig(backend: EchoBackend, routes: number): string {
  let s = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.example.internal]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ${backend.port}}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
x: &rt [{destination: {host: backend.example.internal}}]
spec:
  hosts: [app.example.com]
  gateways: [istio-system/gw]
  http:
`;
  for (let i = 0; i < routes; i++) s += `  - {match: [{uri: {prefix: /r${i}/}}], route: *rt}\n`;
  return s;
}

function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('proxy process: config files as hostile input', function () {
  this.timeout(120_000);
  let dir: string;
  let backend: EchoBackend;
  let proxy: ProxyProcess | undefined;
  let port: number;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portway-files-'));
    backend = await startEchoBackend('backend');
    port = await unusedPort();
  });
  afterEach(async function () {
    printLogsIfFailed(this, [proxy]);
    await proxy?.stop('SIGKILL');
    proxy = undefined;
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async () => {
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--port-map', `80=${port}`]);
    return proxy;
  };

  it('starts on a VirtualService whose 100 routes share one YAML anchor, and serves every route', async () => {
    writeFileSync(join(dir, 'app.yaml'), gatewayConfig(backend, 100));
    await start();
    assert.equal(await get(port, 'app.example.com', '/r0/x'), 200);
    assert.equal(await get(port, 'app.example.com', '/r99/x'), 200);
  });

  it('reports a billion-laughs file written while serving, keeps serving the last good config, and stays up', async () => {
    writeFileSync(join(dir, 'app.yaml'), gatewayConfig(backend, 2));
    const p = await start();
    assert.equal(await get(port, 'app.example.com', '/r1/x'), 200);
    writeAtomically(join(dir, 'app.yaml'), `${gatewayConfig(backend, 2)}---\n${billionLaughs()}`);
    await p.waitForLog(/app\.yaml: document 4: more than 10000 alias expansions.*last good/);
    assert.equal(p.child.exitCode, null, 'the proxy is still running');
    assert.equal(await get(port, 'app.example.com', '/r1/x'), 200);
    // And a good file afterwards is taken.
    writeAtomically(join(dir, 'app.yaml'), gatewayConfig(backend, 5));
    for (let i = 0; i < 100 && (await get(port, 'app.example.com', '/r4/x')) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await get(port, 'app.example.com', '/r4/x'), 200);
  });
});
