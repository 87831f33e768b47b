// An object that becomes invalid keeps its last good version serving, per object (issue 13
// item 15), with the real proxy process: a VirtualService whose /api rule gets an invalid regex
// must not lose that rule and let /api fall through to its catch-all; the error is reported
// and says the last good version serves; the next valid version applies.

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';
import { eventually } from '../proxy-tls/harness.js';
import { localServiceEntryYaml } from '../../support/standalone-config.js';

function servedBy(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: 'app.example.com' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve(res.statusCode === 200 ? (JSON.parse(body) as { name: string }).name : `status ${res.statusCode}`));
    });
    req.on('error', reject);
    req.end();
  });
}

function config(api: EchoBackend, web: EchoBackend, firstMatch: string): string {
  const entry = (host: string, port: number) => `---\n${localServiceEntryYaml(host.split('.')[0]!, host, port)}`;
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*/app.example.com"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: [app.example.com]
  gateways: [istio-system/gw]
  http:
  - match: [{uri: ${firstMatch}}]
    route: [{destination: {host: api.internal}}]
  - route: [{destination: {host: web.internal}}]
${entry('api.internal', api.port)}${entry('web.internal', web.port)}`;
}

describe('proxy process: the last good version of an object keeps serving', function () {
  this.timeout(60_000);
  let dir: string;
  let proxy: ProxyProcess | undefined;
  let api: EchoBackend;
  let web: EchoBackend;
  let port: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portway-last-good-'));
    api = await startEchoBackend('api');
    web = await startEchoBackend('web');
    port = await closedPort();
  });
  afterEach(function () {
    printLogsIfFailed(this, [proxy]);
  });
  after(async () => {
    await proxy?.stop('SIGKILL');
    await api.close();
    await web.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (text: string) => {
    writeFileSync(join(dir, 'app.yaml.tmp'), text);
    renameSync(join(dir, 'app.yaml.tmp'), join(dir, 'app.yaml'));
  };

  it('an invalid rule does not vanish: /api stays on its route; the error says so; a valid edit applies', async () => {
    write(config(api, web, '{prefix: /api}'));
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--port-map', `80=${port}`, '--access-log', 'off']);
    assert.equal(await servedBy(port, '/api/items'), 'api');
    assert.equal(await servedBy(port, '/other'), 'web');

    write(config(api, web, '{regex: "/api(["}'));
    await proxy.waitForLog(/VirtualService default\/app.*spec\.http\[0\]\.match\[0\]\.uri.*last good version keeps serving/);
    assert.equal(await servedBy(port, '/api/items'), 'api', 'the last good version of the VirtualService serves /api');

    write(config(api, web, '{prefix: /v2}'));
    await eventually('the next valid version applies', async () => (await servedBy(port, '/v2/items')) === 'api');
    assert.equal(await servedBy(port, '/api/items'), 'web');
  });
});
