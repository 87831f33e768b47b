// One Istio networking object, checked on its own by the translator's own code: what the
// admission webhook rejects is exactly what the data plane would reject, with the same
// field paths and messages. Pure, like the rest of translate/.
//
// The translator only compiles what a gateway can reach, so an object alone would mostly be
// skipped: a VirtualService binds to no server without a Gateway, a DestinationRule policy
// compiles only for a destination that uses it. Each object is therefore placed in a
// synthetic config that makes every one of its fields compile:
// - Gateway: a proxy whose labels are the Gateway's selector.
// - VirtualService: a Gateway binding every host ("*/*") on an HTTP server, on TCP servers
//   and on PASSTHROUGH TLS servers (one per port its tcp/tls matches name, each in its own
//   translation so no two protocols share a port), with every `gateways` list pointing at
//   it and exportTo dropped; a DestinationRule for every subset it names; a stand-in for each
//   delegate it names; and, when it is itself a delegate (no hosts), a root that delegates to it.
// - DestinationRule: every policy layer (top level, port level, each subset) compiled on its own.
// - ServiceEntry: the service registry built from it.
// Diagnostics that only say a referenced object is missing here (no Service for a host, a
// subset no rule defines) are about the rest of the cluster, not this object: left out.

import type { StoredObject } from '../config/resources.js';
import type { Diagnostic } from '../snapshot/types.js';
import { emptyConfigSet, type ConfigSet } from '../store/object-store.js';
import { DiagnosticSink } from './diagnostics.js';
import { resolveShortName } from './hosts.js';
import { translate } from './index.js';
import { buildServiceRegistry } from './service-registry.js';
import { compileTrafficPolicy, type RawTrafficPolicy } from './traffic-policy.js';

/** The kinds validateObject checks. */
export const VALIDATED_KINDS = ['Gateway', 'VirtualService', 'DestinationRule', 'ServiceEntry'] as const;

// Names no Kubernetes object can have (upper case, "~"), so synthetic objects never collide
// with the one under review or hide its diagnostics.
const SYNTHETIC_GATEWAY = '~Validation-Gateway';
const SYNTHETIC_ROOT = '~Validation-Root';
const STUB_HOST = 'delegate-stand-in.validation.invalid';

/**
 * Every diagnostic the translator reports for `obj` (errors reject it, warnings keep it),
 * with field paths inside `obj`. Empty for kinds it does not translate.
 */
export function validateObject(obj: StoredObject): Diagnostic[] {
  const target: StoredObject = { ...obj, metadata: { ...obj.metadata, name: obj.metadata?.name ?? '', namespace: obj.metadata?.namespace ?? 'default' } };
  let found: Diagnostic[];
  switch (target.kind) {
    case 'Gateway':
      found = validateGateway(target);
      break;
    case 'VirtualService':
      found = validateVirtualService(target);
      break;
    case 'DestinationRule':
      found = validateDestinationRule(target);
      break;
    case 'ServiceEntry':
      found = validateServiceEntry(target);
      break;
    default:
      return [];
  }
  return dedupe(found.filter((d) => !isAboutMissingReference(d)));
}

function config(parts: Partial<Record<keyof ConfigSet, StoredObject[]>>): ConfigSet {
  return { ...emptyConfigSet(), ...parts };
}

function about(obj: StoredObject) {
  return (d: Diagnostic) => d.kind === obj.kind && d.namespace === obj.metadata.namespace && d.name === obj.metadata.name;
}

