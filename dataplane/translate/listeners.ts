// Gateway servers grouped by listening port → listeners with filter chains: one merged
// route table for plaintext HTTP, one chain per server (chosen by SNI) for HTTPS and TLS,
// and port-matched TCP routes.

import type { FilterChain, L4Destination, Listener, Route, RouteMatch, RouteTable, TcpRoute, TlsRoute, VirtualHost } from '../snapshot/types.js';
import type { ClusterBuilder } from './clusters.js';
import type { DiagnosticSink } from './diagnostics.js';
import type { GatewayServer } from './gateways.js';
import { hostCovers, intersectHosts, normalizeHost } from './hosts.js';
import { compileHttpRoute, normalizeGatewayRef, type RawHttpRoute } from './http-routes.js';
import { boundHosts, expandDelegates, type VirtualServiceView } from './virtual-services.js';

export interface ListenerInputs {
  servers: GatewayServer[];
  roots: VirtualServiceView[];
  delegates: Map<string, VirtualServiceView>;
  clusters: ClusterBuilder;
  sink: DiagnosticSink;
  bindAddress: string;
}

export function buildListeners(inputs: ListenerInputs): Listener[] {
  const byPort = new Map<number, GatewayServer[]>();
  for (const server of inputs.servers) byPort.set(server.bindPort, [...(byPort.get(server.bindPort) ?? []), server]);

  const expanded = new Map<VirtualServiceView, RawHttpRoute[]>();
  const httpRulesOf = (view: VirtualServiceView) => {
    let rules = expanded.get(view);
    if (!rules) {
      rules = expandDelegates(view, inputs.delegates, inputs.sink);
      expanded.set(view, rules);
    }
    return rules;
  };
  const compiledRoutes = new Map<string, Route[]>();
  const routesFor = (view: VirtualServiceView, server: GatewayServer): Route[] => {
    const key = `${view.namespace}/${view.vs.metadata.name}@${server.gatewayName}`;
    let routes = compiledRoutes.get(key);
    if (!routes) {
      routes = [];
      const rules = httpRulesOf(view);
      for (let i = 0; i < rules.length; i++) {
        const route = compileHttpRoute(rules[i]!, `spec.http[${i}]`, i, {
          vs: view.vs,
          clusters: inputs.clusters,
          sink: inputs.sink,
          gatewayName: server.gatewayName,
          vsGateways: view.gateways,
        });
        if (route) routes.push(route);
      }
      compiledRoutes.set(key, routes);
    }
    return routes;
  };

  const listeners: Listener[] = [];
  for (const [bindPort, servers] of byPort) {
    const first = servers[0]!;
    const accepted: GatewayServer[] = [];
    for (const server of servers) {
      if (server.family !== first.family) {
        inputs.sink.error(server.gateway, `spec.servers[${server.index}].port`, `port ${server.portNumber} (listening on ${bindPort}) is already used by ${first.id} with protocol ${first.protocol}; a port carries one protocol`);
        continue;
      }
      accepted.push(server);
    }
    const chains: FilterChain[] = [];
    if (first.family === 'http') {
      chains.push({
        name: `http.${bindPort}`,
        servers: accepted.map((s) => s.id),
        serverNames: [],
        http: buildRouteTable(`http.${bindPort}`, accepted, inputs.roots, routesFor),
        httpsRedirect: accepted.every((s) => s.httpsRedirect),
      });
    } else if (first.family === 'tcp') {
      chains.push({
        name: `tcp.${bindPort}`,
        servers: accepted.map((s) => s.id),
        serverNames: [],
        tcp: accepted.flatMap((s) => buildTcpRoutes(s, inputs)),
        httpsRedirect: false,
      });
    } else {
      const taken = new Set<string>();
      for (const server of accepted) {
        const names = server.hosts.map((h) => h.host);
        const fresh = names.filter((n) => !taken.has(n));
        if (fresh.length === 0) {
          inputs.sink.warning(server.gateway, `spec.servers[${server.index}].hosts`, `every host is already served with TLS on port ${server.portNumber}; this server is skipped`);
          continue;
        }
        fresh.forEach((n) => taken.add(n));
        const name = `${server.protocol === 'HTTPS' ? 'https' : 'tls'}.${server.portNumber}.${server.portName}.${server.gateway.metadata.name}.${server.gateway.metadata.namespace ?? 'default'}`;
        const chain: FilterChain = {
          name,
          servers: [server.id],
          serverNames: fresh.includes('*') ? [] : fresh,
          tls: server.tls,
          httpsRedirect: false,
        };
        if (server.tls?.mode === 'PASSTHROUGH') chain.tlsPassthrough = buildTlsRoutes(server, inputs);
        else if (server.protocol === 'HTTPS') chain.http = buildRouteTable(name, [server], inputs.roots, routesFor);
        else chain.tcp = buildTcpRoutes(server, inputs);
        chains.push(chain);
      }
      // The chain that takes any SNI goes last, so exact and wildcard names are tried first.
      chains.sort((a, b) => Number(a.serverNames.length === 0) - Number(b.serverNames.length === 0));
    }
    listeners.push({
      name: `${inputs.bindAddress}_${bindPort}`,
      bindAddress: inputs.bindAddress,
      bindPort,
      gatewayPort: first.portNumber,
      protocol: first.protocol,
      filterChains: chains,
    });
  }
  return listeners.sort((a, b) => a.bindPort - b.bindPort);
}

