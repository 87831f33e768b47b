// VirtualService `http` rules → compiled routes: match blocks, the action (route, redirect,
// direct response), and the policies (rewrite, timeout, retries, fault, mirror, CORS, headers).

import type { StoredObject } from '../config/resources.js';
import {
  ISTIO_DEFAULT_RETRY_ON,
  type CorsPolicy,
  type FaultPolicy,
  type HeaderCondition,
  type HeaderOperations,
  type MirrorPolicy,
  type RetryPolicy,
  type RewritePolicy,
  type Route,
  type RouteAction,
  type RouteMatch,
  type StringMatcher,
  type WeightedDestination,
} from '../snapshot/types.js';
import type { ClusterBuilder } from './clusters.js';
import type { DiagnosticSink } from './diagnostics.js';
import { parseDuration } from './durations.js';
import { resolveShortName } from './hosts.js';
import { compileRegexRewrite, compileStringMatch } from './string-matchers.js';

export type RawHttpRoute = Record<string, any>;

export interface RouteContext {
  vs: StoredObject;
  clusters: ClusterBuilder;
  sink: DiagnosticSink;
  /** "ns/name" of the gateway whose server bound this VirtualService. */
  gatewayName: string;
  /** The VirtualService's top-level gateways, normalized to "ns/name". */
  vsGateways: string[];
}

export const DEFAULT_RETRIES: RetryPolicy = {
  attempts: 2,
  retryOn: ISTIO_DEFAULT_RETRY_ON,
  retryRemoteLocalities: false,
};

const NO_HEADER_OPS: HeaderOperations = { set: [], add: [], remove: [] };

export function normalizeGatewayRef(ref: string, namespace: string): string | undefined {
  if (ref === 'mesh') return undefined;
  return ref.includes('/') ? ref : `${namespace}/${ref}`;
}

/**
 * Compiles one http rule for one gateway. Returns undefined when the rule does not apply to
 * this gateway (its match gateways exclude it) or is invalid (reported, the rest still serves).
 */
export function compileHttpRoute(raw: RawHttpRoute, at: string, index: number, ctx: RouteContext): Route | undefined {
  const ns = ctx.vs.metadata.namespace ?? 'default';
  const matches: RouteMatch[] = [];
  const rawMatches: any[] = Array.isArray(raw.match) ? raw.match : [];
  for (let i = 0; i < rawMatches.length; i++) {
    const m = rawMatches[i] ?? {};
    const gateways: string[] = Array.isArray(m.gateways)
      ? m.gateways.map((g: string) => normalizeGatewayRef(g, ns)).filter((g: string | undefined): g is string => !!g)
      : [];
    // A match's gateways override the VirtualService's: skip blocks that do not apply here.
    if (Array.isArray(m.gateways) ? !gateways.includes(ctx.gatewayName) : !ctx.vsGateways.includes(ctx.gatewayName)) continue;
    const compiled = compileMatch(m, `${at}.match[${i}]`, ctx);
    if (!compiled) return undefined;
    matches.push(compiled);
  }
  if (rawMatches.length > 0 && matches.length === 0) return undefined;
  if (rawMatches.length === 0 && !ctx.vsGateways.includes(ctx.gatewayName)) return undefined;

  const action = compileAction(raw, at, ctx);
  if (!action) return undefined;
  const headers = compileHeaderOps(raw.headers, `${at}.headers`, ctx);
  const route: Route = {
    name: typeof raw.name === 'string' && raw.name ? `${ns}/${ctx.vs.metadata.name}.${raw.name}` : `${ns}/${ctx.vs.metadata.name}.${index}`,
    virtualService: `${ns}/${ctx.vs.metadata.name}`,
    matches,
    action,
    rewrite: compileRewrite(raw.rewrite, `${at}.rewrite`, ctx),
    timeout: optionalDuration(raw.timeout, `${at}.timeout`, ctx),
    retries: compileRetries(raw.retries, `${at}.retries`, ctx),
    fault: compileFault(raw.fault, `${at}.fault`, ctx),
    mirrors: compileMirrors(raw, at, ctx),
    cors: compileCors(raw.corsPolicy, `${at}.corsPolicy`, ctx),
    requestHeaders: headers.request,
    responseHeaders: headers.response,
  };
  if (route.rewrite && action.kind !== 'route') {
    ctx.sink.error(ctx.vs, `${at}.rewrite`, 'rewrite cannot be combined with redirect or directResponse');
    return undefined;
  }
  return route;
}

