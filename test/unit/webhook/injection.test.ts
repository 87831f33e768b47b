// Gateway injection against the renderer: an injected pod gets exactly the proxy container
// and pod hardening of an operator-rendered gateway Deployment, and the webhook refuses
// what it cannot do rather than creating a broken pod.

import assert from 'node:assert/strict';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { renderGatewayObjects } from '../../../operator/render/index.js';
import type { RenderedDeployment } from '../../../operator/render/deployment.js';
import { InjectionError, injectGatewayPod, podPatch } from '../../../operator/webhook/injection.js';

const IMAGE = 'ghcr.io/portway/portway:0.1.0';

const userPod = (containers: V1Container[], annotations: Record<string, string> = { 'inject.portway.dev/templates': 'gateway' }): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'gw', namespace: 'edge', annotations, labels: { 'portway.dev/inject': 'true' } },
  spec: { serviceAccountName: 'edge-gateway', containers },
});

describe('gateway injection', () => {
  it("fills the placeholder with the operator's own proxy container and pod hardening", () => {
    const rendered = renderGatewayObjects({ apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name: 'edge', namespace: 'edge', uid: 'u' }, spec: {} }, { defaultImage: IMAGE });
    const template = (rendered.find((o) => o.kind === 'Deployment') as RenderedDeployment).spec.template;
    const result = injectGatewayPod(userPod([{ name: 'portway-proxy', image: 'auto' }]), 'edge', { defaultImage: IMAGE });
    assert.ok(result.injected);
    const spec = result.pod.spec!;
    assert.deepEqual({ ...spec.containers[0], name: 'x' }, { ...template.spec!.containers[0], name: 'x' }, 'the same container, under the user\'s name');
    assert.equal(spec.containers[0]!.name, 'portway-proxy');
    assert.deepEqual(spec.volumes, template.spec!.volumes);
    assert.deepEqual(spec.securityContext, template.spec!.securityContext);
    for (const [k, v] of Object.entries(template.metadata!.annotations!)) assert.equal(result.pod.metadata!.annotations![k], v, k);
    // What belongs to the user's Deployment stays theirs: identity, labels, scheduling.
    assert.equal(spec.serviceAccountName, 'edge-gateway');
    assert.deepEqual(result.pod.metadata!.labels, { 'portway.dev/inject': 'true' });
    assert.equal(spec.affinity, undefined);
    assert.equal(spec.topologySpreadConstraints, undefined);
  });

  it('patches only what changed, as whole top-level fields', () => {
    const pod = userPod([{ name: 'portway-proxy', image: 'auto' }]);
    const result = injectGatewayPod(pod, 'edge', { defaultImage: IMAGE });
    assert.ok(result.injected);
    assert.deepEqual(podPatch(pod, result.pod).map((op) => op.path).sort(), ['/metadata/annotations', '/spec/containers', '/spec/securityContext', '/spec/terminationGracePeriodSeconds', '/spec/volumes']);
    assert.deepEqual(podPatch(result.pod, result.pod), []);
  });

  it('refuses image "auto" when the operator has no proxy image, and unknown templates', () => {
    assert.throws(() => injectGatewayPod(userPod([{ name: 'portway-proxy', image: 'auto' }]), 'edge', {}), (e: Error) => e instanceof InjectionError && /spec\.containers\[0\]\.image: image "auto" needs the operator's proxy image/.test(e.message));
    assert.throws(() => injectGatewayPod(userPod([{ name: 'portway-proxy', image: 'auto' }], { 'inject.portway.dev/templates': 'gateway,sidecar' }), 'edge', { defaultImage: IMAGE }), /unknown injection template "gateway,sidecar"/);
    // With an image of its own, no operator image is needed.
    assert.ok(injectGatewayPod(userPod([{ name: 'portway-proxy', image: 'example.com/p:1' }]), 'edge', {}).injected);
  });

  it('leaves pods without the annotation alone', () => {
    const pod = userPod([{ name: 'portway-proxy', image: 'auto' }], {});
    const result = injectGatewayPod(pod, 'edge', { defaultImage: IMAGE });
    assert.equal(result.injected, false);
  });
});
