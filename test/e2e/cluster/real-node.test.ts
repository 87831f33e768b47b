// The real node of the local cluster (hack/cluster/node-up.sh): pods from local images run on it,
// reach the apiserver and cluster DNS, `kubectl logs` and `exec` work, kwok namespaces keep
// their pods off it, and a second cluster cannot take the machine's one real node.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { clusterDir, useNamespace } from '../support/cluster.js';
import { runCommand } from '../support/run.js';
import { unusedPorts } from '../../support/ports.js';
import { eventually } from '../support/wait.js';

const PORTWAY_IMAGE = 'ghcr.io/portway/portway:0.1.0';

describe('the real node', function () {
  this.timeout(5 * 60_000);
  const env = useNamespace('real-node', { node: 'real' });
  const kwokEnv = useNamespace('real-node-kwok');
  const kubectl = (args: string[], input?: string) => env.cluster.kubectl(['-n', env.namespace, ...args], { input, timeoutMs: 180_000 });

  it('runs a pod from a local image that resolves cluster DNS and calls the apiserver through the kubernetes Service', async () => {
    // The Portway image's own node: DNS lookup of the kubernetes Service, then an HTTPS call to
    // it with the pod's ServiceAccount token (agent: false: Node 24's global agent keeps the
    // connection, and so the process, alive until the apiserver's idle timeout, 90 s) (a 403 for /api/v1/nodes proves the apiserver
    // authenticated the pod; a 401 or a connection error would not).
    const script = `
      const dns = require('node:dns').promises;
      const fs = require('node:fs');
      (async () => {
        const { address } = await dns.lookup('kubernetes.default.svc.cluster.local');
        const token = fs.readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/token', 'utf8');
        const ca = fs.readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
        const res = await new Promise((resolve, reject) => require('node:https').get({ host: 'kubernetes.default.svc', path: '/api/v1/nodes', ca, agent: false, headers: { authorization: 'Bearer ' + token } }, resolve).on('error', reject));
        console.log(JSON.stringify({ address, status: res.statusCode }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe' },
      spec: {
        restartPolicy: 'Never',
        securityContext: { runAsNonRoot: true, runAsUser: 1337 },
        containers: [{ name: 'probe', image: PORTWAY_IMAGE, imagePullPolicy: 'Never', command: ['node', '-e', script] }],
      },
    };
    await kubectl(['apply', '-f', '-'], stringify(pod));
    await eventually(async () => (await kubectl(['get', 'pod', 'probe', '-o', 'jsonpath={.status.phase}'])).trim() === 'Succeeded', {
      timeoutMs: 120_000,
      intervalMs: 1_000,
      what: 'the probe pod to succeed',
    });
    const out = JSON.parse((await kubectl(['logs', 'probe'])).trim()) as { address: string; status: number };
    assert.equal(out.address, '10.96.0.1', 'kubernetes.default resolves to the Service address');
    assert.equal(out.status, 403, 'the apiserver authenticated the pod and refused what its RBAC does not allow');
    const p = JSON.parse(await kubectl(['get', 'pod', 'probe', '-o', 'json']));
    assert.equal(p.spec.nodeName, env.cluster.realNode!.name);
    assert.match(p.status.podIP, /^10\.213\.1\./);
  });

  it('kubectl exec reaches a running container through the kubelet', async () => {
    await kubectl(['run', 'sleeper', `--image=${PORTWAY_IMAGE}`, '--image-pull-policy=Never', '--restart=Never', '--command', '--', 'node', '-e', 'setInterval(() => {}, 1000)']);
    await kubectl(['wait', '--for=condition=Ready', 'pod/sleeper', '--timeout=120s']);
    const out = await kubectl(['exec', 'sleeper', '--', 'node', '-p', 'process.getuid() + " " + require("node:os").hostname()']);
    assert.equal(out.trim(), '1337 sleeper');
  });

  it('pods of a kwok namespace stay on the kwok nodes; others never land there', async () => {
    const deploy = (replicas: number) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'spread' },
      spec: { replicas, selector: { matchLabels: { app: 'spread' } }, template: { metadata: { labels: { app: 'spread' } }, spec: { containers: [{ name: 'c', image: PORTWAY_IMAGE, imagePullPolicy: 'Never', command: ['node', '-e', 'setInterval(() => {}, 1000)'] }] } } },
    });
    await env.cluster.kubectl(['-n', kwokEnv.namespace, 'apply', '-f', '-'], { input: stringify(deploy(4)) });
    await kubectl(['apply', '-f', '-'], stringify(deploy(2)));
    const nodesOf = async (ns: string) =>
      eventually(
        async () => {
          const pods = JSON.parse(await env.cluster.kubectl(['-n', ns, 'get', 'pods', '-l', 'app=spread', '-o', 'json'])).items as any[];
          return pods.length > 0 && pods.every((p) => p.spec.nodeName) ? pods.map((p) => p.spec.nodeName as string) : undefined;
        },
        { timeoutMs: 60_000, what: `pods of ${ns} to be scheduled` },
      );
    for (const n of await nodesOf(kwokEnv.namespace)) assert.match(n, /^kwok-node-\d+$/);
    for (const n of await nodesOf(env.namespace)) assert.equal(n, env.cluster.realNode!.name);
  });

  it('a second cluster cannot take the machine\'s real node: up.sh stops at once, naming the one running, and leaves nothing behind', async function () {
    if (env.cluster.reused) this.skip();
    const stateDir = mkdtempSync(join(tmpdir(), 'portway-e2e-second-'));
    // The node's own interfaces (pods' veths come and go with the other tests' pods).
    const nodeLinks = () => readdirSync('/sys/class/net').filter((l) => !l.startsWith('veth')).sort();
    const linksBefore = nodeLinks();
    const [api, etcdClient, etcdPeer, kcm, sched] = await unusedPorts(5);
    const ports = { PORTWAY_APISERVER_PORT: api, PORTWAY_ETCD_CLIENT_PORT: etcdClient, PORTWAY_ETCD_PEER_PORT: etcdPeer, PORTWAY_KCM_PORT: kcm, PORTWAY_SCHEDULER_PORT: sched };
    const failure = await runCommand('bash', [join(clusterDir(), 'up.sh')], {
      env: { ...env.cluster.scriptEnv, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])), PORTWAY_CLUSTER_DIR: stateDir, KUBECONFIG: '' },
      timeoutMs: 120_000,
    }).then(
      () => assert.fail('a second up.sh with a real node succeeded'),
      (e: Error) => e.message,
    );
    assert.match(failure, /another cluster's real node is running \(state in .*\); stop it with: PORTWAY_CLUSTER_DIR=/);
    assert.deepEqual(nodeLinks(), linksBefore, 'no interface was added or removed');
    assert.ok(!existsSync(join(stateDir, 'node')), 'nothing of a node was made');
    // The first cluster's node is untouched.
    assert.equal((await env.cluster.kubectl(['get', 'node', env.cluster.realNode!.name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])).trim(), 'True');
    await runCommand('bash', [join(clusterDir(), 'down.sh')], { env: { ...env.cluster.scriptEnv, PORTWAY_CLUSTER_DIR: stateDir } });
  });
});
