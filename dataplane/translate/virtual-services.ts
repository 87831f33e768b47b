// Which VirtualServices bind to which Gateway server, for which hosts; delegate expansion.

import type { StoredObject } from '../config/resources.js';
import type { DiagnosticSink } from './diagnostics.js';
import { isVisibleTo } from './export-to.js';
import type { GatewayServer } from './gateways.js';
import { intersectHosts, resolveShortName, validHostPattern } from './hosts.js';
import { normalizeGatewayRef, type RawHttpRoute } from './http-routes.js';
import { byAge } from './traffic-policy.js';

export interface VirtualServiceView {
  vs: StoredObject;
  namespace: string;
  hosts: string[];
  /** Top-level gateways, "ns/name" ("mesh" dropped). */
  gateways: string[];
  /** Every gateway named anywhere (top level and match level). */
  allGateways: Set<string>;
  exportTo?: string[];
  http: RawHttpRoute[];
  tcp: any[];
  tls: any[];
}

/** Reads every VirtualService once, validating what binding needs; oldest first. */
export function viewVirtualServices(all: readonly StoredObject[], sink: DiagnosticSink): { roots: VirtualServiceView[]; delegates: Map<string, VirtualServiceView> } {
  const roots: VirtualServiceView[] = [];
  const delegates = new Map<string, VirtualServiceView>();
  for (const vs of [...all].sort(byAge)) {
    const ns = vs.metadata.namespace ?? 'default';
    const spec = (vs.spec ?? {}) as Record<string, any>;
    const hostsRaw: unknown[] = Array.isArray(spec.hosts) ? spec.hosts : [];
    const hosts: string[] = [];
    hostsRaw.forEach((h, i) => {
      const resolved = resolveShortName(String(h), ns);
      if (!validHostPattern(resolved)) sink.error(vs, `spec.hosts[${i}]`, `invalid host ${JSON.stringify(h)}`);
      else hosts.push(resolved);
    });
    const gateways = (Array.isArray(spec.gateways) && spec.gateways.length > 0 ? spec.gateways : ['mesh'])
      .map((g: string) => normalizeGatewayRef(String(g), ns))
      .filter((g: string | undefined): g is string => !!g);
    const allGateways = new Set<string>(gateways);
    for (const rule of Array.isArray(spec.http) ? spec.http : []) {
      for (const m of Array.isArray(rule?.match) ? rule.match : []) {
        for (const g of Array.isArray(m?.gateways) ? m.gateways : []) {
          const n = normalizeGatewayRef(String(g), ns);
          if (n) allGateways.add(n);
        }
      }
    }
    const view: VirtualServiceView = {
      vs,
      namespace: ns,
      hosts,
      gateways,
      allGateways,
      exportTo: Array.isArray(spec.exportTo) ? spec.exportTo : undefined,
      http: Array.isArray(spec.http) ? spec.http : [],
      tcp: Array.isArray(spec.tcp) ? spec.tcp : [],
      tls: Array.isArray(spec.tls) ? spec.tls : [],
    };
    if (hostsRaw.length === 0) {
      // A VirtualService without hosts can only be a delegate.
      delegates.set(`${ns}/${vs.metadata.name}`, view);
    } else {
      roots.push(view);
    }
  }
  return { roots, delegates };
}

/**
 * The hosts a VirtualService serves on a server: each VS host intersected with each server
 * host whose namespace part admits the VS. Empty when it does not bind.
 */
export function boundHosts(view: VirtualServiceView, server: GatewayServer): string[] {
  const gwNamespace = server.gateway.metadata.namespace ?? 'default';
  if (!view.allGateways.has(server.gatewayName)) return [];
  if (!isVisibleTo(view.exportTo, view.namespace, gwNamespace)) return [];
  const result = new Set<string>();
  for (const serverHost of server.hosts) {
    if (serverHost.namespace !== '*' && serverHost.namespace !== view.namespace) continue;
    for (const host of view.hosts) {
      const common = intersectHosts(serverHost.host, host);
      if (common) result.add(common);
    }
  }
  return [...result];
}

/**
 * What would otherwise be silent no-ops of a VirtualService (warnings; it still serves what it
 * can): a Gateway it names that does not exist, and, for each Gateway of this proxy it names, a
 * host that no server of that Gateway admits.
 */
