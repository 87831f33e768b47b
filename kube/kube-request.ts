// A raw Kubernetes API request with client-node's authentication, for what its typed
// clients cannot do well: server-side apply on any path, including /status and /scale.

import { HttpMethod, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { fetch } from 'undici';

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

/**
 * client-node makes a new undici dispatcher for every request, so every request would pay for
 * a TCP connection and a TLS handshake. The first one made for a KubeConfig is kept and
 * reused (keep-alive); headers (bearer tokens, which rotate) are still applied per request.
 */
const dispatchers = new WeakMap<KubeConfig, unknown>();

export async function kubeRequest<T = unknown>(kc: KubeConfig, req: KubeRequest): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + req.path);
  for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  const ctx = new RequestContext(url.toString(), HttpMethod[req.method === 'PATCH' ? 'PATCH' : req.method]);
  await kc.applySecurityAuthentication(ctx);
  const headers: Record<string, string> = { ...ctx.getHeaders(), accept: 'application/json' };
  if (req.body !== undefined) headers['content-type'] = req.contentType ?? 'application/json';
  const response = await fetch(url, {
    method: req.method,
    headers,
    body: req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body),
    dispatcher: reusedDispatcher(kc, ctx.getDispatcher()) as never,
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  if (!response.ok) {
    const status = parsed as { reason?: string; message?: string } | undefined;
    throw new KubeApiError(response.status, status?.reason ?? response.statusText, `${req.method} ${req.path}: ${response.status} ${status?.message ?? text}`, parsed);
  }
  return parsed as T;
}

function reusedDispatcher(kc: KubeConfig, fresh: unknown): unknown {
  if (fresh === undefined) return undefined;
  const kept = dispatchers.get(kc);
  if (kept) {
    if (kept !== fresh) void (fresh as { close?: () => Promise<void> }).close?.();
    return kept;
  }
  dispatchers.set(kc, fresh);
  return fresh;
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
export function serverSideApply<T>(kc: KubeConfig, path: string, obj: unknown, fieldManager: string, force = true): Promise<T> {
  return kubeRequest<T>(kc, {
    method: 'PATCH',
    path,
    query: { fieldManager, force },
    body: obj,
    contentType: 'application/apply-patch+yaml',
  });
}
