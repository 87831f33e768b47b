// The local Kubernetes cluster for end-to-end tests (hack/cluster: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok's fake nodes, and one real node: containerd,
// kubelet, kube-proxy, LoadBalancer addresses, CoreDNS, metrics-server).
//
// Two kinds of namespace: `useNamespace(prefix)` pins its pods to the kwok nodes (fake pods on
// loopback IPs, where the test binds a local process: scale tests and the older e2e tests);
// `useNamespace(prefix, { node: 'real' })` leaves them to the real node, where they run from
// images.
//
// One control plane per mocha run, shared by every test file through a lazily created promise:
// the first `useNamespace()` hook (or `getCluster()` call) builds the binaries if they are
// missing (hack/cluster/build.sh, a cold build takes tens of minutes and prints progress) and
// starts a private control plane in a fresh temp dir on free ports. A root `after` hook stops
// it at the end of the run. With KUBECONFIG set, that cluster is used instead and left alone.
//
//   describe('my feature', function () {
//     const env = useNamespace('my-feature');   // creates a namespace before, deletes it after
//     it('...', async () => {
//       await env.cluster.kubectl(['get', 'pods', '-n', env.namespace]);
//       const core = env.cluster.kc.makeApiClient(CoreV1Api);
//     });
//   });

import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { repoRoot } from '../../support/repo-root.js';
import { unusedPorts } from '../../support/ports.js';
import { eventually } from './wait.js';

/** Mocha timeout for the hook that may run a cold build (fits CI's 90 minutes). */
export const BRING_UP_TIMEOUT_MS = 85 * 60_000;

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `apply -f -`). */
  input?: string;
  /** Another kubeconfig (e.g. a ServiceAccount's), instead of the admin one. */
  kubeconfig?: string;
  /** Kill kubectl after this long (default 120 s). */
  timeoutMs?: number;
}

export class KubectlError extends Error {
  constructor(
    readonly args: string[],
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`kubectl ${args.join(' ')} exited with ${code}: ${stderr.trim() || stdout.trim()}`);
  }
}

export interface Cluster {
  /** Admin kubeconfig (a path list when reused from KUBECONFIG). */
  kubeconfigPath: string;
  /** Admin credentials, ready for `kc.makeApiClient(...)`. */
  kc: KubeConfig;
  /** Directory of the built kube-apiserver, kubectl, ... */
  kubeBinDir: string;
  /** Paths of every built binary by name (kubectl, helm, kwok, etcd, ...). */
  bin: Record<string, string>;
  /** True when the cluster came from KUBECONFIG (not started, not stopped by the tests). */
  reused: boolean;
  /** hack/cluster state dir of a cluster this run started. */
  stateDir?: string;
  /** Environment that hack/cluster scripts need to address this run's cluster. */
  scriptEnv: NodeJS.ProcessEnv;
  /** Number of kwok nodes (known when this run started the cluster). */
  nodeCount?: number;
  /** First two octets of pod IPs, e.g. "127.42" (known when this run started the cluster). */
  podNet?: string;
  /** The real node, when the cluster has one: its name and address. */
  realNode?: { name: string; ip: string };
  /** Scratch directory for this run (kubeconfigs of ServiceAccounts, ...), removed at the end. */
  workDir: string;
  /** Runs the built kubectl against this cluster; resolves to stdout, rejects with KubectlError. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<string>;
}

export const clusterDir = () => join(repoRoot(), 'hack', 'cluster');

/** Pinned versions from hack/cluster/versions.env. */
export function pinnedVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(clusterDir(), 'versions.env'), 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(\S+)/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** Runs a hack/cluster script; its stderr (progress) goes to ours, its stdout is returned. */
export function runScript(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(clusterDir(), script), ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`hack/cluster/${script} ${args.join(' ')} exited with ${code}`)),
    );
  });
}

function makeKubectl(kubectlPath: string, kubeconfigPath: string) {
  return (args: string[], opts: KubectlOptions = {}) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(kubectlPath, args, {
        env: { ...process.env, KUBECONFIG: opts.kubeconfig ?? kubeconfigPath },
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: opts.timeoutMs ?? 120_000,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new KubectlError(args, code, stdout, stderr))));
      child.stdin.end(opts.input ?? '');
    });
}

