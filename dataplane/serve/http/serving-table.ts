// A snapshot's listeners prepared for serving: everything the request path would otherwise
// recompute per request is decided here, once per snapshot — match blocks that cannot apply
// to a filter chain's gateways dropped, cumulative destination weights, compiled retry rules,
// joined CORS header values, per-route metric series.

import type {
  CorsPolicy,
  FaultPolicy,
  FilterChain,
  HeaderOperations,
  Listener,
  MirrorPolicy,
  Route,
  RouteAction,
  RouteMatch,
  RouteTable,
  Snapshot,
  StringMatcher,
  VirtualHost,
  WeightedDestination,
} from '../../snapshot/types.js';
import { hasOperations } from './headers.js';
import type { RequestSeries, SeriesFactory } from './request-info.js';
import { compileRetryPolicy, type RetryRules } from './retry-policy.js';

export interface ServingListener {
  readonly listener: Listener;
  readonly snapshot: Snapshot;
  /** The Gateway (Service) port, as a metric label. */
  readonly gatewayPortLabel: string;
  readonly scheme: 'http' | 'https';
  readonly chains: readonly ServingChain[];
  /** The chain plaintext requests use (the listener's HTTP chain). */
  readonly plaintextChain: ServingChain | undefined;
  /** TLS listeners: the HTTP chains by SNI name, by wildcard suffix, and the one for any name. */
  readonly sniExact: ReadonlyMap<string, ServingChain>;
  readonly sniWildcard: ReadonlyArray<{ readonly suffix: string; readonly chain: ServingChain }>;
  readonly sniDefault: ServingChain | undefined;
  /** Requests that matched no virtual host. */
  readonly unmatchedSeries: RequestSeries;
}

export interface ServingChain {
  readonly chain: FilterChain;
  /** "ns/name" of the Gateways whose servers form this chain. */
  readonly gateways: ReadonlySet<string>;
  readonly httpsRedirect: boolean;
  readonly table: ServingRouteTable | undefined;
}

export interface ServingRouteTable {
  readonly name: string;
  readonly exact: ReadonlyMap<string, ServingVirtualHost>;
  readonly wildcard: ReadonlyArray<{ readonly suffix: string; readonly virtualHost: ServingVirtualHost }>;
  readonly catchAll: ServingVirtualHost | undefined;
}

export interface ServingVirtualHost {
  readonly name: string;
  readonly httpsRedirect: boolean;
  readonly routes: readonly ServingRoute[];
  /** Requests for this host that matched no route. */
  readonly unmatchedSeries: RequestSeries;
}

export interface ServingDestination {
  readonly destination: WeightedDestination;
  readonly cluster: string;
  /** The cluster hashes on a query parameter: the lease needs the parsed query. */
  readonly hashesOnQuery: boolean;
  readonly requestHeaders: HeaderOperations | undefined;
  readonly responseHeaders: HeaderOperations | undefined;
}

export interface ServingCors {
  readonly allowOrigins: readonly StringMatcher[];
  readonly allowMethods: string | undefined;
  readonly allowHeaders: string | undefined;
  readonly exposeHeaders: string | undefined;
  readonly maxAge: string | undefined;
  readonly allowCredentials: boolean;
  readonly unmatchedPreflights: CorsPolicy['unmatchedPreflights'];
}

export interface ServingRoute {
  readonly route: Route;
  readonly name: string;
  /** undefined: the route matches every request. */
  readonly matches: readonly RouteMatch[] | undefined;
  readonly action: RouteAction;
  readonly destinations: readonly ServingDestination[];
  /** Running sums of the destination weights, for one random draw per request. */
  readonly cumulativeWeights: readonly number[];
  readonly totalWeight: number;
  readonly retry: RetryRules;
  readonly timeout: number | undefined;
  readonly fault: FaultPolicy | undefined;
  readonly mirrors: readonly MirrorPolicy[];
  readonly cors: ServingCors | undefined;
  readonly requestHeaders: HeaderOperations | undefined;
  readonly responseHeaders: HeaderOperations | undefined;
  readonly series: RequestSeries;
}

