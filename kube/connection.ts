// Where the Kubernetes API is and how to authenticate to it, for both programs (the proxy's
// reflectors, the operator's reflectors and raw requests). @kubernetes/client-node is not
// loaded at run time: it costs a process about 80 MB of RSS for what is a URL, a CA, a client
// certificate and a bearer token.
//
// Credentials come from the same places as client-node's `loadFromDefault()`: $KUBECONFIG (the
// first file of a list that exists), ~/.kube/config, then the in-cluster ServiceAccount. A
// token file (the in-cluster one, or a kubeconfig `tokenFile`) is read again on every request:
// bound ServiceAccount tokens are rotated by the kubelet. Kubeconfig users with a token, a token
// file, a client certificate or an exec credential plugin that returns a token (EKS, GKE, AKS,
// OIDC helpers: how people run either program from a laptop) are supported; the deprecated
// auth-provider stanza is not.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';

export interface KubeConnection {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTlsVerify?: boolean;
  /** The name to verify the apiserver's certificate against, when not the server's host. */
  tlsServerName?: string;
  /** The bearer token, read when a request is made. */
  token?: () => string | undefined;
  /**
   * The apiserver refused the token (401): forget a cached one, so the next request gets a
   * fresh one (an exec plugin's token can be revoked before its stated expiry).
   */
  tokenRejected?: () => void;
}

const IN_CLUSTER = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Connection settings from $KUBECONFIG, ~/.kube/config, or the in-cluster ServiceAccount. */
export function connectionFromEnvironment(env: NodeJS.ProcessEnv = process.env): KubeConnection {
  const candidates = env.KUBECONFIG ? env.KUBECONFIG.split(':').filter(Boolean) : [join(homedir(), '.kube', 'config')];
  const file = candidates.find((f) => existsSync(f));
  if (file) return connectionFromKubeconfig(file);
  if (env.KUBERNETES_SERVICE_HOST && existsSync(join(IN_CLUSTER, 'token'))) {
    const host = env.KUBERNETES_SERVICE_HOST.includes(':') ? `[${env.KUBERNETES_SERVICE_HOST}]` : env.KUBERNETES_SERVICE_HOST;
    return {
      server: new URL(`https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`),
      ca: readFileSync(join(IN_CLUSTER, 'ca.crt')),
      token: () => readFileSync(join(IN_CLUSTER, 'token'), 'utf8').trim(),
    };
  }
  throw new Error(`no Kubernetes credentials: ${env.KUBECONFIG ? `none of KUBECONFIG=${env.KUBECONFIG} exists` : 'no ~/.kube/config'} and not running in a pod`);
}

type Named<T> = { name: string } & T;

/** The current context of one kubeconfig file. */
export function connectionFromKubeconfig(file: string): KubeConnection {
  const doc = (parse(readFileSync(file, 'utf8')) ?? {}) as {
    'current-context'?: string;
    contexts?: Array<Named<{ context?: { cluster?: string; user?: string } }>>;
    clusters?: Array<Named<{ cluster?: Record<string, unknown> }>>;
    users?: Array<Named<{ user?: Record<string, unknown> }>>;
  };
  const base = dirname(file);
  const path = (p: unknown) => (isAbsolute(String(p)) ? String(p) : join(base, String(p)));
  const bytes = (data: unknown, fileRef: unknown) => (typeof data === 'string' && data ? Buffer.from(data, 'base64') : fileRef ? readFileSync(path(fileRef)) : undefined);
  const contextName = doc['current-context'] ?? doc.contexts?.[0]?.name;
  const context = doc.contexts?.find((c) => c.name === contextName)?.context;
  if (!context) throw new Error(`${file}: no context ${JSON.stringify(contextName)}`);
  const cluster = doc.clusters?.find((c) => c.name === context.cluster)?.cluster;
  if (!cluster || typeof cluster.server !== 'string') throw new Error(`${file}: no cluster ${JSON.stringify(context.cluster)} with a server`);
  const user = doc.users?.find((u) => u.name === context.user)?.user ?? {};
  const userName = `${file}: user ${JSON.stringify(context.user)}`;
  if (user['auth-provider']) throw new Error(`${userName}: auth-provider is not supported (removed from kubectl); use an exec plugin, a token or a client certificate`);
  const tokenFile = user.tokenFile;
  const exec = !user.token && !tokenFile && user.exec ? execCredentialToken(user.exec as ExecConfig, base, userName) : undefined;
  const token = typeof user.token === 'string' ? () => user.token as string : tokenFile ? () => readFileSync(path(tokenFile), 'utf8').trim() : exec?.token;
  return {
    server: new URL(cluster.server),
    ca: bytes(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: bytes(user['client-certificate-data'], user['client-certificate']),
    key: bytes(user['client-key-data'], user['client-key']),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: typeof cluster['tls-server-name'] === 'string' ? cluster['tls-server-name'] : undefined,
    token,
    tokenRejected: exec?.forget,
  };
}

/** A keep-alive agent with the connection's TLS settings (client certificate, CA, server name). */
export function connectionAgent(conn: KubeConnection, options: { maxSockets?: number } = {}): HttpAgent {
  if (conn.server.protocol !== 'https:') return new HttpAgent({ keepAlive: true, maxSockets: options.maxSockets });
  return new HttpsAgent({
    keepAlive: true,
    maxSockets: options.maxSockets,
    ca: conn.ca,
    cert: conn.cert,
    key: conn.key,
    servername: conn.tlsServerName,
    rejectUnauthorized: !conn.insecureSkipTlsVerify,
  });
}

/** The request headers every call carries: the current bearer token, JSON, who we are. */
export function connectionHeaders(conn: KubeConnection, userAgent: string): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': userAgent };
  const token = conn.token?.();
  if (token) headers.authorization = `Bearer ${token}`;
  return headers;
}

