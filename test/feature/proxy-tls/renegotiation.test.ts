// TLS 1.2 client-initiated renegotiation is refused (HARDENING.md; issue 13 item 11): each
// renegotiation costs the server a full handshake, and Envoy (BoringSSL) never allows it. Node's
// default allows 3 per 10 minutes per connection; the proxy turns it off on every terminating
// context, whatever the server's other options.

import assert from 'node:assert/strict';
import tls from 'node:tls';
import { serverCert, testCa } from '../../support/certs.js';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { gatewayYaml, httpRouteYaml, httpsGet, secretYaml, serviceEntryYaml, TlsProxy, yamlDocuments } from './harness.js';

/** Connects with TLS 1.2, then asks to renegotiate: resolves with how that ended. */
function renegotiate(port: number, servername: string, ca: string): Promise<'renegotiated' | string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, maxVersion: 'TLSv1.2' });
    let settled = false;
    const settle = (outcome: string) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(outcome);
    };
    socket.on('error', (err) => settle(`error: ${err.message}`));
    socket.on('close', () => settle('closed'));
    socket.once('secureConnect', () => {
      if (socket.getProtocol() !== 'TLSv1.2') reject(new Error(`negotiated ${socket.getProtocol()}`));
      const asked = socket.renegotiate({ rejectUnauthorized: false }, (err) => settle(err ? `error: ${err.message}` : 'renegotiated'));
      if (!asked) settle('renegotiate() refused locally');
    });
    socket.on('data', () => undefined);
  });
}

describe('proxy TLS: client-initiated renegotiation (real proxy process)', function () {
  this.timeout(60_000);
  const ca = testCa();
  let env: TlsProxy;
  let echo: EchoBackend;

  before(async () => {
    echo = await startEchoBackend('main');
    const cert = serverCert({ dnsNames: ['www.example.com'] });
    env = await TlsProxy.launch([443], (e) => {
      e.write('gateway.yaml', gatewayYaml([{ port: 443, name: 'https', protocol: 'HTTPS', hosts: ['*.example.com'], tls: '{mode: SIMPLE, credentialName: www-cert}' }]));
      e.write('routes.yaml', yamlDocuments(httpRouteYaml('main', ['*.example.com'], 'main.internal'), serviceEntryYaml('main.internal', 80, 'HTTP', echo.port), secretYaml('www-cert', { cert: cert.chain, key: cert.key })));
    });
  });
  after(async () => {
    await env?.close();
    await echo?.close();
  });

  it('a TLS 1.2 client asking to renegotiate is refused', async () => {
    const outcome = await renegotiate(env.port(443), 'www.example.com', ca.cert);
    assert.notEqual(outcome, 'renegotiated');
  });

  it('a TLS 1.2 client that does not renegotiate is served (control)', async () => {
    const r = await httpsGet(env.port(443), { servername: 'www.example.com', ca: ca.cert, maxVersion: 'TLSv1.2', path: '/' });
    assert.equal(r.status, 200);
  });
});
