// Runs a local process "as" a ServiceAccount: mints a token with the TokenRequest API and
// builds a kubeconfig for it, so the operator and proxies get exactly the RBAC that the chart
// and the operator grant (no admin credentials leak into what is being tested).
//
//   const sa = await serviceAccountCredentials(cluster, ns, 'portway-operator');
//   spawn('node', ['bin/portway.js', 'operator'], { env: { ...process.env, KUBECONFIG: sa.kubeconfigPath } });
//   const apps = sa.kc.makeApiClient(AppsV1Api);   // in-process client with the same identity
//
// The shell equivalent is hack/cluster/sa-kubeconfig NAMESPACE NAME [OUTPUT].

import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { Cluster } from './cluster.js';

export interface ServiceAccountCredentials {
  /** system:serviceaccount:<namespace>:<name> */
  username: string;
  token: string;
  /** When the token expires (from the TokenRequest status). */
  expiresAt: Date;
  /** In-process client configuration with this identity. */
  kc: KubeConfig;
  /** A kubeconfig file with this identity, for child processes (KUBECONFIG=...). */
  kubeconfigPath: string;
}

export interface ServiceAccountOptions {
  /** Token lifetime (default one hour; the apiserver's minimum is 10 minutes). */
  expirationSeconds?: number;
  /** Token audiences (default: the apiserver's, i.e. the service-account issuer). */
  audiences?: string[];
  /** Create the ServiceAccount first if it does not exist (default false). */
  create?: boolean;
}

export async function serviceAccountCredentials(
  cluster: Cluster,
  namespace: string,
  name: string,
  { expirationSeconds = 3600, audiences, create = false }: ServiceAccountOptions = {},
): Promise<ServiceAccountCredentials> {
  const core = cluster.kc.makeApiClient(CoreV1Api);
  if (create) {
    try {
      await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
    } catch (e) {
      if ((e as { code?: number }).code !== 409) throw e;
    }
  }
  const tr = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { expirationSeconds, ...(audiences ? { audiences } : {}) } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);

  const server = cluster.kc.getCurrentCluster();
  if (!server) throw new Error('the admin kubeconfig has no current cluster');
  const caData = server.caData ?? (server.caFile ? readFileSync(server.caFile).toString('base64') : undefined);
  const username = `system:serviceaccount:${namespace}:${name}`;
  const contextName = `${name}@${namespace}`;

  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'cluster', server: server.server, caData, skipTLSVerify: server.skipTLSVerify ?? false }],
    users: [{ name: username, token }],
    contexts: [{ name: contextName, cluster: 'cluster', user: username, namespace }],
    currentContext: contextName,
  });

  const kubeconfigPath = join(cluster.workDir, `sa-${namespace}-${name}-${randomBytes(4).toString('hex')}.kubeconfig`);
  const file = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'cluster',
        cluster: {
          server: server.server,
          ...(caData ? { 'certificate-authority-data': caData } : {}),
          ...(server.skipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}),
        },
      },
    ],
    users: [{ name: username, user: { token } }],
    contexts: [{ name: contextName, context: { cluster: 'cluster', user: username, namespace } }],
    'current-context': contextName,
  };
  writeFileSync(kubeconfigPath, stringify(file), { mode: 0o600 });

  const expiresAt = tr.status?.expirationTimestamp ? new Date(tr.status.expirationTimestamp) : new Date(Date.now() + expirationSeconds * 1000);
  return { username, token, expiresAt, kc, kubeconfigPath };
}
