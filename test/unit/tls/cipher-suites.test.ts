// Istio/Envoy cipher names → OpenSSL, checked against Node's OpenSSL and in real handshakes.

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { mapCipherSuites } from '../../../dataplane/tls/cipher-suites.js';
import { serverCert, testCa } from '../../support/certs.js';

describe('tls: cipher suites', () => {
  it('maps Envoy names, IANA names and equal-preference groups in order, without duplicates', () => {
    assert.equal(
      mapCipherSuites([
        '[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]',
        'ECDHE-RSA-AES256-GCM-SHA384',
        'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
        'AES128-SHA',
        'ECDHE-RSA-AES256-GCM-SHA384',
      ]),
      'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA',
    );
  });

  it('accepts one colon-joined string, keeping brackets together', () => {
    assert.equal(mapCipherSuites('[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]:AES256-SHA'), 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:AES256-SHA');
  });

  it('names the entry it cannot map', () => {
    assert.match(String(mapCipherSuites(['ECDHE-RSA-AES128-GCM-SHA256', 'RC4-MD5'])), /entry "RC4-MD5": unknown cipher suite/);
    assert.match(String(mapCipherSuites(['[AES128-SHA|BOGUS]'])), /entry "\[AES128-SHA\|BOGUS\]": unknown cipher suite "BOGUS"/);
    assert.match(String(mapCipherSuites(['[AES128-SHA'])), /unbalanced brackets/);
    assert.match(String(mapCipherSuites(['TLS_AES_128_GCM_SHA256'])), /TLS 1\.3 suite/);
    assert.match(String(mapCipherSuites(['DES-CBC3-SHA'])), /not available/);
    assert.match(String(mapCipherSuites([])), /empty/);
  });

  it('only produces names this Node build knows', () => {
    const known = new Set(tls.getCiphers());
    const all = mapCipherSuites([
      'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305', 'ECDHE-PSK-CHACHA20-POLY1305', 'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-RSA-AES128-SHA', 'ECDHE-PSK-AES128-CBC-SHA', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-RSA-AES256-SHA', 'ECDHE-PSK-AES256-CBC-SHA',
      'AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'AES128-SHA', 'AES256-SHA', 'PSK-AES128-CBC-SHA', 'PSK-AES256-CBC-SHA',
    ]);
    assert.equal(typeof all, 'string');
    for (const name of (all as string).split(':')) assert.ok(known.has(name.toLowerCase()), name);
  });

  describe('in a real handshake', () => {
    let server: tls.Server;
    let port: number;
    const ca = testCa();

    before(async () => {
      const leaf = serverCert({ dnsNames: ['ciphers.example.com'] });
      const ciphers = mapCipherSuites(['AES128-SHA', 'ECDHE-RSA-AES128-GCM-SHA256']);
      assert.equal(typeof ciphers, 'string');
      server = tls.createServer({ cert: leaf.chain, key: leaf.key, ciphers: ciphers as string, honorCipherOrder: true }, (s) => s.end('ok'));
      server.on('tlsClientError', () => {});
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });

    after(() => server.close());

    const handshake = (options: tls.ConnectionOptions) =>
      new Promise<{ cipher?: string; version?: string | null; error?: string }>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, servername: 'ciphers.example.com', ca: ca.cert, ...options }, () => {
          resolve({ cipher: s.getCipher().standardName, version: s.getProtocol() });
          s.destroy();
        });
        s.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
      });

    it('negotiates the configured TLS 1.2 suite in server order', async () => {
      const r = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA' });
      assert.deepEqual(r, { cipher: 'TLS_RSA_WITH_AES_128_CBC_SHA', version: 'TLSv1.2' });
    });

    it('refuses a TLS 1.2 client offering only suites outside the list', async () => {
      const r = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' });
      assert.ok(r.error, `expected a failure, got ${JSON.stringify(r)}`);
    });

    it('keeps TLS 1.3 available with a TLS 1.2 cipher list', async () => {
      const r = await handshake({});
      assert.equal(r.version, 'TLSv1.3');
    });
  });
});
