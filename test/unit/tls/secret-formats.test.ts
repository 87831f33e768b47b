// Certificate material from Secrets and ConfigMaps in every layout Istio reads.

import assert from 'node:assert/strict';
import {
  caFromConfigMap,
  caFromSecret,
  caSecretName,
  certificateFromSecret,
  materialFromSecrets,
  type SecretLike,
} from '../../../dataplane/tls/secret-formats.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const CERT = '-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n';
const CA = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';
const CA2 = '-----BEGIN CERTIFICATE-----\nca2\n-----END CERTIFICATE-----\n';
const CRL = '-----BEGIN X509 CRL-----\ncrl\n-----END X509 CRL-----\n';

function secret(data: Record<string, string>, extra: Partial<SecretLike> = {}): SecretLike {
  return {
    metadata: { namespace: 'istio-system', name: 'gw-cert' },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
    ...extra,
  };
}

describe('tls: Secret formats', () => {
  it('reads the generic layout: cert, key, cacert, crl', () => {
    const r = certificateFromSecret(secret({ cert: CERT, key: KEY, cacert: CA, crl: CRL }));
    assert.deepEqual(r, { ok: true, material: { certChain: CERT, privateKey: KEY, caCertificates: CA, crl: CRL } });
  });

  it('reads kubernetes.io/tls: tls.crt, tls.key, ca.crt, ca.crl', () => {
    const r = certificateFromSecret(secret({ 'tls.crt': CERT, 'tls.key': KEY, 'ca.crt': CA, 'ca.crl': CRL }, { type: 'kubernetes.io/tls' }));
    assert.deepEqual(r, { ok: true, material: { certChain: CERT, privateKey: KEY, caCertificates: CA, crl: CRL } });
  });

  it('checks the generic keys first when both layouts are present', () => {
    const r = certificateFromSecret(secret({ cert: CERT, key: KEY, 'tls.crt': 'other', 'tls.key': 'other' }));
    assert.ok(r.ok);
    assert.equal(r.material.certChain, CERT);
    assert.equal(r.material.privateKey, KEY);
  });

  it('takes stringData over data', () => {
    const r = certificateFromSecret(secret({ cert: 'old', key: 'old' }, { stringData: { cert: CERT, key: KEY } }));
    assert.ok(r.ok);
    assert.equal(r.material.certChain, CERT);
  });

  it('explains a Secret without usable keys, naming it and the keys found', () => {
    const r = certificateFromSecret(secret({ 'username': 'x', 'password': 'y' }));
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.error : '', /^Secret istio-system\/gw-cert: .*tls\.crt.*found: password, username$/);
    const empty = certificateFromSecret(secret({ cert: '', key: '' }));
    assert.match(!empty.ok ? empty.error : '', /found keys "cert" and "key", but they were empty/);
  });

  it('rejects data that is not base64 instead of decoding garbage', () => {
    const r = certificateFromSecret({ metadata: { name: 's' }, data: { cert: '!!not base64!!', key: b64(KEY) } });
    assert.match(!r.ok ? r.error : '', /data\["cert"\] is not valid base64/);
    const wrongType = certificateFromSecret({ metadata: { name: 's' }, data: { cert: 42 } });
    assert.match(!wrongType.ok ? wrongType.error : '', /not a base64 string/);
  });

  it('reads a CA-only "<name>-cacert" Secret in either layout', () => {
    assert.equal(caSecretName('gw-cert'), 'gw-cert-cacert');
    assert.deepEqual(caFromSecret(secret({ cacert: CA, crl: CRL })), { ok: true, material: { caCertificates: CA, crl: CRL } });
    assert.deepEqual(caFromSecret(secret({ 'ca.crt': CA, 'ca.crl': CRL })), { ok: true, material: { caCertificates: CA, crl: CRL } });
    const none = caFromSecret(secret({ cert: CERT }));
    assert.match(!none.ok ? none.error : '', /has neither "cacert" nor "ca.crt"; found: cert/);
  });

  it('prefers the "-cacert" Secret for the CA of a credential, as Istio does', () => {
    const r = materialFromSecrets(secret({ 'tls.crt': CERT, 'tls.key': KEY, 'ca.crt': CA }), secret({ cacert: CA2, crl: CRL }));
    assert.deepEqual(r, { ok: true, material: { certChain: CERT, privateKey: KEY, caCertificates: CA2, crl: CRL } });
    const own = materialFromSecrets(secret({ 'tls.crt': CERT, 'tls.key': KEY, 'ca.crt': CA }));
    assert.ok(own.ok && own.material.caCertificates === CA);
  });

  it('reads a ConfigMap CA from ca.crt or cacert, in data or binaryData', () => {
    assert.deepEqual(caFromConfigMap({ data: { 'ca.crt': CA } }), { ok: true, material: { caCertificates: CA } });
    assert.deepEqual(caFromConfigMap({ data: { cacert: CA } }), { ok: true, material: { caCertificates: CA } });
    assert.deepEqual(caFromConfigMap({ binaryData: { 'ca.crt': b64(CA) } }), { ok: true, material: { caCertificates: CA } });
    const none = caFromConfigMap({ metadata: { namespace: 'ns', name: 'cm' }, data: { other: 'x' } });
    assert.deepEqual(none, { ok: false, error: 'ConfigMap ns/cm: has neither "ca.crt" nor "cacert"; found: other' });
  });
});
