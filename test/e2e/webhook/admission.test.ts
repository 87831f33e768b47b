// The operator's admission webhooks against a real control plane (issue 7): the chart is
// installed as users install it (CRDs, webhook configurations, Service, RBAC, a two-replica
// operator Deployment whose kwok pods get loopback IPs), and `portway operator` runs twice as
// local processes, each bound to one operator pod's IP with the chart's ServiceAccount and
// environment. The apiserver really calls them: it resolves the webhook Service to those pod
// IPs and checks their certificate against the caBundle the operators wrote.
//
// The certificates are forced short-lived (serving 45 s, CA 120 s) so that serving
// certificates and the CA are both rotated while the tests run and admission is checked
// throughout.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, type V1Container, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { repoRoot } from '../../support/repo-root.js';
import { KubectlError, useNamespace } from '../support/cluster.js';
import { installChart } from '../support/operator.js';
import type { ServiceAccountCredentials } from '../support/service-account.js';
import { eventually } from '../support/wait.js';

const RELEASE = 'portway';
const PROXY_IMAGE = 'ghcr.io/portway/portway:0.1.0';

interface Operator {
  pod: string;
  ip: string;
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
}

const gatewayDeployment = (name: string, opted: boolean) => `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  replicas: 1
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels:
        app: ${name}
        ${opted ? 'portway.dev/inject: "true"' : 'plain: "yes"'}
      ${opted ? 'annotations: {inject.portway.dev/templates: gateway}' : ''}
    spec:
      containers:
      - name: portway-proxy
        image: auto
        resources:
          requests: {cpu: 250m, memory: 256Mi}
        env:
        - {name: TEAM, value: edge}
`;