/** A rule that matches every request (no match, or only prefix "/" / regex ".*"): merged last. */
export function isCatchAll(raw: RawHttpRoute): boolean {
  const ms: any[] = Array.isArray(raw.match) ? raw.match : [];
  if (ms.length === 0) return true;
  return ms.some((m) => {
    const keys = Object.keys(m ?? {}).filter((k) => k !== 'name');
    if (keys.length === 0) return true;
    if (keys.length !== 1 || keys[0] !== 'uri') return false;
    return m.uri?.prefix === '/' || m.uri?.regex === '.*' || m.uri?.regex === '/.*';
  });
}

function compileMatch(m: any, at: string, ctx: RouteContext): RouteMatch | undefined {
  const fail = (field: string, message: string): undefined => {
    ctx.sink.error(ctx.vs, `${at}.${field}`, message);
    return undefined;
  };
  const out: RouteMatch = { headers: [], withoutHeaders: [], queryParams: [], gateways: [] };
  if (typeof m.name === 'string') out.name = m.name;
  const ignoreUriCase = m.ignoreUriCase === true;
  for (const field of ['uri', 'scheme', 'method', 'authority'] as const) {
    if (m[field] === undefined) continue;
    const c = compileStringMatch(m[field], field === 'uri' && ignoreUriCase);
    if (!c.ok) return fail(c.field ? `${field}.${c.field}` : field, c.error);
    out[field] = c.value;
  }
  for (const [field, target] of [['headers', out.headers], ['withoutHeaders', out.withoutHeaders]] as const) {
    if (m[field] === undefined) continue;
    if (typeof m[field] !== 'object' || m[field] === null) return fail(field, 'must be a map of header name to string match');
    for (const [name, spec] of Object.entries(m[field] as Record<string, unknown>)) {
      if (name !== name.toLowerCase()) return fail(`${field}.${name}`, 'header names must be lower-case');
      const cond = headerCondition(name, spec);
      if ('error' in cond) return fail(`${field}.${name}${cond.field ? `.${cond.field}` : ''}`, cond.error);
      target.push(cond);
    }
  }
  if (m.queryParams !== undefined) {
    for (const [name, spec] of Object.entries((m.queryParams ?? {}) as Record<string, unknown>)) {
      const cond = headerCondition(name, spec);
      if ('error' in cond) return fail(`queryParams.${name}${cond.field ? `.${cond.field}` : ''}`, cond.error);
      out.queryParams.push(cond);
    }
  }
  if (m.port !== undefined) {
    const p = Number(m.port);
    if (!Number.isInteger(p) || p < 1 || p > 65535) return fail('port', 'must be a port number 1-65535');
    out.port = p;
  }
  if (m.sourceLabels !== undefined || m.sourceNamespace !== undefined) {
    ctx.sink.warning(ctx.vs, at, 'sourceLabels/sourceNamespace apply to sidecars only and are ignored on gateways');
  }
  return out;
}

function headerCondition(name: string, spec: unknown): HeaderCondition | { error: string; field?: string } {
  // `{}` (or null) means "present with any value", as in Istio.
  if (spec === null || spec === undefined || (typeof spec === 'object' && Object.keys(spec as object).length === 0)) return { name };
  const c = compileStringMatch(spec);
  return c.ok ? { name, matcher: c.value } : { error: c.error, field: c.field };
}

