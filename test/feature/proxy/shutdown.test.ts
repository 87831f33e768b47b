// The proxy process's shutdown and signals (issue 13 items 6-8): SIGTERM drains for the whole
// window while still accepting, the process exits when the window ends whatever is still
// open, and SIGHUP is not a reason to die.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { unusedPort } from '../../support/ports.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';
import { ingressGatewayYaml, localServiceEntryYaml } from '../../support/standalone-config.js';

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

function config(backend: EchoBackend, mirrorPort = 9): string {
  return `
${ingressGatewayYaml()}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: ["app.example.com"]
  gateways: ["istio-system/gw"]
  http:
  - match: [{uri: {prefix: /mirrored}}]
    route: [{destination: {host: backend.example.internal}}]
    mirror: {host: silent.example.internal}
  - route: [{destination: {host: backend.example.internal}}]
---
${localServiceEntryYaml('silent', 'silent.example.internal', mirrorPort)}---
${localServiceEntryYaml('backend', 'backend.example.internal', backend.port)}`;
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

  it('exits when the drain window ends, whatever is still open: an upstream keep-alive socket, a mirror and a request in flight, a file watcher after a broken reload', async () => {
    // A mirror target that accepts and never answers: the mirror stays in flight (with its timer).
    const held: Socket[] = [];
    const silent: Server = createServer((socket) => held.push(socket));
    const silentPort = await unusedPort();
    await new Promise<void>((resolve) => silent.listen(silentPort, '127.0.0.1', resolve));
    try {
      writeFileSync(join(dir, 'app.yaml'), config(backend, silentPort));
      const p = await start(['--drain-duration', '1s']);
      // An upstream keep-alive connection in the proxy's pool.
      assert.equal((await get(port, '/warm')).status, 200);
      // A mirror in flight.
      assert.equal((await get(port, '/mirrored/x')).status, 200);
      while (held.length === 0) await new Promise((r) => setTimeout(r, 20));
      // A hot reload with a broken file (the file watcher keeps the last good objects).
      writeFileSync(join(dir, 'broken.yaml'), 'apiVersion: v1\nkind: [broken');
      await p.waitForLog(/broken\.yaml.*last good/);
      // A request in flight that would take ten minutes.
      const inFlight = get(port, '/delay/600000').catch((e: Error) => e);
      while (!backend.requests.some((r) => r.url === '/delay/600000')) await new Promise((r) => setTimeout(r, 20));
      p.child.kill('SIGTERM');
      await p.waitForLog(/draining for 1000 ms/);
      // Before, the process lived on after the window while the upstream pools closed politely
      // (10 s here; for ever with a handle nothing closes): it must end with the window.
      const exiting = await p.waitForLog(/drain over: exiting/, 30_000);
      assert.equal(await p.exited, 0);
      assert.match(exiting, /still open: .*TCPSocketWrap/, 'the log says what the exit cut short');
      assert.ok((await inFlight) instanceof Error, 'the request still in flight at the end of the window is cut');
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('--concurrency 2: workers and primary exit when the window ends, with a request still in flight', async () => {
    const p = await start(['--drain-duration', '1s', '--concurrency', '2']);
    await p.waitForLog(/2 workers/);
    assert.equal((await get(port, '/warm')).status, 200);
    const inFlight = get(port, '/delay/600000').catch((e: Error) => e);
    while (!backend.requests.some((r) => r.url === '/delay/600000')) await new Promise((r) => setTimeout(r, 20));
    p.child.kill('SIGTERM');
    await p.waitForLog(/\[primary\] drain over: exiting/, 30_000);
    assert.equal(await p.exited, 0);
    assert.ok((await inFlight) instanceof Error);
  });

  it('SIGHUP is ignored (and logged): the request in flight completes and the proxy keeps serving', async () => {
    const p = await start();
    const inFlight = get(port, '/delay/1500');
    while (!backend.requests.some((r) => r.url === '/delay/1500')) await new Promise((r) => setTimeout(r, 20));
    p.child.kill('SIGHUP');
    await p.waitForLog(/SIGHUP ignored/);
    assert.equal((await inFlight).status, 200);
    assert.equal((await get(port, '/after-sighup')).status, 200);
    assert.equal(p.child.exitCode, null);
    assert.equal(p.child.signalCode, null);
  });
});