function buildRouteTable(
  name: string,
  servers: GatewayServer[],
  roots: VirtualServiceView[],
  routesFor: (view: VirtualServiceView, server: GatewayServer) => Route[],
): RouteTable {
  interface HostEntry {
    domain: string;
    views: Map<VirtualServiceView, Route[]>;
    httpsRedirect: boolean;
  }
  const hosts = new Map<string, HostEntry>();
  const entry = (domain: string) => {
    let e = hosts.get(domain);
    if (!e) hosts.set(domain, (e = { domain, views: new Map(), httpsRedirect: false }));
    return e;
  };
  const order = new Map(roots.map((v, i) => [v, i]));
  for (const server of servers) {
    for (const view of roots) {
      const domains = boundHosts(view, server);
      if (domains.length === 0) continue;
      const routes = routesFor(view, server);
      for (const domain of domains) {
        const e = entry(domain);
        e.views.set(view, [...(e.views.get(view) ?? []), ...routes.filter((r) => !(e.views.get(view) ?? []).includes(r))]);
      }
    }
    if (server.httpsRedirect) {
      for (const h of server.hosts) {
        entry(h.host).httpsRedirect = true;
        // Narrower hosts bound under this server redirect too.
        for (const e of hosts.values()) if (hostCovers(h.host, e.domain)) e.httpsRedirect = true;
      }
    }
  }
  const gatewayPort = servers[0]?.portNumber ?? 0;
  const virtualHosts: VirtualHost[] = [];
  for (const e of hosts.values()) {
    const views = [...e.views.entries()].sort((a, b) => order.get(a[0])! - order.get(b[0])!);
    virtualHosts.push({
      name: `${e.domain}:${gatewayPort}`,
      domains: [e.domain],
      routes: views.length === 1 ? views[0]![1] : mergeRoutes(views.map(([, r]) => r)),
      httpsRedirect: e.httpsRedirect || undefined,
    });
  }
  const exactHosts = new Map<string, VirtualHost>();
  const wildcardHosts: Array<{ suffix: string; virtualHost: VirtualHost }> = [];
  let catchAll: VirtualHost | undefined;
  for (const vh of virtualHosts) {
    const d = vh.domains[0]!;
    if (d === '*') catchAll = vh;
    else if (d.startsWith('*')) wildcardHosts.push({ suffix: d.slice(1), virtualHost: vh });
    else exactHosts.set(d, vh);
  }
  wildcardHosts.sort((a, b) => b.suffix.length - a.suffix.length);
  return { name, virtualHosts, exactHosts, wildcardHosts, catchAll };
}

/** Several VirtualServices for one host: oldest first, and catch-all rules after every specific one. */
function mergeRoutes(perView: Route[][]): Route[] {
  const specific: Route[] = [];
  const catchAll: Route[] = [];
  for (const routes of perView) {
    for (const r of routes) {
      if (isCatchAllRoute(r)) {
        catchAll.push(r);
        break; // anything after a catch-all in the same VirtualService was unreachable anyway
      }
      specific.push(r);
    }
  }
  return [...specific, ...catchAll];
}

function isCatchAllMatch(m: RouteMatch): boolean {
  const onlyUri = !m.scheme && !m.method && !m.authority && m.headers.length === 0 && m.withoutHeaders.length === 0 && m.queryParams.length === 0 && m.port === undefined;
  if (!onlyUri) return false;
  if (!m.uri) return true;
  return (m.uri.kind === 'prefix' && m.uri.value === '/') || (m.uri.kind === 'regex' && (m.uri.source === '.*' || m.uri.source === '/.*'));
}

export function isCatchAllRoute(r: Route): boolean {
  return r.matches.length === 0 || r.matches.some(isCatchAllMatch);
}

function appliesToGateway(m: any, view: VirtualServiceView, gatewayName: string): boolean {
  if (Array.isArray(m?.gateways)) return m.gateways.some((g: string) => normalizeGatewayRef(String(g), view.namespace) === gatewayName);
  return view.gateways.includes(gatewayName);
}

