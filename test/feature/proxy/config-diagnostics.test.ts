// No silent no-ops in standalone files (issue 13 item 14), with the real proxy process and the
// real `portway proxy-config diagnostics`: an unknown kind, an unknown field, a Gateway that
// does not exist and a host the Gateway does not list each get a diagnostic naming the object
// and the field; a file that does not parse is a diagnostic too and holds
// portway_config_last_reload_success at 0 until it parses again, which is logged.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from '../../support/echo-backend.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';
import { repoRoot } from '../../support/repo-root.js';
import { eventually } from '../proxy-tls/harness.js';
import { writeAtomically } from '../../support/standalone-config.js';

const GATEWAY = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*/app.example.com"]}]
`;

const MISTAKES = `apiVersion: networking.istio.io/v1
kind: VirtualServce
metadata: {name: typo-kind, namespace: default}
spec: {hosts: [app.example.com], gateways: [istio-system/gw]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: typo-field, namespace: default}
spec:
  hosts: [app.example.com]
  gateways: [istio-system/gw]
  htp: [{route: [{destination: {host: a.internal}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: no-such-gateway, namespace: default}
spec:
  hosts: [app.example.com]
  gateways: [istio-system/gateway-that-does-not-exist]
  http: [{route: [{destination: {host: a.internal}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: unlisted-host, namespace: default}
spec:
  hosts: [other.example.com]
  gateways: [istio-system/gw]
  http: [{route: [{destination: {host: a.internal}}]}]
`;


function diagnosticsJson(adminPort: number): Promise<Array<{ severity: string; kind: string; namespace: string; name: string; field: string; message: string }>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'portway.js'), 'proxy-config', 'diagnostics', '--admin', `http://127.0.0.1:${adminPort}`, '-o', 'json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`proxy-config exited ${code}`))));
  });
}

async function reloadSuccess(proxy: ProxyProcess): Promise<string | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${proxy.metricsPort}/stats/prometheus`)).text();
  return /^portway_config_last_reload_success (\d+)/m.exec(text)?.[1];
}

describe('proxy process: diagnostics for silent misconfigurations in files', function () {
  this.timeout(60_000);
  let dir: string;
  let proxy: ProxyProcess | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portway-diagnostics-'));
    writeFileSync(join(dir, 'gateway.yaml'), GATEWAY);
    writeFileSync(join(dir, 'mistakes.yaml'), MISTAKES);
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--port-map', `80=${await closedPort()}`, '--access-log', 'off']);
  });
  afterEach(function () {
    printLogsIfFailed(this, [proxy]);
  });
  after(async () => {
    await proxy?.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('an unknown kind, an unknown field, a missing Gateway and an unlisted host each get one, naming object and field', async () => {
    const d = await diagnosticsJson(proxy!.adminPort);
    const find = (kind: string, name: string, field: string) => d.find((x) => x.kind === kind && x.namespace === 'default' && x.name === name && x.field === field);
    assert.match(find('VirtualServce', 'typo-kind', 'kind')?.message ?? '', /unknown kind "VirtualServce"/, JSON.stringify(d, null, 1));
    assert.match(find('VirtualService', 'typo-field', 'spec.htp')?.message ?? '', /unknown field "htp"/, JSON.stringify(d, null, 1));
    assert.match(find('VirtualService', 'no-such-gateway', 'spec.gateways[0]')?.message ?? '', /istio-system\/gateway-that-does-not-exist not found/, JSON.stringify(d, null, 1));
    assert.match(find('VirtualService', 'unlisted-host', 'spec.hosts[0]')?.message ?? '', /other\.example\.com is not served by Gateway istio-system\/gw/, JSON.stringify(d, null, 1));
  });

  it('a file that does not parse: a diagnostic, reload success 0 until it parses again; the recovery is logged', async () => {
    assert.equal(await reloadSuccess(proxy!), '1');
    writeAtomically(join(dir, 'broken.yaml'), 'kind: [unclosed\n');
    await eventually('reload success goes to 0', async () => (await reloadSuccess(proxy!)) === '0');
    const d = await diagnosticsJson(proxy!.adminPort);
    assert.ok(d.some((x) => x.severity === 'error' && x.kind === 'File' && x.name.endsWith('broken.yaml')), JSON.stringify(d, null, 1));

    writeAtomically(join(dir, 'broken.yaml'), GATEWAY.replace('name: gw', 'name: gw2'));
    await eventually('reload success back to 1', async () => (await reloadSuccess(proxy!)) === '1');
    await proxy!.waitForLog(/resolved: error: .*broken\.yaml/);
    await proxy!.waitForLog(/configuration reloaded: snapshot \d+/);
    assert.ok(!(await diagnosticsJson(proxy!.adminPort)).some((x) => x.kind === 'File'));
  });
});
