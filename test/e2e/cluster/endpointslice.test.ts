// Services and EndpointSlices with kwok's loopback pod IPs: a local process bound to a pod's
// IP stands in for that pod and answers at the address the EndpointSlice gives.

import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { useNamespace } from '../support/cluster.js';
import { pauseServiceYaml } from '../support/pause-workload.js';
import { eventually } from '../support/wait.js';

interface Pod {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { nodeName: string };
  status: { phase?: string; podIP?: string };
}
interface EndpointSlice {
  addressType: string;
  endpoints: {
    addresses: string[];
    conditions: { ready?: boolean };
    nodeName?: string;
    zone?: string;
    targetRef?: { kind: string; name: string };
  }[] | null;
  ports: { name?: string; port: number; protocol: string }[] | null;
}

const manifests = pauseServiceYaml('echo', 3, { name: 'http', containerPort: 8080, servicePort: 80 });

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('e2e cluster: Service → EndpointSlice → local process at the pod IP', function () {
  const env = useNamespace('slices');
  const k = (args: string[], input?: string) => env.cluster.kubectl([...args, '-n', env.namespace], { input });
  let server: Server | undefined;
  after(() => server?.close());

  it('the EndpointSlice lists the pods loopback IPs, zones and target port', async function () {
    this.timeout(150_000);
    await k(['apply', '-f', '-'], manifests);
    await k(['rollout', 'status', 'deployment/echo', '--timeout=120s']);
    const pods = (JSON.parse(await k(['get', 'pods', '-l', 'app=echo', '-o', 'json'])) as { items: Pod[] }).items.filter(
      (p) => !p.metadata.deletionTimestamp,
    );
    assert.equal(pods.length, 3);
    const nodeZones = new Map<string, string>();
    for (const n of (JSON.parse(await env.cluster.kubectl(['get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string; labels: Record<string, string> } }[] }).items) {
      nodeZones.set(n.metadata.name, n.metadata.labels['topology.kubernetes.io/zone']);
    }

    const slice = await eventually(
      async () => {
        const list = JSON.parse(await k(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=echo', '-o', 'json'])) as { items: EndpointSlice[] };
        const eps = list.items.flatMap((s) => s.endpoints ?? []);
        return list.items.length === 1 && eps.length === 3 && eps.every((e) => e.conditions.ready) && list.items[0];
      },
      { timeoutMs: 60_000, what: 'an EndpointSlice for service echo with 3 ready endpoints' },
    );
    assert.equal(slice.addressType, 'IPv4');
    assert.deepEqual(slice.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    const byPod = new Map(pods.map((p) => [p.metadata.name, p]));
    for (const e of slice.endpoints!) {
      const pod = byPod.get(e.targetRef?.name ?? '');
      assert.ok(pod && e.targetRef?.kind === 'Pod', `endpoint ${e.addresses[0]} points at one of the pods`);
      assert.deepEqual(e.addresses, [pod.status.podIP]);
      assert.match(e.addresses[0], /^127\./, 'a loopback address');
      assert.equal(e.nodeName, pod.spec.nodeName);
      assert.equal(e.zone, nodeZones.get(pod.spec.nodeName), `zone of ${e.addresses[0]}`);
    }
  });

  it('an HTTP server bound at one endpoint address answers there, and only there', async function () {
    this.timeout(60_000);
    const list = JSON.parse(await k(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=echo', '-o', 'json'])) as { items: EndpointSlice[] };
    const slice = list.items[0];
    const [chosen, other] = slice.endpoints!.map((e) => e.addresses[0]);
    const port = slice.ports![0].port;

    server = createServer((req, res) => res.end(`pod at ${req.socket.localAddress}:${req.socket.localPort}`));
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, chosen, resolve);
    });
    const res = await get(`http://${chosen}:${port}/`);
    assert.equal(res.status, 200);
    assert.equal(res.body, `pod at ${chosen}:${port}`);
    // The other pod's address has no process behind it: the answer above came from the bind.
    await assert.rejects(get(`http://${other}:${port}/`), /ECONNREFUSED/);
  });
});
