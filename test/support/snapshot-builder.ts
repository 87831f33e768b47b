// Builds compiled snapshots by hand for serving tests: listeners with route tables indexed
// the way the translator indexes them, routes with defaults for every policy, clusters of
// static endpoints.

import { compileRegex } from '../../dataplane/translate/string-matchers.js';
import {
  ISTIO_DEFAULT_RETRY_ON,
  type Cluster,
  type CorsPolicy,
  type Endpoint,
  type FaultPolicy,
  type HeaderCondition,
  type HeaderOperations,
  type Listener,
  type MirrorPolicy,
  type RetryPolicy,
  type RewritePolicy,
  type Route,
  type RouteAction,
  type RouteMatch,
  type RouteTable,
  type Snapshot,
  type StringMatcher,
  type TrafficPolicy,
  type VirtualHost,
} from '../../dataplane/snapshot/types.js';
import RE2 from 're2';

export const exact = (value: string, ignoreCase = false): StringMatcher => ({ kind: 'exact', value: ignoreCase ? value.toLowerCase() : value, ignoreCase });
export const prefix = (value: string, ignoreCase = false): StringMatcher => ({ kind: 'prefix', value: ignoreCase ? value.toLowerCase() : value, ignoreCase });
export function regex(source: string): StringMatcher {
  const c = compileRegex(source);
  if (!c.ok) throw new Error(c.error);
  return { kind: 'regex', source, test: c.value };
}

export function header(name: string, matcher?: StringMatcher): HeaderCondition {
  return matcher === undefined ? { name } : { name, matcher };
}

export function match(m: Partial<RouteMatch> = {}): RouteMatch {
  return { headers: [], withoutHeaders: [], queryParams: [], gateways: [], ...m };
}

export function ops(o: Partial<{ set: Record<string, string>; add: Record<string, string>; remove: string[] }> = {}): HeaderOperations {
  return { set: Object.entries(o.set ?? {}), add: Object.entries(o.add ?? {}), remove: o.remove ?? [] };
}

export const NO_OPS: HeaderOperations = { set: [], add: [], remove: [] };

export const DEFAULT_TEST_RETRIES: RetryPolicy = { attempts: 2, retryOn: ISTIO_DEFAULT_RETRY_ON, retryRemoteLocalities: false };

export interface DestinationSpec {
  cluster: string;
  weight?: number;
  requestHeaders?: HeaderOperations;
  responseHeaders?: HeaderOperations;
}

export interface RouteSpec {
  matches?: RouteMatch[];
  /** A cluster name, or weighted destinations. */
  to?: string | DestinationSpec[];
  redirect?: Omit<Extract<RouteAction, { kind: 'redirect' }>, 'kind' | 'code'> & { code?: number };
  directResponse?: { status: number; body?: string; contentType?: string };
  rewrite?: { uri?: string; authority?: string; uriRegex?: { match: string; rewrite: string } };
  timeout?: number;
  retries?: Partial<RetryPolicy>;
  fault?: FaultPolicy;
  mirrors?: MirrorPolicy[];
  cors?: Partial<CorsPolicy>;
  requestHeaders?: HeaderOperations;
  responseHeaders?: HeaderOperations;
  virtualService?: string;
}

export function route(name: string, spec: RouteSpec): Route {
  let action: RouteAction;
  if (spec.redirect) action = { kind: 'redirect', code: spec.redirect.code ?? 301, ...spec.redirect };
  else if (spec.directResponse) action = { kind: 'directResponse', status: spec.directResponse.status, body: spec.directResponse.body === undefined ? undefined : Buffer.from(spec.directResponse.body), contentType: spec.directResponse.contentType };
  else {
    const to = typeof spec.to === 'string' ? [{ cluster: spec.to }] : (spec.to ?? []);
    const destinations = to.map((d) => ({
      cluster: d.cluster,
      host: d.cluster.split('|')[3] ?? d.cluster,
      weight: d.weight ?? (to.length === 1 ? 100 : 0),
      requestHeaders: d.requestHeaders ?? NO_OPS,
      responseHeaders: d.responseHeaders ?? NO_OPS,
    }));
    action = { kind: 'route', destinations, totalWeight: destinations.reduce((s, d) => s + d.weight, 0) };
  }
  let rewrite: RewritePolicy | undefined;
  if (spec.rewrite) {
    rewrite = { uri: spec.rewrite.uri, authority: spec.rewrite.authority };
    if (spec.rewrite.uriRegex) {
      const { match: m, rewrite: r } = spec.rewrite.uriRegex;
      const re = new RE2(m, 'gu');
      const substitution = r.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
      rewrite.uriRegex = { match: m, rewrite: r, replace: (p: string) => p.replace(re as unknown as RegExp, substitution) };
    }
  }
  return {
    name,
    virtualService: spec.virtualService ?? (name.includes('/') ? name.split('.')[0]! : `default/${name.split('.')[0]}`),
    matches: spec.matches ?? [],
    action,
    rewrite,
    timeout: spec.timeout,
    retries: { ...DEFAULT_TEST_RETRIES, ...spec.retries },
    fault: spec.fault,
    mirrors: spec.mirrors ?? [],
    cors: spec.cors
      ? { allowOrigins: [], allowMethods: [], allowHeaders: [], exposeHeaders: [], unmatchedPreflights: 'FORWARD', ...spec.cors }
      : undefined,
    requestHeaders: spec.requestHeaders ?? NO_OPS,
    responseHeaders: spec.responseHeaders ?? NO_OPS,
  };
}

