// The proxy in a cluster (issue 5): two `portway proxy` processes at gateway pod IPs, running
// with the ServiceAccount and RBAC the operator renders, read the seed YAML users apply
// (Gateway selecting istio: ingressgateway, VirtualServices, DestinationRules with subsets)
// from a real kube-apiserver; backends are local processes at the IPs of kwok pods.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { printLogsIfFailed, type ProxyProcess } from '../../support/proxy-process.js';
import { useNamespace } from '../support/cluster.js';
import { applyObjects, applyRenderedGateway, backendDeployment, get, ingressGateway, installIstioCrds, service, startGatewayProxies } from '../support/istio-gateway.js';
import { readyEndpoints, runningPods, servePods, type PodBackends } from '../support/pod-backends.js';
import { eventually } from '../support/wait.js';

/** VirtualService httpbin: httpbin.example.com requests whose path starts with one of `prefixes` go to httpbin:8000. */
function httpbinVirtualService(prefixes: string[]) {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'httpbin' },
    spec: {
      hosts: ['httpbin.example.com'],
      gateways: ['ingress'],
      http: [{ match: prefixes.map((prefix) => ({ uri: { prefix } })), route: [{ destination: { host: 'httpbin', port: { number: 8000 } } }] }],
    },
  };
}

describe('e2e: the proxy reads the Kubernetes API', function () {
  this.timeout(180_000);
  const env = useNamespace('proxy');
  const other = useNamespace('proxy-other');
  const proxies: ProxyProcess[] = [];
  const backends: PodBackends[] = [];
  let gatewayIps: string[] = [];
  let work: string;
  const apply = (objects: unknown[], namespace = env.namespace) => applyObjects(env.cluster, namespace, objects);

  before(async function () {
    this.timeout(300_000);
    const ns = env.namespace;
    work = mkdtempSync(join(env.cluster.workDir, 'proxy-'));
    await installIstioCrds(env.cluster);
    // What the operator renders for a GatewayDeployment, without an owner (no operator runs here).
    await applyRenderedGateway(env, 2);

    await apply([
      backendDeployment('httpbin', { app: 'httpbin' }, 1),
      service('httpbin', { app: 'httpbin' }, 8000, 8080),
      backendDeployment('reviews-v1', { app: 'reviews', version: 'v1' }, 2),
      backendDeployment('reviews-v2', { app: 'reviews', version: 'v2' }, 1),
      backendDeployment('reviews-qa', { app: 'reviews', version: 'qa' }, 1),
      service('reviews', { app: 'reviews' }, 9080, 9080),
    ]);
    backends.push(await servePods(env.cluster, ns, 'app=httpbin', 8080, 1));
    backends.push(await servePods(env.cluster, ns, 'app=reviews,version=v1', 9080, 2));
    backends.push(await servePods(env.cluster, ns, 'app=reviews,version=v2', 9080, 1));
    backends.push(await servePods(env.cluster, ns, 'app=reviews,version=qa', 9080, 1));
    await readyEndpoints(env.cluster, ns, 'httpbin', 1);
    await readyEndpoints(env.cluster, ns, 'reviews', 4);

    await apply([
      ingressGateway([
        { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['httpbin.example.com', 'bookinfo.example.com', `${ns}/restricted.example.com`] },
      ]),
      httpbinVirtualService(['/status', '/delay']),
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'reviews' },
        spec: {
          hosts: ['bookinfo.example.com'],
          gateways: ['ingress'],
          http: [
            { match: [{ headers: { cookie: { regex: '^(.*?;)?(user=dev-123)(;.*)?$' } } }], route: [{ destination: { host: 'reviews', subset: 'qa' } }] },
            { match: [{ uri: { prefix: '/v1only' } }], route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
            {
              match: [{ uri: { prefix: '/reviews' } }],
              route: [
                { destination: { host: 'reviews', subset: 'v1' }, weight: 80 },
                { destination: { host: 'reviews', subset: 'v2' }, weight: 20 },
              ],
            },
          ],
        },
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: 'reviews' },
        spec: {
          host: 'reviews',
          trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } },
          subsets: ['v1', 'v2', 'qa'].map((v) => ({ name: v, labels: { version: v } })),
        },
      },
    ]);

    // Two proxies, each at a gateway pod's IP, as the ServiceAccount the operator creates.
    const started = await startGatewayProxies(env, 2, work);
    proxies.push(...started.proxies);
    gatewayIps = started.ips;
  });

  afterEach(function () {
    printLogsIfFailed(this, proxies);
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.stop('SIGKILL')));
    await Promise.all(backends.map((b) => b.close()));
  });

  it('routes httpbin /status and /delay, answers 404 for other paths, on every proxy', async () => {
    for (const ip of gatewayIps) {
      const ok = await get(ip, 8080, 'httpbin.example.com', '/status/200');
      assert.equal(ok.status, 200);
      assert.match(ok.servedBy ?? '', /^httpbin-/);
      assert.equal((await get(ip, 8080, 'httpbin.example.com', '/status/418')).status, 418);
      assert.equal((await get(ip, 8080, 'httpbin.example.com', '/delay/1')).status, 200);
      assert.equal((await get(ip, 8080, 'httpbin.example.com', '/headers')).status, 404);
    }
  });

  it('sends cookie user=dev-123 to qa and splits /reviews 80/20', async () => {
    const ip = gatewayIps[0]!;
    const qa = await get(ip, 8080, 'bookinfo.example.com', '/reviews/1', { cookie: 'user=dev-123' });
    assert.match(qa.servedBy ?? '', /^reviews-qa-/);
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    let v1 = 0;
    let v2 = 0;
    const total = 2000;
    for (let i = 0; i < total; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => get(ip, 8080, 'bookinfo.example.com', '/reviews/1', {}, agent)));
      for (const r of batch) {
        assert.equal(r.status, 200);
        if (r.servedBy?.startsWith('reviews-v1-')) v1++;
        else if (r.servedBy?.startsWith('reviews-v2-')) v2++;
        else assert.fail(`unexpected backend ${r.servedBy}`);
      }
    }
    agent.destroy();
    const share = v1 / total;
    assert.ok(share > 0.75 && share < 0.85, `v1 got ${(share * 100).toFixed(1)}% (v2 ${v2})`);
  });

  it('subset v1 reaches only v1 pods, and a scaled-up v1 pod gets traffic', async () => {
    const ip = gatewayIps[0]!;
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = await get(ip, 8080, 'bookinfo.example.com', '/v1only/x');
      assert.match(r.servedBy ?? '', /^reviews-v1-/);
      seen.add(r.servedBy!);
    }
    assert.equal(seen.size, 2, 'both v1 pods serve (round robin)');
    await env.cluster.kubectl(['scale', 'deployment/reviews-v1', '--replicas=3', '-n', env.namespace]);
    const v1 = backends[1]!;
    await eventually(async () => (await runningPods(env.cluster, env.namespace, 'app=reviews,version=v1')).length === 3, { what: 'a third v1 pod' });
    const [added] = await v1.refresh();
    assert.ok(added, 'a new pod backend started');
    await eventually(
      async () => {
        for (let i = 0; i < 6; i++) if ((await get(ip, 8080, 'bookinfo.example.com', '/v1only/x')).servedBy === added) return true;
        return false;
      },
      { timeoutMs: 30_000, what: `traffic to the new pod ${added}` },
    );
  });

  it('applies a VirtualService change within seconds: removing the /status match makes /status 404', async () => {
    const started = Date.now();
    await apply([httpbinVirtualService(['/delay'])]);
    for (const ip of gatewayIps) {
      await eventually(async () => (await get(ip, 8080, 'httpbin.example.com', '/status/200')).status === 404, { timeoutMs: 10_000, intervalMs: 20, what: '/status to become 404' });
    }
    const took = Date.now() - started;
    assert.ok(took < 10_000, `took ${took} ms`);
    assert.equal((await get(gatewayIps[0]!, 8080, 'httpbin.example.com', '/delay/0')).status, 200);
  });

  it('does not bind a VirtualService from a namespace the server host excludes', async () => {
    const vs = (name: string) => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name },
      spec: {
        hosts: ['restricted.example.com'],
        gateways: [`${env.namespace}/ingress`],
        http: [{ match: [{ uri: { prefix: `/${name}` } }], route: [{ destination: { host: `httpbin.${env.namespace}.svc.cluster.local`, port: { number: 8000 } } }] }],
      },
    });
    await apply([vs('outsider')], other.namespace);
    await apply([vs('insider')]);
    const ip = gatewayIps[0]!;
    await eventually(async () => (await get(ip, 8080, 'restricted.example.com', '/insider/status/200')).status === 200, { timeoutMs: 10_000, what: 'the same-namespace VirtualService to bind' });
    assert.equal((await get(ip, 8080, 'restricted.example.com', '/outsider/status/200')).status, 404);
  });

  it('keeps only VirtualServices that can bind, and brings them in when a Gateway starts selecting the proxy', async () => {
    const ip = gatewayIps[0]!;
    await apply([
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name: 'later' },
        spec: { selector: { istio: 'not-this-proxy' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['later.example.com'] }] },
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'later' },
        spec: { hosts: ['later.example.com'], gateways: ['later'], http: [{ route: [{ destination: { host: 'httpbin', port: { number: 8000 } } }] }] },
      },
    ]);
    // Not for this proxy: not served (the store does not even keep it, see BindableGateways).
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal((await get(ip, 8080, 'later.example.com', '/status/200')).status, 404);
    // The Gateway now selects this proxy: the VirtualService is listed again and served.
    await apply([
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name: 'later' },
        spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['later.example.com'] }] },
      },
    ]);
    for (const gip of gatewayIps) {
      await eventually(async () => (await get(gip, 8080, 'later.example.com', '/status/200')).status === 200, { timeoutMs: 15_000, intervalMs: 50, what: 'the VirtualService of the newly selecting Gateway' });
    }
  });

  it('serves readiness on each pod IP and exposes the served configuration', async () => {
    for (const p of proxies) {
      const dump = await (await fetch(`http://127.0.0.1:${p.adminPort}/config_dump?resource=clusters`)).json() as { clusters?: Array<{ name: string; endpoints: unknown[] }> };
      const names = (dump.clusters ?? []).map((c) => c.name);
      assert.ok(names.some((n) => n.includes('|v1|reviews.')), `clusters: ${names.join(', ')}`);
      // Only what this gateway's routes reach: no cluster for services no route names.
      assert.ok(!names.some((n) => n.includes('kubernetes.default')), 'unrelated services are not translated');
    }
  });
});
