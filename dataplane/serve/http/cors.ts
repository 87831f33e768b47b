// Istio corsPolicy as Envoy's CORS filter applies it: preflights whose origin matches are
// answered at the gateway; other responses to an allowed origin get the allow-origin,
// credentials and expose headers.

import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderMap } from './headers.js';
import { matchString } from './route-selection.js';
import type { ServingCors } from './serving-table.js';

export function isPreflight(method: string, headers: IncomingHttpHeaders): boolean {
  return method === 'OPTIONS' && headers.origin !== undefined && headers['access-control-request-method'] !== undefined;
}

export function originAllowed(cors: ServingCors, origin: string): boolean {
  for (const m of cors.allowOrigins) {
    if (m.kind === 'exact' && m.value === '*') return true;
    if (matchString(m, origin)) return true;
  }
  return false;
}

export function preflightHeaders(cors: ServingCors, origin: string): HeaderMap {
  const h: HeaderMap = { 'access-control-allow-origin': origin };
  if (cors.allowCredentials) h['access-control-allow-credentials'] = 'true';
  if (cors.allowMethods !== undefined) h['access-control-allow-methods'] = cors.allowMethods;
  if (cors.allowHeaders !== undefined) h['access-control-allow-headers'] = cors.allowHeaders;
  if (cors.maxAge !== undefined) h['access-control-max-age'] = cors.maxAge;
  return h;
}

export function addCorsResponseHeaders(cors: ServingCors, origin: string, headers: HeaderMap): void {
  headers['access-control-allow-origin'] = origin;
  if (cors.allowCredentials) headers['access-control-allow-credentials'] = 'true';
  if (cors.exposeHeaders !== undefined) headers['access-control-expose-headers'] = cors.exposeHeaders;
}
