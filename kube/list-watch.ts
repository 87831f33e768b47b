// List and watch over plain node:https, for the proxy's reflectors. Importing
// @kubernetes/client-node costs a proxy about 80 MB of RSS (its generated models, 30+ MB of
// heap) for two GET requests; this client is a few hundred lines of our own instead.
//
// Credentials come from the same places as client-node's `loadFromDefault()`: $KUBECONFIG (the
// first file of a list that exists), ~/.kube/config, then the in-cluster ServiceAccount (token
// re-read on every request: bound tokens rotate). Kubeconfig users with a token, a token file
// or a client certificate are supported; exec plugins and auth providers are not (the proxy
// runs with its ServiceAccount).

import { existsSync, readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';

/** An object as the apiserver sends it (only what the reflector reads is typed). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface ListPage {
  items: KubeObject[];
  resourceVersion: string;
  continueToken?: string;
}

export interface ListOptions {
  /** What the path names (client-node lists by apiVersion and kind). */
  target: { apiVersion: string; kind: string; namespace?: string };
  labelSelector?: string;
  limit: number;
  continueToken?: string;
}

export type WatchPhase = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchParams {
  resourceVersion: string;
  labelSelector?: string;
  timeoutSeconds: number;
  /** The watch ends (resolves) when no byte has arrived for this long: the silent-watch watchdog. */
  idleMs: number;
}

/** What a reflector needs from the Kubernetes API. */
export interface ListWatchClient {
  list(path: string, options: ListOptions): Promise<ListPage>;
  /**
   * Watches `path`; `onEvent` gets every event but ERROR. Resolves when the watch ends normally
   * (server timeout, idle watchdog, abort); rejects on a transport error, an HTTP error, or an
   * ERROR event (with its `code`, e.g. 410). `onStarted` gets an abort function once the
   * apiserver has answered.
   */
  watch(path: string, params: WatchParams, onEvent: (phase: WatchPhase, obj: KubeObject) => void, onStarted: (abort: () => void) => void): Promise<void>;
}

/** An error the apiserver answered: `code` is the HTTP status (or the ERROR event's code). */
export class KubeStatusError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export interface KubeConnection {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTlsVerify?: boolean;
  /** The bearer token, read when a request is made. */
  token?: () => string | undefined;
}

const IN_CLUSTER = '/var/run/secrets/kubernetes.io/serviceaccount';
/** How long a list may go without a byte, and a watch without an answer. */
const ANSWER_TIMEOUT_MS = 15_000;

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
  if (user.exec || user['auth-provider']) throw new Error(`${file}: user ${JSON.stringify(context.user)}: exec plugins and auth providers are not supported by the proxy; use a token or a client certificate`);
  const tokenFile = user.tokenFile;
  const token = typeof user.token === 'string' ? () => user.token as string : tokenFile ? () => readFileSync(path(tokenFile), 'utf8').trim() : undefined;
  return {
    server: new URL(cluster.server),
    ca: bytes(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: bytes(user['client-certificate-data'], user['client-certificate']),
    key: bytes(user['client-key-data'], user['client-key']),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    token,
  };
}

export class HttpsListWatchClient implements ListWatchClient {
  private readonly agent: HttpAgent;
  private readonly secure: boolean;

  constructor(private readonly conn: KubeConnection) {
    this.secure = conn.server.protocol === 'https:';
    this.agent = this.secure
      ? new HttpsAgent({ keepAlive: true, ca: conn.ca, cert: conn.cert, key: conn.key, rejectUnauthorized: !conn.insecureSkipTlsVerify })
      : new HttpAgent({ keepAlive: true });
  }

  async list(path: string, options: ListOptions): Promise<ListPage> {
    const query: Record<string, string> = { limit: String(options.limit) };
    if (options.continueToken) query.continue = options.continueToken;
    if (options.labelSelector) query.labelSelector = options.labelSelector;
    const res = await this.get(path, query, ANSWER_TIMEOUT_MS);
    const body = await readAll(res);
    if ((res.statusCode ?? 0) >= 300) throw statusError(res.statusCode ?? 0, body, `list ${path}`);
    const list = JSON.parse(body) as { items?: KubeObject[]; metadata?: { resourceVersion?: string; continue?: string } };
    return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion ?? '', continueToken: list.metadata?.continue || undefined };
  }

  watch(path: string, params: WatchParams, onEvent: (phase: WatchPhase, obj: KubeObject) => void, onStarted: (abort: () => void) => void): Promise<void> {
    const query: Record<string, string> = { watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: String(params.timeoutSeconds) };
    if (params.resourceVersion) query.resourceVersion = params.resourceVersion;
    if (params.labelSelector) query.labelSelector = params.labelSelector;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let idle: NodeJS.Timeout | undefined;
      let res: IncomingMessage | undefined;
      let req: ReturnType<HttpsListWatchClient['request']> | undefined;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        res?.destroy();
        req?.destroy();
        if (err) reject(err);
        else resolve();
      };
      // Until the apiserver answers, a shorter limit: one that is still starting can hold a request.
      const armIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(() => finish(), res ? params.idleMs : Math.min(params.idleMs, ANSWER_TIMEOUT_MS));
        idle.unref();
      };
      armIdle();
      req = this.request(path, query, (r) => {
        res = r;
        armIdle();
        if ((r.statusCode ?? 0) >= 300) {
          readAll(r).then((body) => finish(statusError(r.statusCode ?? 0, body, `watch ${path}`)), finish);
          return;
        }
        onStarted(() => finish());
        let rest = '';
        r.setEncoding('utf8');
        r.on('data', (chunk: string) => {
          armIdle();
          const lines = (rest + chunk).split('\n');
          rest = lines.pop() ?? '';
          for (const line of lines) {
            if (!line.trim() || settled) continue;
            let event: { type?: string; object?: KubeObject & { code?: number; message?: string } };
            try {
              event = JSON.parse(line);
            } catch (e) {
              finish(new Error(`watch ${path}: unparsable event: ${(e as Error).message}`));
              return;
            }
            if (event.type === 'ERROR') {
              finish(new KubeStatusError(event.object?.message ?? 'watch error', Number(event.object?.code ?? 500)));
              return;
            }
            if (event.object && (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED' || event.type === 'BOOKMARK')) {
              onEvent(event.type, event.object);
            }
          }
        });
        r.on('end', () => finish());
        r.on('error', (e) => finish(e));
        r.on('close', () => finish(settled ? undefined : Object.assign(new Error(`watch ${path}: connection closed`), { code: 'ECONNRESET' })));
      });
      req.on('error', (e) => finish(e));
      req.end();
    });
  }

  private get(path: string, query: Record<string, string>, timeoutMs: number): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.request(path, query, resolve);
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`GET ${path}: no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end();
    });
  }

  private request(path: string, query: Record<string, string>, onResponse: (res: IncomingMessage) => void) {
    const url = new URL(path, this.conn.server);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'portway-proxy' };
    const token = this.conn.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    const send = this.secure ? httpsRequest : httpRequest;
    return send(url, { method: 'GET', headers, agent: this.agent }, onResponse);
  }
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function statusError(code: number, body: string, what: string): KubeStatusError {
  let message = body.trim().slice(0, 300);
  try {
    const status = JSON.parse(body) as { message?: string; code?: number };
    if (status.message) message = status.message;
  } catch {
    // not a Status object
  }
  return new KubeStatusError(`${what}: HTTP ${code}: ${message}`, code);
}
