// One tls.Server per port with createSniSelector as SNICallback: SIMPLE chains chosen by
// SNI, certificates rotated and broken in the credential store while the listener runs.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { CredentialStore } from '../../../dataplane/tls/credential-store.js';
import { mismatchedPair, serverCert, testCa, type IssuedCert } from '../../support/certs.js';
import { chain, metricValue, newStore, putCert } from './fixtures.js';
import { connect, echo, startSniListener, type Listener, type Outcome } from './tls-harness.js';

const fingerprint = (leaf: IssuedCert) => new X509Certificate(leaf.cert).fingerprint256;

function served(outcome: Outcome): Extract<Outcome, { ok: true }> {
  if (!outcome.ok) assert.fail(`expected the connection to be served, got: ${outcome.error}`);
  return outcome;
}

describe('tls feature: SNI-selected contexts on one listener', () => {
  const ca = testCa();
  let store: CredentialStore;
  let registry: Registry;
  let listener: Listener;
  let certs: Record<'api' | 'wild' | 'deep' | 'fallback', IssuedCert>;
  const opened: Array<{ destroy(): void }> = [];

  const hello = async (servername: string) => {
    const outcome = await connect(listener.port, { servername, ca: ca.cert });
    if (outcome.ok) opened.push(outcome.socket);
    return outcome;
  };

  before(() => {
    certs = {
      api: serverCert({ dnsNames: ['api.example.com'] }),
      wild: serverCert({ dnsNames: ['*.example.com'] }),
      deep: serverCert({ dnsNames: ['*.eu.example.com'] }),
      fallback: serverCert({ dnsNames: ['fallback.example.net'] }),
    };
  });

  beforeEach(async () => {
    ({ store, registry } = newStore());
    for (const [name, leaf] of Object.entries(certs)) putCert(store, `secret:gw/${name}`, leaf);
    listener = await startSniListener([
      chain(store, 'wild', ['*.example.com'], { credentials: ['secret:gw/wild'] }),
      chain(store, 'api', ['api.example.com'], { credentials: ['secret:gw/api'] }),
      chain(store, 'deep', ['*.eu.example.com'], { credentials: ['secret:gw/deep'] }),
      chain(store, 'missing', ['missing.example.com'], { credentials: ['secret:gw/missing'] }),
      chain(store, 'fallback', [], { credentials: ['secret:gw/fallback'] }),
    ]);
  });

  afterEach(async () => {
    for (const s of opened.splice(0)) s.destroy();
    await listener.close();
  });

  it('SIMPLE: serves the chain certificate, which the client verifies against the CA', async () => {
    const api = served(await hello('api.example.com'));
    assert.equal(api.chain, 'api');
    assert.equal(api.peer.fingerprint256, fingerprint(certs.api));
    assert.equal(api.socket.authorized, true);
    assert.equal(api.protocol, 'TLSv1.3');
  });

  it('picks the exact name over a wildcard, the longest wildcard, then the catch-all', async () => {
    assert.equal(served(await hello('api.example.com')).chain, 'api');
    assert.equal(served(await hello('www.example.com')).chain, 'wild');
    const deep = served(await hello('shop.eu.example.com'));
    assert.equal(deep.chain, 'deep');
    assert.equal(deep.peer.fingerprint256, fingerprint(certs.deep));
    assert.equal(served(await hello('fallback.example.net')).chain, 'fallback');
  });

  it('rotation: the next handshake gets the new certificate, an open connection keeps working', async () => {
    const before = served(await hello('api.example.com'));
    const rotated = serverCert({ dnsNames: ['api.example.com'] });
    putCert(store, 'secret:gw/api', rotated);

    const after = served(await hello('api.example.com'));
    assert.equal(after.peer.fingerprint256, fingerprint(rotated));
    assert.equal(await echo(before.socket, 'still here'), 'still here');
    assert.equal(before.peer.fingerprint256, fingerprint(certs.api), 'the open connection was made with the old certificate');
  });

  it('a chain whose certificate never arrived fails its handshakes; the others keep working, until it arrives', async () => {
    const missing = await hello('missing.example.com');
    assert.equal(missing.ok, false);
    assert.ok(listener.failures.some((f) => /Secret gw\/missing is not available/.test(f)), listener.failures.join('; '));
    assert.equal(served(await hello('api.example.com')).chain, 'api');

    putCert(store, 'secret:gw/missing', serverCert({ dnsNames: ['missing.example.com'] }));
    assert.equal(served(await hello('missing.example.com')).chain, 'missing');
  });

  it('bad material is refused and counted; the last good certificate keeps serving', async () => {
    const bad = mismatchedPair('api.example.com');
    const r = store.update('secret:gw/api', { certChain: bad.cert, privateKey: bad.key });
    assert.equal(r.accepted, false);
    assert.equal(await metricValue(registry, 'portway_credential_rejections_total', { credential: 'secret:gw/api' }), 1);
    const api = served(await hello('api.example.com'));
    assert.equal(api.peer.fingerprint256, fingerprint(certs.api));
  });

  it('a removed Secret stops that chain only', async () => {
    store.remove('secret:gw/deep');
    assert.equal((await hello('shop.eu.example.com')).ok, false);
    assert.equal(served(await hello('www.example.com')).chain, 'wild');
  });

  it('refuses a TLS 1.1 client', async () => {
    const old = await connect(listener.port, { servername: 'api.example.com', ca: ca.cert, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.equal(old.ok, false);
    assert.ok(listener.failures.includes('ERR_SSL_UNSUPPORTED_PROTOCOL'), listener.failures.join('; '));
    const tls12 = served(await connect(listener.port, { servername: 'api.example.com', ca: ca.cert, maxVersion: 'TLSv1.2' }));
    opened.push(tls12.socket);
    assert.equal(tls12.protocol, 'TLSv1.2');
  });
});
