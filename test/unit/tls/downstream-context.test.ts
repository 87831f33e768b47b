// What goes into a downstream secure context, and the verification settings per mode.

import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { DownstreamTls } from '../../../dataplane/snapshot/types.js';
import { CredentialStore, type StoredCredential } from '../../../dataplane/tls/credential-store.js';
import { clientCertVerification, downstreamSecureContextOptions, listenerClientCertVerification } from '../../../dataplane/tls/downstream-context.js';
import { crlFor, newCa, serverCert, testCa } from '../../support/certs.js';

const SESSION = { sessionIdContext: 'chain-a' };

function policy(overrides: Partial<DownstreamTls> = {}): DownstreamTls {
  return { mode: 'SIMPLE', credentials: [], subjectAltNames: [], verifyCertificateSpki: [], verifyCertificateHash: [], minProtocolVersion: 'TLSv1.2', ...overrides };
}

describe('tls: downstream context options', () => {
  const store = new CredentialStore({ registry: new Registry() });
  const ca = testCa();
  const otherCa = newCa('Override CA');
  const rsa = serverCert({ dnsNames: ['a.example.com'] });
  const ec = serverCert({ dnsNames: ['a.example.com'], keyType: 'ecdsa' });
  const put = (key: string, material: Parameters<CredentialStore['update']>[1]): StoredCredential => {
    const r = store.update(key, material);
    if (!r.accepted) assert.fail(r.rejection.reason);
    return r.credential;
  };
  const rsaCred = put('secret:gw/rsa', { certChain: rsa.chain, privateKey: rsa.key, caCertificates: ca.cert, crl: crlFor(ca, []) });
  const ecCred = put('secret:gw/ec', { certChain: ec.chain, privateKey: ec.key });
  const overrideCa = put('ca:gw/override', { caCertificates: otherCa.cert });

  it('SIMPLE: both certificates in policy order, versions, no CA, cipher preference', () => {
    const options = downstreamSecureContextOptions(policy({ ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', maxProtocolVersion: 'TLSv1.2' }), [rsaCred, ecCred], undefined, SESSION);
    assert.ok(!(options instanceof Error));
    assert.deepEqual(options.cert, [rsa.chain, ec.chain]);
    assert.deepEqual(options.key, [rsa.key, ec.key]);
    assert.equal(options.minVersion, 'TLSv1.2');
    assert.equal(options.maxVersion, 'TLSv1.2');
    assert.equal(options.ciphers, 'ECDHE-RSA-AES128-GCM-SHA256');
    assert.equal(options.honorCipherOrder, true);
    assert.equal(options.ca, undefined, 'SIMPLE does not load client CAs');
    assert.equal(options.sessionIdContext, 'chain-a');
  });

  it('MUTUAL: the CA and CRL of the credentials, unless caCredential overrides them', () => {
    const own = downstreamSecureContextOptions(policy({ mode: 'MUTUAL' }), [rsaCred], undefined, SESSION);
    assert.ok(!(own instanceof Error));
    assert.deepEqual(own.ca, [ca.cert]);
    assert.equal((own.crl as string[]).length, 1);
    const overridden = downstreamSecureContextOptions(policy({ mode: 'MUTUAL' }), [rsaCred], overrideCa, SESSION);
    assert.ok(!(overridden instanceof Error));
    assert.deepEqual(overridden.ca, [otherCa.cert]);
    assert.equal(overridden.crl, undefined);
  });

  it('explains what it cannot build', () => {
    assert.match(String(downstreamSecureContextOptions(policy({ mode: 'MUTUAL' }), [ecCred], undefined, SESSION)), /MUTUAL needs CA certificates/);
    assert.match(String(downstreamSecureContextOptions(policy({ mode: 'PASSTHROUGH' }), [rsaCred], undefined, SESSION)), /not terminated/);
    assert.match(String(downstreamSecureContextOptions(policy(), [], undefined, SESSION)), /no server certificate/);
    assert.match(String(downstreamSecureContextOptions(policy(), [overrideCa], undefined, SESSION)), /has no certificate and private key/);
  });

  it('verification settings per mode and for a shared listener', () => {
    assert.deepEqual(clientCertVerification('MUTUAL'), { requestCert: true, rejectUnauthorized: true });
    assert.deepEqual(clientCertVerification('OPTIONAL_MUTUAL'), { requestCert: true, rejectUnauthorized: false });
    assert.deepEqual(clientCertVerification('SIMPLE'), { requestCert: false, rejectUnauthorized: false });
    assert.deepEqual(listenerClientCertVerification(['MUTUAL', 'MUTUAL']), { requestCert: true, rejectUnauthorized: true });
    assert.deepEqual(listenerClientCertVerification(['MUTUAL', 'SIMPLE']), { requestCert: true, rejectUnauthorized: false });
    assert.deepEqual(listenerClientCertVerification(['SIMPLE']), { requestCert: false, rejectUnauthorized: false });
    assert.deepEqual(listenerClientCertVerification([]), { requestCert: false, rejectUnauthorized: false });
  });
});
