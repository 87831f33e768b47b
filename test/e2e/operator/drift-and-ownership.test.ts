// The operator against a real control plane, part 2 (issue 6): drift is repaired, objects it
// does not own are left alone, replicas are handed over to the HPA without a dip, Service
// load-balancer addresses reach status, the CRD's CEL rules reject bad specs, and every
// action is an Event, a JSON log line and a metric.

import assert from 'node:assert/strict';
import { AppsV1Api, AutoscalingV2Api, CoreV1Api, CustomObjectsApi, Watch, type CoreV1Event, type V1Deployment } from '@kubernetes/client-node';
import { KubectlError, useNamespace } from '../support/cluster.js';
import { deleteGatewayDeployments, GROUP, installChart, jsonLines, PLURAL, startOperator, VERSION, type OperatorProcess } from '../support/operator.js';
import { eventually } from '../support/wait.js';

interface GatewayStatus {
  observedGeneration?: number;
  addresses?: Array<{ type: string; value: string }>;
  conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
}

describe('e2e: the operator repairs drift, respects ownership and reports through events and metrics', function () {
  this.timeout(180_000);
  const env = useNamespace('operator-drift');
  // Nested so that its after hook (GatewayDeployments deleted while an operator runs, then
  // the operators stopped) runs before useNamespace deletes the namespace.
  describe('with the chart and operator installed', function () {
    let operator: OperatorProcess;
    let custom: CustomObjectsApi;
    let apps: AppsV1Api;
    let core: CoreV1Api;
    let hpa: AutoscalingV2Api;

    const create = (name: string, spec: Record<string, unknown>) =>
      custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: env.namespace, plural: PLURAL, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'GatewayDeployment', metadata: { name }, spec } });
    const getGateway = async (name: string) =>
      (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: env.namespace, plural: PLURAL, name })) as { metadata: { generation: number; uid: string }; status?: GatewayStatus };
    const condition = (s: GatewayStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type);
    const eventsOf = async (name: string): Promise<CoreV1Event[]> =>
      (await core.listNamespacedEvent({ namespace: env.namespace, fieldSelector: `involvedObject.name=${name},involvedObject.kind=GatewayDeployment` })).items;
    const notFound = async (read: () => Promise<unknown>) => {
      try {
        await read();
        return false;
      } catch (err) {
        return (err as { code?: number }).code === 404;
      }
    };
    /** Whether the operator's field manager owns the Deployment's spec.replicas. */
    const operatorOwnsReplicas = (d: V1Deployment) =>
      (d.metadata!.managedFields ?? []).some((m) => m.manager === 'portway-operator' && m.operation === 'Apply' && (m.fieldsV1 as { 'f:spec'?: Record<string, unknown> })?.['f:spec']?.['f:replicas'] !== undefined);

    before(async function () {
      this.timeout(300_000);
      custom = env.cluster.kc.makeApiClient(CustomObjectsApi);
      apps = env.cluster.kc.makeApiClient(AppsV1Api);
      core = env.cluster.kc.makeApiClient(CoreV1Api);
      hpa = env.cluster.kc.makeApiClient(AutoscalingV2Api);
      const creds = await installChart(env, 'portway-drift');
      operator = await startOperator(env, creds, 'operator-drift-0', ['--leader-elect', 'false']);
    });

    after(async function () {
      this.timeout(120_000);
      await deleteGatewayDeployments(env);
      operator?.child.kill('SIGTERM');
      await operator?.exited;
    });

    afterEach(function () {
      if (this.currentTest?.state === 'failed') console.error(`operator log:\n${operator.output.join('')}`);
    });

    it('is ready once its caches are synced and serves Prometheus metrics', async () => {
      await eventually(async () => (await operator.get('/readyz')).status === 200, { what: '/readyz 200' });
      assert.equal((await operator.get('/healthz')).status, 200);
      const metrics = await operator.get('/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^portway_operator_cache_synced 1$/m);
      assert.match(metrics.body, /^portway_operator_workqueue_depth \d+$/m);
      assert.match(metrics.body, /^process_resident_memory_bytes \d+/m);
    });

    it('records events for what it creates, and counts reconciles and their duration', async () => {
      // A loadBalancerClass of the test's own: the test plays that load balancer's controller
      // (it writes the Service's status below), and the local cluster's allocator leaves it alone.
      await create('events', { autoscaling: { enabled: false }, service: { loadBalancerClass: 'e2e.portway.dev/test-lb' } });
      const events = await eventually(async () => {
        const list = await eventsOf('events');
        return list.some((e) => e.reason === 'Created' && /Deployment/.test(e.message ?? '')) ? list : undefined;
      }, { what: 'a Created event for the Deployment' });
      const created = events.find((e) => e.reason === 'Created' && /Deployment/.test(e.message ?? ''))!;
      assert.equal(created.type, 'Normal');
      assert.equal(created.source?.component, 'portway-operator');
      assert.equal(created.involvedObject.uid, (await getGateway('events')).metadata.uid);
      assert.ok(events.some((e) => e.reason === 'Created' && /Service /.test(e.message ?? '')), 'one event per created object');
      const body = (await operator.get('/metrics')).body;
      const success = Number(/^portway_operator_reconcile_total\{result="success"\} (\d+)/m.exec(body)?.[1]);
      assert.ok(success >= 1, `successful reconciles counted: ${success}`);
      assert.match(body, /^portway_operator_reconcile_duration_seconds_count\{result="success"\} [1-9]/m);
      assert.match(body, /^portway_operator_events_total\{type="Normal",reason="Created"\} [1-9]/m);
    });

    it('writes structured JSON logs: time, level, msg and the gatewaydeployment', () => {
      const lines = jsonLines(operator.output);
      assert.ok(lines.length > 0);
      for (const l of lines) {
        assert.equal(typeof l.time, 'string');
        assert.ok(['debug', 'info', 'warn', 'error'].includes(l.level as string), `level ${String(l.level)}`);
        assert.equal(typeof l.msg, 'string');
      }
      assert.ok(lines.some((l) => l.gatewaydeployment === `${env.namespace}/events` && l.msg === 'created' && l.kind === 'Deployment'), 'a line per action, naming the gateway');
    });

    it('recreates a deleted child Service', async () => {
      const ns = env.namespace;
      const before = await eventually(() => core.readNamespacedService({ name: 'events', namespace: ns }), { what: 'the Service' });
      await core.deleteNamespacedService({ name: 'events', namespace: ns });
      const after = await eventually(async () => {
        const s = await core.readNamespacedService({ name: 'events', namespace: ns }).catch(() => undefined);
        return s && s.metadata!.uid !== before.metadata!.uid ? s : undefined;
      }, { what: 'a new Service' });
      assert.equal(after.spec!.type, before.spec!.type);
      assert.equal(after.metadata!.ownerReferences?.[0]?.uid, (await getGateway('events')).metadata.uid);
    });

    it('restores a field it owns that someone else changed (the proxy image)', async () => {
      const ns = env.namespace;
      const d = await apps.readNamespacedDeployment({ name: 'events', namespace: ns });
      const image = d.spec!.template.spec!.containers[0]!.image!;
      // The operator may undo the edit before a read could see it: a watch sees every write.
      const images: string[] = [];
      const watch = await new Watch(env.cluster.kc).watch(
        `/apis/apps/v1/namespaces/${ns}/deployments`,
        { fieldSelector: 'metadata.name=events', resourceVersion: d.metadata!.resourceVersion },
        (_phase, obj: V1Deployment) => images.push(obj.spec!.template.spec!.containers[0]!.image!),
        () => undefined,
      );
      try {
        await env.cluster.kubectl(['set', 'image', 'deployment/events', `${d.spec!.template.spec!.containers[0]!.name}=example.invalid/hijacked:1`, '-n', ns]);
        await eventually(() => images.includes('example.invalid/hijacked:1') && images.at(-1) === image, { what: 'the edit, then the rendered image back' });
        assert.equal((await apps.readNamespacedDeployment({ name: 'events', namespace: ns })).spec!.template.spec!.containers[0]!.image, image);
      } finally {
        watch.abort();
      }
      await eventually(async () => (await eventsOf('events')).some((e) => e.reason === 'Updated' && /Deployment/.test(e.message ?? '')), { what: 'an Updated event' });
    });

    it('publishes the Service load-balancer address in status.addresses', async () => {
      const ns = env.namespace;
      await env.cluster.kubectl(['patch', 'service/events', '-n', ns, '--subresource=status', '--type=merge', '-p', '{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.7"},{"hostname":"lb.example.com"}]}}}']);
      const gw = await eventually(async () => {
        const g = await getGateway('events');
        return (g.status?.addresses ?? []).length === 2 ? g : undefined;
      }, { what: 'two addresses in status' });
      assert.deepEqual(gw.status!.addresses, [{ type: 'IPAddress', value: '203.0.113.7' }, { type: 'Hostname', value: 'lb.example.com' }]);
    });

    it('does not take over an existing object it does not own: Degraded ConflictingObject and a deduplicated event', async () => {
      const ns = env.namespace;
      await core.createNamespacedService({ namespace: ns, body: { metadata: { name: 'taken', labels: { team: 'someone-else' } }, spec: { type: 'ClusterIP', ports: [{ name: 'web', port: 8080 }], selector: { app: 'theirs' } } } });
      await create('taken', { autoscaling: { enabled: false } });
      const gw = await eventually(async () => {
        const g = await getGateway('taken');
        return condition(g.status, 'Degraded')?.status === 'True' ? g : undefined;
      }, { what: 'Degraded=True' });
      assert.equal(condition(gw.status, 'Degraded')!.reason, 'ConflictingObject');
      assert.match(condition(gw.status, 'Degraded')!.message, /Service .*taken/);
      const svc = await core.readNamespacedService({ name: 'taken', namespace: ns });
      assert.equal(svc.metadata!.ownerReferences, undefined, 'no ownerReference added');
      assert.deepEqual(svc.spec!.selector, { app: 'theirs' }, 'its spec untouched');
      assert.equal(svc.spec!.type, 'ClusterIP');
      // The other objects of the gateway are still made.
      await eventually(() => apps.readNamespacedDeployment({ name: 'taken', namespace: ns }), { what: 'the Deployment' });
      // A second reconcile (any change to the GatewayDeployment) repeats the event: counted, not duplicated.
      await env.cluster.kubectl(['annotate', `${PLURAL}.${GROUP}/taken`, '-n', ns, 'poke=1']);
      const conflict = await eventually(async () => {
        const list = (await eventsOf('taken')).filter((e) => e.reason === 'ConflictingObject');
        return list.length === 1 && (list[0]!.count ?? 0) >= 2 ? list[0] : undefined;
      }, { what: 'one ConflictingObject event with count >= 2' });
      assert.equal(conflict.type, 'Warning');
    });

    it('with autoscaling on: an HPA, and the operator does not own the Deployment replicas', async () => {
      const ns = env.namespace;
      await create('auto', { autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 4 } });
      const h = await eventually(() => hpa.readNamespacedHorizontalPodAutoscaler({ name: 'auto', namespace: ns }), { what: 'the HPA' });
      assert.equal(h.spec!.scaleTargetRef.name, 'auto');
      assert.equal(h.spec!.maxReplicas, 4);
      const d = await eventually(() => apps.readNamespacedDeployment({ name: 'auto', namespace: ns }), { what: 'the Deployment' });
      assert.equal(operatorOwnsReplicas(d), false, 'the applied Deployment has no replicas field');
    });

    it('hands fixed replicas over to the HPA without the Deployment dropping to 1', async () => {
      const ns = env.namespace;
      await create('handover', { replicas: 3, autoscaling: { enabled: false } });
      const d0 = await eventually(async () => {
        const d = await apps.readNamespacedDeployment({ name: 'handover', namespace: ns }).catch(() => undefined);
        return d?.spec?.replicas === 3 && operatorOwnsReplicas(d) ? d : undefined;
      }, { what: 'Deployment with replicas 3 owned by the operator' });
      // Every write to the Deployment from here on, as a watch sees it.
      const seen: Array<number | undefined> = [];
      const watch = await new Watch(env.cluster.kc).watch(
        `/apis/apps/v1/namespaces/${ns}/deployments`,
        { fieldSelector: 'metadata.name=handover', resourceVersion: d0.metadata!.resourceVersion },
        (_phase, obj: V1Deployment) => seen.push(obj.spec?.replicas),
        () => undefined,
      );
      try {
        await env.cluster.kubectl(['patch', `${PLURAL}.${GROUP}/handover`, '-n', ns, '--type=merge', '-p', '{"spec":{"replicas":null,"autoscaling":{"enabled":true,"minReplicas":2,"maxReplicas":5}}}']);
        await eventually(() => hpa.readNamespacedHorizontalPodAutoscaler({ name: 'handover', namespace: ns }), { what: 'the HPA' });
        const d = await eventually(async () => {
          const dep = await apps.readNamespacedDeployment({ name: 'handover', namespace: ns });
          return operatorOwnsReplicas(dep) ? undefined : dep;
        }, { what: 'the operator to release spec.replicas' });
        assert.equal(d.spec!.replicas, 3, 'the count stayed');
        await eventually(async () => (await eventsOf('handover')).some((e) => e.reason === 'ReplicasHandedOver'), { what: 'a ReplicasHandedOver event' });
        // One more reconcile for good measure, then look at everything the watch saw.
        await env.cluster.kubectl(['annotate', `${PLURAL}.${GROUP}/handover`, '-n', ns, 'poke=1']);
        await eventually(async () => (await getGateway('handover')).status?.observedGeneration !== undefined, { what: 'status' });
        await new Promise((r) => setTimeout(r, 2000));
        assert.ok(seen.length > 0, 'the watch saw the hand-over');
        assert.deepEqual([...new Set(seen)], [3], `spec.replicas as seen by a watch: ${seen.join(',')}`);
      } finally {
        watch.abort();
      }
    });

    it('the apiserver rejects an invalid GatewayDeployment with the CRD CEL message', async () => {
      const manifest = `apiVersion: ${GROUP}/${VERSION}\nkind: GatewayDeployment\nmetadata:\n  name: bad-scaling\nspec:\n  autoscaling: {enabled: true, minReplicas: 6, maxReplicas: 3}\n`;
      await assert.rejects(env.cluster.kubectl(['create', '-n', env.namespace, '-f', '-'], { input: manifest }), (err: KubectlError) => {
        assert.ok(err instanceof KubectlError);
        assert.match(err.stderr, /spec\.autoscaling\.minReplicas: Invalid value: .*must be <= maxReplicas \(defaults: 1 and 5\)/);
        return true;
      });
      assert.ok(await notFound(() => getGateway('bad-scaling')), 'nothing was stored');
    });
  });
});
