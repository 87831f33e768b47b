// The proxy survives Kubernetes faults (issue 5, HARDENING.md "Kubernetes faults"): the
// kube-apiserver stopped under load (keeps serving, stays ready, converges after without a
// restart), a watch whose resourceVersion was compacted away (410 Gone → relist), and invalid
// objects (reported by name and field, counted in portway_config_rejected_objects, the rest
// keeps serving). A real control plane from hack/cluster; one proxy at a kwok gateway pod's IP.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { printLogsIfFailed, type ProxyProcess } from '../../support/proxy-process.js';
import { componentAlive, etcdCompact, etcdGet, etcdPut, etcdRevision, stopApiserver } from '../support/apiserver-control.js';
import { useNamespace } from '../support/cluster.js';
import { applyObjects, applyRenderedGateway, backendDeployment, get, installIstioCrds, service, startGatewayProxies } from '../support/istio-gateway.js';
import { readyEndpoints, servePods, type PodBackends } from '../support/pod-backends.js';
import { eventually } from '../support/wait.js';

const HOST = 'httpbin.example.com';

function httpbinRoutes(prefixes: string[]) {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'httpbin' },
    spec: {
      hosts: [HOST],
      gateways: ['ingress'],
      http: [{ match: prefixes.map((p) => ({ uri: { prefix: p } })), route: [{ destination: { host: 'httpbin', port: { number: 8000 } } }] }],
    },
  };
}

/** VirtualService `broken` on broken.example.com with one uri.regex match. */
function regexRoute(regex: string) {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'broken' },
    spec: {
      hosts: ['broken.example.com'],
      gateways: ['ingress'],
      http: [{ match: [{ uri: { regex } }], route: [{ destination: { host: 'httpbin', port: { number: 8000 } } }] }],
    },
  };
}