export function virtualHost(domains: string[], routes: Route[], options: { name?: string; httpsRedirect?: boolean } = {}): VirtualHost {
  return { name: options.name ?? `${domains[0]}:80`, domains, routes, httpsRedirect: options.httpsRedirect };
}

export function routeTable(name: string, virtualHosts: VirtualHost[]): RouteTable {
  const exactHosts = new Map<string, VirtualHost>();
  const wildcardHosts: Array<{ suffix: string; virtualHost: VirtualHost }> = [];
  let catchAll: VirtualHost | undefined;
  for (const vh of virtualHosts) {
    for (const d of vh.domains) {
      if (d === '*') catchAll = vh;
      else if (d.startsWith('*')) wildcardHosts.push({ suffix: d.slice(1), virtualHost: vh });
      else exactHosts.set(d, vh);
    }
  }
  wildcardHosts.sort((a, b) => b.suffix.length - a.suffix.length);
  return { name, virtualHosts, exactHosts, wildcardHosts, catchAll };
}

export interface HttpListenerSpec {
  port: number;
  gatewayPort?: number;
  bindAddress?: string;
  virtualHosts: VirtualHost[];
  /** "ns/gateway#index" entries (default: one server of istio-system/gw). */
  servers?: string[];
  httpsRedirect?: boolean;
}

export function httpListener(spec: HttpListenerSpec): Listener {
  const name = `http.${spec.port}`;
  return {
    name: `${spec.bindAddress ?? '127.0.0.1'}_${spec.port}`,
    bindAddress: spec.bindAddress ?? '127.0.0.1',
    bindPort: spec.port,
    gatewayPort: spec.gatewayPort ?? 80,
    protocol: 'HTTP',
    filterChains: [
      {
        name,
        servers: spec.servers ?? ['istio-system/gw#0'],
        serverNames: [],
        http: routeTable(name, spec.virtualHosts),
        httpsRedirect: spec.httpsRedirect ?? false,
      },
    ],
  };
}

export function testTrafficPolicy(overrides: Partial<TrafficPolicy> = {}): TrafficPolicy {
  return {
    loadBalancer: { kind: 'ROUND_ROBIN' },
    connectionPool: {
      maxConnections: 4_294_967_295,
      connectTimeout: 2_000,
      http1MaxPendingRequests: 4_294_967_295,
      http2MaxRequests: 4_294_967_295,
      maxRequestsPerConnection: 0,
      maxRetries: 4_294_967_295,
      httpIdleTimeout: 60_000,
      h2UpgradePolicy: 'DEFAULT',
    },
    ...overrides,
  };
}

/** A static cluster; endpoints as {address, port} (an EchoBackend qualifies). */
export function cluster(name: string, endpoints: Array<{ address: string; port: number; labels?: Record<string, string> }>, policy?: Partial<TrafficPolicy>): Cluster {
  const parts = name.split('|');
  return {
    name,
    host: parts[3] ?? name,
    port: Number(parts[1] ?? 80) || 80,
    subset: parts[2] || undefined,
    protocol: 'http1',
    resolution: 'static',
    endpoints: endpoints.map((e): Endpoint => ({ address: e.address, port: e.port, labels: e.labels ?? {}, weight: 1 })),
    policy: testTrafficPolicy(policy),
    origin: `Service test/${parts[3] ?? name}`,
  };
}

/** outbound|80||<host> */
export function clusterName(host: string, port = 80, subset = ''): string {
  return `outbound|${port}|${subset}|${host}`;
}

export function snapshot(spec: { version?: number; listeners: Listener[]; clusters?: Cluster[]; diagnostics?: Snapshot['diagnostics'] }): Snapshot {
  return {
    version: spec.version ?? 1,
    builtAt: new Date(0).toISOString(),
    listeners: spec.listeners,
    clusters: new Map((spec.clusters ?? []).map((c) => [c.name, c])),
    credentials: new Map(),
    diagnostics: spec.diagnostics ?? [],
  };
}