async function ensureBinaries(env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  const check = spawnSync('bash', [join(clusterDir(), 'build.sh'), '--check'], { env });
  if (check.status !== 0) {
    process.stderr.write(
      '[e2e] control-plane binaries are missing: building them with hack/cluster/build.sh ' +
        '(a cold build takes tens of minutes; see hack/cluster/README.md)\n',
    );
    await runScript('build.sh', [], env);
  }
  const paths = (await runScript('build.sh', ['--print'], env)).trim().split('\n');
  return Object.fromEntries(paths.map((p) => [p.slice(p.lastIndexOf('/') + 1), p]));
}

/** What this run must clean up: its scratch dir, and the control plane if it started one. */
let started: { workDir: string; env?: NodeJS.ProcessEnv; stopped: boolean } | undefined;
let shared: Promise<Cluster> | undefined;

async function bringUp(): Promise<Cluster> {
  const workDir = mkdtempSync(join(tmpdir(), 'portway-e2e-work-'));
  started = { workDir, stopped: true };
  const baseEnv = { ...process.env };
  const bin = await ensureBinaries(baseEnv);
  const kubeBinDir = bin.kubectl.slice(0, bin.kubectl.lastIndexOf('/'));

  const reuse = process.env.KUBECONFIG;
  if (reuse) {
    process.stderr.write(`[e2e] using the cluster in KUBECONFIG=${reuse} (it will not be stopped)\n`);
    const kc = new KubeConfig();
    kc.loadFromDefault();
    const kubectl = makeKubectl(bin.kubectl, reuse);
    await kubectl(['get', '--raw', '/readyz']);
    const realNode = await findRealNode(kubectl);
    return { kubeconfigPath: reuse, kc, kubeBinDir, bin, reused: true, scriptEnv: baseEnv, workDir, kubectl, realNode };
  }

  // A private control plane: fresh state dir, free ports, and a pod network of its own so that
  // concurrent runs on one machine do not bind the same 127.x addresses.
  const stateDir = mkdtempSync(join(tmpdir(), 'portway-e2e-cluster-'));
  const [api, etcdClient, etcdPeer, kcm, sched] = await unusedPorts(5);
  const podNet = `127.${randomInt(2, 255)}`;
  const nodeCount = 3;
  const env: NodeJS.ProcessEnv = {
    PORTWAY_REAL_NODE: '1',
    ...baseEnv,
    PORTWAY_CLUSTER_DIR: stateDir,
    PORTWAY_APISERVER_PORT: String(api),
    PORTWAY_ETCD_CLIENT_PORT: String(etcdClient),
    PORTWAY_ETCD_PEER_PORT: String(etcdPeer),
    PORTWAY_KCM_PORT: String(kcm),
    PORTWAY_SCHEDULER_PORT: String(sched),
    PORTWAY_POD_NET: podNet,
    PORTWAY_NODES: String(nodeCount),
  };
  delete env.KUBECONFIG;
  started.env = env;
  started.stopped = false;
  stopOnSignals();
  process.stderr.write(`[e2e] starting a control plane in ${stateDir} (pods on ${podNet}.0.0/16)\n`);
  const t0 = Date.now();
  await runScript('up.sh', [], env);
  process.stderr.write(`[e2e] control plane up in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const kubeconfigPath = join(stateDir, 'kubeconfig');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const kubectl = makeKubectl(bin.kubectl, kubeconfigPath);
  return {
    kubeconfigPath,
    kc,
    kubeBinDir,
    bin,
    reused: false,
    stateDir,
    scriptEnv: env,
    nodeCount,
    podNet,
    realNode: await findRealNode(kubectl),
    workDir,
    kubectl,
  };
}

/** The node hack/cluster/node-up.sh registers (label portway.dev/node=real), if any. */
async function findRealNode(kubectl: (args: string[]) => Promise<string>): Promise<Cluster['realNode']> {
  const list = JSON.parse(await kubectl(['get', 'nodes', '-l', 'portway.dev/node=real', '-o', 'json'])) as {
    items: Array<{ metadata: { name: string }; status?: { addresses?: Array<{ type: string; address: string }> } }>;
  };
  const node = list.items[0];
  if (!node) return undefined;
  const ip = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  return ip ? { name: node.metadata.name, ip } : undefined;
}

/** The run's control plane, started on first use. */
export function getCluster(): Promise<Cluster> {
  shared ??= bringUp();
  return shared;
}

/** Stops the control plane this run started (no-op for a reused one). Called by the root hook. */
export async function stopCluster(): Promise<void> {
  if (!started) return;
  const s = started;
  if (!s.stopped && s.env) {
    s.stopped = true;
    await runScript('down.sh', [], s.env);
  }
  rmSync(s.workDir, { recursive: true, force: true });
}

// Root-level hook: this module is first imported while mocha loads spec files, outside any
// describe(), so the hook belongs to the root suite and runs once after every file.
if (typeof after === 'function') {
  after('stop the e2e control plane', async function () {
    this.timeout(120_000);
    await stopCluster();
  });
}
// Safety net for aborted runs: never leave the processes behind. They run in their own session
// (setsid), so a Ctrl-C in the terminal does not reach them; stop them on the way out.
function stopNow(): void {
  if (!started) return;
  if (!started.stopped && started.env) {
    started.stopped = true;
    spawnSync('bash', [join(clusterDir(), 'down.sh')], { env: started.env, stdio: 'inherit' });
  }
  rmSync(started.workDir, { recursive: true, force: true });
}
process.once('exit', stopNow);
function stopOnSignals(): void {
  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
  for (const [signal, code] of Object.entries(codes)) {
    process.once(signal, () => {
      process.stderr.write(`[e2e] ${signal}: stopping the control plane\n`);
      stopNow();
      process.exit(code);
    });
  }
}

export interface NamespaceContext {
  cluster: Cluster;
  namespace: string;
}

export interface NamespaceOptions {
  /**
   * Where the namespace's pods run. 'kwok' (default): on the fake nodes, with loopback IPs a
   * local process can bind (PodNodeSelector + PodTolerationRestriction annotations on the
   * namespace). 'real': on the real node, from images; the test fails if the cluster has none.
   */
  node?: 'kwok' | 'real';
}

/** Annotations that pin every pod of a namespace to the kwok nodes (see hack/cluster/up.sh). */
export const KWOK_NAMESPACE_ANNOTATIONS = {
  'scheduler.alpha.kubernetes.io/node-selector': 'type=kwok',
  'scheduler.alpha.kubernetes.io/defaultTolerations': JSON.stringify([
    { key: 'kwok.x-k8s.io/node', operator: 'Equal', value: 'fake', effect: 'NoSchedule' },
  ]),
};

/**
 * In a describe(): brings the cluster up (once per run), creates a namespace named
 * e2e-<prefix>-xxxxx before the tests (waiting for its default ServiceAccount) and deletes it,
 * waiting until it is gone, after them.
 */
export function useNamespace(prefix: string, opts: NamespaceOptions = {}): NamespaceContext {
  const ctx = {} as NamespaceContext;
  const node = opts.node ?? 'kwok';
  before(`create namespace e2e-${prefix}-*`, async function () {
    this.timeout(BRING_UP_TIMEOUT_MS);
    ctx.cluster = await getCluster();
    if (node === 'real' && !ctx.cluster.realNode) {
      throw new Error('this test needs the real node (hack/cluster/up.sh with PORTWAY_REAL_NODE=1, as root); the cluster has none');
    }
    const core = ctx.cluster.kc.makeApiClient(CoreV1Api);
    const annotations = node === 'kwok' && ctx.cluster.realNode ? KWOK_NAMESPACE_ANNOTATIONS : undefined;
    const ns = await core.createNamespace({ body: { metadata: { generateName: `e2e-${prefix}-`, annotations } } });
    ctx.namespace = ns.metadata!.name!;
    await eventually(() => core.readNamespacedServiceAccount({ name: 'default', namespace: ctx.namespace }), {
      what: `ServiceAccount default in ${ctx.namespace}`,
    });
  });
  after(`delete namespace e2e-${prefix}-*`, async function () {
    this.timeout(150_000);
    if (!ctx.namespace) return;
    const core = ctx.cluster.kc.makeApiClient(CoreV1Api);
    await core.deleteNamespace({ name: ctx.namespace });
    await eventually(
      async () => {
        try {
          await core.readNamespace({ name: ctx.namespace });
          return false;
        } catch (e) {
          if (e instanceof ApiException && e.code === 404) return true;
          throw e;
        }
      },
      { timeoutMs: 120_000, intervalMs: 500, what: `namespace ${ctx.namespace} to be deleted` },
    );
  });
  return ctx;
}
