// The credential store: accept good material, refuse bad material while keeping the last
// good one, count refusals and expose expiry, on a registry of the test's own.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { Registry } from 'prom-client';
import { CredentialStore, describeCredentialKey } from '../../../dataplane/tls/credential-store.js';
import { mismatchedPair, serverCert } from '../../support/certs.js';

const KEY = 'secret:istio-system/gw-cert';

async function metric(registry: Registry, name: string, credential: string): Promise<number | undefined> {
  const json = await registry.getMetricsAsJSON();
  const m = json.find((x) => x.name === name);
  const values = (m?.values ?? []) as Array<{ labels: Record<string, string>; value: number }>;
  return values.find((v) => v.labels.credential === credential)?.value;
}

describe('tls: credential store', () => {
  let registry: Registry;
  let store: CredentialStore;
  let changes: string[];

  beforeEach(() => {
    registry = new Registry();
    store = new CredentialStore({ registry });
    changes = [];
    store.on('change', (key) => changes.push(key));
  });

  it('accepts valid material, emits a change and publishes its expiry', async () => {
    const leaf = serverCert({ dnsNames: ['a.example.com'] });
    const r = store.update(KEY, { certChain: leaf.chain, privateKey: leaf.key });
    assert.ok(r.accepted && r.changed);
    assert.deepEqual(changes, [KEY]);
    assert.equal(store.get(KEY)?.material.certChain, leaf.chain);
    const expiry = await metric(registry, 'portway_credential_expiry_timestamp_seconds', KEY);
    assert.equal(expiry, Math.floor(Date.parse(new X509Certificate(leaf.cert).validTo) / 1000));
  });

  it('rejects bad material, keeps the last good one and counts the rejection with namespace/name', async () => {
    const good = serverCert({ dnsNames: ['a.example.com'] });
    store.update(KEY, { certChain: good.chain, privateKey: good.key });
    const before = store.get(KEY)!;
    const bad = mismatchedPair();
    const r = store.update(KEY, { certChain: bad.cert, privateKey: bad.key });
    assert.equal(r.accepted, false);
    const rejection = !r.accepted ? r.rejection : undefined;
    assert.equal(rejection?.namespace, 'istio-system');
    assert.equal(rejection?.name, 'gw-cert');
    assert.equal(rejection?.keptPrevious, true);
    assert.match(rejection?.reason ?? '', /does not match/);
    assert.equal(store.get(KEY), before, 'the last good material is still served');
    assert.equal(store.lastRejection(KEY)?.reason, rejection?.reason);
    assert.deepEqual(changes, [KEY], 'no change event for a rejection');
    assert.equal(await metric(registry, 'portway_credential_rejections_total', KEY), 1);
    assert.match(store.unavailableReason('secret:istio-system/never'), /^Secret istio-system\/never is not available$/);
  });

  it('clears the rejection when good material arrives, and bumps the version only on real changes', () => {
    const a = serverCert({ dnsNames: ['a.example.com'] });
    const b = serverCert({ dnsNames: ['a.example.com'] });
    const first = store.update(KEY, { certChain: a.chain, privateKey: a.key });
    store.reject(KEY, 'Secret has no keys');
    assert.ok(store.lastRejection(KEY));
    const same = store.update(KEY, { certChain: a.chain, privateKey: a.key });
    assert.ok(same.accepted && !same.changed);
    assert.equal(store.lastRejection(KEY), undefined);
    const rotated = store.update(KEY, { certChain: b.chain, privateKey: b.key });
    assert.ok(first.accepted && rotated.accepted && rotated.credential.version > first.credential.version);
    assert.deepEqual(changes, [KEY, KEY]);
  });

  it('remove() forgets the material, emits a change and drops the expiry series', async () => {
    const leaf = serverCert({ dnsNames: ['a.example.com'] });
    store.update(KEY, { certChain: leaf.chain, privateKey: leaf.key });
    assert.equal(store.remove(KEY), true);
    assert.equal(store.get(KEY), undefined);
    assert.equal(store.remove(KEY), false);
    assert.deepEqual(changes, [KEY, KEY]);
    assert.equal(await metric(registry, 'portway_credential_expiry_timestamp_seconds', KEY), undefined);
  });

  it('a rejection with nothing served before says so', () => {
    const rejection = store.reject('ca:istio-system/client-ca', 'ConfigMap has no ca.crt');
    assert.equal(rejection.keptPrevious, false);
    assert.equal(rejection.source, 'CA Secret/ConfigMap istio-system/client-ca');
  });

  it('names file credentials by their paths', () => {
    assert.deepEqual(describeCredentialKey('file:/etc/certs/tls.crt|/etc/certs/tls.key||'), { source: 'files /etc/certs/tls.crt, /etc/certs/tls.key' });
  });
});