function compileAction(raw: RawHttpRoute, at: string, ctx: RouteContext): RouteAction | undefined {
  const present = ['route', 'redirect', 'directResponse', 'delegate'].filter((k) => raw[k] !== undefined && raw[k] !== null);
  if (present.length === 0) {
    ctx.sink.error(ctx.vs, at, 'one of route, redirect, directResponse or delegate is required');
    return undefined;
  }
  if (present.length > 1) {
    ctx.sink.error(ctx.vs, `${at}.${present[1]}`, `cannot be combined with ${present[0]}`);
    return undefined;
  }
  if (raw.redirect) return compileRedirect(raw.redirect, `${at}.redirect`, ctx);
  if (raw.directResponse) {
    const d = raw.directResponse;
    const status = Number(d.status);
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      ctx.sink.error(ctx.vs, `${at}.directResponse.status`, 'must be an HTTP status 200-599');
      return undefined;
    }
    let body: Buffer | undefined;
    if (typeof d.body?.string === 'string') body = Buffer.from(d.body.string, 'utf8');
    else if (typeof d.body?.bytes === 'string') body = Buffer.from(d.body.bytes, 'base64');
    return { kind: 'directResponse', status, body };
  }
  if (raw.delegate) {
    // Delegates are expanded before compiling; reaching here means the delegate was not found.
    ctx.sink.error(ctx.vs, `${at}.delegate`, `delegate VirtualService ${raw.delegate.namespace ?? ''}/${raw.delegate.name} not found or not exported`);
    return undefined;
  }
  const routes: any[] = Array.isArray(raw.route) ? raw.route : [];
  if (routes.length === 0) {
    ctx.sink.error(ctx.vs, `${at}.route`, 'at least one destination is required');
    return undefined;
  }
  const destinations: WeightedDestination[] = [];
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i] ?? {};
    const field = `${at}.route[${i}]`;
    if (typeof r.destination?.host !== 'string' || !r.destination.host) {
      ctx.sink.error(ctx.vs, `${field}.destination.host`, 'is required');
      return undefined;
    }
    const weight = r.weight === undefined ? (routes.length === 1 ? 100 : 0) : Number(r.weight);
    if (!Number.isInteger(weight) || weight < 0) {
      ctx.sink.error(ctx.vs, `${field}.weight`, 'must be a non-negative integer');
      return undefined;
    }
    if (weight === 0) continue;
    const dest = destinationOf(r.destination, `${field}.destination`, ctx);
    if (!dest) return undefined;
    const headers = compileHeaderOps(r.headers, `${field}.headers`, ctx);
    destinations.push({ ...dest, weight, requestHeaders: headers.request, responseHeaders: headers.response });
  }
  const totalWeight = destinations.reduce((sum, d) => sum + d.weight, 0);
  if (totalWeight === 0) {
    ctx.sink.error(ctx.vs, `${at}.route`, 'the weights add up to 0');
    return undefined;
  }
  return { kind: 'route', destinations, totalWeight };
}

function destinationOf(d: any, at: string, ctx: RouteContext): { cluster: string; host: string; subset?: string; port?: number } | undefined {
  const ns = ctx.vs.metadata.namespace ?? 'default';
  const host = resolveShortName(d.host, ns);
  const port = d.port?.number === undefined ? undefined : Number(d.port.number);
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    ctx.sink.error(ctx.vs, `${at}.port.number`, 'must be a port number 1-65535');
    return undefined;
  }
  const subset = typeof d.subset === 'string' && d.subset ? d.subset : undefined;
  const resolved = ctx.clusters.resolve({ host, subset, port }, ns);
  if (!resolved.ok) {
    if (resolved.error.startsWith('destination.port')) {
      ctx.sink.error(ctx.vs, `${at}.port`, resolved.error.replace(/^destination\.port /, ''));
      return undefined;
    }
    ctx.sink.warning(ctx.vs, at, resolved.error);
    return { cluster: `outbound|${port ?? 80}|${subset ?? ''}|${host}`, host, subset, port };
  }
  if (!resolved.cluster.origin) ctx.sink.warning(ctx.vs, `${at}.host`, `no Service or ServiceEntry defines ${host}: requests will get 503`);
  return { cluster: resolved.cluster.name, host, subset, port: resolved.cluster.port };
}

