// A gateway reads pods as metadata only (issue 13 item 19): its ClusterRole lets it list and
// watch every pod of the cluster, but it needs their labels alone (DestinationRule subsets), so
// it asks the apiserver for PartialObjectMetadata and a pod's spec (env values, commands) never
// reaches it. The proxy runs as the rendered ServiceAccount and talks to the real apiserver
// through a recording relay in the test (plain HTTP on 127.0.0.1 → the apiserver over TLS): the
// relay sees every pods request's Accept header and every byte answered. The backend pods carry
// 100 KB env values holding a marker; the proxy still routes by subset, also to a pod added
// after it started (a watch event), and the marker never crosses the relay.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { METADATA_ONLY_LIST_ACCEPT, METADATA_ONLY_WATCH_ACCEPT } from '../../../kube/list-watch.js';
import { unusedPort } from '../../support/ports.js';
import { printLogsIfFailed, startProxyProcessAt, type ProxyProcess } from '../../support/proxy-process.js';
import { useNamespace } from '../support/cluster.js';
import { applyObjects, applyRenderedGateway, get, ingressGateway, installIstioCrds, service } from '../support/istio-gateway.js';
import { readyEndpoints, runningPods, servePods, type PodBackends } from '../support/pod-backends.js';
import { serviceAccountCredentials } from '../support/service-account.js';
import { eventually } from '../support/wait.js';

/** In every backend pod's spec, never in what the proxy receives. */
const MARKER = 'spec-marker-6f1d0c';
const ENV_VALUE_BYTES = 100 * 1024;

/** A Deployment whose pods carry two 100 KB env values (made of the marker): a heavy spec. */
function heavyDeployment(name: string, labels: Record<string, string>, replicas: number) {
  const value = MARKER.repeat(Math.ceil(ENV_VALUE_BYTES / MARKER.length));
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { containers: [{ name: 'app', image: 'example.invalid/httpbin:1', env: [{ name: 'BIG_A', value }, { name: 'BIG_B', value }] }] },
      },
    },
  };
}

interface PodsExchange {
  path: string;
  watch: boolean;
  accept: string | undefined;
  status: number;
  bytes: number;
  /** The marker appeared in the answer (checked across chunk boundaries). */
  sawMarker: boolean;
}

/**
 * Plain HTTP on 127.0.0.1 relayed to the apiserver over TLS (its CA, the caller's own bearer
 * token passed through), recording every request for pods: its Accept header, and whether the
 * answer, read as it streams (watches included), carried the marker.
 */
