// A raw Kubernetes API request over node:https with the credentials of kube/connection.ts,
// for what the operator writes: server-side apply on any path (including /status and /scale),
// merge patches, Events, Leases, Secrets.
//
// Like client-go, an answer of 429 Too Many Requests (API Priority and Fairness rejecting a
// request it had no seat or queue room for) or a 5xx with Retry-After is retried after the
// delay the apiserver asks for, a few times, before it becomes an error: under load, shedding
// a request is the apiserver's way of saying "later", not "no".

import { request as httpRequest, type Agent, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connectionAgent, connectionHeaders, type KubeConnection } from './connection.js';

export class KubeApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
}

/** Tries of a request the apiserver asked to retry (429, or 5xx with Retry-After), as client-go (10). */
const MAX_TRIES = 10;
/** The longest wait between tries, whatever Retry-After says. */
const MAX_RETRY_WAIT_MS = 10_000;
/**
 * A request with no answer by then fails (the apiserver's own limit is 60 s): a worker must
 * not wait forever on a connection that went away silently.
 */
const REQUEST_TIMEOUT_MS = 70_000;

/**
 * One keep-alive agent per connection: a request reuses a TCP connection and TLS session
 * instead of paying for a handshake. Bounded, so a burst of writes (Events of 1,000 new
 * gateways) queues here rather than in the apiserver's flow control.
 */
const agents = new WeakMap<KubeConnection, Agent>();
const MAX_SOCKETS = 16;

function agentFor(conn: KubeConnection): Agent {
  let agent = agents.get(conn);
  if (!agent) agents.set(conn, (agent = connectionAgent(conn, { maxSockets: MAX_SOCKETS })));
  return agent;
}

export async function kubeRequest<T = unknown>(conn: KubeConnection, req: KubeRequest): Promise<T> {
  const url = new URL(conn.server.href.replace(/\/$/, '') + req.path);
  for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  const body = req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
  for (let attempt = 1; ; attempt++) {
    const { status, headers, text } = await send(conn, url, req, body);
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    if (status >= 200 && status < 300) return parsed as T;
    // A refused token that can be renewed (an exec plugin's) is renewed and tried once more.
    if (status === 401 && conn.tokenRejected && attempt === 1) {
      conn.tokenRejected();
      continue;
    }
    const retryAfter = retryAfterMs(status, headers['retry-after']);
    if (retryAfter !== undefined && attempt < MAX_TRIES) {
      await new Promise((r) => setTimeout(r, retryAfter * (0.8 + Math.random() * 0.4)));
      continue;
    }
    const problem = parsed as { reason?: string; message?: string } | undefined;
    throw new KubeApiError(status, problem?.reason ?? String(status), `${req.method} ${req.path}: ${status} ${problem?.message ?? text}`, parsed);
  }
}

/** How long to wait before a retry the apiserver asked for, or undefined for no retry. */
export function retryAfterMs(status: number, header: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(header) ? header[0] : header;
  const seconds = raw !== undefined && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : undefined;
  if (status === 429) return Math.min(MAX_RETRY_WAIT_MS, Math.max(1, seconds ?? 1) * 1000);
  if (status >= 500 && seconds !== undefined) return Math.min(MAX_RETRY_WAIT_MS, Math.max(1, seconds) * 1000);
  return undefined;
}

function send(conn: KubeConnection, url: URL, req: KubeRequest, body: string | undefined): Promise<{ status: number; headers: IncomingMessage['headers']; text: string }> {
  const headers = connectionHeaders(conn, 'portway-operator');
  if (body !== undefined) {
    headers['content-type'] = req.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const r = request(url, { method: req.method, headers, agent: agentFor(conn) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    r.setTimeout(REQUEST_TIMEOUT_MS, () => r.destroy(Object.assign(new Error(`${req.method} ${req.path}: no answer within ${REQUEST_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    r.on('error', reject);
    r.end(body);
  });
}

/** REST path of an object (or its collection when name is undefined). */
export function objectPath(apiVersion: string, plural: string, namespace: string | undefined, name?: string, subresource?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  let path = namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
  if (name) path += `/${name}`;
  if (subresource) path += `/${subresource}`;
  return path;
}

/** Server-side apply with one field manager; `force` takes ownership of conflicting fields. */
export function serverSideApply<T>(conn: KubeConnection, path: string, obj: unknown, fieldManager: string, force = true): Promise<T> {
  return kubeRequest<T>(conn, {
    method: 'PATCH',
    path,
    query: { fieldManager, force },
    body: obj,
    contentType: 'application/apply-patch+yaml',
  });
}