function compileRedirect(r: any, at: string, ctx: RouteContext): RouteAction | undefined {
  const code = r.redirectCode === undefined ? 301 : Number(r.redirectCode);
  if (![301, 302, 303, 307, 308].includes(code)) {
    ctx.sink.error(ctx.vs, `${at}.redirectCode`, 'must be 301, 302, 303, 307 or 308');
    return undefined;
  }
  if (r.port !== undefined && r.derivePort !== undefined) {
    ctx.sink.error(ctx.vs, `${at}.derivePort`, 'cannot be combined with port');
    return undefined;
  }
  if (r.derivePort !== undefined && !['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'].includes(r.derivePort)) {
    ctx.sink.error(ctx.vs, `${at}.derivePort`, 'must be FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT');
    return undefined;
  }
  return {
    kind: 'redirect',
    uri: typeof r.uri === 'string' ? r.uri : undefined,
    authority: typeof r.authority === 'string' ? r.authority : undefined,
    port: r.port === undefined ? undefined : Number(r.port),
    derivePort: r.derivePort,
    scheme: typeof r.scheme === 'string' ? r.scheme : undefined,
    code,
  };
}

function compileRewrite(r: any, at: string, ctx: RouteContext): RewritePolicy | undefined {
  if (!r) return undefined;
  const out: RewritePolicy = {};
  if (typeof r.uri === 'string') out.uri = r.uri;
  if (typeof r.authority === 'string') out.authority = r.authority;
  if (r.uriRegexRewrite) {
    if (out.uri !== undefined) {
      ctx.sink.error(ctx.vs, `${at}.uriRegexRewrite`, 'cannot be combined with uri');
      return undefined;
    }
    const { match, rewrite } = r.uriRegexRewrite;
    if (typeof match !== 'string' || typeof rewrite !== 'string') {
      ctx.sink.error(ctx.vs, `${at}.uriRegexRewrite`, 'match and rewrite are required');
      return undefined;
    }
    const compiled = compileRegexRewrite(match, rewrite);
    if (!compiled.ok) {
      ctx.sink.error(ctx.vs, `${at}.uriRegexRewrite.match`, compiled.error);
      return undefined;
    }
    out.uriRegex = { match, rewrite, replace: compiled.value };
  }
  return out.uri === undefined && out.authority === undefined && !out.uriRegex ? undefined : out;
}

function compileRetries(r: any, at: string, ctx: RouteContext): RetryPolicy {
  if (!r) return DEFAULT_RETRIES;
  const attempts = Number(r.attempts ?? 0);
  if (!Number.isInteger(attempts) || attempts < 0) {
    ctx.sink.error(ctx.vs, `${at}.attempts`, 'must be a non-negative integer');
    return DEFAULT_RETRIES;
  }
  const retryOn = typeof r.retryOn === 'string' && r.retryOn.trim() ? r.retryOn.split(',').map((s: string) => s.trim()).filter(Boolean) : ISTIO_DEFAULT_RETRY_ON;
  return {
    attempts,
    perTryTimeout: optionalDuration(r.perTryTimeout, `${at}.perTryTimeout`, ctx),
    retryOn,
    retryRemoteLocalities: r.retryRemoteLocalities === true,
  };
}

function percentage(p: any, legacy: any): number {
  if (p && typeof p.value === 'number') return Math.max(0, Math.min(100, p.value));
  if (typeof legacy === 'number') return Math.max(0, Math.min(100, legacy));
  return 100;
}

function compileFault(f: any, at: string, ctx: RouteContext): FaultPolicy | undefined {
  if (!f) return undefined;
  const out: FaultPolicy = {};
  if (f.delay) {
    const d = parseDuration(f.delay.fixedDelay);
    if (typeof d !== 'number') ctx.sink.error(ctx.vs, `${at}.delay.fixedDelay`, d.error);
    else out.delay = { fixedDelay: d, percentage: percentage(f.delay.percentage, f.delay.percent) };
  }
  if (f.abort) {
    const status = f.abort.httpStatus === undefined ? undefined : Number(f.abort.httpStatus);
    if (status !== undefined && (!Number.isInteger(status) || status < 200 || status > 599)) {
      ctx.sink.error(ctx.vs, `${at}.abort.httpStatus`, 'must be an HTTP status 200-599');
    } else if (status === undefined && typeof f.abort.grpcStatus !== 'string') {
      ctx.sink.error(ctx.vs, `${at}.abort`, 'httpStatus or grpcStatus is required');
    } else {
      out.abort = { httpStatus: status, grpcStatus: f.abort.grpcStatus, percentage: percentage(f.abort.percentage, undefined) };
    }
  }
  return out.delay || out.abort ? out : undefined;
}

