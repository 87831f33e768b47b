// Two operator processes on one Lease (issue 6): one leads and reconciles, the other keeps
// its caches warm and reports ready; when the leader is killed (no release: SIGKILL), the
// other acquires the expired Lease and reconciles a GatewayDeployment created after the kill.

import assert from 'node:assert/strict';
import { AppsV1Api, CoordinationV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { useNamespace } from '../support/cluster.js';
import { deleteGatewayDeployments, GROUP, installChart, PLURAL, startOperator, VERSION, type OperatorProcess } from '../support/operator.js';
import { eventually } from '../support/wait.js';

describe('e2e: operator leader election on a Lease', function () {
  this.timeout(180_000);
  const env = useNamespace('operator-le');
  // Nested so that its after hook (GatewayDeployments deleted while an operator runs, then
  // the operators stopped) runs before useNamespace deletes the namespace.
  describe('with the chart and operator installed', function () {
    const operators: OperatorProcess[] = [];
    let coordination: CoordinationV1Api;

    const lease = async () => (await coordination.readNamespacedLease({ name: 'portway-operator', namespace: env.namespace })).spec ?? {};
    const holder = async () => (await lease()).holderIdentity;
    const ms = (t: Date | string | undefined) => new Date(t ?? 0).getTime();

    before(async function () {
      this.timeout(300_000);
      coordination = env.cluster.kc.makeApiClient(CoordinationV1Api);
      const creds = await installChart(env, 'portway-le');
      operators.push(await startOperator(env, creds, 'operator-a'));
      await eventually(async () => (await holder()) === 'operator-a', { what: 'operator-a to lead' });
      operators.push(await startOperator(env, creds, 'operator-b'));
    });

    after(async function () {
      this.timeout(120_000);
      await deleteGatewayDeployments(env);
      for (const op of operators) op.child.kill('SIGTERM');
      await Promise.all(operators.map((op) => op.exited));
    });

    afterEach(function () {
      if (this.currentTest?.state === 'failed') for (const op of operators) console.error(`${op.identity} log:\n${op.output.join('')}`);
    });

    it('the standby is ready (caches synced) but not leading', async () => {
      const [a, b] = operators as [OperatorProcess, OperatorProcess];
      await eventually(async () => (await b.get('/readyz')).status === 200, { what: 'operator-b ready' });
      const metrics = (await b.get('/metrics')).body;
      assert.match(metrics, /^portway_operator_leader 0$/m);
      assert.match(metrics, /^portway_operator_cache_synced 1$/m);
      assert.match((await a.get('/metrics')).body, /^portway_operator_leader 1$/m);
      assert.equal(await holder(), 'operator-a');
    });

    it('kill the leader: the standby takes the Lease once it has expired, not before, and reconciles a new GatewayDeployment', async () => {
      const [a, b] = operators as [OperatorProcess, OperatorProcess];
      const custom = env.cluster.kc.makeApiClient(CustomObjectsApi);
      const apps = env.cluster.kc.makeApiClient(AppsV1Api);
      a.child.kill('SIGKILL');
      await a.exited;
      // operator-a's last renewal; a write it sent before the kill can only make it later.
      const before = await lease();
      assert.equal(before.holderIdentity, 'operator-a');
      await custom.createNamespacedCustomObject({
        group: GROUP, version: VERSION, namespace: env.namespace, plural: PLURAL,
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'GatewayDeployment', metadata: { name: 'after-failover' }, spec: { autoscaling: { enabled: false } } },
      });
      const after = await eventually(async () => {
        const l = await lease();
        return l.holderIdentity === 'operator-b' ? l : undefined;
      }, { timeoutMs: 120_000, intervalMs: 200, what: 'operator-b to hold the Lease' });
      assert.equal(after.leaseTransitions, (before.leaseTransitions ?? 0) + 1);
      const expiredAt = ms(before.renewTime) + (before.leaseDurationSeconds ?? 0) * 1000;
      assert.ok(ms(after.acquireTime) >= expiredAt, `operator-b acquired the Lease at ${new Date(ms(after.acquireTime)).toISOString()}, before operator-a's expired at ${new Date(expiredAt).toISOString()}`);
      await eventually(() => apps.readNamespacedDeployment({ name: 'after-failover', namespace: env.namespace }), { timeoutMs: 90_000, what: 'the new gateway Deployment, made by operator-b' });
      assert.match((await b.get('/metrics')).body, /^portway_operator_leader 1$/m);
      const lines = b.output.join('');
      assert.match(lines, /"msg":"leader election: operator-b is the leader"/);
    });
  });
});
