// DestinationRule TLS origination against real TLS backends: verification by CA, SAN and
// SNI, insecureSkipVerify, client certificates, and use through undici's `connect` option.

import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import type { UpstreamTlsPolicy } from '../../../dataplane/snapshot/types.js';
import { CredentialStore } from '../../../dataplane/tls/credential-store.js';
import { UpstreamTls, upstreamTlsOptions, type UpstreamTlsMaterial } from '../../../dataplane/tls/upstream-options.js';
import { clientCert, newCa, serverCert, testCa } from '../../support/certs.js';

const BACKEND_ID = 'spiffe://cluster.local/ns/backend/sa/api';

function tlsPolicy(overrides: Partial<UpstreamTlsPolicy> = {}): UpstreamTlsPolicy {
  return { mode: 'SIMPLE', subjectAltNames: [], insecureSkipVerify: false, ...overrides };
}

/** Connects with the options and reports the peer's verdict, or the error. */
function handshake(port: number, options: tls.ConnectionOptions | Error): Promise<{ ok: true; body: string } | { ok: false; code: string; message: string }> {
  if (options instanceof Error) return Promise.resolve({ ok: false, code: 'OPTIONS', message: options.message });
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    let body = '';
    socket.on('data', (d) => (body += d.toString()));
    socket.on('end', () => resolve({ ok: true, body }));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code ?? '', message: err.message }));
  });
}

describe('tls feature: upstream TLS origination', () => {
  const ca = testCa();
  const backendCert = serverCert({ dnsNames: ['backend.internal'], uris: [BACKEND_ID] });
  const proxyClient = clientCert({ commonName: 'portway-gateway', uris: ['spiffe://cluster.local/ns/gw/sa/portway'] });
  let server: tls.Server;
  let port: number;

  before(async () => {
    // Asks for a client certificate without requiring one, and says whose it got.
    server = tls.createServer({ cert: backendCert.chain, key: backendCert.key, ca: ca.cert, requestCert: true, rejectUnauthorized: false }, (socket) => {
      const peer = socket.getPeerX509Certificate();
      socket.end(peer && socket.authorized ? `client:${peer.subject.split('\n').find((l) => l.startsWith('CN='))}` : 'client:none');
    });
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(() => server.close());

  const caOnly: UpstreamTlsMaterial = { ca: { caCertificates: ca.cert } };

  it('SIMPLE: verifies the server against the CA and the expected SAN', async () => {
    const r = await handshake(port, upstreamTlsOptions(tlsPolicy({ subjectAltNames: [BACKEND_ID] }), caOnly, 'backend.internal'));
    assert.deepEqual(r, { ok: true, body: 'client:none' });
  });

  it('SIMPLE: fails when no SAN matches subjectAltNames, whatever the SNI', async () => {
    const r = await handshake(port, upstreamTlsOptions(tlsPolicy({ subjectAltNames: ['spiffe://cluster.local/ns/backend/sa/other'] }), caOnly, 'backend.internal'));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    assert.match(!r.ok ? r.message : '', /match none of subjectAltNames/);
  });

  it('without subjectAltNames, checks the certificate against the SNI', async () => {
    assert.equal((await handshake(port, upstreamTlsOptions(tlsPolicy(), caOnly, 'backend.internal'))).ok, true);
    const wrong = await handshake(port, upstreamTlsOptions(tlsPolicy(), caOnly, 'wrong.internal'));
    assert.equal(!wrong.ok && wrong.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    const bySni = await handshake(port, upstreamTlsOptions(tlsPolicy({ sni: 'backend.internal' }), caOnly, 'wrong.internal'));
    assert.equal(bySni.ok, true, 'the DestinationRule sni is what is verified');
  });

  it('with no caCertificates, uses the default roots, which do not trust a private CA', async () => {
    const r = await handshake(port, upstreamTlsOptions(tlsPolicy(), {}, 'backend.internal'));
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.code : '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN/);
  });

  it('a CA from another authority fails verification', async () => {
    const r = await handshake(port, upstreamTlsOptions(tlsPolicy(), { ca: { caCertificates: newCa('Unrelated CA').cert } }, 'backend.internal'));
    assert.equal(r.ok, false);
  });

  it('insecureSkipVerify connects without a CA and ignores names', async () => {
    const r = await handshake(port, upstreamTlsOptions(tlsPolicy({ insecureSkipVerify: true, subjectAltNames: ['nope'] }), {}, 'wrong.internal'));
    assert.equal(r.ok, true);
  });

  it('MUTUAL presents the client certificate', async () => {
    const material: UpstreamTlsMaterial = { client: { certChain: proxyClient.chain, privateKey: proxyClient.key, caCertificates: ca.cert } };
    const r = await handshake(port, upstreamTlsOptions(tlsPolicy({ mode: 'MUTUAL' }), material, 'backend.internal'));
    assert.deepEqual(r, { ok: true, body: 'client:CN=portway-gateway' });
  });

  it('refuses policies it cannot honour', () => {
    assert.match(String(upstreamTlsOptions(tlsPolicy({ mode: 'MUTUAL' }), caOnly, 'backend.internal')), /MUTUAL needs a client certificate/);
    assert.match(String(upstreamTlsOptions(tlsPolicy({ mode: 'DISABLE' }), caOnly, 'backend.internal')), /disabled/);
  });

  it('works as undici connect options', async () => {
    const httpsServer = https.createServer({ cert: backendCert.chain, key: backendCert.key }, (_req, res) => res.end('hello over tls'));
    await new Promise<void>((resolve) => httpsServer.listen(0, '127.0.0.1', resolve));
    const options = upstreamTlsOptions(tlsPolicy({ subjectAltNames: [BACKEND_ID] }), caOnly, 'backend.internal');
    assert.ok(!(options instanceof Error));
    const agent = new Agent({ connect: options });
    try {
      const res = await request(`https://127.0.0.1:${(httpsServer.address() as AddressInfo).port}/`, { dispatcher: agent });
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), 'hello over tls');
    } finally {
      await agent.close();
      httpsServer.close();
    }
  });

  describe('UpstreamTls over the credential store', () => {
    it('hands out the same options until a credential rotates, and names a missing credential', async () => {
      const store = new CredentialStore({ registry: new Registry() });
      const upstream = new UpstreamTls(tlsPolicy({ mode: 'MUTUAL', credential: 'secret:gw/client', subjectAltNames: [BACKEND_ID] }), store);
      assert.match(String(upstream.options('backend.internal')), /Secret gw\/client is not available/);

      store.update('secret:gw/client', { certChain: proxyClient.chain, privateKey: proxyClient.key, caCertificates: ca.cert });
      const first = upstream.options('backend.internal');
      assert.equal(upstream.options('backend.internal'), first, 'same object: pools keyed on it are kept');
      assert.deepEqual(await handshake(port, first), { ok: true, body: 'client:CN=portway-gateway' });

      const rotated = clientCert({ commonName: 'portway-gateway-2' });
      store.update('secret:gw/client', { certChain: rotated.chain, privateKey: rotated.key, caCertificates: ca.cert });
      const second = upstream.options('backend.internal');
      assert.notEqual(second, first);
      assert.deepEqual(await handshake(port, second), { ok: true, body: 'client:CN=portway-gateway-2' });
    });
  });
});