export function compileServingListener(snapshot: Snapshot, listener: Listener, series: SeriesFactory): ServingListener {
  const port = String(listener.gatewayPort);
  const seriesCache = new Map<string, RequestSeries>();
  const seriesFor = (host: string, route: string) => {
    const key = `${host}\u0000${route}`;
    let s = seriesCache.get(key);
    if (s === undefined) seriesCache.set(key, (s = series(port, host, route)));
    return s;
  };
  const chains = listener.filterChains.map((chain) => compileChain(chain, snapshot, seriesFor));
  const sniExact = new Map<string, ServingChain>();
  const sniWildcard: Array<{ suffix: string; chain: ServingChain }> = [];
  let sniDefault: ServingChain | undefined;
  for (const c of chains) {
    if (c.table === undefined) continue;
    if (c.chain.serverNames.length === 0) sniDefault ??= c;
    for (const name of c.chain.serverNames) {
      const n = name.toLowerCase();
      if (n === '*') sniDefault ??= c;
      else if (n.startsWith('*.')) sniWildcard.push({ suffix: n.slice(1), chain: c });
      else if (!sniExact.has(n)) sniExact.set(n, c);
    }
  }
  sniWildcard.sort((a, b) => b.suffix.length - a.suffix.length);
  return {
    listener,
    snapshot,
    gatewayPortLabel: port,
    // A TLS port whose first server is TLS (passthrough) may still terminate HTTPS on another chain.
    scheme: listener.protocol === 'HTTPS' || chains.some((c) => c.chain.tls !== undefined && c.table !== undefined) ? 'https' : 'http',
    chains,
    plaintextChain: chains.find((c) => c.table !== undefined || c.httpsRedirect),
    sniExact,
    sniWildcard,
    sniDefault,
    unmatchedSeries: seriesFor('-', '-'),
  };
}

type SeriesFor = (host: string, route: string) => RequestSeries;

function compileChain(chain: FilterChain, snapshot: Snapshot, seriesFor: SeriesFor): ServingChain {
  const gateways = new Set(chain.servers.map((s) => (s.includes('#') ? s.slice(0, s.lastIndexOf('#')) : s)));
  return {
    chain,
    gateways,
    httpsRedirect: chain.httpsRedirect,
    table: chain.http ? compileRouteTable(chain.http, gateways, snapshot, seriesFor) : undefined,
  };
}

function compileRouteTable(table: RouteTable, gateways: ReadonlySet<string>, snapshot: Snapshot, seriesFor: SeriesFor): ServingRouteTable {
  const compiled = new Map<VirtualHost, ServingVirtualHost>();
  const vh = (v: VirtualHost): ServingVirtualHost => {
    let c = compiled.get(v);
    if (c === undefined) compiled.set(v, (c = compileVirtualHost(v, gateways, snapshot, seriesFor)));
    return c;
  };
  const exact = new Map<string, ServingVirtualHost>();
  for (const [host, v] of table.exactHosts) exact.set(host.toLowerCase(), vh(v));
  return {
    name: table.name,
    exact,
    wildcard: [...table.wildcardHosts].sort((a, b) => b.suffix.length - a.suffix.length).map((w) => ({ suffix: w.suffix.toLowerCase(), virtualHost: vh(w.virtualHost) })),
    catchAll: table.catchAll ? vh(table.catchAll) : undefined,
  };
}

function compileVirtualHost(v: VirtualHost, gateways: ReadonlySet<string>, snapshot: Snapshot, seriesFor: SeriesFor): ServingVirtualHost {
  const routes: ServingRoute[] = [];
  for (const route of v.routes) {
    const r = compileRoute(route, gateways, snapshot, seriesFor(v.name, route.name));
    if (r !== undefined) routes.push(r);
  }
  return { name: v.name, httpsRedirect: v.httpsRedirect === true, routes, unmatchedSeries: seriesFor(v.name, '-') };
}