/** Keep-alive load: `connections` loops of sequential GETs until stopped; every non-200 or error counts as failed. */
function keepAliveLoad(ip: string, port: number, connections: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let stopped = false;
  let ok = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: connections }, async () => {
    while (!stopped) {
      try {
        const r = await get(ip, port, HOST, '/status/200', {}, agent);
        if (r.status === 200) ok++;
        else failures.push(`status ${r.status}`);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
  });
  return {
    get ok() {
      return ok;
    },
    failures,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

/** Polls /healthz/ready until stopped; records every answer other than 200. */
function readinessWatch(ip: string, statusPort: number) {
  let stopped = false;
  let checks = 0;
  const bad: string[] = [];
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await fetch(`http://${ip}:${statusPort}/healthz/ready`);
        await res.arrayBuffer();
        if (res.status !== 200) bad.push(`status ${res.status}`);
      } catch (e) {
        bad.push((e as Error).message);
      }
      checks++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    bad,
    get checks() {
      return checks;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function rejectedObjectsMetric(ip: string, metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://${ip}:${metricsPort}/stats/prometheus`)).text();
  const m = /^portway_config_rejected_objects (\d+)/m.exec(text);
  assert.ok(m, 'portway_config_rejected_objects is exported');
  return Number(m[1]);
}

describe('e2e: the proxy survives Kubernetes faults', function () {
  this.timeout(240_000);
  const env = useNamespace('resilience');
  const backends: PodBackends[] = [];
  let proxy: ProxyProcess;
  let ip: string;
  const apply = (objects: unknown[]) => applyObjects(env.cluster, env.namespace, objects);
  const status = async (path: string) => (await get(ip, 8080, HOST, path)).status;

  before(async function () {
    this.timeout(300_000);
    if (!env.cluster.stateDir) this.skip(); // the faults need a control plane this run started
    const work = mkdtempSync(join(env.cluster.workDir, 'resilience-'));
    await installIstioCrds(env.cluster);
    await applyRenderedGateway(env, 1);
    await apply([backendDeployment('httpbin', { app: 'httpbin' }, 1), service('httpbin', { app: 'httpbin' }, 8000, 8080)]);
    backends.push(await servePods(env.cluster, env.namespace, 'app=httpbin', 8080, 1));
    await readyEndpoints(env.cluster, env.namespace, 'httpbin', 1);
    await apply([
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name: 'ingress' },
        spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*.example.com'] }] },
      },
      httpbinRoutes(['/status']),
    ]);
    const started = await startGatewayProxies(env, 1, work);
    proxy = started.proxies[0]!;
    ip = started.ips[0]!;
    await eventually(async () => (await status('/status/200')) === 200, { what: 'the httpbin route' });
  });

  afterEach(function () {
    printLogsIfFailed(this, [proxy]);
  });

  after(async () => {
    await proxy?.stop('SIGKILL');
    await Promise.all(backends.map((b) => b.close()));
  });

  it('keeps serving and stays ready while the kube-apiserver is down for 10 s, then applies a change without a restart', async () => {
    const pid = proxy.child.pid;
    const load = keepAliveLoad(ip, 8080, 4);
    const ready = readinessWatch(ip, proxy.statusPort);
    await new Promise((r) => setTimeout(r, 1_000));
    const stopped = await stopApiserver(env.cluster);
    const downAt = Date.now();
    await new Promise((r) => setTimeout(r, 10_000));
    const okWhileDown = load.ok;
    await stopped.start();
    const downFor = Date.now() - downAt;
    await new Promise((r) => setTimeout(r, 1_000));
    await load.stop();
    await ready.stop();
    assert.deepEqual(load.failures.slice(0, 5), [], `${load.failures.length} of ${load.ok + load.failures.length} requests failed`);
    assert.ok(okWhileDown > 100, `requests were flowing during the outage (${okWhileDown})`);
    assert.deepEqual(ready.bad.slice(0, 5), [], `readiness answered other than 200 (${ready.bad.length} of ${ready.checks})`);
    assert.ok(downFor >= 10_000);
    // The rest of the control plane rode it out too (later tests need them).
    for (const c of ['kube-controller-manager', 'kube-scheduler', 'kwok', 'etcd']) assert.ok(componentAlive(env.cluster, c), `${c} is still running`);

    const changedAt = Date.now();
    await apply([httpbinRoutes(['/status', '/anything'])]);
    await eventually(async () => (await status('/anything/after-outage')) === 200, { timeoutMs: 20_000, intervalMs: 50, what: 'the route added after the outage' }).catch((e: Error) => {
      throw new Error(`${e.message}\nproxy log:\n${proxy.stderr.slice(-30).join('\n')}`);
    });
    process.stderr.write(`      (apiserver down ${downFor} ms; ${load.ok} requests, 0 failed; change served ${Date.now() - changedAt} ms after apply)\n`);
    assert.equal(proxy.child.pid, pid);
    assert.equal(proxy.child.exitCode, null, 'the proxy was not restarted');
    assert.match(proxy.stderr.join('\n'), /watch \w+: .*retrying in \d+ ms/, 'the outage was noticed by the watches');
  });

  it('relists after a 410 Gone: history compacted while the watches were away', async () => {
    const key = `/registry/networking.istio.io/virtualservices/${env.namespace}/httpbin`;
    const stored = await etcdGet(env.cluster, key);
    assert.ok(stored, `the VirtualService is in etcd at ${key}`);
    const before = proxy.stderr.length;
    const stopped = await stopApiserver(env.cluster);
    try {
      // Many changes (new etcd revisions), and one the proxy can only learn from a fresh list:
      // the VirtualService edited under the apiserver (custom resources are stored as JSON).
      for (let i = 0; i < 200; i++) await etcdPut(env.cluster, '/registry/portway-e2e/filler', String(i));
      const vs = JSON.parse(stored) as { spec: { http: Array<{ match: Array<{ uri: { prefix: string } }> }> } };
      vs.spec.http[0]!.match.push({ uri: { prefix: '/relisted' } });
      await etcdPut(env.cluster, key, JSON.stringify(vs));
      const rev = await etcdCompact(env.cluster);
      assert.equal(rev, await etcdRevision(env.cluster));
    } finally {
      await stopped.start();
    }
    await eventually(() => proxy.stderr.slice(before).find((l) => /watch VirtualService: 410 Gone .*relisting/.test(l)), { timeoutMs: 60_000, what: 'a 410 Gone on the VirtualService watch' });
    await eventually(async () => (await status('/relisted/x')) === 200, { timeoutMs: 20_000, intervalMs: 50, what: 'the change made while the watch was away' });
    // And the new watch works: a change through the API is served.
    await apply([httpbinRoutes(['/status', '/after-relist'])]);
    await eventually(async () => (await status('/after-relist/x')) === 200, { timeoutMs: 20_000, intervalMs: 50, what: 'a change after the relist' });
    assert.equal(await status('/relisted/x'), 404);
    assert.equal(proxy.child.exitCode, null);
  });

  it('reports an invalid VirtualService by name and field, counts it, and keeps serving the rest', async () => {
    assert.equal(await rejectedObjectsMetric(ip, proxy.metricsPort), 0);
    await apply([regexRoute('/(unclosed')]);
    const line = await proxy.waitForLog(new RegExp(`error: VirtualService ${env.namespace}/broken .*http\\[0\\]\\.match\\[0\\]\\.uri\\.regex`), 20_000);
    assert.match(line, /regex/);
    await eventually(async () => (await rejectedObjectsMetric(ip, proxy.metricsPort)) === 1, { timeoutMs: 10_000, what: 'portway_config_rejected_objects 1' });
    assert.equal(await status('/status/200'), 200, 'the valid VirtualService keeps serving');

    await apply([regexRoute('/(closed)')]);
    await eventually(async () => (await rejectedObjectsMetric(ip, proxy.metricsPort)) === 0, { timeoutMs: 10_000, what: 'portway_config_rejected_objects back to 0' });
    assert.equal((await get(ip, 8080, 'broken.example.com', '/closed')).status, 200);
  });
});
