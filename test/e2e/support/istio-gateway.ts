// Shared set-up for the proxy's end-to-end tests: the Istio CRDs, what the operator renders for
// a GatewayDeployment (ServiceAccount, RBAC, Deployment → kwok gateway pods), backend
// Deployments and Services, `portway proxy` processes at the gateway pods' IPs running as the
// rendered ServiceAccount, and a small HTTP client that sends a Host header.

import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { renderGatewayObjects } from '../../../operator/render/index.js';
import type { GatewayDeployment } from '../../../operator/api/types.js';
import { repoRoot } from '../../support/repo-root.js';
import { startProxyProcessAt, type ProxyProcess } from '../../support/proxy-process.js';
import type { Cluster, NamespaceContext } from './cluster.js';
import { runningPods } from './pod-backends.js';
import { serviceAccountCredentials } from './service-account.js';

export interface Reply {
  status: number;
  body: string;
  servedBy?: string;
}

/** GET with a Host header; no keep-alive unless an agent is given. */
export function get(address: string, port: number, host: string, path: string, headers: Record<string, string> = {}, agent?: Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path, headers: { host, ...headers }, agent: agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body, servedBy: res.headers['x-served-by'] as string | undefined });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function backendDeployment(name: string, labels: Record<string, string>, replicas: number) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'example.invalid/httpbin:1' }] } },
    },
  };
}

export function service(name: string, selector: Record<string, string>, port: number, targetPort: number) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector, ports: [{ name: 'http', port, targetPort }] } };
}

/** The Gateway `ingress` the proxy tests use: Istio's `selector: {istio: ingressgateway}` with these servers. */
export function ingressGateway(servers: unknown[]) {
  return { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'ingress' }, spec: { selector: { istio: 'ingressgateway' }, servers } };
}

/** Server-side apply of plain objects into a namespace (field manager e2e). */
export function applyObjects(cluster: Cluster, namespace: string, objects: unknown[]): Promise<string> {
  return cluster.kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=e2e', '-n', namespace, '-f', '-'], {
    input: objects.map((o) => stringify(o)).join('---\n'),
  });
}

/** The networking.istio.io CRDs from crds/istio, Established. */
export async function installIstioCrds(cluster: Cluster): Promise<void> {
  await cluster.kubectl(['apply', '--server-side', '-f', join(repoRoot(), 'crds', 'istio', 'networking.istio.io.yaml')]);
  await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gateways.networking.istio.io', 'crd/virtualservices.networking.istio.io', 'crd/destinationrules.networking.istio.io', 'crd/serviceentries.networking.istio.io']);
}

/**
 * What the operator renders for GatewayDeployment `istio-ingressgateway` with `replicas`, applied
 * without an owner (no operator runs in these tests): ServiceAccount, Role/ClusterRole and
 * bindings, Service, Deployment (kwok runs its pods, labelled istio=ingressgateway).
 */
export async function applyRenderedGateway(env: NamespaceContext, replicas: number): Promise<void> {
  const gd = {
    apiVersion: 'portway.dev/v1alpha1',
    kind: 'GatewayDeployment',
    metadata: { name: 'istio-ingressgateway', namespace: env.namespace, uid: '00000000-0000-0000-0000-000000000000' },
    spec: { replicas },
  } as GatewayDeployment;
  const rendered = renderGatewayObjects(gd, { defaultImage: 'example.invalid/portway:e2e' }).map((o) => {
    const copy = structuredClone(o) as { metadata: { ownerReferences?: unknown } };
    delete copy.metadata.ownerReferences;
    return copy;
  });
  await applyObjects(env.cluster, env.namespace, rendered);
}

export interface GatewayProxies {
  proxies: ProxyProcess[];
  /** The pod IP each proxy listens on (same order). */
  ips: string[];
}

/**
 * One `portway proxy` per Running gateway pod (`count` of them), bound to the pod's IP, with the
 * pod's labels, as the ServiceAccount istio-ingressgateway (the rendered RBAC). `extraArgs[i]`
 * is added to the i-th proxy's flags (e.g. `--concurrency 2` for one of them).
 */
export async function startGatewayProxies(env: NamespaceContext, count: number, workDir: string, args: string[] = ['--access-log', 'off'], extraArgs: string[][] = []): Promise<GatewayProxies> {
  const sa = await serviceAccountCredentials(env.cluster, env.namespace, 'istio-ingressgateway');
  const pods = await runningPods(env.cluster, env.namespace, 'istio=ingressgateway', count);
  const proxies: ProxyProcess[] = [];
  for (const [i, pod] of pods.entries()) {
    const labelsFile = join(workDir, `labels-${pod.name}-${i}`);
    writeFileSync(labelsFile, Object.entries(pod.labels).map(([k, v]) => `${k}="${v}"`).join('\n'));
    proxies.push(
      await startProxyProcessAt(pod.ip, ['--labels-file', labelsFile, ...args, ...(extraArgs[i] ?? [])], {
        KUBECONFIG: sa.kubeconfigPath,
        POD_NAMESPACE: env.namespace,
        POD_NAME: pod.name,
      }),
    );
  }
  return { proxies, ips: pods.map((p) => p.ip) };
}