/** A kubeconfig `users[].user.exec` stanza (client.authentication.k8s.io ExecConfig). */
interface ExecConfig {
  apiVersion?: string;
  command?: string;
  args?: string[];
  env?: Array<{ name: string; value: string }> | null;
  installHint?: string;
}

/** Re-run this long before the credential's expiry, so no request carries an expiring token. */
const EXEC_REFRESH_MARGIN_MS = 60_000;

/**
 * A token from an exec credential plugin, run again when the ExecCredential it returned
 * expires (or never, without expirationTimestamp), or after the apiserver refused it (`forget`),
 * as client-go does. The plugin runs
 * synchronously: it happens once per token lifetime, and a request cannot be sent without it.
 * A command with a path separator is relative to the kubeconfig's folder, as in client-go.
 */
export function execCredentialToken(exec: ExecConfig, base: string, userName: string): { token: () => string; forget: () => void } {
  if (!exec.command) throw new Error(`${userName}: exec has no command`);
  const command = exec.command.includes('/') && !isAbsolute(exec.command) ? join(base, exec.command) : exec.command;
  const apiVersion = exec.apiVersion ?? 'client.authentication.k8s.io/v1';
  let cached: { token: string; refreshAt: number } | undefined;
  const forget = () => {
    cached = undefined;
  };
  const token = () => {
    if (cached && Date.now() < cached.refreshAt) return cached.token;
    let out: string;
    try {
      out = execFileSync(command, exec.args ?? [], {
        encoding: 'utf8',
        timeout: 60_000,
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          ...Object.fromEntries((exec.env ?? []).map((e) => [e.name, e.value])),
          KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion, kind: 'ExecCredential', spec: { interactive: false } }),
        },
      });
    } catch (err) {
      const hint = exec.installHint ? ` (${exec.installHint.trim()})` : '';
      throw new Error(`${userName}: exec plugin ${command} failed: ${(err as Error).message.split('\n')[0]}${hint}`);
    }
    let status: { token?: string; expirationTimestamp?: string; clientCertificateData?: string } | undefined;
    try {
      status = (JSON.parse(out) as { status?: typeof status }).status;
    } catch {
      throw new Error(`${userName}: exec plugin ${command} did not print an ExecCredential (JSON)`);
    }
    if (!status?.token) {
      throw new Error(`${userName}: exec plugin ${command} returned no status.token${status?.clientCertificateData ? ' (client certificates from exec plugins are not supported)' : ''}`);
    }
    const now = Date.now();
    const expires = status.expirationTimestamp ? Date.parse(status.expirationTimestamp) : Number.POSITIVE_INFINITY;
    // Short-lived tokens: refresh halfway through their life rather than on every request.
    cached = { token: status.token, refreshAt: expires - Math.min(EXEC_REFRESH_MARGIN_MS, (expires - now) / 2) };
    return status.token;
  };
  return { token, forget };
}
