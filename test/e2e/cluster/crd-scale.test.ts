// CustomResourceDefinitions with status and scale subresources (what GatewayDeployment uses):
// kubectl scale writes spec.replicas through /scale, /status is a separate endpoint, and the
// scale subresource reports status.replicas and the selector.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ApiextensionsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { useNamespace } from '../support/cluster.js';

interface Widget {
  metadata: { name: string; generation: number; resourceVersion: string };
  spec: { replicas: number; color?: string };
  status?: { replicas?: number; selector?: string };
}
interface Scale {
  kind: string;
  spec: { replicas: number };
  status: { replicas: number; selector?: string };
}

describe('e2e cluster: CRD with status and scale subresources', function () {
  const env = useNamespace('crd');
  // A group of its own per run, so a reused cluster never sees a clash.
  const group = `g${randomBytes(4).toString('hex')}.e2e.portway.dev`;
  const crdName = `widgets.${group}`;
  const crd = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ${crdName}
spec:
  group: ${group}
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer, minimum: 0}
              color: {type: string}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
`;

  after(async function () {
    this.timeout(60_000);
    await env.cluster?.kc.makeApiClient(ApiextensionsV1Api).deleteCustomResourceDefinition({ name: crdName }).catch(() => undefined);
  });

  it('kubectl scale changes spec.replicas through /scale; /status and /scale report status', async function () {
    this.timeout(120_000);
    const namespace = env.namespace;
    const k = (args: string[], input?: string) => env.cluster.kubectl(args, { input });
    await k(['apply', '-f', '-'], crd);
    await k(['wait', '--for=condition=Established', `crd/${crdName}`, '--timeout=60s']);
    await k(['apply', '-n', namespace, '-f', '-'], `apiVersion: ${group}/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {replicas: 1, color: blue}\n`);

    const custom = env.cluster.kc.makeApiClient(CustomObjectsApi);
    const read = async () => (await custom.getNamespacedCustomObject({ group, version: 'v1', namespace, plural: 'widgets', name: 'w1' })) as Widget;
    const scale = async () => JSON.parse(await k(['get', '--raw', `/apis/${group}/v1/namespaces/${namespace}/widgets/w1/scale`])) as Scale;

    // The status subresource: status is written only through /status.
    await k(['patch', `widgets.${group}`, 'w1', '-n', namespace, '--subresource=status', '--type=merge', '-p', '{"status":{"replicas":1,"selector":"app=w1"}}']);
    await k(['patch', `widgets.${group}`, 'w1', '-n', namespace, '--type=merge', '-p', '{"status":{"replicas":99}}']);
    let w = await read();
    assert.equal(w.status?.replicas, 1, 'a status change through the main resource is ignored');
    assert.equal(w.metadata.generation, 1, 'status writes do not bump the generation');

    const before = await scale();
    assert.equal(before.kind, 'Scale');
    assert.deepEqual(before.spec, { replicas: 1 });
    assert.deepEqual(before.status, { replicas: 1, selector: 'app=w1' });

    const out = await k(['scale', `widgets.${group}/w1`, '-n', namespace, '--replicas=4']);
    assert.match(out, /scaled/);
    w = await read();
    assert.equal(w.spec.replicas, 4);
    assert.equal(w.spec.color, 'blue', 'the rest of the spec is untouched');
    assert.equal(w.metadata.generation, 2, 'a spec change through /scale bumps the generation');
    assert.equal((await scale()).spec.replicas, 4);

    // A controller would now report the new count through /status.
    await k(['patch', `widgets.${group}`, 'w1', '-n', namespace, '--subresource=status', '--type=merge', '-p', '{"status":{"replicas":4}}']);
    assert.deepEqual((await scale()).status, { replicas: 4, selector: 'app=w1' });

    // kubectl scale --current-replicas is a precondition checked against /scale.
    await assert.rejects(k(['scale', `widgets.${group}/w1`, '-n', namespace, '--current-replicas=2', '--replicas=3']), /precondition|expected/i);
    await k(['scale', `widgets.${group}/w1`, '-n', namespace, '--current-replicas=4', '--replicas=0']);
    assert.equal((await read()).spec.replicas, 0);

    // The CRD schema (minimum: 0) is enforced for writes through /scale too.
    await assert.rejects(
      k(['patch', `widgets.${group}`, 'w1', '-n', namespace, '--subresource=scale', '--type=merge', '-p', '{"spec":{"replicas":-1}}']),
      /Invalid value|should be greater than or equal to 0/,
    );
    assert.equal((await read()).spec.replicas, 0);
  });
});
