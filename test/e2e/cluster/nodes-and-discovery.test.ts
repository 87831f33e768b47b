// The control plane itself: kwok nodes are Ready with zones, API discovery works, the server
// is the pinned Kubernetes version, and hack/cluster/up.sh is idempotent.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApisApi, CoreV1Api, VersionApi } from '@kubernetes/client-node';
import { BRING_UP_TIMEOUT_MS, getCluster, pinnedVersions, runScript, type Cluster } from '../support/cluster.js';

interface NodeList {
  items: {
    metadata: { name: string; labels: Record<string, string> };
    spec: { podCIDR?: string };
    status: { conditions: { type: string; status: string }[] };
  }[];
}

describe('e2e cluster: nodes and discovery', function () {
  let cluster: Cluster;
  before(async function () {
    this.timeout(BRING_UP_TIMEOUT_MS);
    cluster = await getCluster();
  });

  it('kubectl get nodes shows the kwok nodes Ready, each with a zone and a loopback pod CIDR', async () => {
    const nodes = JSON.parse(await cluster.kubectl(['get', 'nodes', '-l', 'type=kwok', '-o', 'json'])) as NodeList;
    if (cluster.nodeCount !== undefined) assert.equal(nodes.items.length, cluster.nodeCount);
    assert.ok(nodes.items.length > 0, 'at least one kwok node');
    for (const n of nodes.items) {
      const ready = n.status.conditions.find((c) => c.type === 'Ready');
      assert.equal(ready?.status, 'True', `${n.metadata.name} is Ready`);
      assert.match(n.metadata.labels['topology.kubernetes.io/zone'] ?? '', /^zone-[a-z]$/, `${n.metadata.name} has a zone`);
      assert.match(n.spec.podCIDR ?? '', /^127\.\d+\.\d+\.0\/24$/, `${n.metadata.name} has a loopback podCIDR`);
    }
    const zones = new Set(nodes.items.map((n) => n.metadata.labels['topology.kubernetes.io/zone']));
    if (cluster.nodeCount !== undefined) assert.equal(zones.size, Math.min(cluster.nodeCount, 8), 'one zone per node');

    // The human-readable table says the same.
    const table = await cluster.kubectl(['get', 'nodes', '--no-headers']);
    const rows = table.trim().split('\n').map((l) => l.split(/\s+/));
    for (const n of nodes.items) {
      const row = rows.find((r) => r[0] === n.metadata.name);
      assert.equal(row?.[1], 'Ready', `kubectl get nodes row for ${n.metadata.name}: ${row?.join(' ')}`);
    }
  });

  it('serves API discovery for the built-in groups and reports the pinned version', async () => {
    const groups = await cluster.kc.makeApiClient(ApisApi).getAPIVersions();
    const names = new Set(groups.groups.map((g) => g.name));
    for (const g of ['apps', 'discovery.k8s.io', 'rbac.authorization.k8s.io', 'admissionregistration.k8s.io', 'apiextensions.k8s.io', 'coordination.k8s.io', 'autoscaling', 'policy']) {
      assert.ok(names.has(g), `discovery lists ${g}`);
    }
    const core = await cluster.kc.makeApiClient(CoreV1Api).getAPIResources();
    assert.ok(core.resources.some((r) => r.name === 'pods' && r.namespaced), 'core/v1 lists pods');
    assert.ok(core.resources.some((r) => r.name === 'serviceaccounts/token'), 'core/v1 lists the TokenRequest subresource');

    const resources = await cluster.kubectl(['api-resources', '--api-group=apps', '-o', 'name']);
    assert.ok(resources.split('\n').includes('deployments.apps'), resources);

    if (!cluster.reused) {
      const version = await cluster.kc.makeApiClient(VersionApi).getCode();
      assert.equal(version.gitVersion, pinnedVersions().KUBERNETES_VERSION);
    }
  });

  it('hack/cluster/up.sh on a running control plane reuses it and prints the same kubeconfig', async function () {
    if (cluster.reused) this.skip();
    this.timeout(60_000);
    const pids = () =>
      ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'].map((c) =>
        readFileSync(join(cluster.stateDir!, 'pids', `${c}.pid`), 'utf8').trim(),
      );
    const before = pids();
    const first = await runScript('up.sh', [], cluster.scriptEnv);
    assert.ok(first.includes(`export KUBECONFIG=${cluster.kubeconfigPath}\n`), first);
    const second = await runScript('up.sh', [], cluster.scriptEnv);
    assert.equal(second, first);
    assert.deepEqual(pids(), before, 'no component was restarted');
    for (const pid of before) assert.ok(existsSync(`/proc/${pid}`), `process ${pid} is running`);
  });
});
