// List and watch over plain node:https, for the reflectors of both programs (kube/reflector.ts).
// Importing @kubernetes/client-node costs a process about 80 MB of RSS (its generated models,
// 30+ MB of heap) for two GET requests; this client is a few hundred lines of our own instead.
// Credentials: kube/connection.ts.

import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connectionAgent, connectionHeaders, type KubeConnection } from './connection.js';

export { connectionFromEnvironment, connectionFromKubeconfig, type KubeConnection } from './connection.js';

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
  labelSelector?: string;
  limit: number;
  continueToken?: string;
  /** Ask for metadata only (items come back as meta.k8s.io/v1 PartialObjectMetadata). */
  metadataOnly?: boolean;
}

/**
 * Accept headers that make the apiserver send only the objects' metadata: no spec, no status,
 * so a reader of labels never receives the rest (RBAC has no metadata-only verb: this is the
 * reader's own restraint). A list answers a PartialObjectMetadataList, a watch's events carry
 * PartialObjectMetadata objects. The list form on a watch is answered 200 and then sends no
 * event at all (kube-apiserver 1.37): a watch must ask for the single-object form.
 */
export const METADATA_ONLY_LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
export const METADATA_ONLY_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

export type WatchPhase = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchParams {
  resourceVersion: string;
  labelSelector?: string;
  timeoutSeconds: number;
  /** The watch ends (resolves) when no byte has arrived for this long: the silent-watch watchdog. */
  idleMs: number;
  /** Events carry metadata only (meta.k8s.io/v1 PartialObjectMetadata). */
  metadataOnly?: boolean;
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

/** How long a list may go without a byte, and a watch without an answer. */
const ANSWER_TIMEOUT_MS = 15_000;

export class HttpsListWatchClient implements ListWatchClient {
  private readonly agent: HttpAgent;
  private readonly secure: boolean;

  constructor(
    private readonly conn: KubeConnection,
    private readonly userAgent = 'portway-proxy',
  ) {
    this.secure = conn.server.protocol === 'https:';
    // Its own agent: watches hold their sockets for minutes.
    this.agent = connectionAgent(conn);
  }

  async list(path: string, options: ListOptions): Promise<ListPage> {
    const query: Record<string, string> = { limit: String(options.limit) };
    if (options.continueToken) query.continue = options.continueToken;
    if (options.labelSelector) query.labelSelector = options.labelSelector;
    const res = await this.get(path, query, ANSWER_TIMEOUT_MS, options.metadataOnly ? METADATA_ONLY_LIST_ACCEPT : undefined);
    const body = await readAll(res);
    if ((res.statusCode ?? 0) >= 300) {
      // The reflector retries; with a fresh token if this one was refused.
      if (res.statusCode === 401) this.conn.tokenRejected?.();
      throw statusError(res.statusCode ?? 0, body, `list ${path}`);
    }
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
      req = this.request(path, query, params.metadataOnly ? METADATA_ONLY_WATCH_ACCEPT : undefined, (r) => {
        res = r;
        armIdle();
        if ((r.statusCode ?? 0) >= 300) {
          if (r.statusCode === 401) this.conn.tokenRejected?.();
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

  private get(path: string, query: Record<string, string>, timeoutMs: number, accept?: string): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.request(path, query, accept, resolve);
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`GET ${path}: no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end();
    });
  }

  private request(path: string, query: Record<string, string>, accept: string | undefined, onResponse: (res: IncomingMessage) => void) {
    const url = new URL(path, this.conn.server);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const headers = connectionHeaders(this.conn, this.userAgent);
    if (accept) headers.accept = accept;
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
