// Request → virtual host → route: the host is the Host/:authority without its port, in
// lower case, looked up exactly, then by wildcard suffix (longest first), then the catch-all;
// the first route with a matching block wins (blocks ORed, conditions ANDed).

import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderCondition, RouteMatch, StringMatcher } from '../../snapshot/types.js';
import type { ServingRoute, ServingRouteTable, ServingVirtualHost } from './serving-table.js';

/** The parts of a request that route matching reads; built once per request. */
export class RequestView {
  /** The path without the query string. */
  readonly pathOnly: string;
  /** The query string without "?" ("" when none). */
  readonly queryString: string;
  private parsedQuery: URLSearchParams | undefined;
  /** The block that matched, set by selectRoute (undefined for a route without blocks). */
  match: RouteMatch | undefined;

  constructor(
    readonly method: string,
    /** The request target's path with its query string. */
    readonly path: string,
    /** The Host/:authority header as sent. */
    readonly authority: string,
    /** Lower-case host without port. */
    readonly host: string,
    readonly scheme: string,
    readonly headers: IncomingHttpHeaders,
    /** The listener's gateway (Service) port, for `port` matches. */
    readonly gatewayPort: number,
  ) {
    const q = path.indexOf('?');
    this.pathOnly = q < 0 ? path : path.slice(0, q);
    this.queryString = q < 0 ? '' : path.slice(q + 1);
  }

  get query(): URLSearchParams {
    return (this.parsedQuery ??= new URLSearchParams(this.queryString));
  }
}

export function selectVirtualHost(table: ServingRouteTable, host: string): ServingVirtualHost | undefined {
  const exact = table.exact.get(host);
  if (exact !== undefined) return exact;
  const wildcard = table.wildcard;
  for (let i = 0; i < wildcard.length; i++) {
    const w = wildcard[i]!;
    // ".example.com" matches "a.example.com", never "example.com" itself.
    if (host.length > w.suffix.length && host.endsWith(w.suffix)) return w.virtualHost;
  }
  return table.catchAll;
}

export function selectRoute(vh: ServingVirtualHost, view: RequestView): ServingRoute | undefined {
  const routes = vh.routes;
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i]!;
    const matches = route.matches;
    if (matches === undefined) {
      view.match = undefined;
      return route;
    }
    for (let j = 0; j < matches.length; j++) {
      if (matchesBlock(matches[j]!, view)) {
        view.match = matches[j];
        return route;
      }
    }
  }
  return undefined;
}

export function matchesBlock(m: RouteMatch, view: RequestView): boolean {
  if (m.uri !== undefined && !matchUri(m.uri, view)) return false;
  if (m.method !== undefined && !matchString(m.method, view.method)) return false;
  if (m.scheme !== undefined && !matchString(m.scheme, view.scheme)) return false;
  if (m.authority !== undefined && !matchString(m.authority, view.authority)) return false;
  if (m.port !== undefined && m.port !== view.gatewayPort) return false;
  for (let i = 0; i < m.headers.length; i++) if (!matchHeader(m.headers[i]!, view)) return false;
  for (let i = 0; i < m.withoutHeaders.length; i++) if (matchHeader(m.withoutHeaders[i]!, view)) return false;
  for (let i = 0; i < m.queryParams.length; i++) {
    const q = m.queryParams[i]!;
    const value = view.queryString === '' ? null : view.query.get(q.name);
    if (value === null) return false;
    if (q.matcher !== undefined && !matchString(q.matcher, value)) return false;
  }
  return true;
}

/**
 * Envoy: a prefix is compared with the whole :path; exact and regex with the path once the
 * query string is removed.
 */
function matchUri(m: StringMatcher, view: RequestView): boolean {
  return m.kind === 'prefix' ? matchString(m, view.path) : matchString(m, view.pathOnly);
}

function matchHeader(c: HeaderCondition, view: RequestView): boolean {
  const value = headerValue(c.name, view);
  if (value === undefined) return false;
  return c.matcher === undefined || matchString(c.matcher, value);
}

function headerValue(name: string, view: RequestView): string | undefined {
  if (name.charCodeAt(0) === 58 /* ':' */) {
    switch (name) {
      case ':authority':
        return view.authority;
      case ':method':
        return view.method;
      case ':path':
        return view.path;
      case ':scheme':
        return view.scheme;
      default:
        return undefined;
    }
  }
  const v = view.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Exact and prefix values are lower-cased at translate time when ignoreCase is set. */
export function matchString(m: StringMatcher, value: string): boolean {
  switch (m.kind) {
    case 'exact':
      return (m.ignoreCase ? value.toLowerCase() : value) === m.value;
    case 'prefix':
      return m.ignoreCase ? value.toLowerCase().startsWith(m.value) : value.startsWith(m.value);
    case 'regex':
      return m.test(value);
  }
}
