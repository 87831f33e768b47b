// The operator against a real control plane (issue 6): the Helm chart's CRD and RBAC are
// installed with the built helm, the operator runs as a local process with the chart's
// ServiceAccount, and GatewayDeployments become real objects that controllers act on.

import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { useNamespace } from '../support/cluster.js';
import { deleteGatewayDeployments, GROUP, installChart, PLURAL, startOperator, VERSION, type OperatorProcess } from '../support/operator.js';
import { eventually } from '../support/wait.js';

interface GatewayStatus {
  observedGeneration?: number;
  replicas?: number;
  readyReplicas?: number;
  selector?: string;
  conditions?: Array<{ type: string; status: string; reason: string; message: string; observedGeneration?: number }>;
}

describe('e2e: the operator reconciles GatewayDeployments', function () {
  this.timeout(180_000);
  const env = useNamespace('operator');
  let operator: OperatorProcess | undefined;
  let custom: CustomObjectsApi;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let rbac: RbacAuthorizationV1Api;

  const getGateway = async (name: string) =>
    (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: env.namespace, plural: PLURAL, name })) as { metadata: { generation: number }; status?: GatewayStatus };
  const condition = (s: GatewayStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type);

  before(async function () {
    this.timeout(300_000);
    custom = env.cluster.kc.makeApiClient(CustomObjectsApi);
    apps = env.cluster.kc.makeApiClient(AppsV1Api);
    core = env.cluster.kc.makeApiClient(CoreV1Api);
    rbac = env.cluster.kc.makeApiClient(RbacAuthorizationV1Api);
    // The chart as users install it (its operator pod is fake, the real operator below runs
    // with the same ServiceAccount).
    const chart = await installChart(env, 'portway');
    assert.ok(chart.docs.some((d) => d.kind === 'ClusterRole'), 'the chart renders the operator ClusterRole');
    operator = await startOperator(env, chart, 'operator-gd');
  });

  after(async function () {
    this.timeout(120_000);
    // With the operator still running, so it removes its finalizers (bad-ports keeps one).
    if (operator) await deleteGatewayDeployments(env);
    operator?.child.kill('SIGTERM');
    await operator?.exited;
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(`operator log:\n${operator?.output.join('')}`);
  });

  it('renders the gateway: ServiceAccount, RBAC, Deployment, LoadBalancer Service with externalTrafficPolicy Local', async () => {
    const ns = env.namespace;
    await custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'GatewayDeployment', metadata: { name: 'istio-ingressgateway' }, spec: { mode: 'ingress', autoscaling: { enabled: false } } },
    });
    const deployment = await eventually(() => apps.readNamespacedDeployment({ name: 'istio-ingressgateway', namespace: ns }), { what: 'the gateway Deployment' });
    const labels = deployment.spec!.template.metadata!.labels!;
    assert.equal(labels.istio, 'ingressgateway', 'Gateway selectors written for Istio match');
    assert.equal(labels.app, 'istio-ingressgateway');
    const container = deployment.spec!.template.spec!.containers[0]!;
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext?.runAsNonRoot ?? deployment.spec!.template.spec!.securityContext?.runAsNonRoot, true);
    const svc = await eventually(() => core.readNamespacedService({ name: 'istio-ingressgateway', namespace: ns }), { what: 'the gateway Service' });
    assert.equal(svc.spec!.type, 'LoadBalancer');
    assert.equal(svc.spec!.externalTrafficPolicy, 'Local');
    await eventually(() => core.readNamespacedServiceAccount({ name: deployment.spec!.template.spec!.serviceAccountName!, namespace: ns }), { what: 'the ServiceAccount' });
    const roles = await rbac.listNamespacedRole({ namespace: ns, labelSelector: 'portway.dev/gateway=istio-ingressgateway' });
    assert.ok(roles.items.some((r) => r.rules?.some((rule) => rule.resources?.includes('secrets') && !rule.verbs.includes('create'))), 'read-only Secret access in its own namespace');
  });

  it('reports status: observedGeneration, ready replicas from kwok pods, the selector, and Ready', async () => {
    const gw = await eventually(async () => {
      const g = await getGateway('istio-ingressgateway');
      return condition(g.status, 'Ready')?.status === 'True' && g.status?.observedGeneration === g.metadata.generation ? g : undefined;
    }, { timeoutMs: 90_000, what: 'Ready=True with the current observedGeneration' });
    assert.ok((gw.status!.readyReplicas ?? 0) >= 1);
    assert.equal(gw.status!.selector, 'portway.dev/gateway=istio-ingressgateway');
    assert.equal(condition(gw.status, 'Degraded')?.status, 'False');
  });

  it('does not fight kubectl scale deployment or kubectl rollout restart when replicas are unset', async () => {
    const ns = env.namespace;
    await env.cluster.kubectl(['scale', 'deployment/istio-ingressgateway', '--replicas=3', '-n', ns]);
    await env.cluster.kubectl(['rollout', 'restart', 'deployment/istio-ingressgateway', '-n', ns]);
    // Make the operator reconcile again (a spec change), then check both survived.
    await env.cluster.kubectl(['patch', `${PLURAL}.${GROUP}/istio-ingressgateway`, '-n', ns, '--type=merge', '-p', '{"spec":{"podAnnotations":{"touched":"yes"}}}']);
    const d = await eventually(async () => {
      const dep = await apps.readNamespacedDeployment({ name: 'istio-ingressgateway', namespace: ns });
      return dep.spec!.template.metadata!.annotations?.touched === 'yes' ? dep : undefined;
    }, { what: 'the reconciled template' });
    assert.equal(d.spec!.replicas, 3, 'kubectl scale survived the reconcile');
    assert.ok(d.spec!.template.metadata!.annotations?.['kubectl.kubernetes.io/restartedAt'], 'the rollout-restart annotation survived');
    await env.cluster.kubectl(['rollout', 'status', 'deployment/istio-ingressgateway', '-n', ns, '--timeout=90s']);
  });

  it('scales through the GatewayDeployment scale subresource', async () => {
    const ns = env.namespace;
    await env.cluster.kubectl(['scale', `${PLURAL}.${GROUP}/istio-ingressgateway`, '--replicas=2', '-n', ns]);
    await eventually(async () => (await apps.readNamespacedDeployment({ name: 'istio-ingressgateway', namespace: ns })).spec!.replicas === 2, { what: 'Deployment replicas 2' });
    const out = await env.cluster.kubectl(['get', `${PLURAL}.${GROUP}/istio-ingressgateway`, '-n', ns, '-o', 'jsonpath={.spec.replicas}']);
    assert.equal(out.trim(), '2');
  });

  it('reports an invalid spec in a Degraded condition and keeps the objects it had', async () => {
    const ns = env.namespace;
    await custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL,
      body: {
        apiVersion: `${GROUP}/${VERSION}`, kind: 'GatewayDeployment', metadata: { name: 'bad-ports' },
        spec: { service: { ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'http-again', port: 80, targetPort: 8081 }] } },
      },
    }).catch((err: Error) => {
      // The CRD's own rules may already reject it: that is the clearer error for the user.
      assert.match(err.message, /port/i);
    });
    const created = await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'bad-ports' }).catch(() => undefined);
    if (!created) return;
    const gw = await eventually(async () => {
      const g = await getGateway('bad-ports');
      return condition(g.status, 'Degraded')?.status === 'True' ? g : undefined;
    }, { what: 'Degraded=True' });
    assert.match(condition(gw.status, 'Degraded')!.message, /spec\.service\.ports/);
  });

  it('deletes what it created when the GatewayDeployment is deleted (garbage collector and finalizer)', async () => {
    const ns = env.namespace;
    const crbs = await rbac.listClusterRoleBinding({ labelSelector: 'portway.dev/gateway=istio-ingressgateway' });
    const mine = crbs.items.filter((b) => b.metadata?.labels?.['portway.dev/gateway-namespace'] === ns);
    assert.equal(mine.length, 1, 'one ClusterRoleBinding for this gateway');
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'istio-ingressgateway' });
    await eventually(async () => {
      try {
        await apps.readNamespacedDeployment({ name: 'istio-ingressgateway', namespace: ns });
        return false;
      } catch (err) {
        return (err as { code?: number }).code === 404;
      }
    }, { timeoutMs: 90_000, what: 'the Deployment to be garbage-collected' });
    await eventually(async () => {
      const left = await rbac.listClusterRoleBinding({ labelSelector: 'portway.dev/gateway=istio-ingressgateway' });
      return left.items.every((b) => b.metadata?.labels?.['portway.dev/gateway-namespace'] !== ns);
    }, { what: 'the ClusterRoleBinding to be deleted by the finalizer' });
  });
});
