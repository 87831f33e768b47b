// Workload controllers, the scheduler and kwok together: a Deployment becomes Available,
// scales up and down, and a rollout restart replaces every pod.

import assert from 'node:assert/strict';
import { useNamespace } from '../support/cluster.js';
import { pauseDeploymentYaml } from '../support/pause-workload.js';
import { eventually } from '../support/wait.js';

interface Pod {
  metadata: { name: string; deletionTimestamp?: string; labels?: Record<string, string> };
  spec: { nodeName?: string };
  status: { phase?: string; podIP?: string };
}
interface Deployment {
  metadata: { generation: number };
  spec: { replicas: number; template: { metadata: { annotations?: Record<string, string> } } };
  status: { observedGeneration?: number; replicas?: number; availableReplicas?: number; updatedReplicas?: number; conditions?: { type: string; status: string }[] };
}

const deployment = (replicas: number) => pauseDeploymentYaml('web', replicas, { name: 'http', containerPort: 8080 });

describe('e2e cluster: Deployment', function () {
  const env = useNamespace('deploy');
  const k = (args: string[], input?: string) => env.cluster.kubectl([...args, '-n', env.namespace], { input });
  const pods = async () =>
    (JSON.parse(await k(['get', 'pods', '-l', 'app=web', '-o', 'json'])) as { items: Pod[] }).items.filter(
      (p) => !p.metadata.deletionTimestamp,
    );
  const get = async () => JSON.parse(await k(['get', 'deployment', 'web', '-o', 'json'])) as Deployment;
  /** The Deployment has settled at n available replicas and exactly n live pods exist. */
  const settledAt = (n: number) =>
    eventually(
      async () => {
        const d = await get();
        const live = await pods();
        return (
          d.status.observedGeneration === d.metadata.generation &&
          d.status.replicas === n &&
          d.status.availableReplicas === n &&
          live.length === n &&
          live.every((p) => p.status.phase === 'Running') &&
          live
        );
      },
      { timeoutMs: 120_000, what: `deployment web with ${n} available replicas and ${n} running pods` },
    );

  it('becomes Available with 3 running pods that have loopback IPs on kwok nodes', async function () {
    this.timeout(150_000);
    await k(['apply', '-f', '-'], deployment(3));
    await k(['rollout', 'status', 'deployment/web', '--timeout=120s'], undefined);
    const d = await get();
    assert.equal(d.status.conditions?.find((c) => c.type === 'Available')?.status, 'True');
    const live = await settledAt(3);
    const ips = live.map((p) => p.status.podIP ?? '');
    for (const p of live) {
      assert.match(p.spec.nodeName ?? '', /^kwok-node-\d+$/, `${p.metadata.name} was scheduled to a kwok node`);
      assert.match(p.status.podIP ?? '', /^127\.\d+\.\d+\.\d+$/, `${p.metadata.name} has a loopback IP`);
    }
    assert.equal(new Set(ips).size, 3, `distinct pod IPs: ${ips.join(', ')}`);
  });

  it('kubectl scale to 5 and back to 3', async function () {
    this.timeout(300_000);
    await k(['scale', 'deployment/web', '--replicas=5']);
    const five = await settledAt(5);
    assert.equal(new Set(five.map((p) => p.status.podIP)).size, 5);
    await k(['scale', 'deployment/web', '--replicas=3']);
    const three = await settledAt(3);
    // Scale-down removes pods; it does not replace the ones that stay.
    const names = new Set(five.map((p) => p.metadata.name));
    assert.ok(three.every((p) => names.has(p.metadata.name)), 'the remaining pods are a subset of the 5');
  });

  it('kubectl rollout restart, then rollout status completes with all pods replaced', async function () {
    this.timeout(300_000);
    const old = new Set((await pods()).map((p) => p.metadata.name));
    assert.equal(old.size, 3);
    await k(['rollout', 'restart', 'deployment/web']);
    await k(['rollout', 'status', 'deployment/web', '--timeout=180s'], undefined);
    const d = await get();
    assert.ok(d.spec.template.metadata.annotations?.['kubectl.kubernetes.io/restartedAt'], 'restartedAt annotation set');
    assert.equal(d.status.updatedReplicas, 3);
    const fresh = await settledAt(3);
    for (const p of fresh) assert.ok(!old.has(p.metadata.name), `${p.metadata.name} is a new pod`);
    const history = await k(['rollout', 'history', 'deployment/web']);
    assert.match(history, /^2\s/m, `revision 2 in:\n${history}`);
  });
});
