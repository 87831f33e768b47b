// The proxy process's shutdown and signals (issue 13 items 6-8): SIGTERM drains for the whole
// window while still accepting, the process exits when the window ends whatever is still
// open, and SIGHUP is not a reason to die.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { unusedPort } from '../../support/ports.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';

interface Reply {
  status: number;
  connection: string | undefined;
}

function get(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: 'app.example.com' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function config(backend: EchoBackend): string {
  return `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: ["app.example.com"]
  gateways: ["istio-system/gw"]
  http:
  - route: [{destination: {host: backend.example.internal}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.example.internal]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ${backend.port}}]
  endpoints: [{address: 127.0.0.1}]
`;
}

describe('proxy process: shutdown and signals', function () {
  this.timeout(60_000);
  let dir: string;
  let backend: EchoBackend;
  let proxy: ProxyProcess | undefined;
  let port: number;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portway-shutdown-'));
    backend = await startEchoBackend('backend');
    port = await unusedPort();
    writeFileSync(join(dir, 'app.yaml'), config(backend));
  });
  afterEach(async function () {
    printLogsIfFailed(this, [proxy]);
    await proxy?.stop('SIGKILL');
    proxy = undefined;
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (extra: string[] = [], env: NodeJS.ProcessEnv = {}) => {
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--port-map', `80=${port}`, ...extra], env);
    return proxy;
  };

  it('SIGTERM on an idle proxy: not ready at once, new connections served with Connection: close for the whole window, then exit 0', async () => {
    const p = await start(['--drain-duration', '4s']);
    assert.equal((await get(port, '/warm')).status, 200);
    p.child.kill('SIGTERM');
    await p.waitForLog(/draining for 4000 ms$/);
    assert.equal((await fetch(`http://127.0.0.1:${p.statusPort}/healthz/ready`)).status, 503);
    // No connection is open: the drain used to end here, and the listeners closed.
    for (let i = 0; i < 3; i++) {
      const r = await get(port, `/during/${i}`);
      assert.deepEqual(r, { status: 200, connection: 'close' });
      assert.equal(p.child.exitCode, null);
    }
    assert.equal(await p.exited, 0);
  });

  it('EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true: the drain ends once no connection is left, long before a 10-minute window', async () => {
    const p = await start(['--drain-duration', '600s'], { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true' });
    assert.equal((await get(port, '/warm')).status, 200);
    p.child.kill('SIGTERM');
    await p.waitForLog(/draining for 600000 ms, or until no connection is left/);
    assert.equal(await p.exited, 0);
  });
});