function dedupe(items: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return items.filter((d) => {
    const key = `${d.severity}|${d.field}|${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Route destinations and mirrors are resolved against Services and ServiceEntries, which
 * this isolated config does not hold: "no Service defines host" and the like are reported at
 * the destination (`…destination`, `…destination.host`, `…mirror`, `…mirror.host`) as warnings.
 */
function isAboutMissingReference(d: Diagnostic): boolean {
  return d.severity === 'warning' && /(\.destination|\.mirror)(\.host)?$/.test(d.field);
}

function spec(obj: StoredObject): Record<string, any> {
  return obj.spec !== null && typeof obj.spec === 'object' ? (obj.spec as Record<string, any>) : {};
}

function list(v: unknown): any[] {
  return Array.isArray(v) ? v : [];
}

// ---------------------------------------------------------------------------------------
// Gateway

function validateGateway(gw: StoredObject): Diagnostic[] {
  const out: Diagnostic[] = [];
  const selector = spec(gw).selector;
  const labels: Record<string, string> = {};
  if (selector !== undefined && selector !== null) {
    if (typeof selector !== 'object' || Array.isArray(selector)) out.push(diagnostic(gw, 'spec.selector', 'must be a map of pod label to value'));
    else {
      for (const [k, v] of Object.entries(selector)) {
        // A number (`version: 1` in YAML) never equals a label value: the Gateway would select no pod.
        const at = /^[A-Za-z0-9_-]+$/.test(k) ? `spec.selector.${k}` : `spec.selector[${JSON.stringify(k)}]`;
        if (typeof v !== 'string') out.push(diagnostic(gw, at, 'must be a string (quote it in YAML)'));
        labels[k] = String(v);
      }
    }
  }
  const selectable = { ...gw, spec: { ...spec(gw), selector: labels } };
  const snapshot = translate(config({ Gateway: [selectable] }), { namespace: gw.metadata.namespace!, labels }, { version: 0 });
  return [...out, ...snapshot.diagnostics.filter(about(gw))];
}

// ---------------------------------------------------------------------------------------
// VirtualService

type Family = 'HTTP' | 'TCP' | 'TLS';

/** Ports named by the matches of a VirtualService's tcp or tls rules. */
function matchPorts(rules: any[]): number[] {
  const ports = new Set<number>();
  for (const rule of rules) for (const m of list(rule?.match)) if (m?.port !== undefined && Number.isInteger(Number(m.port))) ports.add(Number(m.port));
  return [...ports];
}

function syntheticGateway(namespace: string, family: Family, ports: number[]): StoredObject {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: SYNTHETIC_GATEWAY, namespace },
    spec: {
      selector: {},
      servers: ports.map((number) => ({
        port: { number, name: `${family.toLowerCase()}-${number}`, protocol: family },
        hosts: ['*/*'],
        ...(family === 'TLS' ? { tls: { mode: 'PASSTHROUGH' } } : {}),
      })),
    },
  };
}

/** A port for rules without a port match: any port the rules do not name. */
function freePort(taken: number[]): number {
  let p = 15_999;
  while (taken.includes(p)) p++;
  return p;
}

/** Every `gateways` list (top level, http/tcp/tls matches) pointed at `gatewayRef`; exportTo dropped. */
function boundToSyntheticGateway(vs: StoredObject, gatewayRef: string): StoredObject {
  const s = { ...spec(vs) };
  delete s.exportTo;
  s.gateways = [gatewayRef];
  for (const section of ['http', 'tcp', 'tls']) {
    if (!Array.isArray(s[section])) continue;
    s[section] = s[section].map((rule: any) => {
      if (rule === null || typeof rule !== 'object' || !Array.isArray(rule.match)) return rule;
      return { ...rule, match: rule.match.map((m: any) => (m !== null && typeof m === 'object' && m.gateways !== undefined ? { ...m, gateways: [gatewayRef] } : m)) };
    });
  }
  return { ...vs, spec: s };
}

/** A DestinationRule per destination host defining every subset the VirtualService names. */
function subsetRules(vs: StoredObject): StoredObject[] {
  const ns = vs.metadata.namespace!;
  const subsets = new Map<string, Set<string>>();
  const note = (d: any) => {
    if (typeof d?.host !== 'string' || typeof d.subset !== 'string' || !d.subset) return;
    const host = resolveShortName(d.host, ns);
    subsets.set(host, (subsets.get(host) ?? new Set()).add(d.subset));
  };
  const s = spec(vs);
  for (const section of ['http', 'tcp', 'tls']) {
    for (const rule of list(s[section])) {
      for (const r of list(rule?.route)) note(r?.destination);
      note(rule?.mirror);
      for (const m of list(rule?.mirrors)) note(m?.destination);
    }
  }
  return [...subsets].map(([host, names], i) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: `~validation-subsets-${i}`, namespace: ns },
    spec: { host, subsets: [...names].map((name) => ({ name, labels: {} })) },
  }));
}

/**
 * Stand-ins for the delegates a root VirtualService names: one plain rule each, so every
 * delegating rule expands to exactly one rule (same index) carrying the parent's match and
 * the policies it passes down, which then compile as the parent's.
 */
function delegateStandIns(vs: StoredObject): StoredObject[] {
  const ns = vs.metadata.namespace!;
  const refs = new Map<string, { name: string; namespace: string }>();
  for (const rule of list(spec(vs).http)) {
    const d = rule?.delegate;
    if (d === null || typeof d !== 'object' || typeof d.name !== 'string') continue;
    const namespace = typeof d.namespace === 'string' && d.namespace ? d.namespace : ns;
    refs.set(`${namespace}/${d.name}`, { name: d.name, namespace });
  }
  return [...refs.values()].map(({ name, namespace }) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec: { http: [{ route: [{ destination: { host: STUB_HOST } }] }] },
  }));
}

function validateVirtualService(vs: StoredObject): Diagnostic[] {
  const ns = vs.metadata.namespace!;
  const gatewayRef = `${ns}/${SYNTHETIC_GATEWAY}`;
  const bound = boundToSyntheticGateway(vs, gatewayRef);
  const s = spec(vs);
  const isDelegate = list(s.hosts).length === 0;
  // A delegate compiles only through a root that delegates to it; its rules then report on
  // the root, at the index of the expanded rule list, which the mapping below undoes.
  const root: StoredObject | undefined = isDelegate
    ? {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: SYNTHETIC_ROOT, namespace: ns },
        spec: { hosts: ['*'], gateways: [gatewayRef], http: [{ delegate: { name: vs.metadata.name, namespace: ns } }] },
      }
    : undefined;
  const virtualServices = root ? [bound, root] : [bound, ...delegateStandIns(vs).filter((d) => !(d.metadata.namespace === ns && d.metadata.name === vs.metadata.name))];
  const destinationRules = subsetRules(vs);

  const passes: StoredObject[] = [syntheticGateway(ns, 'HTTP', [80])];
  const tcpPorts = matchPorts(list(s.tcp));
  if (list(s.tcp).length > 0) passes.push(syntheticGateway(ns, 'TCP', [...tcpPorts, freePort(tcpPorts)]));
  const tlsPorts = matchPorts(list(s.tls));
  if (list(s.tls).length > 0) passes.push(syntheticGateway(ns, 'TLS', [...tlsPorts, freePort(tlsPorts)]));

  const out: Diagnostic[] = [];
  for (const gateway of passes) {
    const snapshot = translate(config({ Gateway: [gateway], VirtualService: virtualServices, DestinationRule: destinationRules }), { namespace: ns, labels: {} }, { version: 0 });
    for (const d of snapshot.diagnostics) {
      if (about(vs)(d)) out.push(d);
      else if (root && about(root)(d)) {
        const mapped = fromExpandedDelegate(d, vs);
        if (mapped) out.push(mapped);
      }
    }
  }
  return out;
}

/**
 * Maps a diagnostic reported on the synthetic root at `spec.http[j]…` (the j-th rule of the
 * expanded delegate) to the delegate's own rule: rules that delegate again are dropped from
 * the expansion (and reported on the delegate), so j counts only the others.
 */
function fromExpandedDelegate(d: Diagnostic, delegate: StoredObject): Diagnostic | undefined {
  const m = /^spec\.http\[(\d+)\](.*)$/.exec(d.field);
  if (!m) return undefined;
  const rules = list(spec(delegate).http);
  let j = Number(m[1]);
  for (let k = 0; k < rules.length; k++) {
    if (rules[k]?.delegate) continue;
    if (j-- === 0) return { ...d, kind: delegate.kind, name: delegate.metadata.name, namespace: delegate.metadata.namespace!, field: `spec.http[${k}]${m[2]}` };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// DestinationRule

/**
 * The translator compiles a layered policy per destination and reports its problems at
 * `spec.trafficPolicy.<field>`. Each layer is compiled here on its own and the path is
 * moved to where the layer is written.
 */
function validateDestinationRule(dr: StoredObject): Diagnostic[] {
  const s = spec(dr);
  const out: Diagnostic[] = [];
  const sink = new DiagnosticSink();
  // What the translator passes over without a word (a rule without host never applies; a
  // nameless or repeated subset is skipped): rejected here, as Istio does.
  if (typeof s.host !== 'string' || s.host.trim() === '') sink.error(dr, 'spec.host', 'is required');
  const names = new Set<string>();
  list(s.subsets).forEach((subset, i) => {
    if (typeof subset?.name !== 'string' || subset.name === '') sink.error(dr, `spec.subsets[${i}].name`, 'is required');
    else if (names.has(subset.name)) sink.error(dr, `spec.subsets[${i}].name`, `duplicate subset name ${JSON.stringify(subset.name)}`);
    else names.add(subset.name);
  });
  out.push(...sink.items);

  const compileLayer = (policy: unknown, at: string) => {
    if (policy === undefined || policy === null) return;
    if (typeof policy !== 'object') {
      out.push(diagnostic(dr, at, 'must be an object'));
      return;
    }
    const { portLevelSettings, ...own } = policy as RawTrafficPolicy;
    const layer = new DiagnosticSink();
    compileTrafficPolicy(own, dr, layer, dr.metadata.namespace!);
    for (const d of layer.items) out.push({ ...d, field: d.field.replace(/^spec\.trafficPolicy/, at) });
    list(portLevelSettings).forEach((pl, i) => {
      const plAt = `${at}.portLevelSettings[${i}]`;
      const number = Number(pl?.port?.number);
      if (!Number.isInteger(number) || number < 1 || number > 65535) out.push(diagnostic(dr, `${plAt}.port.number`, 'must be a port number 1-65535'));
      if (pl !== null && typeof pl === 'object') {
        const { port: _port, ...settings } = pl;
        compileLayer(settings, plAt);
      }
    });
  };
  compileLayer(s.trafficPolicy, 'spec.trafficPolicy');
  list(s.subsets).forEach((subset, i) => compileLayer(subset?.trafficPolicy, `spec.subsets[${i}].trafficPolicy`));
  return out;
}

function diagnostic(obj: StoredObject, field: string, message: string): Diagnostic {
  const sink = new DiagnosticSink();
  sink.error(obj, field, message);
  return sink.items[0]!;
}

// ---------------------------------------------------------------------------------------
// ServiceEntry

function validateServiceEntry(se: StoredObject): Diagnostic[] {
  const sink = new DiagnosticSink();
  buildServiceRegistry(config({ ServiceEntry: [se] }), sink);
  return sink.items.filter(about(se));
}
