// Layer-4 route selection, compiled once per snapshot: VirtualService `tcp` rules (match on
// the gateway port and the destination subnets) and `tls` rules (SNI patterns on top), and
// the weighted draw among a rule's destinations. Pure: the connection's facts in, a route out.

import { BlockList, isIP } from 'node:net';
import type { L4Destination, TcpRoute, TlsRoute } from '../../snapshot/types.js';

export interface CompiledL4Route {
  readonly route: TcpRoute;
  readonly name: string;
  readonly port: number | undefined;
  /** undefined: any destination address. */
  readonly subnets: BlockList | undefined;
  /** TLS rules only: exact names and ".suffix" wildcards; `any` for "*". */
  readonly sni: { readonly exact: ReadonlySet<string>; readonly suffixes: readonly string[]; readonly any: boolean } | undefined;
  readonly destinations: readonly L4Destination[];
  readonly cumulativeWeights: readonly number[];
  readonly totalWeight: number;
}

/** What a connection offers for matching. */
export interface L4ConnectionFacts {
  /** The Gateway (Service) port of the listener. */
  gatewayPort: number;
  /** The address the client connected to (the gateway's own address). */
  localAddress: string | undefined;
  /** TLS rules: the ClientHello's server name (lower case), if any. */
  sni?: string;
}

export function compileTcpRoutes(routes: readonly TcpRoute[] | undefined): CompiledL4Route[] {
  return (routes ?? []).map((r) => compileRoute(r, undefined));
}

export function compileTlsRoutes(routes: readonly TlsRoute[] | undefined): CompiledL4Route[] {
  return (routes ?? []).map((r) => compileRoute(r, r.sniHosts));
}

/** The first rule whose port, subnets and (for TLS rules) SNI all match. */
export function selectL4Route(routes: readonly CompiledL4Route[], facts: L4ConnectionFacts): CompiledL4Route | undefined {
  for (const r of routes) {
    if (r.port !== undefined && r.port !== facts.gatewayPort) continue;
    if (r.subnets !== undefined && !addressIn(r.subnets, facts.localAddress)) continue;
    if (r.sni !== undefined && !sniMatches(r.sni, facts.sni)) continue;
    return r;
  }
  return undefined;
}

/** One weighted draw; `random` in [0, 1). */
export function pickL4Destination(route: CompiledL4Route, random: number): L4Destination | undefined {
  const n = route.destinations.length;
  if (n <= 1) return route.destinations[0];
  const point = random * route.totalWeight;
  for (let i = 0; i < n - 1; i++) if (point < route.cumulativeWeights[i]!) return route.destinations[i];
  return route.destinations[n - 1];
}

function compileRoute(route: TcpRoute, sniHosts: readonly string[] | undefined): CompiledL4Route {
  const destinations: L4Destination[] = [];
  const cumulativeWeights: number[] = [];
  let total = 0;
  for (const d of route.destinations) {
    // A single destination with no weight takes everything (Istio's default weight is 100).
    const weight = route.destinations.length === 1 && !(d.weight > 0) ? 1 : d.weight;
    if (!(weight > 0)) continue;
    total += weight;
    destinations.push(d);
    cumulativeWeights.push(total);
  }
  return {
    route,
    name: route.name,
    port: route.port,
    subnets: compileSubnets(route.destinationSubnets),
    sni: sniHosts === undefined ? undefined : compileSni(sniHosts),
    destinations,
    cumulativeWeights,
    totalWeight: total,
  };
}

function compileSni(patterns: readonly string[]): NonNullable<CompiledL4Route['sni']> {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  let any = false;
  for (const raw of patterns) {
    const p = normalizeName(raw);
    if (p === '*') any = true;
    else if (p.startsWith('*.')) suffixes.push(p.slice(1));
    else exact.add(p);
  }
  return { exact, suffixes, any };
}

function sniMatches(sni: NonNullable<CompiledL4Route['sni']>, name: string | undefined): boolean {
  if (sni.any) return true;
  if (name === undefined || name === '') return false;
  const n = normalizeName(name);
  if (sni.exact.has(n)) return true;
  for (const suffix of sni.suffixes) if (n.length > suffix.length && n.endsWith(suffix)) return true;
  return false;
}

function compileSubnets(subnets: readonly string[]): BlockList | undefined {
  if (subnets.length === 0) return undefined;
  const list = new BlockList();
  for (const s of subnets) {
    const [address, bits] = s.split('/');
    const family = isIP(address ?? '');
    if (family === 0) continue; // the translator reports malformed subnets
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address!, type);
    else list.addSubnet(address!, Number(bits), type);
  }
  return list;
}

function addressIn(list: BlockList, address: string | undefined): boolean {
  if (address === undefined) return false;
  const plain = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  const family = isIP(plain);
  if (family === 0) return false;
  return list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
}

function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
