// HTTPS servers of a Gateway, served by the real proxy process from YAML: certificates from
// Secrets (kubernetes.io/tls and generic layouts), SNI selection, HTTP/2 with 421 for a host
// outside the connection's server, httpsRedirect, MUTUAL / OPTIONAL_MUTUAL, RSA+ECDSA pairs,
// cipher suites, session resumption, a Secret that appears later and a bad Secret.

import assert from 'node:assert/strict';
import { createPublicKey, createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import tls from 'node:tls';
import { clientCert, newCa, serverCert, testCa, type IssuedCert } from '../../support/certs.js';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import {
  configMapYaml,
  eventually,
  gatewayYaml,
  h2Connect,
  h2Request,
  handshake,
  httpRouteYaml,
  httpsGet,
  httpsOutcome,
  newSession,
  secretYaml,
  servedCertificate,
  servedSubject,
  serviceEntryYaml,
  TlsProxy,
  yamlDocuments,
  type GatewayServer,
} from './harness.js';

const servers: GatewayServer[] = [
  { port: 80, name: 'http', protocol: 'HTTP', hosts: ['*.example.com'], tls: '{httpsRedirect: true}' },
  { port: 443, name: 'https-wild', protocol: 'HTTPS', hosts: ['*.example.com'], tls: '{mode: SIMPLE, credentialName: wild-cert}' },
  { port: 443, name: 'https-exact', protocol: 'HTTPS', hosts: ['exact.example.com'], tls: '{mode: SIMPLE, credentialName: exact-cert}' },
  { port: 443, name: 'https-share-a', protocol: 'HTTPS', hosts: ['a.share.test'], tls: '{mode: SIMPLE, credentialName: share-cert}' },
  { port: 443, name: 'https-share-b', protocol: 'HTTPS', hosts: ['b.share.test'], tls: '{mode: SIMPLE, credentialName: share-cert}' },
  { port: 443, name: 'https-mutual', protocol: 'HTTPS', hosts: ['mtls.example.org'], tls: '{mode: MUTUAL, credentialName: org-cert}' },
  { port: 443, name: 'https-optional', protocol: 'HTTPS', hosts: ['optional.example.org'], tls: '{mode: OPTIONAL_MUTUAL, credentialName: org-cert}' },
  { port: 443, name: 'https-dual', protocol: 'HTTPS', hosts: ['dual.example.net'], tls: '{mode: SIMPLE, credentialNames: [dual-rsa, dual-ecdsa]}' },
  { port: 443, name: 'https-cipher', protocol: 'HTTPS', hosts: ['cipher.example.net'], tls: '{mode: SIMPLE, credentialName: net-cert, maxProtocolVersion: TLSV1_2, cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384]}' },
  { port: 443, name: 'https-cacert', protocol: 'HTTPS', hosts: ['cacert.example.org'], tls: '{mode: MUTUAL, credentialName: plain-org}' },
  { port: 443, name: 'https-cacm', protocol: 'HTTPS', hosts: ['cacm.example.org'], tls: '{mode: MUTUAL, credentialName: plain-org2, caCertCredentialName: client-ca}' },
  { port: 443, name: 'https-san', protocol: 'HTTPS', hosts: ['san.example.org'], tls: '{mode: MUTUAL, credentialName: plain-org2, caCertCredentialName: client-ca, subjectAltNames: ["spiffe://example.org/good"]}' },
  {
    port: 443,
    name: 'https-pinned',
    protocol: 'HTTPS',
    hosts: ['pinned.example.org'],
    tls: '{mode: MUTUAL, credentialName: plain-org2, caCertCredentialName: client-ca, subjectAltNames: ["spiffe://example.org/good"], verifyCertificateSpki: [SPKI_PIN]}',
  },
  { port: 443, name: 'https-late', protocol: 'HTTPS', hosts: ['late.example.net'], tls: '{mode: SIMPLE, credentialName: late-cert}' },
  { port: 443, name: 'https-bad', protocol: 'HTTPS', hosts: ['bad.example.net'], tls: '{mode: SIMPLE, credentialName: bad-cert}' },
];

function routesYaml(main: EchoBackend, exact: EchoBackend): string {
  return yamlDocuments(
    httpRouteYaml('exact', ['exact.example.com'], 'exact.internal'),
    httpRouteYaml('main', ['*.example.com', '*.share.test', '*.example.org', 'dual.example.net', 'cipher.example.net', 'late.example.net', 'bad.example.net'], 'main.internal'),
    serviceEntryYaml('main.internal', 80, 'HTTP', main.port),
    serviceEntryYaml('exact.internal', 80, 'HTTP', exact.port),
  );
}

describe('proxy TLS: HTTPS servers from YAML (real proxy process)', function () {
  this.timeout(60_000);
  const ca = testCa();
  let env: TlsProxy;
  let main: EchoBackend;
  let exact: EchoBackend;
  let wild: IssuedCert;
  let exactCert: IssuedCert;
  let share: IssuedCert;
  let org: IssuedCert;
  let netRsa: IssuedCert;
  let netEcdsa: IssuedCert;
  let badFirst: IssuedCert;
  let pinnedClient: IssuedCert;
  let port: number;

  before(async () => {
    main = await startEchoBackend('main');
    exact = await startEchoBackend('exact');
    wild = serverCert({ dnsNames: ['*.example.com'] });
    exactCert = serverCert({ dnsNames: ['exact.example.com'] });
    share = serverCert({ dnsNames: ['*.share.test'] });
    org = serverCert({ dnsNames: ['mtls.example.org', 'optional.example.org'] });
    netRsa = serverCert({ dnsNames: ['dual.example.net', 'cipher.example.net', 'late.example.net'] });
    netEcdsa = serverCert({ dnsNames: ['dual.example.net'], keyType: 'ecdsa' });
    badFirst = serverCert({ dnsNames: ['bad.example.net'], commonName: 'bad-first' });
    const plainOrg = serverCert({ dnsNames: ['cacert.example.org', 'cacm.example.org', 'pinned.example.org', 'san.example.org'] });
    pinnedClient = clientCert({ commonName: 'pinned', uris: ['spiffe://example.org/good'] });
    const spki = createHash('sha256').update(createPublicKey(pinnedClient.key).export({ type: 'spki', format: 'der' })).digest('base64');
    env = await TlsProxy.launch([80, 443], (e) => {
      e.write('gateway.yaml', gatewayYaml(servers).replace('SPKI_PIN', JSON.stringify(spki)));
      e.write('routes.yaml', routesYaml(main, exact));
      e.write(
        'secrets.yaml',
        yamlDocuments(
          secretYaml('wild-cert', { cert: wild.chain, key: wild.key }),
          secretYaml('exact-cert', { cert: exactCert.chain, key: exactCert.key }, 'generic'),
          secretYaml('share-cert', { cert: share.chain, key: share.key }),
          // MUTUAL's CA in the same Secret (ca.crt).
          secretYaml('org-cert', { cert: org.chain, key: org.key, ca: ca.cert }),
          secretYaml('dual-rsa', { cert: netRsa.chain, key: netRsa.key }),
          secretYaml('dual-ecdsa', { cert: netEcdsa.chain, key: netEcdsa.key }),
          secretYaml('net-cert', { cert: netRsa.chain, key: netRsa.key }),
          // MUTUAL's CA in "<name>-cacert", and in a ConfigMap named by caCertCredentialName.
          secretYaml('plain-org', { cert: plainOrg.chain, key: plainOrg.key }),
          secretYaml('plain-org-cacert', { ca: ca.cert }, 'generic'),
          secretYaml('plain-org2', { cert: plainOrg.chain, key: plainOrg.key }),
          configMapYaml('client-ca', 'ca.crt', ca.cert),
        ),
      );
      e.write('bad.yaml', secretYaml('bad-cert', { cert: badFirst.chain, key: badFirst.key }));
    });
    port = env.port(443);
  });
  after(async () => {
    await env?.close();
    await main?.close();
    await exact?.close();
  });

  it('SIMPLE with a kubernetes.io/tls Secret: serves its certificate and routes over HTTPS (x-forwarded-proto https)', async () => {
    const r = await httpsGet(port, { servername: 'www.example.com', ca: ca.cert, path: '/hello' });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).name, 'main');
    assert.equal(r.peer?.subjectAltName, 'DNS:*.example.com');
    assert.equal(main.requests.at(-1)?.headers['x-forwarded-proto'], 'https');
    assert.equal(main.requests.at(-1)?.url, '/hello');
  });

  it('chooses the server by SNI: an exact name beats a wildcard; an unknown name fails the handshake', async () => {
    assert.equal(await servedCertificate(port, { servername: 'exact.example.com', ca: ca.cert }), 'DNS:exact.example.com');
    assert.equal(await servedCertificate(port, { servername: 'other.example.com', ca: ca.cert }), 'DNS:*.example.com');
    const r = await httpsGet(port, { servername: 'exact.example.com', ca: ca.cert });
    assert.equal(JSON.parse(r.body).name, 'exact');
    assert.match(await servedCertificate(port, { servername: 'nothing.invalid', rejectUnauthorized: false } as never), /^error:/);
    // The port keeps serving after a refused handshake.
    assert.equal((await httpsGet(port, { servername: 'www.example.com', ca: ca.cert })).status, 200);
  });

  it('HTTP/2 (ALPN h2) and HTTP/1.1 on one port; 421 for a host outside the connection’s server on a reused HTTP/2 connection', async () => {
    const session = await h2Connect(port, { servername: 'a.share.test', ca: ca.cert });
    try {
      assert.equal((session.socket as tls.TLSSocket).alpnProtocol, 'h2');
      const ok = await h2Request(session, 'a.share.test', '/over-h2');
      assert.equal(ok.status, 200);
      assert.equal(JSON.parse(ok.body).headers.host, 'a.share.test');
      // A body of unknown length over HTTP/2 reaches the HTTP/1.1 upstream.
      const posted = await h2Request(session, 'a.share.test', '/post', 'hello over h2');
      assert.equal(posted.status, 200);
      assert.equal(JSON.parse(posted.body).body, 'hello over h2');
      // The certificate covers b.share.test too, so a browser would reuse this connection.
      const misdirected = await h2Request(session, 'b.share.test', '/');
      assert.equal(misdirected.status, 421);
    } finally {
      session.close();
    }
    const fresh = await h2Connect(port, { servername: 'b.share.test', ca: ca.cert });
    try {
      assert.equal((await h2Request(fresh, 'b.share.test', '/')).status, 200);
    } finally {
      fresh.close();
    }
    const h1 = await httpsGet(port, { servername: 'a.share.test', ca: ca.cert });
    assert.equal(h1.status, 200);
    const h1Misdirected = await httpsGet(port, { servername: 'a.share.test', host: 'b.share.test', ca: ca.cert });
    assert.equal(h1Misdirected.status, 421);
  });

  it('httpsRedirect on the HTTP server next to the HTTPS ones: 301 to https', async () => {
    const res = await new Promise<{ status: number; location?: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: env.port(80), path: '/a?b=1', headers: { host: 'www.example.com' }, agent: false }, (r) => {
        r.resume();
        resolve({ status: r.statusCode ?? 0, location: r.headers.location });
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.status, 301);
    assert.equal(res.location, 'https://www.example.com/a?b=1');
  });

  it('MUTUAL with ca.crt in the Secret: no client certificate and one from another CA are refused; a valid one is served', async () => {
    const good = clientCert({ commonName: 'client-ok' });
    const stranger = clientCert({ commonName: 'stranger', ca: newCa('Other CA') });
    const none = await httpsOutcome(port, { servername: 'mtls.example.org', ca: ca.cert });
    assert.ok('error' in none, `expected a refusal, got ${JSON.stringify(none)}`);
    const other = await httpsOutcome(port, { servername: 'mtls.example.org', ca: ca.cert, cert: stranger.chain, key: stranger.key });
    assert.ok('error' in other, `expected a refusal, got ${JSON.stringify(other)}`);
    const ok = await httpsGet(port, { servername: 'mtls.example.org', ca: ca.cert, cert: good.chain, key: good.key });
    assert.equal(ok.status, 200);
  });

  it('OPTIONAL_MUTUAL: no certificate is served, a valid one is served, one from another CA is refused', async () => {
    const good = clientCert({ commonName: 'client-ok' });
    const stranger = clientCert({ commonName: 'stranger', ca: newCa('Other CA 2') });
    assert.equal((await httpsGet(port, { servername: 'optional.example.org', ca: ca.cert })).status, 200);
    assert.equal((await httpsGet(port, { servername: 'optional.example.org', ca: ca.cert, cert: good.chain, key: good.key })).status, 200);
    const other = await httpsOutcome(port, { servername: 'optional.example.org', ca: ca.cert, cert: stranger.chain, key: stranger.key });
    assert.ok('error' in other, `expected a refusal, got ${JSON.stringify(other)}`);
  });

  it('MUTUAL with the CA in a "<name>-cacert" Secret, and in a caCertCredentialName ConfigMap', async () => {
    const good = clientCert({ commonName: 'client-ok' });
    for (const servername of ['cacert.example.org', 'cacm.example.org']) {
      const none = await httpsOutcome(port, { servername, ca: ca.cert });
      assert.ok('error' in none, `${servername}: expected a refusal, got ${JSON.stringify(none)}`);
      const ok = await httpsGet(port, { servername, ca: ca.cert, cert: good.chain, key: good.key });
      assert.equal(ok.status, 200, servername);
    }
  });

  it('MUTUAL with subjectAltNames and verifyCertificateSpki: only the pinned client with the expected SAN is served', async () => {
    const plain = clientCert({ commonName: 'plain', uris: ['spiffe://example.org/good'] });
    const wrongSan = clientCert({ commonName: 'wrong-san', uris: ['spiffe://example.org/bad'] });
    const ok = await httpsGet(port, { servername: 'pinned.example.org', ca: ca.cert, cert: pinnedClient.chain, key: pinnedClient.key });
    assert.equal(ok.status, 200);
    // Same CA and SAN, another key: the SPKI pin refuses it.
    const unpinned = await httpsOutcome(port, { servername: 'pinned.example.org', ca: ca.cert, cert: plain.chain, key: plain.key });
    assert.ok('error' in unpinned, `expected a refusal, got ${JSON.stringify(unpinned)}`);
    // subjectAltNames alone: the expected SAN is served, another is refused.
    assert.equal((await httpsGet(port, { servername: 'san.example.org', ca: ca.cert, cert: plain.chain, key: plain.key })).status, 200);
    const san = await httpsOutcome(port, { servername: 'san.example.org', ca: ca.cert, cert: wrongSan.chain, key: wrongSan.key });
    assert.ok('error' in san, `expected a refusal, got ${JSON.stringify(san)}`);
  });

  it('WebSocket upgrade over HTTPS (HTTP/1.1)', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'www.example.com', ca: ca.cert, ALPNProtocols: ['http/1.1'] });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    socket.write('GET /ws HTTP/1.1\r\nHost: www.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    let text = '';
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n\r\n')) resolve();
      });
      socket.once('error', reject);
    });
    assert.match(text, /^HTTP\/1\.1 101/);
    const echoed = new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    socket.write('tunnelled bytes');
    assert.equal(await echoed, 'tunnelled bytes');
    socket.destroy();
  });

  it('credentialNames RSA + ECDSA: both certificates are offered, the client’s signature algorithms pick one', async () => {
    const ec = await handshake(port, { servername: 'dual.example.net', ca: ca.cert, sigalgs: 'ecdsa_secp256r1_sha256' });
    assert.ok(ec.ok, `ECDSA handshake failed: ${!ec.ok && ec.error}`);
    assert.equal(ec.peer.publicKey.asymmetricKeyType, 'ec');
    ec.socket.destroy();
    const rsa = await handshake(port, { servername: 'dual.example.net', ca: ca.cert, sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' });
    assert.ok(rsa.ok, `RSA handshake failed: ${!rsa.ok && rsa.error}`);
    assert.equal(rsa.peer.publicKey.asymmetricKeyType, 'rsa');
    rsa.socket.destroy();
  });

  it('cipherSuites and maxProtocolVersion are enforced; TLS 1.2 minimum by default', async () => {
    const refused = await handshake(port, { servername: 'cipher.example.net', ca: ca.cert, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
    assert.equal(refused.ok, false);
    const ok = await handshake(port, { servername: 'cipher.example.net', ca: ca.cert, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256' });
    assert.ok(ok.ok, `handshake failed: ${!ok.ok && ok.error}`);
    assert.equal(ok.protocol, 'TLSv1.2');
    assert.equal(ok.socket.getCipher().name, 'ECDHE-RSA-AES256-GCM-SHA384');
    ok.socket.destroy();
    const old = await handshake(port, { servername: 'www.example.com', ca: ca.cert, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    assert.equal(old.ok, false);
  });

  it('resumes TLS sessions (tickets)', async () => {
    const first = await newSession(port, { servername: 'www.example.com', ca: ca.cert });
    const again = await handshake(port, { servername: 'www.example.com', ca: ca.cert, session: first });
    assert.ok(again.ok);
    assert.equal(again.socket.isSessionReused(), true);
    again.socket.destroy();
  });

  it('a server whose Secret does not exist fails its handshakes while the others serve; the Secret appearing activates it', async () => {
    assert.match(await servedCertificate(port, { servername: 'late.example.net', ca: ca.cert }), /^error:/);
    assert.equal((await httpsGet(port, { servername: 'www.example.com', ca: ca.cert })).status, 200);
    await env.proxy.waitForLog(/TLS credential Secret istio-system\/late-cert does not exist/);
    env.write('late.yaml', secretYaml('late-cert', { cert: netRsa.chain, key: netRsa.key }));
    await eventually('late server served', async () => (await servedCertificate(port, { servername: 'late.example.net', ca: ca.cert })).includes('late.example.net'));
    assert.equal((await httpsGet(port, { servername: 'late.example.net', ca: ca.cert })).status, 200);
  });

  it('a bad Secret is logged with its namespace/name and reason, and the last good certificate keeps serving', async () => {
    const before = await handshake(port, { servername: 'bad.example.net', ca: ca.cert });
    assert.ok(before.ok);
    const fingerprint = before.peer.fingerprint256;
    before.socket.destroy();
    const other = serverCert({ dnsNames: ['bad.example.net'], commonName: 'other-key' });
    // A certificate with somebody else's key.
    env.write('bad.yaml', secretYaml('bad-cert', { cert: badFirst.chain, key: other.key }));
    const line = await env.proxy.waitForLog(/TLS credential Secret istio-system\/bad-cert rejected/);
    assert.match(line, /private key does not match/);
    assert.match(line, /last good certificate keeps serving/);
    const after = await handshake(port, { servername: 'bad.example.net', ca: ca.cert });
    assert.ok(after.ok);
    assert.equal(after.peer.fingerprint256, fingerprint);
    after.socket.destroy();
    // Fixed: the new certificate is served.
    env.write('bad.yaml', secretYaml('bad-cert', { cert: other.chain, key: other.key }));
    await eventually('fixed Secret served', async () => (await servedSubject(port, { servername: 'bad.example.net', ca: ca.cert })).includes('other-key'));
  });
});
