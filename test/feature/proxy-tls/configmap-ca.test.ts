// caCertCredentialName naming a ConfigMap (Istio: "the name of the Secret or ConfigMap that
// holds the CA"), served by --concurrency worker processes: the primary sends workers the
// ConfigMaps their credentials are read from, and again when one changes. Each check makes
// several new connections in a row, which the primary spreads over both workers.

import assert from 'node:assert/strict';
import { clientCert, newCa, serverCert, testCa, type IssuedCert, type TestCa } from '../../support/certs.js';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { configMapYaml, eventually, gatewayYaml, httpRouteYaml, httpsOutcome, secretYaml, serviceEntryYaml, TlsProxy, yamlDocuments } from './harness.js';

const CONNECTIONS = 6;

function config(backend: EchoBackend): string {
  return yamlDocuments(
    gatewayYaml([
      { port: 443, name: 'https-mutual', protocol: 'HTTPS', hosts: ['mtls.example.com'], tls: '{mode: MUTUAL, credentialName: site-cert, caCertCredentialName: client-ca}' },
      { port: 443, name: 'https-late', protocol: 'HTTPS', hosts: ['late.example.com'], tls: '{mode: MUTUAL, credentialName: site-cert, caCertCredentialName: late-ca}' },
    ]),
    httpRouteYaml('app', ['mtls.example.com', 'late.example.com'], 'app.internal'),
    serviceEntryYaml('app.internal', 80, 'HTTP', backend.port),
  );
}

describe('proxy TLS: caCertCredentialName → ConfigMap with --concurrency workers (real proxy process)', function () {
  this.timeout(90_000);
  const serverCa = testCa();
  let clientCaA: TestCa;
  let clientCaB: TestCa;
  let clientA: IssuedCert;
  let clientB: IssuedCert;
  let backend: EchoBackend;
  let env: TlsProxy;
  let port: number;

  /** What CONNECTIONS new connections in a row get with this client certificate (or none). */
  async function outcomes(servername: string, client: IssuedCert | undefined): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const r = await httpsOutcome(port, { servername, ca: serverCa.cert, ...(client ? { cert: client.chain, key: client.key } : {}) });
      out.push('error' in r ? 'refused' : String(r.status));
    }
    return out;
  }
  const all = (v: string) => Array.from({ length: CONNECTIONS }, () => v);

  before(async () => {
    clientCaA = newCa('Client CA A');
    clientCaB = newCa('Client CA B');
    clientA = clientCert({ commonName: 'client-a', ca: clientCaA });
    clientB = clientCert({ commonName: 'client-b', ca: clientCaB });
    backend = await startEchoBackend('app');
    const site = serverCert({ dnsNames: ['mtls.example.com', 'late.example.com'] });
    env = await TlsProxy.launch(
      [443],
      (e) => {
        e.write('config.yaml', config(backend));
        // The server Secret has no CA of its own: the ConfigMap is the only source of one.
        e.write('secret.yaml', secretYaml('site-cert', { cert: site.chain, key: site.key }));
        e.write('client-ca.yaml', configMapYaml('client-ca', 'ca.crt', clientCaA.cert));
      },
      ['--concurrency', '2'],
    );
    port = env.port(443);
  });
  after(async () => {
    await env?.close();
    await backend?.close();
  });

  it('every worker accepts a client certificate from the ConfigMap’s CA and refuses no certificate or another CA', async () => {
    assert.deepEqual(await outcomes('mtls.example.com', clientA), all('200'));
    assert.deepEqual(await outcomes('mtls.example.com', undefined), all('refused'));
    assert.deepEqual(await outcomes('mtls.example.com', clientB), all('refused'));
  });

  it('an updated ConfigMap (the cacert key, another CA) is used by every worker for new handshakes, without restart', async () => {
    const pid = env.proxy.child.pid;
    env.write('client-ca.yaml', configMapYaml('client-ca', 'cacert', clientCaB.cert));
    await eventually('every worker trusts CA B only', async () => (await outcomes('mtls.example.com', clientB)).every((o) => o === '200'), 20_000);
    assert.deepEqual(await outcomes('mtls.example.com', clientA), all('refused'));
    assert.equal(env.proxy.child.pid, pid);
    assert.equal(env.proxy.child.exitCode, null);
  });

  it('a ConfigMap created after the Gateway activates its server on every worker', async () => {
    assert.deepEqual(await outcomes('late.example.com', clientA), all('refused'));
    env.write('late-ca.yaml', configMapYaml('late-ca', 'ca.crt', clientCaA.cert));
    await eventually('the late server on every worker', async () => (await outcomes('late.example.com', clientA)).every((o) => o === '200'), 20_000);
    assert.deepEqual(await outcomes('late.example.com', clientB), all('refused'));
  });
});
