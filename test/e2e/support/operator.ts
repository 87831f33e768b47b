// The operator as users install it, for end-to-end tests: the chart's CRDs and rendered
// templates applied to the cluster (its operator pod is fake), then `portway operator` run as
// local processes with the chart's ServiceAccount token, each with its own health/metrics port.

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../../support/repo-root.js';
import type { NamespaceContext } from './cluster.js';
import { runCommand } from './run.js';
import { serviceAccountCredentials, type ServiceAccountCredentials } from './service-account.js';
import { unusedPort } from '../../support/ports.js';

export const GROUP = 'portway.dev';
export const VERSION = 'v1alpha1';
export const PLURAL = 'gatewaydeployments';

export interface InstalledChart extends ServiceAccountCredentials {
  /** The chart's rendered templates, as applied. */
  docs: Array<Record<string, any>>;
}

/**
 * Installs the chart's CRDs and templates into env.namespace under `release`; returns the
 * operator's credentials and what was applied. Without `webhooks`, the webhook configurations
 * are left out: they are cluster-scoped, the operators of most tests serve no webhook, and a
 * leftover Fail-policy injection webhook would block the webhook tests' pods.
 */
export async function installChart(env: NamespaceContext, release: string, set: string[] = [], { webhooks = false } = {}): Promise<InstalledChart> {
  const chart = join(repoRoot(), 'charts', 'portway');
  await env.cluster.kubectl(['apply', '--server-side', '-f', join(chart, 'crds')]);
  await env.cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${PLURAL}.${GROUP}`]);
  const noWebhooks = webhooks ? [] : ['webhook.injection.enabled=false', 'webhook.validation.enabled=false'];
  const args = ['template', release, chart, '--namespace', env.namespace, '--kube-version', 'v1.37.2', '--skip-tests', ...[...noWebhooks, ...set].flatMap((s) => ['--set', s])];
  const rendered = await runCommand(env.cluster.bin.helm!, args);
  const docs = parseAllDocuments(rendered).map((d) => (Array.isArray(d) ? undefined : d.toJS())).filter(Boolean);
  // Forced: the cluster-scoped objects may have been applied by an earlier install.
  await env.cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-n', env.namespace, '-f', '-'], { input: rendered });
  const sa = docs.find((d) => d.kind === 'ServiceAccount');
  return { ...(await serviceAccountCredentials(env.cluster, env.namespace, sa.metadata.name)), docs };
}

export interface OperatorProcess {
  child: ChildProcess;
  identity: string;
  healthPort: number;
  /** Everything it wrote (stdout and stderr), in order. */
  output: string[];
  exited: Promise<number | null>;
  get(path: string): Promise<{ status: number; body: string }>;
}

export async function startOperator(env: NamespaceContext, creds: ServiceAccountCredentials, identity: string, extraArgs: string[] = []): Promise<OperatorProcess> {
  const healthPort = await unusedPort();
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'portway.js'), 'operator', '--namespace', env.namespace, '--health-port', String(healthPort), ...extraArgs], {
    env: { ...process.env, KUBECONFIG: creds.kubeconfigPath, POD_NAMESPACE: env.namespace, POD_NAME: identity, PORTWAY_PROXY_IMAGE: 'example.invalid/portway:e2e', PORTWAY_LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
  child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    identity,
    healthPort,
    output,
    exited,
    async get(path: string) {
      const res = await fetch(`http://127.0.0.1:${healthPort}${path}`);
      return { status: res.status, body: await res.text() };
    },
  };
}

/** Parses the operator's output as JSON lines (throws on a line that is not one JSON object). */
export function jsonLines(output: string[]): Array<Record<string, unknown>> {
  return output
    .join('')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON log line: ${l}`);
      }
    });
}

/**
 * Deletes every GatewayDeployment of the namespace and waits until they are gone, while an
 * operator still runs to remove its finalizer: once the namespace is being deleted, the
 * operator's ServiceAccount (and so its token) may already be gone, and a GatewayDeployment
 * left with its finalizer would hold the namespace in Terminating.
 */
export async function deleteGatewayDeployments(env: NamespaceContext): Promise<void> {
  await env.cluster.kubectl(['delete', `${PLURAL}.${GROUP}`, '--all', '-n', env.namespace, '--wait=true', '--timeout=90s']);
}
