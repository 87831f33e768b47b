// What the proxy keeps of ConfigMaps (dataplane/source/kubernetes-source.ts: caConfigMap) and
// which Secrets and ConfigMaps a --concurrency worker is sent for a snapshot's credential keys
// (dataplane/runtime/tls-support.ts: credentialObjectsOf).

import assert from 'node:assert/strict';
import type { StoredObject } from '../../../dataplane/config/resources.js';
import { credentialObjectsOf } from '../../../dataplane/runtime/tls-support.js';
import { caConfigMap, gatewayWatchedKinds } from '../../../dataplane/source/kubernetes-source.js';
import { ObjectStore } from '../../../dataplane/store/object-store.js';
import { caFromConfigMap } from '../../../dataplane/tls/secret-formats.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

const configMap = (name: string, data: Record<string, string>, binaryData?: Record<string, string>): StoredObject =>
  ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: 'gw', name, resourceVersion: '7', labels: { a: 'b' } }, data, ...(binaryData ? { binaryData } : {}) }) as StoredObject;
const secret = (namespace: string, name: string): StoredObject => ({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name }, type: 'Opaque', data: {} }) as StoredObject;

describe('ConfigMaps in the Kubernetes source', () => {
  it('are watched only in the proxy’s namespace, like Secrets', () => {
    const kinds = gatewayWatchedKinds('gw');
    assert.equal(kinds.find((k) => k.kind === 'ConfigMap')?.namespace, 'gw');
    assert.equal(kinds.find((k) => k.kind === 'Secret')?.namespace, 'gw');
  });

  it('keep the CA keys’ values and only the names of other keys', () => {
    const big = 'x'.repeat(100_000);
    const slim = caConfigMap(configMap('client-ca', { 'ca.crt': PEM, 'settings.json': big }, { cacert: 'AAAA', blob: big })) as StoredObject & { data?: Record<string, string>; binaryData?: Record<string, string> };
    assert.deepEqual(slim.metadata, { namespace: 'gw', name: 'client-ca' });
    assert.deepEqual(slim.data, { 'ca.crt': PEM, 'settings.json': '' });
    assert.deepEqual(slim.binaryData, { cacert: 'AAAA', blob: '' });
    assert.deepEqual(caFromConfigMap(slim), { ok: true, material: { caCertificates: PEM } });
  });

  it('without a CA key, still report the keys the ConfigMap has', () => {
    const result = caFromConfigMap(caConfigMap(configMap('other', { 'app.properties': 'a=b' })));
    assert.equal(result.ok, false);
    assert.match((result as { error: string }).error, /app\.properties/);
  });

  it('a change to another key’s value is no change to the store', () => {
    const store = new ObjectStore();
    assert.equal(store.upsert(caConfigMap(configMap('cfg', { 'ca.crt': PEM, other: 'v1' }))), true);
    assert.equal(store.upsert(caConfigMap(configMap('cfg', { 'ca.crt': PEM, other: 'v2' }))), false);
    assert.equal(store.upsert(caConfigMap(configMap('cfg', { 'ca.crt': `${PEM}\n`, other: 'v2' }))), true);
  });
});

describe('credentialObjectsOf (what a worker is sent)', () => {
  const store = new ObjectStore();
  for (const o of [
    secret('gw', 'site'),
    secret('gw', 'site-cacert'),
    secret('gw', 'unused'),
    secret('gw', 'ca-in-both'),
    configMap('ca-in-both', { 'ca.crt': PEM }),
    configMap('client-ca', { 'ca.crt': PEM }),
    configMap('unrelated', { 'ca.crt': PEM }),
    secret('other-ns', 'site'),
  ]) {
    store.upsert(o);
  }
  const names = (objects: StoredObject[]) => objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort();

  it('a credentialName: its Secret and "<name>-cacert"', () => {
    assert.deepEqual(names(credentialObjectsOf(store, ['secret:gw/site'])), ['Secret/gw/site', 'Secret/gw/site-cacert']);
  });

  it('a caCertCredentialName: the ConfigMap when there is no Secret of that name, else the Secret (Istio’s order)', () => {
    assert.deepEqual(names(credentialObjectsOf(store, ['ca:gw/client-ca'])), ['ConfigMap/gw/client-ca']);
    assert.deepEqual(names(credentialObjectsOf(store, ['ca:gw/ca-in-both'])), ['Secret/gw/ca-in-both']);
  });

  it('nothing for file credentials, missing objects or keys not used; each object once', () => {
    assert.deepEqual(credentialObjectsOf(store, ['file:/etc/certs/a.pem', 'secret:gw/missing', 'ca:gw/missing']), []);
    assert.deepEqual(names(credentialObjectsOf(store, ['secret:gw/site', 'secret:gw/site', 'ca:gw/site'])), ['Secret/gw/site', 'Secret/gw/site-cacert']);
  });
});
