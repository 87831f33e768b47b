// TLS clients that leave first, on a real proxy process (HTTPS listener from certificate files):
// - an HTTP/2-over-TLS client that closes its side (FIN without GOAWAY, as curl does) must not
//   leave the session open (issue 13 item 5): it stayed until the idle timeout (620 s, the
//   socket in CLOSE-WAIT) and portway_downstream_cx_active drifted up by one per connection;
// - a client that leaves during the handshake (a flood client closing as soon as its own side
//   is done drops its Finished) must be let go at once (issue 13 item 4): each one was held,
//   with its OpenSSL state, until the 10 s handshake timeout (~900 MB at 1,100 handshakes/s).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { serverCert, testCa } from '../../support/certs.js';
import { unusedPort } from '../../support/ports.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';

async function activeConnections(p: ProxyProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.metricsPort}/stats/prometheus`)).text();
  const m = /^portway_downstream_cx_active (\d+)/m.exec(text);
  assert.ok(m, 'portway_downstream_cx_active is exported');
  return Number(m[1]);
}

describe('proxy TLS: clients that leave first', function () {
  this.timeout(60_000);
  let dir: string;
  let proxy: ProxyProcess | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portway-h2-fin-'));
  });
  after(async function () {
    await proxy?.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(function () {
    printLogsIfFailed(this, [proxy]);
  });

  let port: number;
  const startProxy = async () => {
    if (proxy !== undefined) return proxy;
    const leaf = serverCert({ dnsNames: ['app.example.com'] });
    writeFileSync(join(dir, 'tls.crt'), leaf.chain);
    writeFileSync(join(dir, 'tls.key'), leaf.key);
    port = await unusedPort();
    writeFileSync(join(dir, 'gw.yaml'), `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: ${join(dir, 'tls.crt')}, privateKey: ${join(dir, 'tls.key')}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: ["*"]
  gateways: ["istio-system/gw"]
  http:
  - directResponse: {status: 200, body: {string: ok}}
`);
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--port-map', `443=${port}`]);
    return proxy;
  };

  it('HTTP/2: a FIN after the response closes the session, and portway_downstream_cx_active returns to 0', async () => {
    const p = await startProxy();
    for (let i = 0; i < 3; i++) {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'app.example.com', ALPNProtocols: ['h2'], ca: testCa().root });
      const session = http2.connect('https://app.example.com', { createConnection: () => socket });
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
      });
      assert.equal(status, 200);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.end(); // FIN, no GOAWAY
      await closed; // the proxy closed its side too
      session.destroy();
    }
    while ((await activeConnections(p)) !== 0) await new Promise((r) => setTimeout(r, 50));
  });

  it('a client gone during the handshake is let go at once, not held until the handshake timeout', async () => {
    const p = await startProxy();
    // Each client closes as soon as its side of the handshake is done; its Finished never leaves.
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, servername: 'app.example.com', ca: testCa().root }, () => socket.destroy());
        socket.once('close', () => resolve());
        socket.once('error', reject);
      });
    }
    // Their ends of connection reached the proxy before this request did: once it is answered,
    // the proxy has read them. Only this request's connection may still be counted.
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, servername: 'app.example.com', path: '/', headers: { host: 'app.example.com' }, ca: testCa().root, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
    assert.equal(status, 200);
    const active = await activeConnections(p);
    assert.ok(active <= 1, `${active} connections still counted (50 clients left during their handshakes)`);
  });
});
