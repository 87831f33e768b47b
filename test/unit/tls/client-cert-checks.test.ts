// subjectAltNames / verifyCertificateSpki / verifyCertificateHash on generated certificates,
// and SAN parsing and matching.

import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { certificateSha256, compileClientCertChecks, spkiSha256, type PeerCertificateCheck } from '../../../dataplane/tls/client-cert-checks.js';
import { compileSanMatcher, parseSubjectAltNames } from '../../../dataplane/tls/subject-alt-names.js';
import { clientCert } from '../../support/certs.js';

const SPIFFE = 'spiffe://cluster.local/ns/shop/sa/frontend';

function compiled(policy: Partial<Parameters<typeof compileClientCertChecks>[0]>): PeerCertificateCheck {
  const check = compileClientCertChecks({ subjectAltNames: [], verifyCertificateSpki: [], verifyCertificateHash: [], ...policy });
  if (check instanceof Error) assert.fail(check.message);
  return check;
}

describe('tls: client certificate checks', () => {
  const frontend = new X509Certificate(clientCert({ commonName: 'frontend', uris: [SPIFFE], dnsNames: ['frontend.shop.svc'] }).cert);
  const other = new X509Certificate(clientCert({ commonName: 'other', uris: ['spiffe://cluster.local/ns/shop/sa/other'] }).cert);

  it('passes everything when no check is configured', () => {
    assert.equal(compiled({})(other), null);
  });

  it('subjectAltNames: matches URI and DNS SANs exactly', () => {
    assert.equal(compiled({ subjectAltNames: [SPIFFE] })(frontend), null);
    assert.equal(compiled({ subjectAltNames: ['FRONTEND.shop.svc'] })(frontend), null, 'DNS names ignore case');
    assert.match(compiled({ subjectAltNames: [SPIFFE] })(other) ?? '', /match none of subjectAltNames/);
    assert.match(compiled({ subjectAltNames: [`${SPIFFE}/x`] })(frontend) ?? '', /match none/, 'no prefix matching');
  });

  it('verifyCertificateSpki: base64 SHA-256 of the SubjectPublicKeyInfo', () => {
    const pin = createHash('sha256').update(frontend.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
    assert.equal(spkiSha256(frontend), pin);
    assert.equal(compiled({ verifyCertificateSpki: [pin] })(frontend), null);
    assert.match(compiled({ verifyCertificateSpki: [pin] })(other) ?? '', /matches neither/);
  });

  it('verifyCertificateHash: hex SHA-256 of the certificate, colons optional, any case', () => {
    const hex = createHash('sha256').update(frontend.raw).digest('hex');
    assert.equal(certificateSha256(frontend), hex);
    const colons = hex.toUpperCase().match(/../g)!.join(':');
    assert.equal(colons, frontend.fingerprint256);
    assert.equal(compiled({ verifyCertificateHash: [colons] })(frontend), null);
    assert.equal(compiled({ verifyCertificateHash: [hex] })(frontend), null);
    assert.match(compiled({ verifyCertificateHash: [hex] })(other) ?? '', /matches neither/);
  });

  it('a certificate passes the pins by matching either list, and must also pass the SANs', () => {
    const check = compiled({ subjectAltNames: [SPIFFE], verifyCertificateSpki: [spkiSha256(other)], verifyCertificateHash: [certificateSha256(frontend)] });
    assert.equal(check(frontend), null);
    assert.match(check(other) ?? '', /subjectAltNames/, 'the SPKI pin does not excuse the SAN mismatch');
  });

  it('refuses malformed pins, naming them', () => {
    const bad = (policy: Partial<Parameters<typeof compileClientCertChecks>[0]>) =>
      String(compileClientCertChecks({ subjectAltNames: [], verifyCertificateSpki: [], verifyCertificateHash: [], ...policy }));
    assert.match(bad({ verifyCertificateSpki: ['abc'] }), /verifyCertificateSpki entry "abc"/);
    assert.match(bad({ verifyCertificateHash: ['zz'] }), /verifyCertificateHash entry "zz"/);
  });

  describe('SAN text', () => {
    it('parses Node quoting so a crafted value cannot add names', () => {
      assert.deepEqual(parseSubjectAltNames('DNS:a.example.com, URI:"spiffe://x, DNS:evil.com", IP Address:10.0.0.1'), [
        { type: 'DNS', value: 'a.example.com' },
        { type: 'URI', value: 'spiffe://x, DNS:evil.com' },
        { type: 'IP', value: '10.0.0.1' },
      ]);
      assert.deepEqual(parseSubjectAltNames(undefined), []);
    });

    it('lets a wildcard DNS SAN cover exactly one label, and compares IPv6 canonically', () => {
      const match = compileSanMatcher(['api.example.com', 'a.b.example.org', '::1']);
      assert.equal(match([{ type: 'DNS', value: '*.example.com' }]), true);
      assert.equal(match([{ type: 'DNS', value: '*.example.org' }]), false);
      assert.equal(match([{ type: 'IP', value: '0:0:0:0:0:0:0:1' }]), true);
      assert.equal(match([{ type: 'URI', value: 'API.example.com' }]), false, 'a URI SAN is compared as written, case included');
    });
  });
});