const virtualService = (name: string, regex: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
spec:
  hosts: [app.example.com]
  gateways: [istio-system/ingressgateway]
  http:
  - match: [{uri: {prefix: /healthz}}]
    route: [{destination: {host: app}}]
  - match: [{uri: {regex: "${regex}"}}]
    route: [{destination: {host: app, port: {number: 8080}}}]
`;

describe('e2e: admission webhooks served by the operator', function () {
  this.timeout(240_000);
  const env = useNamespace('webhook');
  let creds: ServiceAccountCredentials;
  let operatorEnv: Record<string, string>;
  let operatorArgs: string[];
  let operators: Operator[] = [];
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let admission: AdmissionregistrationV1Api;
  const secretName = `${RELEASE}-webhook-tls`;
  const serviceHost = () => `${RELEASE}-webhook.${env.namespace}.svc`;

  const kubectl = (args: string[], input?: string) => env.cluster.kubectl([...args, '-n', env.namespace], { input });

  /** Runs `portway operator` as the operator pod `pod`, as its container would (chart env and args). */
  function startOperator(pod: string, ip: string): Operator {
    const args = operatorArgs.map((a) => a.replace('$(POD_NAMESPACE)', env.namespace));
    // Two processes on one machine: the health port may not be shared (the webhook port may:
    // each binds its own pod IP). Short-lived certificates make rotation happen during the run.
    args[args.indexOf('--health-port') + 1] = '0';
    args.push('--webhook-cert-validity', '45s', '--webhook-ca-validity', '120s');
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'portway.js'), 'operator', ...args], {
      env: { ...process.env, ...operatorEnv, POD_NAME: pod, PORTWAY_WEBHOOK_BIND_ADDRESS: ip, KUBECONFIG: creds.kubeconfigPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
    child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    return { pod, ip, child, output, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  }

  async function stopOperators(): Promise<void> {
    for (const o of operators) o.child.kill('SIGTERM');
    await Promise.all(operators.map((o) => o.exited));
  }

  const secretData = async () => (await core.readNamespacedSecret({ name: secretName, namespace: env.namespace })).data ?? {};
  const pem = (data: Record<string, string>, key: string) => Buffer.from(data[key] ?? '', 'base64').toString('utf8');

  /** The fingerprint of the certificate a replica serves on its pod IP, verified as the apiserver does. */
  function servedFingerprint(ip: string, caBundle: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: ip, port: 9443, servername: serviceHost(), ca: caBundle }, () => {
        const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
        socket.end();
        resolve(fp);
      });
      socket.once('error', reject);
    });
  }

  /** A server-side dry run of an invalid VirtualService: denied by our webhook, with the field path, or it throws. */
  async function assertValidationAnswers(what: string): Promise<void> {
    const err = await kubectl(['apply', '--dry-run=server', '-f', '-'], virtualService(`probe-${Date.now()}`, '/api/(v1')).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof KubectlError, `${what}: the invalid VirtualService was accepted (webhook not reached?)`);
    assert.match(err.stderr, /admission webhook "validation\.portway\.dev" denied the request: spec\.http\[1\]\.match\[0\]\.uri\.regex: invalid RE2 regex/, what);
  }

  before(async function () {
    this.timeout(300_000);
    const ns = env.namespace;
    core = env.cluster.kc.makeApiClient(CoreV1Api);
    apps = env.cluster.kc.makeApiClient(AppsV1Api);
    admission = env.cluster.kc.makeApiClient(AdmissionregistrationV1Api);
    const chart = await installChart(env, RELEASE, ['replicas=2'], { webhooks: true });
    const docs = chart.docs;
    const kinds = docs.map((d) => d.kind);
    assert.ok(kinds.includes('MutatingWebhookConfiguration') && kinds.includes('ValidatingWebhookConfiguration'), 'the chart renders both webhook configurations');
    await env.cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/virtualservices.networking.istio.io']);

    // The operator container as the chart wrote it: its environment (fieldRefs resolved per
    // pod below) and its arguments.
    const deployment = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === `${RELEASE}-operator`) as V1Deployment;
    const container = deployment.spec!.template.spec!.containers[0] as V1Container;
    operatorEnv = Object.fromEntries((container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
    operatorEnv.POD_NAMESPACE = ns;
    assert.equal(operatorEnv.PORTWAY_WEBHOOK_PORT, '9443');
    operatorArgs = container.args!;
    assert.equal(chart.username, `system:serviceaccount:${ns}:${deployment.spec!.template.spec!.serviceAccountName}`);
    creds = chart;

    // The webhook Service's endpoints: the two kwok operator pods.
    const selector = Object.entries(deployment.spec!.selector.matchLabels!).map(([k, v]) => `${k}=${v}`).join(',');
    const pods = await eventually(
      async () => {
        const list = await core.listNamespacedPod({ namespace: ns, labelSelector: selector });
        const running = list.items.filter((p) => p.status?.podIP && p.status.phase === 'Running');
        return running.length === 2 ? running : undefined;
      },
      { timeoutMs: 120_000, what: 'two running operator pods' },
    );
    await eventually(
      async () => {
        const slices = JSON.parse(await kubectl(['get', 'endpointslices', '-l', `kubernetes.io/service-name=${RELEASE}-webhook`, '-o', 'json'])) as {
          items: Array<{ endpoints: Array<{ addresses: string[]; conditions: { ready?: boolean } }> | null; ports: Array<{ port: number }> | null }>;
        };
        const ready = slices.items.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions.ready).flatMap((e) => e.addresses));
        return ready.length === 2 && slices.items.every((s) => s.ports?.[0]?.port === 9443);
      },
      { what: 'both operator pods behind the webhook Service on port 9443' },
    );
    operators = pods.map((p) => startOperator(p.metadata!.name!, p.status!.podIP!));

    // The operators write the Secret and the caBundle; the apiserver loads configurations
    // asynchronously: wait until an invalid object is really refused.
    try {
      await eventually(() => assertValidationAnswers('first call').then(() => true), { timeoutMs: 120_000, intervalMs: 1000, what: 'the validating webhook to answer' });
    } catch (err) {
      for (const o of operators) console.error(`operator ${o.pod} (${o.ip}):\n${o.output.join('')}`);
      throw err;
    }
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') for (const o of operators) console.error(`operator ${o.pod} (${o.ip}):\n${o.output.join('')}`);
  });

  after(async function () {
    this.timeout(60_000);
    await stopOperators();
    // Cluster-scoped: not removed with the namespace. Later tests must not meet them.
    await admission.deleteMutatingWebhookConfiguration({ name: RELEASE }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: RELEASE }).catch(() => undefined);
  });

  it('serves from every replica, with a certificate the caBundle of both configurations trusts', async () => {
    const data = await secretData();
    const mutating = await admission.readMutatingWebhookConfiguration({ name: RELEASE });
    const validating = await admission.readValidatingWebhookConfiguration({ name: RELEASE });
    const bundles = [...(mutating.webhooks ?? []), ...(validating.webhooks ?? [])].map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'));
    assert.equal(bundles.length, 2);
    for (const bundle of bundles) assert.ok(bundle.includes(pem(data, 'ca.crt').trim()), 'caBundle holds the Secret\'s CA');
    const expected = new X509Certificate(pem(data, 'tls.crt'));
    assert.ok(expected.checkHost(serviceHost()));
    for (const o of operators) {
      const fp = await eventually(async () => {
        const served = await servedFingerprint(o.ip, bundles[0]!);
        return served === new X509Certificate(pem(await secretData(), 'tls.crt')).fingerprint256 ? served : undefined;
      }, { what: `replica ${o.pod} to serve the Secret's certificate` });
      assert.ok(fp);
    }
  });

  it('injects the full proxy container into the pods of an opted-in Deployment, and leaves another alone', async () => {
    const ns = env.namespace;
    await kubectl(['apply', '-f', '-'], gatewayDeployment('gw', true) + '---\n' + gatewayDeployment('plain', false));
    const podOf = (app: string) =>
      eventually(async () => (await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` })).items[0], { timeoutMs: 90_000, what: `a pod of ${app}` });
    const gw: V1Pod = await podOf('gw');
    const proxy = gw.spec!.containers.find((c) => c.name === 'portway-proxy')!;
    assert.equal(proxy.image, PROXY_IMAGE, "image auto became the operator's proxy image");
    assert.equal(proxy.imagePullPolicy, 'IfNotPresent', 'the pull policy follows the real image');
    assert.deepEqual(proxy.command, ['portway', 'proxy']);
    assert.deepEqual(proxy.args!.slice(0, 4), ['--namespace', '$(POD_NAMESPACE)', '--labels-file', '/etc/portway/podinfo/labels']);
    assert.deepEqual(proxy.env!.map((e) => e.name), ['POD_NAME', 'POD_NAMESPACE', 'INSTANCE_IP', 'TEAM'], 'downward-API env, then the user\'s');
    assert.deepEqual(proxy.ports!.map((p) => p.containerPort), [15021, 15090, 8080, 8443]);
    assert.equal(proxy.readinessProbe?.httpGet?.port, 15021);
    assert.equal(proxy.readinessProbe?.httpGet?.path, '/healthz/ready');
    assert.equal(proxy.securityContext?.readOnlyRootFilesystem, true);
    assert.deepEqual(proxy.securityContext?.capabilities?.drop, ['ALL']);
    assert.deepEqual(proxy.resources?.requests, { cpu: '250m', memory: '256Mi' }, 'the user\'s resources are kept');
    assert.deepEqual(proxy.volumeMounts!.filter((m) => !m.mountPath.startsWith('/var/run/secrets')).map((m) => m.mountPath), ['/etc/portway/podinfo', '/tmp']);
    const podinfo = gw.spec!.volumes!.find((v) => v.name === 'podinfo');
    assert.equal(podinfo?.downwardAPI?.items?.[0]?.fieldRef?.fieldPath, 'metadata.labels');
    assert.equal(gw.spec!.securityContext?.runAsNonRoot, true);
    assert.equal(gw.spec!.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(gw.metadata!.annotations!['prometheus.io/port'], '15090');
    assert.equal(gw.metadata!.annotations!['prometheus.io/scrape'], 'true');

    const plain: V1Pod = await podOf('plain');
    const untouched = plain.spec!.containers.find((c) => c.name === 'portway-proxy')!;
    assert.equal(untouched.image, 'auto', 'a pod that did not opt in is not touched');
    assert.equal(untouched.args, undefined);
    assert.equal(plain.metadata!.annotations?.['prometheus.io/port'], undefined);
    assert.ok(!plain.spec!.volumes?.some((v) => v.name === 'podinfo'));
    // The Deployments themselves are not mutated: injection happens to their pods.
    const stored = await apps.readNamespacedDeployment({ name: 'gw', namespace: ns });
    assert.equal(stored.spec!.template.spec!.containers[0]!.image, 'auto');
  });

  it('kubectl apply of a VirtualService with an invalid regex fails naming the field; a valid one is created; an update is checked too', async () => {
    const rejected = await kubectl(['apply', '-f', '-'], virtualService('routes', '/api/(v1')).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(rejected instanceof KubectlError, 'the invalid VirtualService was rejected');
    assert.match(rejected.stderr, /admission webhook "validation\.portway\.dev" denied the request: spec\.http\[1\]\.match\[0\]\.uri\.regex: invalid RE2 regex "\/api\/\(v1"/);
    await assert.rejects(kubectl(['get', 'virtualservice', 'routes']), /NotFound|not found/);

    await kubectl(['apply', '-f', '-'], virtualService('routes', '/api/v[0-9]+/.*'));
    const stored = JSON.parse(await kubectl(['get', 'virtualservice', 'routes', '-o', 'json'])) as { spec: { http: Array<{ match: Array<{ uri: { regex?: string } }> }> } };
    assert.equal(stored.spec.http[1]!.match[0]!.uri.regex, '/api/v[0-9]+/.*');

    const update = await kubectl(['apply', '-f', '-'], virtualService('routes', '[z-a]')).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(update instanceof KubectlError, 'the invalid update was rejected');
    assert.match(update.stderr, /spec\.http\[1\]\.match\[0\]\.uri\.regex: invalid RE2 regex "\[z-a\]"/);

    // Other Istio kinds and GatewayDeployments go through the same webhook.
    const dr = await kubectl(['apply', '-f', '-'], stringify({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'mtls' }, spec: { host: 'app', trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } } })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(dr instanceof KubectlError);
    assert.match(dr.stderr, /spec\.trafficPolicy\.tls\.mode: ISTIO_MUTUAL needs mesh identities/);
    const gd = await kubectl(['apply', '-f', '-'], stringify({ apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name: 'gw' }, spec: { volumeMounts: [{ name: 'missing', mountPath: '/data' }] } })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(gd instanceof KubectlError, 'a GatewayDeployment CEL cannot catch is rejected');
    assert.match(gd.stderr, /spec\.volumeMounts\[0\]\.name: no volume named "missing"/);
  });

  it('rotates the serving certificate and the CA (forced short lifetimes) while admission keeps working on every replica', async function () {
    this.timeout(300_000);
    const first = await secretData();
    const servings = new Set([pem(first, 'tls.crt')]);
    const cas = new Set([pem(first, 'ca.crt')]);
    let checks = 0;
    const deadline = Date.now() + 240_000;
    while (servings.size < 3 || cas.size < 2) {
      assert.ok(Date.now() < deadline, `rotations seen in time: ${servings.size} serving certificates, ${cas.size} CAs`);
      await assertValidationAnswers(`check ${++checks}`);
      // Injection has failurePolicy Fail: a dry-run pod is created only if the webhook answered.
      const pod = await core.createNamespacedPod({
        namespace: env.namespace,
        dryRun: 'All',
        body: { metadata: { name: `probe-${checks}`, labels: { 'portway.dev/inject': 'true' }, annotations: { 'inject.portway.dev/templates': 'gateway' } }, spec: { containers: [{ name: 'portway-proxy', image: 'auto' }] } },
      });
      assert.equal(pod.spec!.containers[0]!.image, PROXY_IMAGE, `check ${checks}: injected`);
      const data = await secretData();
      servings.add(pem(data, 'tls.crt'));
      cas.add(pem(data, 'ca.crt'));
      await new Promise((r) => setTimeout(r, 1000));
    }
    // Every replica followed the Secret without a restart.
    const bundle = Buffer.from((await admission.readValidatingWebhookConfiguration({ name: RELEASE })).webhooks![0]!.clientConfig.caBundle!, 'base64').toString('utf8');
    for (const o of operators) {
      await eventually(async () => (await servedFingerprint(o.ip, bundle)) === new X509Certificate(pem(await secretData(), 'tls.crt')).fingerprint256, {
        what: `replica ${o.pod} to serve the current certificate`,
      });
      assert.equal(o.child.exitCode, null, `replica ${o.pod} still runs (not restarted)`);
    }
    assert.ok(checks >= 10, `admission was checked throughout (${checks} times)`);
  });

  it('with every operator replica stopped, unrelated writes still succeed (and opted-in pods wait)', async () => {
    await stopOperators();
    const ns = env.namespace;
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'unrelated' }, data: { a: 'b' } } });
    const plain = await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'unrelated' }, spec: { containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10' }] } } });
    assert.equal(plain.metadata!.name, 'unrelated');
    // Validation is failurePolicy Ignore: Istio writes are not blocked either (the data plane
    // still refuses what it cannot serve).
    await kubectl(['apply', '-f', '-'], virtualService('during-outage', '/v[0-9]+'));
    await kubectl(['apply', '-f', '-'], virtualService('unchecked-during-outage', '/api/(v1'));
    // Injection is failurePolicy Fail: a pod that asked for the proxy is not created without it.
    await assert.rejects(
      core.createNamespacedPod({
        namespace: ns,
        body: { metadata: { name: 'opted-in', labels: { 'portway.dev/inject': 'true' }, annotations: { 'inject.portway.dev/templates': 'gateway' } }, spec: { containers: [{ name: 'portway-proxy', image: 'auto' }] } },
      }),
      /gateway-injection\.portway\.dev/,
    );
  });
});