function compileMirrors(raw: RawHttpRoute, at: string, ctx: RouteContext): MirrorPolicy[] {
  const out: MirrorPolicy[] = [];
  const add = (dest: any, pct: number, field: string) => {
    if (typeof dest?.host !== 'string') {
      ctx.sink.error(ctx.vs, `${field}.host`, 'is required');
      return;
    }
    const d = destinationOf(dest, field, ctx);
    if (d) out.push({ cluster: d.cluster, host: d.host, percentage: pct });
  };
  if (raw.mirror) add(raw.mirror, percentage(raw.mirrorPercentage, raw.mirrorPercent), `${at}.mirror`);
  if (Array.isArray(raw.mirrors)) raw.mirrors.forEach((m: any, i: number) => add(m?.destination, percentage(m?.percentage, undefined), `${at}.mirrors[${i}].destination`));
  return out;
}

function compileCors(c: any, at: string, ctx: RouteContext): CorsPolicy | undefined {
  if (!c) return undefined;
  const origins: StringMatcher[] = [];
  (Array.isArray(c.allowOrigins) ? c.allowOrigins : []).forEach((o: unknown, i: number) => {
    const m = compileStringMatch(o);
    if (m.ok) origins.push(m.value);
    else ctx.sink.error(ctx.vs, `${at}.allowOrigins[${i}]${m.field ? `.${m.field}` : ''}`, m.error);
  });
  for (const o of Array.isArray(c.allowOrigin) ? c.allowOrigin : []) {
    origins.push(o === '*' ? { kind: 'prefix', value: '', ignoreCase: false } : { kind: 'exact', value: String(o), ignoreCase: false });
  }
  const list = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);
  return {
    allowOrigins: origins,
    allowMethods: list(c.allowMethods),
    allowHeaders: list(c.allowHeaders),
    exposeHeaders: list(c.exposeHeaders),
    maxAge: optionalDuration(c.maxAge, `${at}.maxAge`, ctx),
    allowCredentials: typeof c.allowCredentials === 'boolean' ? c.allowCredentials : undefined,
    unmatchedPreflights: c.unmatchedPreflights === 'IGNORE' ? 'IGNORE' : 'FORWARD',
  };
}

export function compileHeaderOps(h: any, at: string, ctx: RouteContext): { request: HeaderOperations; response: HeaderOperations } {
  const side = (s: any, field: string): HeaderOperations => {
    if (!s) return NO_HEADER_OPS;
    const pairs = (m: unknown, f: string): Array<[string, string]> => {
      if (m === undefined) return [];
      if (typeof m !== 'object' || m === null) {
        ctx.sink.error(ctx.vs, `${field}.${f}`, 'must be a map of header name to value');
        return [];
      }
      return Object.entries(m as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), String(v)]);
    };
    return {
      set: pairs(s.set, 'set'),
      add: pairs(s.add, 'add'),
      remove: Array.isArray(s.remove) ? s.remove.map((x: unknown) => String(x).toLowerCase()) : [],
    };
  };
  return { request: side(h?.request, `${at}.request`), response: side(h?.response, `${at}.response`) };
}

function optionalDuration(v: unknown, at: string, ctx: RouteContext): number | undefined {
  if (v === undefined || v === null) return undefined;
  const d = parseDuration(v);
  if (typeof d === 'number') return d === 0 ? undefined : d;
  ctx.sink.error(ctx.vs, at, d.error);
  return undefined;
}
