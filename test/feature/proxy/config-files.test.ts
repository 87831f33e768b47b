// Config files as hostile input, on a real `portway proxy --config DIR` process (issue 13
// items 1 and 2): a file the proxy cannot take is reported for that file, the last good
// configuration keeps serving, and the process neither dies nor stops serving while it reads.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { unusedPort } from '../../support/ports.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';
import { billionLaughs, manyServices } from '../../support/hostile-yaml.js';
import { ingressGatewayYaml, localServiceEntryYaml, writeAtomically } from '../../support/standalone-config.js';

function get(port: number, host: string, path: string, agent: Agent | false = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent }, (res) => {
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
  let s = `${ingressGatewayYaml()}---
${localServiceEntryYaml('backend', 'backend.example.internal', backend.port)}---
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

  it('reads a file of 130,000 objects without crashing, and serves requests all the while', async () => {
    writeFileSync(join(dir, 'app.yaml'), gatewayConfig(backend, 2));
    const p = await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal(await get(port, 'app.example.com', '/r1/x', agent), 200);
    // The new route comes last in the file: it serves once the whole file has been read.
    writeAtomically(join(dir, 'app.yaml'), `${gatewayConfig(backend, 2)}---\n${manyServices(130_000)}---\n${gatewayConfig(backend, 3).split('---\n')[2]!.replace('name: app', 'name: app2').replace('/r0/', '/big/')}`);
    // Requests one after another until the new route serves. Reading the file takes the parser
    // seconds; parsing it on the serving thread answered nothing meanwhile (then crashed).
    let answeredBefore = 0;
    const failures: string[] = [];
    for (;;) {
      assert.equal(p.child.exitCode, null, 'the proxy is still running');
      const status = await get(port, 'app.example.com', '/big/x', agent).catch((e: Error) => `${e.message}`);
      if (status === 200) break;
      if (status !== 404) failures.push(String(status));
      answeredBefore++;
      assert.ok(answeredBefore < 1_000_000, 'the new route never served');
    }
    agent.destroy();
    assert.deepEqual(failures, []);
    assert.ok(answeredBefore >= 20, `only ${answeredBefore} requests were answered while the file was read`);
    assert.equal(await get(port, 'app.example.com', '/r1/x'), 200);
  });

  it('refuses a file over 16 MiB with a clear error, and keeps serving the last good config', async () => {
    writeFileSync(join(dir, 'app.yaml'), gatewayConfig(backend, 2));
    const p = await start();
    writeAtomically(join(dir, 'app.yaml'), `${gatewayConfig(backend, 2)}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: huge}\ndata: {blob: "${'x'.repeat(17 * 1024 * 1024)}"}\n`);
    await p.waitForLog(/app\.yaml: \d+ bytes, over the limit of 16777216 bytes \(16 MiB\) for one config file.*last good/);
    assert.equal(await get(port, 'app.example.com', '/r1/x'), 200);
  });
});
