// Which VirtualServices a proxy keeps in its store (dataplane/source/kubernetes-source.ts):
// only those that name a Gateway selecting the proxy (top level or in a match), and host-less
// ones (possible delegates), so a gateway does not grow with unrelated config.

import assert from 'node:assert/strict';
import type { StoredObject } from '../../../dataplane/config/resources.js';
import { BindableGateways } from '../../../dataplane/source/kubernetes-source.js';

const gw = (namespace: string, name: string, selector: Record<string, string>): StoredObject =>
  ({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { namespace, name }, spec: { selector, servers: [] } }) as StoredObject;
const vs = (namespace: string, spec: Record<string, unknown>): StoredObject =>
  ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { namespace, name: 'v' }, spec }) as StoredObject;

describe('BindableGateways', () => {
  const b = new BindableGateways({ istio: 'ingressgateway', app: 'gw' });
  before(() => {
    assert.equal(b.update([gw('edge', 'ingress', { istio: 'ingressgateway' }), gw('edge', 'internal', { istio: 'internal' })]), true);
  });

  it('keeps VirtualServices that name a selecting Gateway, by short or qualified name, at the top or in a match', () => {
    assert.ok(b.canBind(vs('edge', { hosts: ['a.example.com'], gateways: ['ingress'] })));
    assert.ok(b.canBind(vs('apps', { hosts: ['a.example.com'], gateways: ['mesh', 'edge/ingress'] })));
    assert.ok(b.canBind(vs('apps', { hosts: ['a.example.com'], gateways: ['mesh'], http: [{ match: [{ gateways: ['edge/ingress'] }] }] })));
  });

  it('drops VirtualServices for other gateways, the mesh, or a same-named Gateway elsewhere; keeps host-less ones (delegates)', () => {
    assert.ok(!b.canBind(vs('edge', { hosts: ['a.example.com'], gateways: ['internal'] })));
    assert.ok(!b.canBind(vs('edge', { hosts: ['a.example.com'] })));
    assert.ok(!b.canBind(vs('apps', { hosts: ['a.example.com'], gateways: ['ingress'] })));
    assert.ok(b.canBind(vs('apps', { http: [{ route: [{ destination: { host: 'x' } }] }] })));
  });

  it('reports a change only when the set of selecting Gateways changes', () => {
    assert.equal(b.update([gw('edge', 'ingress', { istio: 'ingressgateway' }), gw('edge', 'internal', { istio: 'internal' })]), false);
    assert.equal(b.update([gw('edge', 'ingress', { istio: 'ingressgateway' }), gw('edge', 'internal', { istio: 'ingressgateway' })]), true);
    assert.ok(b.canBind(vs('edge', { hosts: ['a.example.com'], gateways: ['internal'] })));
  });
});
