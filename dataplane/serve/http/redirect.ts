// Redirect targets: Istio HTTPRedirect (Envoy's RedirectAction semantics) and the
// tls.httpsRedirect of a server.

import type { RouteAction } from '../../snapshot/types.js';
import { authorityPort, hostWithoutPort } from './headers.js';

type RedirectAction = Extract<RouteAction, { kind: 'redirect' }>;

const DEFAULT_PORT: Record<string, string> = { http: ':80', https: ':443' };

/**
 * Envoy's newUri: the scheme, host and port of the request unless replaced; `uri` replaces
 * the whole path and keeps the request's query string unless it has one of its own; a port
 * that is the default for the final scheme is left out; when only the scheme changes, a
 * request port that was the default for the old scheme is dropped.
 */
export function redirectLocation(action: RedirectAction, requestScheme: string, authority: string, path: string, gatewayPort: number): string {
  const scheme = action.scheme ?? requestScheme;
  let host: string;
  let port: string;
  if (action.authority !== undefined) {
    host = action.authority;
    port = '';
  } else {
    host = authority.slice(0, authority.length - authorityPort(authority).length);
    port = authorityPort(authority);
    if (scheme !== requestScheme && port === DEFAULT_PORT[requestScheme]) port = '';
  }
  if (action.port !== undefined) {
    host = host.slice(0, host.length - authorityPort(host).length);
    port = `:${action.port}`;
  } else if (action.derivePort === 'FROM_REQUEST_PORT') {
    // Istio renders routes per listener port, so "the request port" is the gateway port.
    host = host.slice(0, host.length - authorityPort(host).length);
    port = `:${gatewayPort}`;
  }
  if (port === DEFAULT_PORT[scheme]) port = '';
  let target: string;
  if (action.uri !== undefined) {
    const q = path.indexOf('?');
    target = action.uri.includes('?') || q < 0 ? action.uri : action.uri + path.slice(q);
    if (!target.startsWith('/')) target = `/${target}`;
  } else {
    target = path;
  }
  return `${scheme}://${host}${port}${target}`;
}

/** tls.httpsRedirect: the same host (without the plaintext port) and path over https. */
export function httpsRedirectLocation(authority: string, path: string): string {
  return `https://${hostWithoutPort(authority)}${path}`;
}
