// The user's journey on the local cluster's real node, through the LoadBalancer address only:
// helm install → GatewayDeployment → echo-basic backend → Istio Gateway/VirtualService → 200
// through the LB address → HTTPS from a `kubectl create secret tls` Secret → the Secret
// replaced and the new certificate served → `kubectl rollout restart` under steady load with no
// failed request → `kubectl scale gatewaydeployment --replicas=3`, every replica serving → CPU
// load drives the HPA up → `kubectl logs` shows the access log → `helm test` → `helm uninstall`
// and a second `helm install`.
//
// Every pod here runs from an image on the real node: the operator and the gateways from the
// image hack/image/build.sh makes from the Dockerfile, the backend from the Gateway API
// conformance echo-basic image. Steps depend on the ones before them (one `it` each, in order).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from '../../support/repo-root.js';
import { newCa, serverCert, type TestCa } from '../../support/certs.js';
import { useNamespace } from '../support/cluster.js';
import { runCommand } from '../support/run.js';
import { eventually } from '../support/wait.js';

const GATEWAY = 'istio-ingressgateway';
const ECHO_IMAGE = 'registry.k8s.io/gateway-api/echo-basic:v1.5.1';
const HOST = 'echo.example.com';

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** GET http://<ip>:<port><path> with Host: echo.example.com (port 80: the LB address; 8080: a gateway pod itself). */
function httpGet(ip: string, path: string, agent?: Agent, port = 80): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: ip, port, path, headers: { host: HOST }, agent: agent ?? false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/** GET https://echo.example.com/ at <lb>:443 (SNI echo.example.com, verified against `ca`); returns the served leaf. */
function httpsGet(ip: string, ca: TestCa): Promise<{ status: number; cert: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: ip, port: 443, servername: HOST, path: '/', headers: { host: HOST }, ca: ca.cert, agent: false, timeout: 10_000 }, (res) => {
      const peer = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate();
      res.resume();
      res.on('end', () => (peer ? resolve({ status: res.statusCode ?? 0, cert: peer }) : reject(new Error('no peer certificate'))));
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Steady keep-alive load through the LB address: `connections` loops, each sending one request
 * after another, until stop(). Every request that does not end in a 200 is a failure.
 */
function steadyLoad(ip: string, connections: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const failures: Array<{ at: number; what: string }> = [];
  let ok = 0;
  let running = true;
  const t0 = Date.now();
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      try {
        const r = await httpGet(ip, '/load', agent);
        if (r.status === 200) ok++;
        else failures.push({ at: Date.now() - t0, what: `status ${r.status}: ${r.body.slice(0, 120)}` });
      } catch (e) {
        failures.push({ at: Date.now() - t0, what: (e as Error).message });
      }
    }
  });
  return {
    get ok() {
      return ok;
    },
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

describe('the user journey on the real node (helm install → gateway → curl through the LoadBalancer)', function () {
  this.timeout(10 * 60_000);
  let helm: (args: string[]) => Promise<string>;
  // Registered before useNamespace's hooks, so it runs before the namespace is deleted: the
  // operator must still be there to remove its GatewayDeployment finalizers.
  after(async function () {
    this.timeout(300_000);
    if (!env.namespace) return;
    await kubectl(['delete', 'gatewaydeployments', '--all', '--wait=true', '--timeout=120s']).catch(() => undefined);
    // Leave the cluster-scoped parts of the release (webhooks, ClusterRoles) to no later test.
    await helm(['uninstall', 'portway', '--wait', '--timeout', '3m']).catch(() => undefined);
  });
  const env = useNamespace('journey', { node: 'real' });
  let lbIp = '';
  const ca = newCa('Journey CA');
  const chart = join(repoRoot(), 'charts', 'portway');
  const kubectl = (args: string[], input?: string) => env.cluster.kubectl(['-n', env.namespace, ...args], { input, timeoutMs: 300_000 });
  const apply = (objects: unknown[]) => kubectl(['apply', '-f', '-'], objects.map((o) => stringify(o)).join('---\n'));
  let failedAlready = false;

  beforeEach(function () {
    if (failedAlready) this.skip();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failedAlready = true;
  });
  before(() => {
    helm = (args) =>
      runCommand(env.cluster.bin.helm!, [...args, '--namespace', env.namespace], {
        env: { KUBECONFIG: env.cluster.kubeconfigPath, HELM_CACHE_HOME: join(env.cluster.workDir, 'helm-cache'), HELM_CONFIG_HOME: join(env.cluster.workDir, 'helm-config') },
        timeoutMs: 400_000,
      });
  });
  it('helm install: the operator runs as real pods and becomes Ready, its webhooks answer', async () => {
    await helm(['install', 'portway', chart, '--wait', '--timeout', '5m']);
    const pods = JSON.parse(await kubectl(['get', 'pods', '-l', 'app.kubernetes.io/component=operator', '-o', 'json'])) as { items: any[] };
    assert.ok(pods.items.length >= 1, 'operator pods exist');
    for (const p of pods.items) {
      assert.equal(p.spec.nodeName, env.cluster.realNode!.name, `${p.metadata.name} runs on the real node`);
      assert.ok(p.status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'True'), `${p.metadata.name} is Ready`);
    }
    // The validation webhook (the data plane's own translator) answers: a Gateway server with no
    // hosts is refused with the field named. (Its failurePolicy is Ignore, so an unreachable
    // webhook would let this through.)
    await eventually(
      async () => {
        const bad = { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'bad' }, spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: [] }] } };
        try {
          await apply([bad]);
        } catch (e) {
          return /denied|hosts/i.test((e as Error).message);
        }
        await kubectl(['delete', 'gateway.networking.istio.io', 'bad', '--ignore-not-found']);
        return false;
      },
      { timeoutMs: 120_000, intervalMs: 2_000, what: 'the validation webhook to refuse a Gateway server without hosts' },
    );
  });

  it('a GatewayDeployment gets gateway pods from the Portway image and a LoadBalancer address', async () => {
    await apply([{ apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name: GATEWAY }, spec: { mode: 'ingress' } }]);
    await kubectl(['wait', '--for=condition=Ready', `gatewaydeployment/${GATEWAY}`, '--timeout=180s']);
    lbIp = await eventually(
      async () => (await kubectl(['get', 'service', GATEWAY, '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).trim() || undefined,
      { timeoutMs: 60_000, what: `an address in service ${GATEWAY}'s status.loadBalancer` },
    );
    const svc = JSON.parse(await kubectl(['get', 'service', GATEWAY, '-o', 'json']));
    assert.equal(svc.spec.type, 'LoadBalancer');
    assert.equal(svc.spec.externalTrafficPolicy, 'Local');
    const pod = JSON.parse(await kubectl(['get', 'pods', '-l', 'istio=ingressgateway', '-o', 'json'])).items[0];
    assert.equal(pod.spec.nodeName, env.cluster.realNode!.name);
    assert.match(pod.status.containerStatuses[0].imageID, /sha256:/, 'the gateway container runs from an image');
  });

  it('Istio Gateway + VirtualService to an echo-basic backend: 200 through the LoadBalancer address', async () => {
    await apply([
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'echo' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'echo' } },
          template: {
            metadata: { labels: { app: 'echo' } },
            spec: {
              containers: [
                {
                  name: 'echo',
                  image: ECHO_IMAGE,
                  env: [
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                    { name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                  ],
                  ports: [{ containerPort: 3000 }],
                  readinessProbe: { httpGet: { path: '/', port: 3000 } },
                },
              ],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo' }, spec: { selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, targetPort: 3000 }] } },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name: 'ingress' },
        spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: [HOST] }] },
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'echo' },
        spec: { hosts: [HOST], gateways: ['ingress'], http: [{ route: [{ destination: { host: 'echo', port: { number: 80 } } }] }] },
      },
    ]);
    await kubectl(['rollout', 'status', 'deployment/echo', '--timeout=180s']);
    const r = await eventually(
      async () => {
        const r = await httpGet(lbIp, '/hello');
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `200 from http://${lbIp}/hello (Host ${HOST})` },
    );
    const echoed = JSON.parse(r.body) as { path: string; namespace: string; pod: string; headers: Record<string, string[]> };
    assert.equal(echoed.path, '/hello');
    assert.equal(echoed.namespace, env.namespace);
    assert.match(echoed.pod, /^echo-/);
  });

  it('a gateway deployed by injection (the seed\'s way: a plain Deployment opted in by label and annotation) runs the proxy and serves', async () => {
    const name = 'injected-gw';
    const labels = { app: name, istio: 'injected-gateway', 'portway.dev/inject': 'true' };
    await apply([
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } },
      // The RBAC of a gateway (what the operator grants its own gateways).
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: `${env.namespace}-${name}` }, rules: [
        { apiGroups: ['networking.istio.io'], resources: ['gateways', 'virtualservices', 'destinationrules', 'serviceentries'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['services', 'pods'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      ] },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: `${env.namespace}-${name}` }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${env.namespace}-${name}` }, subjects: [{ kind: 'ServiceAccount', name, namespace: env.namespace }] },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name }, rules: [{ apiGroups: [''], resources: ['secrets', 'configmaps'], verbs: ['get', 'list', 'watch'] }] },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace: env.namespace }] },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name },
        spec: {
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels, annotations: { 'inject.portway.dev/templates': 'gateway' } },
            spec: { serviceAccountName: name, containers: [{ name: 'portway-proxy', image: 'auto' }] },
          },
        },
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name: 'injected' },
        spec: { selector: { istio: 'injected-gateway' }, servers: [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: [HOST] }] },
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'echo-injected' },
        spec: { hosts: [HOST], gateways: ['injected'], http: [{ route: [{ destination: { host: 'echo', port: { number: 80 } } }] }] },
      },
    ]);
    await kubectl(['rollout', 'status', `deployment/${name}`, '--timeout=180s']);
    const pod = JSON.parse(await kubectl(['get', 'pods', '-l', `app=${name}`, '-o', 'json'])).items[0];
    assert.equal(pod.spec.containers[0].image, 'ghcr.io/portway/portway:0.1.0', 'the webhook filled in the proxy image');
    assert.equal(pod.spec.nodeName, env.cluster.realNode!.name);
    const r = await eventually(
      async () => {
        const r = await httpGet(pod.status.podIP, '/injected', undefined, 8080);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `200 from the injected gateway at ${pod.status.podIP}:8080` },
    );
    assert.equal((JSON.parse(r.body) as { path: string }).path, '/injected');
    await kubectl(['delete', `deployment/${name}`, 'gateway.networking.istio.io/injected', 'virtualservice.networking.istio.io/echo-injected', `role/${name}`, `rolebinding/${name}`, `serviceaccount/${name}`, '--wait=true']);
    await env.cluster.kubectl(['delete', `clusterrole/${env.namespace}-${name}`, `clusterrolebinding/${env.namespace}-${name}`]);
  });

  it('externalTrafficPolicy: Local as in a cloud: a client outside the node keeps its address; the health-check node port says where endpoints are', async () => {
    // The outside client is the network namespace hack/cluster/node-up.sh makes (pw-client,
    // routed through this machine like the internet to a cloud load balancer).
    const out = await runCommand('ip', ['netns', 'exec', 'pw-client', 'curl', '-sS', '--max-time', '10', '-H', `host: ${HOST}`, `http://${lbIp}/from-outside`]);
    const echoed = JSON.parse(out) as { headers: Record<string, string[]> };
    const xff = echoed.headers['X-Forwarded-For'] ?? echoed.headers['x-forwarded-for'];
    const clientIp = (await runCommand('ip', ['-n', 'pw-client', '-j', '-4', 'addr', 'show', 'dev', 'eth0'])).match(/"local":"([\d.]+)"/)![1];
    assert.deepEqual(xff, [clientIp], 'the backend sees the outside client\'s own address in X-Forwarded-For');
    // kube-proxy answers the health-check node port on the node address: 200 and the count of
    // local endpoints for the gateway, 503 for a LoadBalancer Service with none here.
    const node = env.cluster.realNode!.ip;
    const health = async (svc: string) => {
      const port = (await kubectl(['get', 'service', svc, '-o', 'jsonpath={.spec.healthCheckNodePort}'])).trim();
      const res = await fetch(`http://${node}:${port}/healthz`);
      return { status: res.status, body: (await res.json()) as { localEndpoints: number } };
    };
    const gw = await health(GATEWAY);
    assert.equal(gw.status, 200);
    assert.equal(gw.body.localEndpoints, 1);
    await apply([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'nobody-home' }, spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', selector: { app: 'nobody-home' }, ports: [{ name: 'http', port: 80 }] } }]);
    const empty = await eventually(async () => {
      const h = await health('nobody-home');
      return h.status === 503 ? h : undefined;
    }, { timeoutMs: 30_000, what: 'health-check node port of a Service without local endpoints to answer 503' });
    assert.equal(empty.body.localEndpoints, 0);
    await kubectl(['delete', 'service', 'nobody-home']);
  });

  let servedV1 = '';
  it('HTTPS from a `kubectl create secret tls` Secret', async () => {
    const dir = mkdtempSync(join(env.cluster.workDir, 'journey-tls-'));
    const v1 = serverCert({ dnsNames: [HOST], commonName: 'journey-v1', ca });
    writeFileSync(join(dir, 'tls.crt'), v1.chain);
    writeFileSync(join(dir, 'tls.key'), v1.key);
    await kubectl(['create', 'secret', 'tls', 'echo-cert', `--cert=${join(dir, 'tls.crt')}`, `--key=${join(dir, 'tls.key')}`]);
    await apply([
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name: 'ingress' },
        spec: {
          selector: { istio: 'ingressgateway' },
          servers: [
            { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: [HOST] },
            { port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: [HOST], tls: { mode: 'SIMPLE', credentialName: 'echo-cert' } },
          ],
        },
      },
    ]);
    const served = await eventually(
      async () => {
        const r = await httpsGet(lbIp, ca);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `200 from https://${HOST} at ${lbIp}:443` },
    );
    assert.equal(served.cert.serialNumber.toLowerCase(), v1.serial.toLowerCase());
    servedV1 = served.cert.serialNumber;
  });

  it('the Secret replaced: the new certificate is served without a restart', async () => {
    const dir = mkdtempSync(join(env.cluster.workDir, 'journey-tls-'));
    const v2 = serverCert({ dnsNames: [HOST], commonName: 'journey-v2', ca });
    writeFileSync(join(dir, 'tls.crt'), v2.chain);
    writeFileSync(join(dir, 'tls.key'), v2.key);
    const podsBefore = (await kubectl(['get', 'pods', '-l', 'istio=ingressgateway', '-o', 'jsonpath={.items[*].metadata.uid}'])).trim();
    const secret = await kubectl(['create', 'secret', 'tls', 'echo-cert', `--cert=${join(dir, 'tls.crt')}`, `--key=${join(dir, 'tls.key')}`, '--dry-run=client', '-o', 'yaml']);
    const t0 = Date.now();
    await kubectl(['apply', '-f', '-'], secret);
    const served = await eventually(
      async () => {
        const r = await httpsGet(lbIp, ca);
        return r.cert.serialNumber !== servedV1 ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50, what: 'the replaced certificate to be served' },
    );
    const ms = Date.now() - t0;
    process.stderr.write(`[journey] new certificate served ${ms} ms after kubectl apply of the Secret\n`);
    assert.equal(served.cert.serialNumber.toLowerCase(), v2.serial.toLowerCase());
    assert.equal((await kubectl(['get', 'pods', '-l', 'istio=ingressgateway', '-o', 'jsonpath={.items[*].metadata.uid}'])).trim(), podsBefore, 'no gateway pod was restarted');
  });

  it('`kubectl rollout restart` of the gateway under steady load: no failed request', async () => {
    // The old pod's log, followed through its drain: printed if a request fails.
    const oldPod = (await kubectl(['get', 'pods', '-l', 'istio=ingressgateway', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
    const follow = spawn(env.cluster.bin.kubectl!, ['-n', env.namespace, 'logs', '-f', '--timestamps', oldPod], { env: { ...process.env, KUBECONFIG: env.cluster.kubeconfigPath } });
    let oldLog = '';
    follow.stdout.setEncoding('utf8').on('data', (d: string) => (oldLog += d));
    const load = steadyLoad(lbIp, 8);
    const t0 = Date.now();
    let restartAt = 0;
    try {
      await eventually(() => load.ok > 200, { timeoutMs: 60_000, what: 'the load to be flowing' });
      const before = load.ok;
      restartAt = Date.now() - t0;
      await kubectl(['rollout', 'restart', `deployment/${GATEWAY}`]);
      await kubectl(['rollout', 'status', `deployment/${GATEWAY}`, '--timeout=240s']);
      // Keep the load on until the old pods have gone (their drain window, then exit).
      await eventually(
        async () => JSON.parse(await kubectl(['get', 'pods', '-l', 'istio=ingressgateway', '-o', 'json'])).items.length === 1,
        { timeoutMs: 120_000, intervalMs: 500, what: 'the old gateway pod to be gone' },
      );
      await new Promise((r) => setTimeout(r, 2_000));
      process.stderr.write(`[journey] rollout restart under load: ${load.ok - before} requests during the rollout, ${load.failures.length} failed\n`);
    } finally {
      await load.stop();
      follow.kill();
    }
    if (load.failures.length > 0) {
      const lines = oldLog.split('\n');
      const drainAt = lines.findIndex((l) => l.includes('draining for'));
      const servedInDrain = drainAt < 0 ? [] : lines.slice(drainAt).filter((l) => l.includes('"GET /load'));
      process.stderr.write(
        `[journey] load started ${new Date(t0).toISOString()}, rollout restart at +${restartAt} ms; the old pod ${oldPod} logged (requests for /load left out: ${servedInDrain.length} served after the drain began, the last: ${servedInDrain.at(-1) ?? 'none'}):\n` +
          `${lines.filter((l) => !l.includes('"GET /load')).slice(-12).join('\n')}\n`,
      );
      for (const pod of JSON.parse(await kubectl(['get', 'pods', '-l', 'istio=ingressgateway', '-o', 'json'])).items as any[]) {
        const log = (await kubectl(['logs', '--timestamps', pod.metadata.name]).catch((e) => String(e))).split('\n');
        process.stderr.write(`[journey] the new pod ${pod.metadata.name} logged (first 4 /load lines, then the rest without them):\n${log.filter((l) => l.includes('"GET /load')).slice(0, 4).join('\n')}\n${log.filter((l) => !l.includes('"GET /load')).slice(-15).join('\n')}\n`);
      }
    }
    assert.deepEqual(load.failures.slice(0, 20), [], `${load.failures.length} failed requests during the rollout`);
  });

  it('`kubectl scale gatewaydeployment --replicas=3`: every replica serves', async () => {
    await kubectl(['scale', `gatewaydeployment/${GATEWAY}`, '--replicas=3']);
    const pods = await eventually(
      async () => {
        const list = JSON.parse(await kubectl(['get', 'pods', '-l', 'istio=ingressgateway', '-o', 'json'])).items as any[];
        const ready = list.filter((p) => !p.metadata.deletionTimestamp && p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'));
        return ready.length === 3 ? ready : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1_000, what: '3 Ready gateway pods' },
    );
    // Each replica answers by itself (at its pod IP, on the port the Service targets).
    for (const p of pods) {
      const r = await httpGet(p.status.podIP, '/replica', undefined, 8080);
      assert.equal(r.status, 200, `${p.metadata.name} (${p.status.podIP}) serves`);
    }
    const gd = JSON.parse(await kubectl(['get', `gatewaydeployment/${GATEWAY}`, '-o', 'json']));
    assert.equal(gd.status.readyReplicas, 3);
  });

  it('CPU load through the LoadBalancer drives the HorizontalPodAutoscaler up', async () => {
    await kubectl(['patch', `gatewaydeployment/${GATEWAY}`, '--type=merge', '-p', JSON.stringify({ spec: { replicas: null, autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 4, targetCPUUtilizationPercentage: 20 }, resources: { requests: { cpu: '20m', memory: '64Mi' } } } })]);
    await eventually(async () => (await kubectl(['get', 'hpa', GATEWAY, '-o', 'name'])).includes(GATEWAY), { timeoutMs: 60_000, what: `HPA ${GATEWAY}` });
    const load = steadyLoad(lbIp, 16);
    try {
      const hpa = await eventually(
        async () => {
          const h = JSON.parse(await kubectl(['get', 'hpa', GATEWAY, '-o', 'json']));
          return (h.status?.desiredReplicas ?? 0) > 3 ? h : undefined;
        },
        { timeoutMs: 240_000, intervalMs: 2_000, what: 'the HPA to want more than 3 replicas under CPU load' },
      );
      const cpu = hpa.status.currentMetrics?.find((m: any) => m.type === 'Resource' && m.resource?.name === 'cpu');
      process.stderr.write(`[journey] HPA desired ${hpa.status.desiredReplicas} replicas at ${cpu?.resource?.current?.averageUtilization}% CPU (requests ok ${load.ok}, failed ${load.failures.length}${load.failures.length ? `: ${[...new Set(load.failures.map((f) => f.what))].slice(0, 5).join('; ')}` : ''})\n`);
      assert.ok(cpu?.resource?.current?.averageUtilization > 20, 'utilization measured by metrics-server is above target');
      await eventually(
        async () => Number((await kubectl(['get', `deployment/${GATEWAY}`, '-o', 'jsonpath={.spec.replicas}'])).trim()) > 3,
        { timeoutMs: 60_000, what: 'the Deployment scaled beyond 3 by the HPA' },
      );
    } finally {
      await load.stop();
    }
  });

  it('`kubectl logs` shows the gateway access log', async () => {
    const path = `/journey-access-log-${Date.now()}`;
    for (let i = 0; i < 8; i++) assert.equal((await httpGet(lbIp, path)).status, 200);
    const logs = await eventually(
      async () => {
        const out = await kubectl(['logs', '-l', 'istio=ingressgateway', '--tail=-1', '--max-log-requests=10']);
        return out.includes(path) ? out : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 1_000, what: `an access-log line for ${path}` },
    );
    const line = logs.split('\n').find((l) => l.includes(path))!;
    assert.match(line, /GET/);
    assert.match(line, / 200 /);
  });

  it('`helm test` passes', async () => {
    const out = await helm(['test', 'portway', '--timeout', '3m']);
    assert.match(out, /Phase:\s+Succeeded/);
  });

  it('`helm uninstall` and a second `helm install` work', async () => {
    await kubectl(['delete', `gatewaydeployment/${GATEWAY}`, '--wait=true', '--timeout=120s']);
    await helm(['uninstall', 'portway', '--wait', '--timeout', '3m']);
    await eventually(async () => (await kubectl(['get', 'pods', '-l', 'app.kubernetes.io/component=operator', '-o', 'name'])).trim() === '', {
      timeoutMs: 120_000,
      what: 'the operator pods to be gone',
    });
    await helm(['install', 'portway', chart, '--wait', '--timeout', '5m']);
    await apply([{ apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name: GATEWAY }, spec: { mode: 'ingress' } }]);
    await kubectl(['wait', '--for=condition=Ready', `gatewaydeployment/${GATEWAY}`, '--timeout=180s']);
    const ip = await eventually(
      async () => (await kubectl(['get', 'service', GATEWAY, '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).trim() || undefined,
      { timeoutMs: 60_000, what: 'a LoadBalancer address after the reinstall' },
    );
    await eventually(async () => (await httpGet(ip, '/again')).status === 200, { timeoutMs: 60_000, intervalMs: 500, what: 'a 200 after the reinstall' });
  });
});
