// Validation of certificate material before it is served.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { inspectMaterial, parseCertificates } from '../../../dataplane/tls/certificate-material.js';
import { clientCert, crlFor, mismatchedPair, serverCert, testCa } from '../../support/certs.js';

describe('tls: certificate material validation', () => {
  it('accepts an RSA pair and reports key type, expiry and SANs', () => {
    const leaf = serverCert({ dnsNames: ['rsa.example.com'] });
    const check = inspectMaterial({ certChain: leaf.chain, privateKey: leaf.key });
    assert.ok(check.ok, check.ok ? '' : check.error);
    assert.equal(check.info.keyType, 'RSA');
    assert.equal(check.info.expired, false);
    assert.match(check.info.subjectAltName ?? '', /DNS:rsa\.example\.com/);
    assert.ok(check.info.notAfter && check.info.notAfter.getTime() > Date.now());
  });

  it('accepts an ECDSA pair as EC', () => {
    const leaf = serverCert({ dnsNames: ['ec.example.com'], keyType: 'ecdsa' });
    const check = inspectMaterial({ certChain: leaf.chain, privateKey: leaf.key });
    assert.ok(check.ok && check.info.keyType === 'EC');
  });

  it('rejects a key that belongs to another certificate', () => {
    const { cert, key } = mismatchedPair();
    const check = inspectMaterial({ certChain: cert, privateKey: key });
    assert.equal(check.ok, false);
    assert.match(!check.ok ? check.error : '', /does not match the certificate/);
  });

  it('rejects broken PEM, a lone key or certificate, an encrypted key, and empty material', () => {
    const leaf = serverCert({ dnsNames: ['x.example.com'] });
    const encrypted = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'secret' },
    }).privateKey;
    const cases: Array<[string, Parameters<typeof inspectMaterial>[0], RegExp]> = [
      ['garbage cert', { certChain: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', privateKey: leaf.key }, /certificate 1 does not parse/],
      ['no PEM block', { certChain: 'hello', privateKey: leaf.key }, /no PEM CERTIFICATE block/],
      ['garbage key', { certChain: leaf.cert, privateKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }, /private key does not parse/],
      ['key only', { privateKey: leaf.key }, /without a certificate chain/],
      ['cert only', { certChain: leaf.cert }, /without a private key/],
      ['encrypted key', { certChain: leaf.cert, privateKey: encrypted }, /encrypted/],
      ['empty', {}, /no certificate/],
      ['bad CA', { caCertificates: 'not pem' }, /CA certificates: no PEM/],
      ['bad CRL', { caCertificates: testCa().cert, crl: '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n' }, /CRL does not parse/],
    ];
    for (const [name, material, reason] of cases) {
      const check = inspectMaterial(material);
      assert.equal(check.ok, false, name);
      assert.match(!check.ok ? check.error : '', reason, name);
    }
  });

  it('flags expired material without rejecting it', () => {
    const leaf = serverCert({ dnsNames: ['old.example.com'], expired: true });
    const check = inspectMaterial({ certChain: leaf.cert, privateKey: leaf.key });
    assert.ok(check.ok && check.info.expired);
  });

  it('accepts CA-only material with a CRL and counts the CAs', () => {
    const ca = testCa();
    const revoked = clientCert({ commonName: 'revoked' });
    const check = inspectMaterial({ caCertificates: ca.cert + ca.cert, crl: crlFor(ca, [revoked]) });
    assert.ok(check.ok, check.ok ? '' : check.error);
    assert.equal(check.info.caCount, 2);
    assert.equal(check.info.hasCrl, true);
    assert.equal(check.info.keyType, undefined);
  });

  it('parses every certificate of a chain in order', () => {
    const leaf = serverCert({ dnsNames: ['chain.example.com'] });
    const parsed = parseCertificates(leaf.cert + testCa().cert, 'chain');
    assert.ok(Array.isArray(parsed));
    assert.equal(parsed.length, 2);
    assert.match(parsed[0]!.subject, /chain\.example\.com/);
    assert.match(parsed[1]!.subject, /Portway Test Root CA/);
  });
});
