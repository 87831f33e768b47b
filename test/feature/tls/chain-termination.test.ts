// ClientHello first, then the chosen chain's own handshake server: dual RSA+ECDSA
// certificates, MUTUAL / OPTIONAL_MUTUAL, client-certificate checks, CRLs, per-chain TLS
// versions, ciphers and ALPN, session resumption across a rotation.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { certificateSha256, spkiSha256 } from '../../../dataplane/tls/client-cert-checks.js';
import type { CredentialStore } from '../../../dataplane/tls/credential-store.js';
import { clientCert, crlFor, intermediateCa, newCa, serverCert, testCa, type IssuedCert } from '../../support/certs.js';
import { chain, newStore, putCert } from './fixtures.js';
import { connect, echo, sessionOf, startChainListener, type Listener, type Outcome } from './tls-harness.js';

const SPIFFE = 'spiffe://cluster.local/ns/shop/sa/frontend';

function served(outcome: Outcome): Extract<Outcome, { ok: true }> {
  if (!outcome.ok) assert.fail(`expected the connection to be served, got: ${outcome.error}`);
  return outcome;
}

describe('tls feature: per-chain termination after reading the ClientHello', () => {
  const ca = testCa();
  const otherCa = newCa('Some Other CA');
  let store: CredentialStore;
  let listener: Listener;
  let rsa: IssuedCert;
  let ecdsa: IssuedCert;
  let frontend: IssuedCert;
  let revoked: IssuedCert;
  let stranger: IssuedCert;
  const opened: Array<{ destroy(): void }> = [];

  const hello = async (servername: string | undefined, options: Parameters<typeof connect>[1] = {}) => {
    const outcome = await connect(listener.port, { ...(servername ? { servername } : {}), ca: ca.cert, ...options });
    if (outcome.ok) opened.push(outcome.socket);
    return outcome;
  };
  const withCert = (leaf: IssuedCert) => ({ cert: leaf.chain, key: leaf.key });

  before(() => {
    rsa = serverCert({ dnsNames: ['dual.example.com', 'mtls.example.com', 'optional.example.com', 'pinned.example.com', 'crl.example.com', 'crl-optional.example.com', 'modern.example.com', 'ciphers.example.com', 'h2.example.com'] });
    ecdsa = serverCert({ dnsNames: ['dual.example.com'], keyType: 'ecdsa' });
    frontend = clientCert({ commonName: 'frontend', uris: [SPIFFE] });
    revoked = clientCert({ commonName: 'revoked', uris: [SPIFFE] });
    stranger = clientCert({ commonName: 'stranger', uris: [SPIFFE], ca: otherCa });
  });

  beforeEach(async () => {
    ({ store } = newStore());
    putCert(store, 'secret:gw/rsa', rsa, { ca: ca.cert });
    putCert(store, 'secret:gw/ecdsa', ecdsa);
    putCert(store, 'secret:gw/rsa-no-ca', rsa);
    store.update('ca:gw/client-ca', { caCertificates: ca.cert, crl: crlFor(ca, [revoked]) });
    listener = await startChainListener([
      chain(store, 'dual', ['dual.example.com'], { credentials: ['secret:gw/rsa', 'secret:gw/ecdsa'] }),
      chain(store, 'mtls', ['mtls.example.com'], { mode: 'MUTUAL', credentials: ['secret:gw/rsa'] }),
      chain(store, 'optional', ['optional.example.com'], { mode: 'OPTIONAL_MUTUAL', credentials: ['secret:gw/rsa'] }),
      chain(store, 'pinned', ['pinned.example.com'], {
        mode: 'MUTUAL',
        credentials: ['secret:gw/rsa'],
        subjectAltNames: [SPIFFE],
        verifyCertificateHash: [new X509Certificate(frontend.cert).fingerprint256],
      }),
      chain(store, 'crl', ['crl.example.com'], { mode: 'MUTUAL', credentials: ['secret:gw/rsa-no-ca'], caCredential: 'ca:gw/client-ca' }),
      chain(store, 'crl-optional', ['crl-optional.example.com'], { mode: 'OPTIONAL_MUTUAL', credentials: ['secret:gw/rsa-no-ca'], caCredential: 'ca:gw/client-ca' }),
      chain(store, 'no-ca', ['no-ca.example.com'], { mode: 'MUTUAL', credentials: ['secret:gw/rsa-no-ca'] }),
      chain(store, 'modern', ['modern.example.com'], { credentials: ['secret:gw/rsa'], minProtocolVersion: 'TLSv1.3' }),
      chain(store, 'ciphers', ['ciphers.example.com'], { credentials: ['secret:gw/rsa'], maxProtocolVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' }),
      chain(store, 'h2', ['h2.example.com'], { credentials: ['secret:gw/rsa'] }, { ALPNProtocols: ['h2', 'http/1.1'] }),
      chain(store, 'catch-all', [], { credentials: ['secret:gw/rsa'] }),
    ]);
  });

  afterEach(async () => {
    for (const s of opened.splice(0)) s.destroy();
    await listener.close();
  });

  describe('RSA + ECDSA in one chain', () => {
    it('serves the ECDSA certificate to a client that only accepts ECDSA signatures', async () => {
      const ec = served(await hello('dual.example.com', { sigalgs: 'ecdsa_secp256r1_sha256' }));
      assert.equal(ec.peer.publicKey.asymmetricKeyType, 'ec');
      assert.equal(ec.peer.fingerprint256, new X509Certificate(ecdsa.cert).fingerprint256);
    });

    it('serves the RSA certificate to a client that only accepts RSA signatures, in TLS 1.3 and 1.2', async () => {
      const pss = served(await hello('dual.example.com', { sigalgs: 'rsa_pss_rsae_sha256' }));
      assert.equal(pss.peer.publicKey.asymmetricKeyType, 'rsa');
      const tls12 = served(await hello('dual.example.com', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }));
      assert.equal(tls12.peer.publicKey.asymmetricKeyType, 'rsa');
    });

    it('refuses two certificates with the same key type: the last good pair keeps serving, a new chain is not served', async () => {
      served(await hello('dual.example.com'));
      putCert(store, 'secret:gw/ecdsa', serverCert({ dnsNames: ['dual.example.com'] })); // now RSA too
      const still = served(await hello('dual.example.com', { sigalgs: 'ecdsa_secp256r1_sha256' }));
      assert.equal(still.peer.fingerprint256, new X509Certificate(ecdsa.cert).fingerprint256);
      const fresh = chain(store, 'dual-fresh', [], { credentials: ['secret:gw/rsa', 'secret:gw/ecdsa'] });
      assert.match(String(fresh.handshakeServer()), /both hold RSA keys; use one RSA and one ECDSA certificate/);
      assert.match(fresh.error ?? '', /both hold RSA keys/);
    });
  });

  describe('MUTUAL', () => {
    it('rejects a client without a certificate', async () => {
      assert.equal((await hello('mtls.example.com')).ok, false);
      assert.ok(listener.failures.some((f) => /PEER_DID_NOT_RETURN_A_CERTIFICATE/.test(f)), listener.failures.join('; '));
    });

    it('rejects a certificate signed by another CA', async () => {
      assert.equal((await hello('mtls.example.com', withCert(stranger))).ok, false);
    });

    it('accepts a certificate from the configured CA', async () => {
      const ok = served(await hello('mtls.example.com', withCert(frontend)));
      assert.equal(ok.chain, 'mtls');
    });

    it('does not serve a MUTUAL chain without CA certificates, and says why', async () => {
      assert.equal((await hello('no-ca.example.com', withCert(frontend))).ok, false);
      assert.ok(listener.failures.some((f) => /no-ca: MUTUAL needs CA certificates/.test(f)), listener.failures.join('; '));
      assert.equal(served(await hello('mtls.example.com', withCert(frontend))).chain, 'mtls');
    });
  });

  describe('OPTIONAL_MUTUAL', () => {
    it('serves a client without a certificate', async () => {
      const ok = served(await hello('optional.example.com'));
      assert.equal(ok.chain, 'optional');
    });

    it('serves a client with a valid certificate', async () => {
      assert.equal(served(await hello('optional.example.com', withCert(frontend))).chain, 'optional');
    });

    it('rejects a certificate that does not verify', async () => {
      assert.equal((await hello('optional.example.com', withCert(stranger))).ok, false);
      assert.ok(listener.failures.some((f) => /client certificate rejected/.test(f)), listener.failures.join('; '));
    });
  });

  describe('client certificate checks', () => {
    it('accepts the pinned certificate with the expected SAN', async () => {
      assert.equal(served(await hello('pinned.example.com', withCert(frontend))).chain, 'pinned');
    });

    it('rejects a certificate from the same CA with the same SAN but another hash', async () => {
      const twin = clientCert({ commonName: 'twin', uris: [SPIFFE] });
      assert.notEqual(certificateSha256(new X509Certificate(twin.cert)), certificateSha256(new X509Certificate(frontend.cert)));
      assert.notEqual(spkiSha256(new X509Certificate(twin.cert)), spkiSha256(new X509Certificate(frontend.cert)));
      assert.equal((await hello('pinned.example.com', withCert(twin))).ok, false);
      assert.ok(listener.failures.some((f) => /matches neither verifyCertificateSpki nor verifyCertificateHash/.test(f)));
    });
  });

  describe('CRL', () => {
    it('MUTUAL rejects a revoked client certificate and accepts an unrevoked one from the same CA (caCertCredentialName)', async () => {
      assert.equal((await hello('crl.example.com', withCert(revoked))).ok, false);
      assert.equal(served(await hello('crl.example.com', withCert(frontend))).chain, 'crl');
    });

    it('OPTIONAL_MUTUAL reports the revocation as the reason', async () => {
      assert.equal((await hello('crl-optional.example.com', withCert(revoked))).ok, false);
      assert.ok(listener.failures.includes('client certificate rejected: CERT_REVOKED'), listener.failures.join('; '));
      assert.equal(served(await hello('crl-optional.example.com')).chain, 'crl-optional');
    });
  });

  describe('versions, ciphers, ALPN', () => {
    it('refuses TLS 1.1 by default', async () => {
      const old = await hello('dual.example.com', { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
      assert.equal(old.ok, false);
      assert.ok(listener.failures.includes('ERR_SSL_UNSUPPORTED_PROTOCOL'), listener.failures.join('; '));
    });

    it('applies a chain minProtocolVersion of TLS 1.3 to that chain only', async () => {
      assert.equal((await hello('modern.example.com', { maxVersion: 'TLSv1.2' })).ok, false);
      assert.equal(served(await hello('modern.example.com')).protocol, 'TLSv1.3');
      assert.equal(served(await hello('dual.example.com', { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    });

    it('applies a chain cipher list and maxProtocolVersion', async () => {
      assert.equal((await hello('ciphers.example.com', { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).ok, false);
      const ok = served(await hello('ciphers.example.com'));
      assert.equal(ok.protocol, 'TLSv1.2');
      assert.equal(ok.socket.getCipher().name, 'ECDHE-RSA-AES256-GCM-SHA384');
    });

    it('negotiates ALPN with the chain settings', async () => {
      assert.equal(served(await hello('h2.example.com', { ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'h2');
      assert.equal(served(await hello('h2.example.com', { ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1');
    });
  });

  describe('selection and lifecycle', () => {
    it('serves a certificate from an intermediate CA with its chain, trusted through the root', async () => {
      const intermediate = intermediateCa(ca, 'Portway Test Intermediate CA');
      const leaf = serverCert({ dnsNames: ['inter.example.com'], ca: intermediate });
      putCert(store, 'secret:gw/inter', leaf);
      const inter = chain(store, 'inter', ['inter.example.com'], { credentials: ['secret:gw/inter'] });
      const local = await startChainListener([inter]);
      try {
        const ok = served(await connect(local.port, { servername: 'inter.example.com', ca: ca.cert }));
        ok.socket.destroy();
        assert.equal(ok.socket.authorized, true);
        assert.match(ok.peer.issuer, /Portway Test Intermediate CA/);
      } finally {
        await local.close();
      }
    });

    it('sends a client without SNI to the catch-all chain', async () => {
      const ok = served(await hello(undefined, { checkServerIdentity: () => undefined }));
      assert.equal(ok.chain, 'catch-all');
    });

    it('rotation: new handshakes get the new certificate, open connections keep working, tickets still resume', async () => {
      const first = served(await hello('mtls.example.com', withCert(frontend)));
      const session = await sessionOf(first);
      const rotated = serverCert({ dnsNames: ['mtls.example.com'] });
      putCert(store, 'secret:gw/rsa', rotated, { ca: ca.cert });

      const fresh = served(await hello('mtls.example.com', withCert(frontend)));
      assert.equal(fresh.peer.fingerprint256, new X509Certificate(rotated.cert).fingerprint256);
      assert.equal(await echo(first.socket, 'ping'), 'ping');

      const resumed = served(await hello('mtls.example.com', { ...withCert(frontend), session }));
      assert.equal(resumed.socket.isSessionReused(), true);
    });

    it('closes connections that are not TLS, with a reason', async () => {
      const reply = await new Promise<string>((resolve) => {
        const socket = net.connect(listener.port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
        socket.on('close', () => resolve('closed'));
        socket.on('error', () => {});
      });
      assert.equal(reply, 'closed');
      assert.ok(listener.failures.some((f) => /plain HTTP on a TLS port/.test(f)));
    });
  });

  it('the handshake servers never listen on a port of their own', () => {
    const probe = chain(store, 'probe', [], { credentials: ['secret:gw/rsa'] }).handshakeServer();
    assert.ok(!(probe instanceof Error));
    assert.equal(probe.listening, false);
    assert.equal(probe.address() as AddressInfo | null, null);
  });
});
