// Certificate rotation in the real proxy process, the SDS way: the Secret file (or the
// certificate files) are rewritten; new handshakes get the new certificate promptly, with no
// new listener and no failed request under continuous load, while an open keep-alive
// connection keeps the certificate it started with and keeps working.

import assert from 'node:assert/strict';
import https from 'node:https';
import { serverCert, testCa } from '../../support/certs.js';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { eventually, gatewayYaml, handshake, httpRouteYaml, httpsGet, secretYaml, servedSubject, serviceEntryYaml, TlsProxy, yamlDocuments } from './harness.js';

function config(backend: EchoBackend, certFile: string, keyFile: string): string {
  return yamlDocuments(
    gatewayYaml([
      { port: 443, name: 'https-secret', protocol: 'HTTPS', hosts: ['rotate.example.com'], tls: '{mode: SIMPLE, credentialName: rotate-cert}' },
      { port: 443, name: 'https-files', protocol: 'HTTPS', hosts: ['files.example.com'], tls: `{mode: SIMPLE, serverCertificate: ${certFile}, privateKey: ${keyFile}}` },
    ]),
    httpRouteYaml('app', ['rotate.example.com', 'files.example.com'], 'app.internal'),
    serviceEntryYaml('app.internal', 80, 'HTTP', backend.port),
  );
}

describe('proxy TLS: certificate rotation (real proxy process)', function () {
  this.timeout(60_000);
  const ca = testCa();
  let env: TlsProxy;
  let backend: EchoBackend;
  let port: number;

  before(async () => {
    backend = await startEchoBackend('app');
    const first = serverCert({ dnsNames: ['files.example.com'], commonName: 'files-v1' });
    const v1 = serverCert({ dnsNames: ['rotate.example.com'], commonName: 'rotate-v1' });
    env = await TlsProxy.launch([443], (e) => {
      const certFile = e.writeAux('server.crt', first.chain);
      const keyFile = e.writeAux('server.key', first.key);
      e.write('gateway.yaml', config(backend, certFile, keyFile));
      e.write('secret.yaml', secretYaml('rotate-cert', { cert: v1.chain, key: v1.key }));
    });
    port = env.port(443);
  });
  after(async () => {
    await env?.close();
    await backend?.close();
  });

  it('a rewritten Secret: new handshakes get the new certificate at once, the open keep-alive connection keeps working, no request fails under load', async () => {
    const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await httpsGet(port, { servername: 'rotate.example.com', ca: ca.cert, agent: keepAlive });
    assert.equal(first.status, 200);
    assert.match(first.peer!.subject, /CN=rotate-v1/);

    // Continuous load: keep-alive requests on 4 connections and new connections, side by side.
    const loadAgent = new https.Agent({ keepAlive: true, maxSockets: 4 });
    const failures: string[] = [];
    let sent = 0;
    let stop = false;
    const worker = async (agent: https.Agent | false) => {
      while (!stop) {
        sent++;
        try {
          const r = await httpsGet(port, { servername: 'rotate.example.com', ca: ca.cert, agent, path: '/load' });
          if (r.status !== 200) failures.push(`status ${r.status}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const load = Promise.all([worker(loadAgent), worker(loadAgent), worker(loadAgent), worker(false), worker(false)]);
    await new Promise((r) => setTimeout(r, 300));

    const v2 = serverCert({ dnsNames: ['rotate.example.com'], commonName: 'rotate-v2' });
    const sentBefore = sent;
    env.write('secret.yaml', secretYaml('rotate-cert', { cert: v2.chain, key: v2.key }));
    const elapsed = await eventually('new handshakes get v2', async () => {
      const h = await handshake(port, { servername: 'rotate.example.com', ca: ca.cert });
      if (!h.ok) {
        failures.push(`handshake: ${h.error}`);
        return false;
      }
      h.socket.destroy();
      return /CN=rotate-v2/.test(h.peer.subject);
    });
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;

    // The connection opened before the rotation (on v1) still works.
    const reused = await httpsGet(port, { servername: 'rotate.example.com', ca: ca.cert, agent: keepAlive });
    assert.equal(reused.status, 200);
    assert.equal(reused.reusedSocket, true);
    keepAlive.destroy();
    loadAgent.destroy();

    assert.deepEqual(failures, []);
    // The load ran across the rotation (counts stay low on a loaded machine: handshakes are RSA).
    assert.ok(sentBefore >= 3 && sent - sentBefore >= 3, `requests sent: ${sentBefore} before the rotation, ${sent - sentBefore} after`);
    // The goal is well under a second (file poll 500 ms + debounce); the bound is generous for loaded machines.
    assert.ok(elapsed < 5_000, `rotation took ${elapsed} ms`);
    await env.proxy.waitForLog(/TLS credential Secret istio-system\/rotate-cert: serving certificate DNS:rotate.example.com/);
  });

  it('rewritten certificate files (serverCertificate/privateKey) are picked up by the file watcher', async () => {
    const before = await handshake(port, { servername: 'files.example.com', ca: ca.cert });
    assert.ok(before.ok);
    assert.match(before.peer.subject, /CN=files-v1/);
    before.socket.destroy();
    const v2 = serverCert({ dnsNames: ['files.example.com'], commonName: 'files-v2' });
    // Key first, then certificate: a reload in between sees a mismatched pair and keeps v1.
    env.writeAux('server.key', v2.key);
    env.writeAux('server.crt', v2.chain);
    await eventually('file rotation', async () => /CN=files-v2/.test(await servedSubject(port, { servername: 'files.example.com', ca: ca.cert })));
    assert.equal((await httpsGet(port, { servername: 'files.example.com', ca: ca.cert })).status, 200);
  });
});
