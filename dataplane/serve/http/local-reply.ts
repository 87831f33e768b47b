// Responses the proxy makes itself (404 no route, 503 no healthy upstream, 504 timeout,
// redirects, direct responses, CORS preflights, injected faults): short plain bodies, the
// Envoy response flag and code details recorded for the access log.

import type { ServerResponse } from 'node:http';
import type { HeaderOperations } from '../../snapshot/types.js';
import { applyHeaderOperations, type HeaderMap } from './headers.js';
import type { RequestInfo, ResponseFlag } from './request-info.js';

export interface LocalReply {
  status: number;
  /** %RESPONSE_CODE_DETAILS%, e.g. "route_not_found". */
  details: string;
  flag?: ResponseFlag;
  body?: string | Buffer;
  contentType?: string;
  headers?: HeaderMap;
  /** Route response header operations, applied last. */
  responseHeaders?: HeaderOperations;
  /** Adds headers after everything else (CORS). */
  decorate?: (headers: HeaderMap) => void;
}

/** Writes a local reply unless a response has already started (then the stream is reset). */
export function sendLocalReply(res: ServerResponse, info: RequestInfo, reply: LocalReply): void {
  if (reply.flag !== undefined) info.addFlag(reply.flag);
  info.details = reply.details;
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body = reply.body === undefined ? undefined : typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
  const headers: HeaderMap = reply.headers ? { ...reply.headers } : {};
  if (body !== undefined && body.length > 0) headers['content-type'] ??= reply.contentType ?? 'text/plain';
  headers['content-length'] = String(body?.length ?? 0);
  if (reply.responseHeaders !== undefined) applyHeaderOperations(headers, reply.responseHeaders);
  reply.decorate?.(headers);
  info.status = reply.status;
  res.writeHead(reply.status, headers as Record<string, string | string[]>);
  if (body !== undefined && body.length > 0) {
    info.bytesSent += body.length;
    res.end(body);
  } else {
    res.end();
  }
}
