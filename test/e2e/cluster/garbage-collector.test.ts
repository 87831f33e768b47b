// The garbage collector (kube-controller-manager) deletes dependents of a deleted owner,
// and leaves them alone when the owner is deleted with orphan propagation.

import assert from 'node:assert/strict';
import { ApiException, CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { useNamespace } from '../support/cluster.js';
import { eventually } from '../support/wait.js';

describe('e2e cluster: garbage collector', function () {
  const env = useNamespace('gc');
  const core = () => env.cluster.kc.makeApiClient(CoreV1Api);

  async function ownerWithDependents(owner: string): Promise<string[]> {
    const namespace = env.namespace;
    const o = await core().createNamespacedConfigMap({ namespace, body: { metadata: { name: owner }, data: { role: 'owner' } } });
    const ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: owner, uid: o.metadata!.uid! }];
    const names = [`${owner}-dep-1`, `${owner}-dep-2`];
    for (const name of names) {
      await core().createNamespacedConfigMap({ namespace, body: { metadata: { name, ownerReferences } } });
    }
    await core().createNamespacedSecret({ namespace, body: { metadata: { name: `${owner}-dep-secret`, ownerReferences }, stringData: { a: 'b' } } });
    return names;
  }

  const exists = async (read: () => Promise<unknown>) => {
    try {
      await read();
      return true;
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return false;
      throw e;
    }
  };

  it('deleting an owner deletes the objects that carry its ownerReference', async function () {
    this.timeout(90_000);
    const namespace = env.namespace;
    const deps = await ownerWithDependents('owner');
    // An unrelated object must survive.
    await core().createNamespacedConfigMap({ namespace, body: { metadata: { name: 'bystander' } } });

    await env.cluster.kubectl(['delete', 'configmap', 'owner', '-n', namespace, '--wait=true']);
    await eventually(
      async () => {
        for (const name of deps) if (await exists(() => core().readNamespacedConfigMap({ name, namespace }))) return false;
        return !(await exists(() => core().readNamespacedSecret({ name: 'owner-dep-secret', namespace })));
      },
      { timeoutMs: 60_000, what: 'the dependents of configmap/owner to be garbage-collected' },
    );
    assert.ok(await exists(() => core().readNamespacedConfigMap({ name: 'bystander', namespace })), 'bystander survives');
  });

  it('with --cascade=orphan the dependents stay and lose their ownerReference', async function () {
    this.timeout(90_000);
    const namespace = env.namespace;
    const deps = await ownerWithDependents('keeper');
    await env.cluster.kubectl(['delete', 'configmap', 'keeper', '-n', namespace, '--cascade=orphan', '--wait=true']);
    const orphaned = await eventually(
      async () => {
        const cms: V1ConfigMap[] = [];
        for (const name of deps) cms.push(await core().readNamespacedConfigMap({ name, namespace }));
        return cms.every((c) => !c.metadata?.ownerReferences?.length) && cms;
      },
      { timeoutMs: 60_000, what: 'the orphaned dependents to lose their ownerReferences' },
    );
    assert.equal(orphaned.length, 2);
  });
});
