// DestinationRule tls (origination) through the real proxy process: SIMPLE with a CA file,
// sni and subjectAltNames (and a SAN mismatch failing), MUTUAL with a credentialName Secret
// (and its rotation), TCP routes originating TLS, and ISTIO_MUTUAL rejected with a diagnostic.

import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { clientCert, serverCert, testCa } from '../../support/certs.js';
import { eventually, exchange, gatewayYaml, secretYaml, serviceEntryYaml, startHttpsEcho, startTlsEcho, TlsProxy, virtualServiceYaml, yamlDocuments, type Backend } from './harness.js';

function get(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function config(caFile: string, b: Record<string, Backend>): string {
  const dr = (name: string, host: string, tls: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default}
spec:
  host: ${host}
  trafficPolicy:
    tls: ${tls}
`;
  return yamlDocuments(
    gatewayYaml([
      { port: 80, name: 'http', protocol: 'HTTP', hosts: ['*.origin.test'] },
      { port: 9100, name: 'tcp', protocol: 'TCP', hosts: ['*'] },
      { port: 9443, name: 'https-istio', protocol: 'HTTPS', hosts: ['istio.origin.test'], tls: '{mode: ISTIO_MUTUAL}' },
    ]),
    virtualServiceYaml(
      'origin',
      ['*.origin.test'],
      `http:
- match: [{uri: {prefix: /simple}}]
  route: [{destination: {host: secure.internal}}]
- match: [{uri: {prefix: /mismatch}}]
  route: [{destination: {host: mismatch.internal}}]
- match: [{uri: {prefix: /mutual}}]
  route: [{destination: {host: mutual.internal}}]
- match: [{uri: {prefix: /missing}}]
  route: [{destination: {host: missing.internal}}]
- match: [{uri: {prefix: /istio}}]
  route: [{destination: {host: istio.internal}}]`,
    ),
    virtualServiceYaml('tcp', ['*'], 'tcp: [{route: [{destination: {host: tls-echo.internal, port: {number: 443}}}]}]'),
    dr('secure', 'secure.internal', `{mode: SIMPLE, caCertificates: ${caFile}, sni: secure.internal, subjectAltNames: [secure.internal]}`),
    dr('mismatch', 'mismatch.internal', `{mode: SIMPLE, caCertificates: ${caFile}, sni: secure.internal, subjectAltNames: [somebody-else.internal]}`),
    dr('mutual', 'mutual.internal', '{mode: MUTUAL, credentialName: client-cred, sni: mutual.internal}'),
    dr('missing', 'missing.internal', '{mode: MUTUAL, credentialName: no-such-secret, sni: mutual.internal}'),
    dr('tls-echo', 'tls-echo.internal', `{mode: SIMPLE, caCertificates: ${caFile}, sni: echo.internal}`),
    dr('istio', 'istio.internal', '{mode: ISTIO_MUTUAL}'),
    serviceEntryYaml('secure.internal', 80, 'HTTP', b.secure!.port),
    serviceEntryYaml('mismatch.internal', 80, 'HTTP', b.secure!.port),
    serviceEntryYaml('mutual.internal', 80, 'HTTP', b.mutual!.port),
    serviceEntryYaml('missing.internal', 80, 'HTTP', b.mutual!.port),
    serviceEntryYaml('tls-echo.internal', 443, 'TLS', b.tlsEcho!.port),
    serviceEntryYaml('istio.internal', 80, 'HTTP', b.secure!.port),
  );
}

describe('proxy TLS: DestinationRule TLS origination (real proxy process)', function () {
  this.timeout(60_000);
  const ca = testCa();
  let env: TlsProxy;
  const backends: Record<string, Backend> = {};

  before(async () => {
    backends.secure = await startHttpsEcho('secure', serverCert({ dnsNames: ['secure.internal'] }));
    backends.mutual = await startHttpsEcho('mutual', serverCert({ dnsNames: ['mutual.internal'] }), ca.cert);
    backends.tlsEcho = await startTlsEcho('tls-echo', serverCert({ dnsNames: ['echo.internal'] }));
    const client = clientCert({ commonName: 'gateway-client-v1' });
    env = await TlsProxy.launch([80, 9100, 9443], (e) => {
      const caFile = e.writeAux('ca.pem', ca.cert);
      e.write('config.yaml', config(caFile, backends));
      e.write('secret.yaml', secretYaml('client-cred', { cert: client.chain, key: client.key, ca: ca.cert }));
    });
  });
  after(async () => {
    await env?.close();
    for (const b of Object.values(backends)) await b.close();
  });

  it('SIMPLE: verifies the upstream against caCertificates and subjectAltNames, sends the configured SNI', async () => {
    const r = await get(env.port(80), 'app.origin.test', '/simple/x');
    assert.equal(r.status, 200, r.body);
    const seen = JSON.parse(r.body);
    assert.equal(seen.name, 'secure');
    assert.equal(seen.sni, 'secure.internal');
    assert.equal(seen.url, '/simple/x');
    assert.equal(seen.host, 'app.origin.test');
  });

  it('SIMPLE: a certificate without the expected subjectAltName is refused (503, nothing reaches the backend)', async () => {
    const before = backends.secure!.seen.length;
    const r = await get(env.port(80), 'app.origin.test', '/mismatch');
    assert.equal(r.status, 503);
    assert.equal(backends.secure!.seen.length, before);
  });

  it('MUTUAL with credentialName: the client certificate from the Secret is presented; rotating the Secret changes it', async () => {
    const r = await get(env.port(80), 'app.origin.test', '/mutual');
    assert.equal(r.status, 200, r.body);
    assert.match(JSON.parse(r.body).clientCert, /CN=gateway-client-v1/);
    const v2 = clientCert({ commonName: 'gateway-client-v2' });
    env.write('secret.yaml', secretYaml('client-cred', { cert: v2.chain, key: v2.key, ca: ca.cert }));
    await eventually('upstream connections use the rotated client certificate', async () => {
      const again = await get(env.port(80), 'app.origin.test', '/mutual');
      return again.status === 200 && /CN=gateway-client-v2/.test(JSON.parse(again.body).clientCert);
    });
  });

  it('MUTUAL whose Secret does not exist: 503 (no healthy upstream), logged with the cluster', async () => {
    const r = await get(env.port(80), 'app.origin.test', '/missing');
    assert.equal(r.status, 503);
    await env.proxy.waitForLog(/TLS origination for cluster outbound\|80\|\|missing\.internal: Secret istio-system\/no-such-secret is not available/);
  });

  it('TCP routes originate TLS too (plaintext in, TLS to the upstream)', async () => {
    assert.equal(await exchange(env.port(9100), 'hi'), 'tls-echo\nhibye 2\n');
    assert.equal(backends.tlsEcho!.seen.at(-1)?.sni, 'echo.internal');
  });

  it('ISTIO_MUTUAL is rejected with a diagnostic naming the object and field (DestinationRule and Gateway)', async () => {
    const dr = await env.proxy.waitForLog(/DestinationRule default\/istio.*ISTIO_MUTUAL/);
    assert.match(dr, /^.*error: DestinationRule default\/istio.*tls\.mode/);
    const gw = await env.proxy.waitForLog(/Gateway istio-system\/gw.*ISTIO_MUTUAL/);
    assert.match(gw, /spec\.servers\[2\]\.tls\.mode/);
  });
});