export function reportUnboundHosts(roots: readonly VirtualServiceView[], gateways: readonly StoredObject[], servers: readonly GatewayServer[], sink: DiagnosticSink): void {
  const existing = new Set(gateways.map((g) => `${g.metadata.namespace ?? 'default'}/${g.metadata.name}`));
  const serversOf = new Map<string, GatewayServer[]>();
  for (const server of servers) serversOf.set(server.gatewayName, [...(serversOf.get(server.gatewayName) ?? []), server]);
  for (const view of roots) {
    const refs: unknown[] = Array.isArray((view.vs.spec as { gateways?: unknown } | undefined)?.gateways) ? ((view.vs.spec as { gateways: unknown[] }).gateways) : [];
    refs.forEach((ref, i) => {
      const name = normalizeGatewayRef(String(ref), view.namespace);
      if (name === undefined) return;
      if (!existing.has(name)) {
        sink.warning(view.vs, `spec.gateways[${i}]`, `Gateway ${name} not found: nothing binds to it`);
        return;
      }
      const own = serversOf.get(name);
      if (own === undefined || !isVisibleTo(view.exportTo, view.namespace, name.slice(0, name.indexOf('/')))) return;
      const listed = [...new Set(own.flatMap((s) => s.hosts.map((h) => (h.namespace === '*' ? h.host : `${h.namespace}/${h.host}`))))];
      view.hosts.forEach((host, j) => {
        const single = { ...view, hosts: [host] };
        if (own.some((server) => boundHosts(single, server).length > 0)) return;
        const rawHosts: unknown[] = (view.vs.spec as { hosts: unknown[] }).hosts;
        const at = rawHosts.findIndex((h) => resolveShortName(String(h), view.namespace) === host);
        sink.warning(view.vs, `spec.hosts[${at >= 0 ? at : j}]`, `${host} is not served by Gateway ${name}: no server of it admits this host (its hosts: ${listed.join(', ')})`);
      });
    });
  }
}

/**
 * Replaces each `delegate` rule with the delegate's rules, one level deep: the parent's match
 * is ANDed with each child match, and the child inherits the parent's unset policies.
 */
export function expandDelegates(view: VirtualServiceView, delegates: Map<string, VirtualServiceView>, sink: DiagnosticSink): RawHttpRoute[] {
  const out: RawHttpRoute[] = [];
  view.http.forEach((rule, i) => {
    if (!rule?.delegate) {
      out.push(rule);
      return;
    }
    const action = ['route', 'redirect', 'directResponse'].find((k) => rule[k] !== undefined && rule[k] !== null);
    if (action) {
      sink.error(view.vs, `spec.http[${i}].${action}`, 'cannot be combined with delegate');
      return;
    }
    const ref = `${rule.delegate.namespace ?? view.namespace}/${rule.delegate.name}`;
    const child = delegates.get(ref);
    if (!child || !isVisibleTo(child.exportTo, child.namespace, view.namespace)) {
      sink.error(view.vs, `spec.http[${i}].delegate`, `delegate VirtualService ${ref} not found, not exported to ${view.namespace}, or it has hosts`);
      return;
    }
    for (const childRule of child.http) {
      if (childRule?.delegate) {
        sink.error(child.vs, 'spec.http', 'a delegate VirtualService cannot delegate again');
        continue;
      }
      const merged = mergeDelegateRule(rule, childRule);
      if (merged) out.push(merged);
      else sink.warning(child.vs, 'spec.http', `a rule conflicts with the match of its parent ${view.namespace}/${view.vs.metadata.name} and is skipped`);
    }
  });
  return out;
}

const INHERITED = ['rewrite', 'timeout', 'retries', 'fault', 'mirror', 'mirrorPercentage', 'mirrors', 'corsPolicy', 'headers'];

function mergeDelegateRule(parent: RawHttpRoute, child: RawHttpRoute): RawHttpRoute | undefined {
  const merged: RawHttpRoute = { ...child };
  for (const key of INHERITED) if (merged[key] === undefined && parent[key] !== undefined) merged[key] = parent[key];
  const parentMatches: any[] = Array.isArray(parent.match) && parent.match.length > 0 ? parent.match : [{}];
  const childMatches: any[] = Array.isArray(child.match) && child.match.length > 0 ? child.match : [{}];
  const combined: any[] = [];
  for (const pm of parentMatches) {
    for (const cm of childMatches) {
      const m = mergeMatch(pm, cm);
      if (m) combined.push(m);
    }
  }
  if (combined.length === 0) return undefined;
  merged.match = combined.every((m) => Object.keys(m).length === 0) ? undefined : combined;
  return merged;
}

/** Child conditions must stay within the parent's: a child uri must refine the parent's prefix. */
function mergeMatch(parent: any, child: any): any | undefined {
  const m: any = { ...parent, ...child };
  if (parent.uri && child.uri) {
    const p = parent.uri.prefix ?? parent.uri.exact;
    const c = child.uri.prefix ?? child.uri.exact;
    if (parent.uri.regex || child.uri.regex || parent.uri.exact) {
      if (JSON.stringify(parent.uri) !== JSON.stringify(child.uri)) return undefined;
    } else if (typeof p === 'string' && typeof c === 'string' && !c.startsWith(p)) return undefined;
  }
  for (const key of ['headers', 'withoutHeaders', 'queryParams']) {
    if (!parent[key] && !child[key]) continue;
    const combined = { ...(parent[key] ?? {}) };
    for (const [name, spec] of Object.entries(child[key] ?? {})) {
      if (combined[name] !== undefined && JSON.stringify(combined[name]) !== JSON.stringify(spec)) return undefined;
      combined[name] = spec;
    }
    m[key] = combined;
  }
  return m;
}