async function startRecordingRelay(apiServer: URL, caPem: string | undefined): Promise<{ server: Server; url: string; pods: PodsExchange[]; errors: string[] }> {
  const pods: PodsExchange[] = [];
  const errors: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', apiServer);
    const isPods = /^\/api\/v1\/(namespaces\/[^/]+\/)?pods$/.test(url.pathname);
    const headers = { ...req.headers, host: apiServer.host };
    const upstream = httpsRequest(url, { method: req.method, headers, ca: caPem, agent: false }, (up: IncomingMessage) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      let record: PodsExchange | undefined;
      if (isPods) {
        record = { path: url.pathname, watch: url.searchParams.get('watch') === 'true', accept: req.headers.accept, status: up.statusCode ?? 0, bytes: 0, sawMarker: false };
        pods.push(record);
      }
      let tail = '';
      up.on('data', (chunk: Buffer) => {
        if (record) {
          record.bytes += chunk.length;
          const text = tail + chunk.toString('latin1');
          if (text.includes(MARKER)) record.sawMarker = true;
          tail = text.slice(-MARKER.length);
        }
        res.write(chunk);
      });
      up.on('end', () => res.end());
      up.on('error', () => res.destroy());
    });
    upstream.on('error', (err) => {
      errors.push(`${req.method} ${url.pathname}: ${err.message}`);
      res.destroy();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  const port = await unusedPort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${port}`, pods, errors };
}

describe('e2e: a gateway reads pods as metadata only', function () {
  this.timeout(240_000);
  const env = useNamespace('proxy-podmeta');
  let proxy: ProxyProcess | undefined;
  let relay: Awaited<ReturnType<typeof startRecordingRelay>> | undefined;
  const backends: PodBackends[] = [];

  afterEach(function () {
    printLogsIfFailed(this, [proxy]);
  });

  after(async () => {
    await proxy?.stop('SIGKILL');
    await Promise.all(backends.map((b) => b.close()));
    relay?.server.closeAllConnections();
    relay?.server.close();
  });

  it('lists and watches pods with the PartialObjectMetadata Accept headers, receives no spec, and still routes subsets by pod labels', async () => {
    const ns = env.namespace;
    const work = mkdtempSync(join(env.cluster.workDir, 'podmeta-'));
    await installIstioCrds(env.cluster);
    await applyRenderedGateway(env, 1);
    await applyObjects(env.cluster, ns, [
      heavyDeployment('reviews-v1', { app: 'reviews', version: 'v1' }, 1),
      heavyDeployment('reviews-v2', { app: 'reviews', version: 'v2' }, 1),
      service('reviews', { app: 'reviews' }, 9080, 9080),
      ingressGateway([{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['bookinfo.example.com'] }]),
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'reviews' },
        spec: {
          hosts: ['bookinfo.example.com'],
          gateways: ['ingress'],
          http: ['v1', 'v2'].map((v) => ({ match: [{ uri: { prefix: `/${v}` } }], route: [{ destination: { host: 'reviews', subset: v, port: { number: 9080 } } }] })),
        },
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: 'reviews' },
        spec: { host: 'reviews', subsets: ['v1', 'v2'].map((v) => ({ name: v, labels: { version: v } })) },
      },
    ]);
    backends.push(await servePods(env.cluster, ns, 'app=reviews,version=v1', 9080, 1));
    const v2 = await servePods(env.cluster, ns, 'app=reviews,version=v2', 9080, 1);
    backends.push(v2);
    await readyEndpoints(env.cluster, ns, 'reviews', 2);
    // The spec really is heavy as stored: what a full list would have sent.
    const full = await env.cluster.kubectl(['get', 'pods', '-n', ns, '-l', 'app=reviews', '-o', 'json']);
    assert.ok(full.includes(MARKER) && full.length > 4 * ENV_VALUE_BYTES, `the backend pods carry their env values (${full.length} bytes)`);

    // The proxy, as the rendered ServiceAccount, through the relay.
    const cluster = env.cluster.kc.getCurrentCluster()!;
    const caPem = cluster.caData ? Buffer.from(cluster.caData, 'base64').toString('utf8') : cluster.caFile ? readFileSync(cluster.caFile, 'utf8') : undefined;
    relay = await startRecordingRelay(new URL(cluster.server), caPem);
    const sa = await serviceAccountCredentials(env.cluster, ns, 'istio-ingressgateway');
    const kubeconfig = join(work, 'relay.kubeconfig');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'relay', cluster: { server: relay.url } }],
        users: [{ name: 'gateway', user: { token: sa.token } }],
        contexts: [{ name: 'gateway', context: { cluster: 'relay', user: 'gateway', namespace: ns } }],
        'current-context': 'gateway',
      }),
      { mode: 0o600 },
    );
    const [pod] = await runningPods(env.cluster, ns, 'istio=ingressgateway', 1);
    const labelsFile = join(work, 'labels');
    writeFileSync(labelsFile, Object.entries(pod!.labels).map(([k, v]) => `${k}="${v}"`).join('\n'));
    proxy = await startProxyProcessAt(pod!.ip, ['--labels-file', labelsFile, '--access-log', 'off'], { KUBECONFIG: kubeconfig, POD_NAMESPACE: ns, POD_NAME: pod!.name });

    // Subsets by pod labels, from the list.
    for (const v of ['v1', 'v2']) {
      const r = await eventually(async () => {
        const reply = await get(pod!.ip, 8080, 'bookinfo.example.com', `/${v}/x`);
        return reply.status === 200 ? reply : undefined;
      }, { timeoutMs: 30_000, what: `subset ${v} to be served` });
      assert.match(r.servedBy ?? '', new RegExp(`^reviews-${v}-`));
    }

    // A v2 pod added now reaches the proxy through the watch only, labels and all.
    await env.cluster.kubectl(['scale', 'deployment/reviews-v2', '--replicas=2', '-n', ns]);
    await runningPods(env.cluster, ns, 'app=reviews,version=v2', 2);
    const [added] = await v2.refresh();
    assert.ok(added, 'a backend for the new v2 pod');
    await eventually(
      async () => {
        for (let i = 0; i < 6; i++) {
          const r = await get(pod!.ip, 8080, 'bookinfo.example.com', '/v2/x');
          assert.match(r.servedBy ?? '', /^reviews-v2-/, 'subset v2 reaches v2 pods only');
          if (r.servedBy === added) return true;
        }
        return false;
      },
      { timeoutMs: 60_000, what: `traffic to the new v2 pod ${added}` },
    );

    // What crossed the wire: pods were listed and watched, metadata only, every time.
    const exchanges = relay.pods;
    const lists = exchanges.filter((e) => !e.watch);
    const watches = exchanges.filter((e) => e.watch);
    const summary = JSON.stringify(exchanges, null, 1);
    assert.ok(lists.length >= 1 && lists.every((e) => e.status === 200), `a successful pods list: ${summary}`);
    assert.ok(watches.length >= 1 && watches.every((e) => e.status === 200), `a pods watch: ${summary}`);
    assert.deepEqual(exchanges.filter((e) => e.sawMarker).map((e) => `${e.watch ? 'watch' : 'list'} ${e.path} (${e.bytes} bytes)`), [], 'no pod spec reached the proxy');
    for (const e of lists) assert.equal(e.accept, METADATA_ONLY_LIST_ACCEPT, `list ${e.path}`);
    for (const e of watches) assert.equal(e.accept, METADATA_ONLY_WATCH_ACCEPT, `watch ${e.path}`);
    assert.deepEqual(relay.errors, [], 'the relay reached the apiserver every time');
  });
});