function l4Destinations(rule: any, at: string, view: VirtualServiceView, inputs: ListenerInputs): { destinations: L4Destination[]; totalWeight: number } | undefined {
  const routes: any[] = Array.isArray(rule?.route) ? rule.route : [];
  const destinations: L4Destination[] = [];
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i] ?? {};
    if (typeof r.destination?.host !== 'string') {
      inputs.sink.error(view.vs, `${at}.route[${i}].destination.host`, 'is required');
      return undefined;
    }
    const weight = r.weight === undefined ? (routes.length === 1 ? 100 : 0) : Number(r.weight);
    if (!(weight > 0)) continue;
    const host = r.destination.host.includes('.') ? normalizeHost(r.destination.host) : `${normalizeHost(r.destination.host)}.${view.namespace}.svc.cluster.local`;
    const port = r.destination.port?.number === undefined ? undefined : Number(r.destination.port.number);
    const subset = typeof r.destination.subset === 'string' ? r.destination.subset : undefined;
    const resolved = inputs.clusters.resolve({ host, port, subset }, view.namespace, true);
    if (!resolved.ok) {
      inputs.sink.error(view.vs, `${at}.route[${i}].destination`, resolved.error);
      if (resolved.error.startsWith('destination.port')) return undefined;
      continue;
    }
    destinations.push({ cluster: resolved.cluster.name, host, port: resolved.cluster.port, subset, weight });
  }
  if (destinations.length === 0) {
    inputs.sink.error(view.vs, `${at}.route`, 'at least one destination with a positive weight is required');
    return undefined;
  }
  return { destinations, totalWeight: destinations.reduce((s, d) => s + d.weight, 0) };
}

function buildTcpRoutes(server: GatewayServer, inputs: ListenerInputs): TcpRoute[] {
  const out: TcpRoute[] = [];
  for (const view of inputs.roots) {
    if (boundHosts(view, server).length === 0) continue;
    view.tcp.forEach((rule, i) => {
      const at = `spec.tcp[${i}]`;
      const blocks: any[] = Array.isArray(rule?.match) && rule.match.length > 0 ? rule.match : [{}];
      const applicable = blocks.filter((m) => appliesToGateway(m, view, server.gatewayName) && (m.port === undefined || Number(m.port) === server.portNumber));
      if (applicable.length === 0) return;
      const dests = l4Destinations(rule, at, view, inputs);
      if (!dests) return;
      for (const m of applicable) {
        out.push({
          name: `${view.namespace}/${view.vs.metadata.name}.tcp.${i}`,
          virtualService: `${view.namespace}/${view.vs.metadata.name}`,
          port: m.port === undefined ? undefined : Number(m.port),
          destinationSubnets: Array.isArray(m.destinationSubnets) ? m.destinationSubnets : [],
          ...dests,
        });
      }
    });
  }
  return out;
}

function buildTlsRoutes(server: GatewayServer, inputs: ListenerInputs): TlsRoute[] {
  const out: TlsRoute[] = [];
  for (const view of inputs.roots) {
    if (boundHosts(view, server).length === 0) continue;
    view.tls.forEach((rule, i) => {
      const at = `spec.tls[${i}]`;
      const blocks: any[] = Array.isArray(rule?.match) ? rule.match : [];
      if (blocks.length === 0) {
        inputs.sink.error(view.vs, `${at}.match`, 'tls rules need a match with sniHosts');
        return;
      }
      const dests = l4Destinations(rule, at, view, inputs);
      if (!dests) return;
      blocks.forEach((m, j) => {
        if (!appliesToGateway(m, view, server.gatewayName)) return;
        if (m.port !== undefined && Number(m.port) !== server.portNumber) return;
        const sni: string[] = Array.isArray(m.sniHosts) ? m.sniHosts.map((h: string) => normalizeHost(String(h))) : [];
        if (sni.length === 0) {
          inputs.sink.error(view.vs, `${at}.match[${j}].sniHosts`, 'is required');
          return;
        }
        for (const h of sni) {
          if (!view.hosts.some((vh) => intersectHosts(vh, h))) inputs.sink.error(view.vs, `${at}.match[${j}].sniHosts`, `${h} is not one of the VirtualService's hosts`);
        }
        const reachable = sni.filter((h) => server.hosts.some((sh) => intersectHosts(sh.host, h)));
        if (reachable.length === 0) return;
        out.push({
          name: `${view.namespace}/${view.vs.metadata.name}.tls.${i}`,
          virtualService: `${view.namespace}/${view.vs.metadata.name}`,
          port: m.port === undefined ? undefined : Number(m.port),
          destinationSubnets: Array.isArray(m.destinationSubnets) ? m.destinationSubnets : [],
          sniHosts: reachable,
          ...dests,
        });
      });
    });
  }
  return out;
}