/** undefined when no match block of the route can apply to this chain's gateways. */
export function compileRoute(route: Route, gateways: ReadonlySet<string>, snapshot: Pick<Snapshot, 'clusters'>, series: RequestSeries): ServingRoute | undefined {
  let matches: RouteMatch[] | undefined;
  if (route.matches.length > 0) {
    matches = route.matches.filter((m) => m.gateways.length === 0 || m.gateways.some((g) => gateways.has(g)));
    if (matches.length === 0) return undefined;
  }
  const action = route.action;
  const destinations: ServingDestination[] = [];
  const cumulativeWeights: number[] = [];
  let totalWeight = 0;
  if (action.kind === 'route') {
    for (const d of action.destinations) {
      if (!(d.weight > 0)) continue;
      totalWeight += d.weight;
      cumulativeWeights.push(totalWeight);
      const lb = snapshot.clusters.get(d.cluster)?.policy.loadBalancer;
      destinations.push({
        destination: d,
        cluster: d.cluster,
        hashesOnQuery: lb?.kind === 'CONSISTENT_HASH' && lb.hashOn.kind === 'queryParameter',
        requestHeaders: hasOperations(d.requestHeaders) ? d.requestHeaders : undefined,
        responseHeaders: hasOperations(d.responseHeaders) ? d.responseHeaders : undefined,
      });
    }
  }
  return {
    route,
    name: route.name,
    matches,
    action,
    destinations,
    cumulativeWeights,
    totalWeight,
    retry: compileRetryPolicy(route.retries),
    timeout: route.timeout && route.timeout > 0 ? route.timeout : undefined,
    fault: route.fault,
    mirrors: route.mirrors,
    cors: route.cors ? compileCors(route.cors) : undefined,
    requestHeaders: hasOperations(route.requestHeaders) ? route.requestHeaders : undefined,
    responseHeaders: hasOperations(route.responseHeaders) ? route.responseHeaders : undefined,
    series,
  };
}

function compileCors(c: CorsPolicy): ServingCors {
  const list = (v: string[]) => (v.length > 0 ? v.join(',') : undefined);
  return {
    allowOrigins: c.allowOrigins,
    allowMethods: list(c.allowMethods),
    allowHeaders: list(c.allowHeaders),
    exposeHeaders: list(c.exposeHeaders),
    maxAge: c.maxAge !== undefined ? String(Math.floor(c.maxAge / 1000)) : undefined,
    allowCredentials: c.allowCredentials === true,
    unmatchedPreflights: c.unmatchedPreflights,
  };
}

const chainTags = new WeakMap<object, string>();

/**
 * For the TLS module: the filter chain it terminated this connection with (chosen from the
 * ClientHello). Requests on the socket then use that chain instead of matching SNI again.
 */
export function assignFilterChain(socket: object, chainName: string): void {
  chainTags.set(socket, chainName);
}

/**
 * The HTTP chain for a request: plaintext listeners have one; on TLS listeners the chain the
 * TLS module assigned to the connection, else the SNI name picks it (exact, then the longest
 * wildcard, then the chain for any name).
 */
export function selectChain(serving: ServingListener, sni: string | undefined, socket?: object): ServingChain | undefined {
  if (serving.scheme === 'http') return serving.plaintextChain;
  if (socket !== undefined) {
    const tagged = chainTags.get(socket);
    if (tagged !== undefined) {
      const chain = serving.chains.find((c) => c.chain.name === tagged);
      if (chain !== undefined) return chain;
    }
  }
  if (sni !== undefined && sni !== '') {
    const name = sni.toLowerCase();
    const exact = serving.sniExact.get(name);
    if (exact !== undefined) return exact;
    for (const w of serving.sniWildcard) if (name.length > w.suffix.length && name.endsWith(w.suffix)) return w.chain;
  }
  return serving.sniDefault;
}

/**
 * Whether a chain chosen by SNI may serve this Host: a browser reusing one TLS connection for
 * another host that shares the certificate must get 421 Misdirected Request, not a 404.
 */
export function chainCoversHost(chain: ServingChain, host: string): boolean {
  const names = chain.chain.serverNames;
  if (names.length === 0) return true;
  for (const n of names) {
    const name = n.toLowerCase();
    if (name === '*' || name === host) return true;
    if (name.startsWith('*.') && host.length > name.length - 1 && host.endsWith(name.slice(1))) return true;
  }
  return false;
}

/** One weighted draw: `random` in [0, 1). */
export function pickDestination(route: ServingRoute, random: number): ServingDestination | undefined {
  const n = route.destinations.length;
  if (n <= 1) return route.destinations[0];
  const point = random * route.totalWeight;
  const weights = route.cumulativeWeights;
  for (let i = 0; i < n - 1; i++) if (point < weights[i]!) return route.destinations[i];
  return route.destinations[n - 1];
}
