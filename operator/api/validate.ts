// Validation of a GatewayDeployment, in one place, with field paths. The apiserver already
// enforces the CRD's schema and CEL rules; this mirrors those rules (so objects that never
// went through the apiserver, tests and the webhook get the same answers) and adds what CEL
// cannot see: the operator's own options, the defaults, and formats the Deployment would
// otherwise reject only after the operator tried to apply it.

import { isIP } from 'node:net';
import { parseDuration } from '../../dataplane/translate/durations.js';
import { DEFAULTS, PROXY, effectiveServiceType, type RenderOptions } from './defaults.js';
import { GATEWAY_LABEL } from './labels.js';
import type { GatewayDeployment, IntOrPercent } from './types.js';

export interface FieldError {
  /** Where, as the apiserver writes it: `spec.service.ports[1].targetPort`. */
  field: string;
  message: string;
}

export class InvalidGatewayDeploymentError extends Error {
  constructor(
    readonly object: string,
    readonly errors: FieldError[],
  ) {
    super(`GatewayDeployment ${object} is invalid: ${formatFieldErrors(errors)}`);
  }
}

export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.field}: ${e.message}`).join('; ');
}

/**
 * The CEL rules (x-kubernetes-validations) of crds/portway.dev_gatewaydeployments.yaml.
 * `schema` is where the rule sits in the CRD (`[]` = list items), `fieldPath` the rule's own
 * fieldPath; a unit test checks each entry against the CRD so the two cannot drift apart.
 */
export const CEL_RULES = {
  replicasWithAutoscaling: {
    schema: 'spec',
    fieldPath: '.replicas',
    message: 'must be unset when autoscaling.enabled is true: the HorizontalPodAutoscaler owns the replica count',
  },
  privilegedPortsRequired: {
    schema: 'spec',
    fieldPath: '.privilegedPorts',
    message: "required when a service port's targetPort (which defaults to its port) is below 1024: the proxy runs as non-root uid 1337",
  },
  loadBalancerFieldsNeedLoadBalancer: {
    schema: 'spec',
    fieldPath: '.service',
    message: 'loadBalancerClass, loadBalancerIP and loadBalancerSourceRanges need service type LoadBalancer (egress gateways default to ClusterIP)',
  },
  nodeFieldsNeedExternalService: {
    schema: 'spec',
    fieldPath: '.service',
    message: 'externalTrafficPolicy and nodePort need service type LoadBalancer or NodePort (egress gateways default to ClusterIP)',
  },
  drainShorterThanGracePeriod: {
    schema: 'spec',
    fieldPath: '.drainDuration',
    message: 'must be shorter than terminationGracePeriodSeconds (defaults: 5s and 30): the kubelet kills the proxy when the grace period ends',
  },
  minReplicasAtMostMax: {
    schema: 'spec.autoscaling',
    fieldPath: '.minReplicas',
    message: 'must be <= maxReplicas (defaults: 1 and 5)',
  },
  pdbOneOf: {
    schema: 'spec.podDisruptionBudget',
    fieldPath: undefined,
    message: 'set minAvailable or maxUnavailable, not both',
  },
  pdbDisabledWithValues: {
    schema: 'spec.podDisruptionBudget',
    fieldPath: undefined,
    message: 'minAvailable and maxUnavailable have no effect with enabled: false',
  },
  uniqueServicePorts: {
    schema: 'spec.service.ports',
    fieldPath: undefined,
    message: 'port numbers must be unique',
  },
  reservedTargetPorts: {
    schema: 'spec.service.ports[]',
    fieldPath: '.targetPort',
    message: "15000 and 15090 are the proxy's admin and metrics ports (targetPort defaults to port)",
  },
  reservedLabel: {
    schema: 'spec.labels',
    fieldPath: undefined,
    message: "must not set portway.dev/gateway: the operator sets it to select the gateway's pods",
  },
  reservedEnv: {
    schema: 'spec.env',
    fieldPath: undefined,
    message: 'POD_NAME, POD_NAMESPACE and INSTANCE_IP are set by the operator',
  },
  reservedVolumes: {
    schema: 'spec.volumes',
    fieldPath: undefined,
    message: 'the volume names podinfo and tmp are used by the operator',
  },
  reservedMountPaths: {
    schema: 'spec.volumeMounts',
    fieldPath: undefined,
    message: '/etc/portway/podinfo and /tmp are mounted by the operator',
  },
} as const satisfies Record<string, { schema: string; fieldPath: string | undefined; message: string }>;

export type CelRuleName = keyof typeof CEL_RULES;

/** Where the apiserver reports a CEL rule: the rule's schema location plus its fieldPath. */
function celField(rule: CelRuleName, index?: number): string {
  const { schema, fieldPath } = CEL_RULES[rule];
  const base = schema.endsWith('[]') ? `${schema.slice(0, -2)}[${index ?? 0}]` : schema;
  return base + (fieldPath ?? '');
}

const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DURATION = /^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/;
const PERCENT = /^[0-9]+%$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

class Collector {
  readonly errors: FieldError[] = [];
  add(field: string, message: string): void {
    this.errors.push({ field, message });
  }
  rule(rule: CelRuleName, index?: number): void {
    this.add(celField(rule, index), CEL_RULES[rule].message);
  }
}

function isInteger(v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

function checkInteger(c: Collector, field: string, v: unknown, min: number, max?: number): void {
  if (v === undefined) return;
  if (!isInteger(v, min, max)) c.add(field, max === undefined ? `must be an integer >= ${min}` : `must be an integer from ${min} to ${max}`);
}

function checkEnum(c: Collector, field: string, v: unknown, allowed: readonly string[]): void {
  if (v !== undefined && !allowed.includes(v as string)) c.add(field, `must be one of ${allowed.join(', ')}`);
}

/** An IntOrString as Deployments and PDBs take it: a non-negative integer or "N%" (N <= 100). */
export function isIntOrPercent(v: unknown): v is IntOrPercent {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0;
  return typeof v === 'string' && PERCENT.test(v) && Number(v.slice(0, -1)) <= 100;
}

function isCidr(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  const [address, prefix, extra] = v.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || extra !== undefined || prefix === undefined || !/^[0-9]{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

function isZero(v: IntOrPercent): boolean {
  return v === 0 || v === '0%';
}

/** Label keys and values as Kubernetes checks them ([prefix/]name; value up to 63 characters). */
function checkLabels(c: Collector, field: string, labels: Record<string, string> | undefined): void {
  for (const [key, value] of Object.entries(labels ?? {})) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if ((prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) || name.length > 63 || !LABEL_NAME.test(name)) {
      c.add(`${field}[${JSON.stringify(key)}]`, 'is not a valid label key ([DNS subdomain/]name, name up to 63 characters)');
    }
    if (typeof value !== 'string' || value.length > 63 || (value !== '' && !LABEL_NAME.test(value))) {
      c.add(`${field}[${JSON.stringify(key)}]`, 'is not a valid label value (up to 63 letters, digits, "-", "_" or "." between alphanumerics)');
    }
  }
}

function checkUnique<T>(c: Collector, field: string, items: readonly T[] | undefined, key: (item: T) => unknown, what: string): void {
  const seen = new Set<unknown>();
  (items ?? []).forEach((item, i) => {
    const k = key(item);
    if (seen.has(k)) c.add(`${field}[${i}]`, `duplicate ${what} ${JSON.stringify(k)}`);
    seen.add(k);
  });
}

function checkService(c: Collector, gd: GatewayDeployment): void {
  const svc = gd.spec?.service;
  if (!svc) return;
  checkEnum(c, 'spec.service.type', svc.type, ['LoadBalancer', 'NodePort', 'ClusterIP']);
  checkEnum(c, 'spec.service.externalTrafficPolicy', svc.externalTrafficPolicy, ['Local', 'Cluster']);
  const ports = svc.ports;
  if (ports !== undefined && ports.length === 0) c.add('spec.service.ports', 'must list at least one port (leave it out for the defaults)');
  (ports ?? []).forEach((p, i) => {
    const f = `spec.service.ports[${i}]`;
    if (typeof p.name !== 'string' || p.name.length > 63 || !DNS1035_LABEL.test(p.name)) c.add(`${f}.name`, 'must be a DNS-1035 label (lower-case letters, digits and "-", starting with a letter)');
    checkInteger(c, `${f}.port`, p.port, 1, 65535);
    checkInteger(c, `${f}.targetPort`, p.targetPort, 1, 65535);
    checkInteger(c, `${f}.nodePort`, p.nodePort, 1, 65535);
    checkEnum(c, `${f}.protocol`, p.protocol, ['TCP']);
    if ((PROXY.reservedTargetPorts as readonly number[]).includes(p.targetPort ?? p.port)) c.rule('reservedTargetPorts', i);
  });
  checkUnique(c, 'spec.service.ports', ports, (p) => p.name, 'port name');
  if (ports && new Set(ports.map((p) => p.port)).size !== ports.length) c.rule('uniqueServicePorts');
  (svc.loadBalancerSourceRanges ?? []).forEach((r, i) => {
    if (!isCidr(r)) c.add(`spec.service.loadBalancerSourceRanges[${i}]`, 'must be a CIDR such as 203.0.113.0/24');
  });
  const type = effectiveServiceType(gd);
  if ((svc.loadBalancerClass !== undefined || svc.loadBalancerIP !== undefined || svc.loadBalancerSourceRanges !== undefined) && type !== 'LoadBalancer') {
    c.rule('loadBalancerFieldsNeedLoadBalancer');
  }
  if ((svc.externalTrafficPolicy !== undefined || (ports ?? []).some((p) => p.nodePort !== undefined)) && type === 'ClusterIP') {
    c.rule('nodeFieldsNeedExternalService');
  }
}

function checkAutoscalingAndReplicas(c: Collector, gd: GatewayDeployment): void {
  const spec = gd.spec ?? {};
  checkInteger(c, 'spec.replicas', spec.replicas, 0);
  const a = spec.autoscaling;
  if (!a) return;
  checkInteger(c, 'spec.autoscaling.minReplicas', a.minReplicas, 1);
  checkInteger(c, 'spec.autoscaling.maxReplicas', a.maxReplicas, 1);
  checkInteger(c, 'spec.autoscaling.targetCPUUtilizationPercentage', a.targetCPUUtilizationPercentage, 1);
  checkInteger(c, 'spec.autoscaling.targetMemoryUtilizationPercentage', a.targetMemoryUtilizationPercentage, 1);
  if ((a.minReplicas ?? DEFAULTS.autoscaling.minReplicas) > (a.maxReplicas ?? DEFAULTS.autoscaling.maxReplicas)) c.rule('minReplicasAtMostMax');
  if (spec.replicas !== undefined && a.enabled === true) c.rule('replicasWithAutoscaling');
  if (!a.enabled) return;
  // Utilization is measured against requests; without one the HPA reports <unknown> forever.
  // A limit alone counts: Kubernetes copies it into the request.
  const resources = spec.resources ?? DEFAULTS.resources;
  const has = (r: 'cpu' | 'memory') =>
    (resources.requests as Record<string, unknown> | undefined)?.[r] !== undefined || (resources.limits as Record<string, unknown> | undefined)?.[r] !== undefined;
  const noTarget = a.targetCPUUtilizationPercentage === undefined && a.targetMemoryUtilizationPercentage === undefined;
  if ((a.targetCPUUtilizationPercentage !== undefined || noTarget) && !has('cpu')) {
    c.add('spec.resources.requests.cpu', 'required when autoscaling targets CPU utilization: the HPA measures utilization against it');
  }
  if (a.targetMemoryUtilizationPercentage !== undefined && !has('memory')) {
    c.add('spec.resources.requests.memory', 'required when autoscaling targets memory utilization: the HPA measures utilization against it');
  }
}

function checkDisruptionAndRollout(c: Collector, gd: GatewayDeployment): void {
  const spec = gd.spec ?? {};
  const pdb = spec.podDisruptionBudget;
  if (pdb) {
    for (const key of ['minAvailable', 'maxUnavailable'] as const) {
      if (pdb[key] !== undefined && !isIntOrPercent(pdb[key])) c.add(`spec.podDisruptionBudget.${key}`, 'must be a non-negative integer or a percentage such as "50%"');
    }
    if (pdb.minAvailable !== undefined && pdb.maxUnavailable !== undefined) c.rule('pdbOneOf');
    if (pdb.enabled === false && (pdb.minAvailable !== undefined || pdb.maxUnavailable !== undefined)) c.rule('pdbDisabledWithValues');
  }
  const ru = spec.strategy?.rollingUpdate;
  if (ru) {
    for (const key of ['maxSurge', 'maxUnavailable'] as const) {
      if (ru[key] !== undefined && !isIntOrPercent(ru[key])) c.add(`spec.strategy.rollingUpdate.${key}`, 'must be a non-negative integer or a percentage such as "25%"');
    }
    const surge = ru.maxSurge ?? DEFAULTS.strategy.maxSurge;
    const unavailable = ru.maxUnavailable ?? DEFAULTS.strategy.maxUnavailable;
    if (isIntOrPercent(surge) && isIntOrPercent(unavailable) && isZero(surge) && isZero(unavailable)) {
      c.add('spec.strategy.rollingUpdate.maxUnavailable', 'must not be 0 when maxSurge is 0: the rollout could never make progress');
    }
  }
}

function checkShutdown(c: Collector, gd: GatewayDeployment): void {
  const spec = gd.spec ?? {};
  checkInteger(c, 'spec.terminationGracePeriodSeconds', spec.terminationGracePeriodSeconds, 1);
  let drainMs: number | undefined = 5000;
  if (spec.drainDuration !== undefined) {
    const parsed = typeof spec.drainDuration === 'string' && DURATION.test(spec.drainDuration) ? parseDuration(spec.drainDuration) : undefined;
    drainMs = typeof parsed === 'number' ? parsed : undefined;
    if (drainMs === undefined) c.add('spec.drainDuration', 'must be a duration such as "5s", "500ms" or "1m30s"');
  }
  const graceSeconds = spec.terminationGracePeriodSeconds ?? DEFAULTS.terminationGracePeriodSeconds;
  if (drainMs !== undefined && isInteger(graceSeconds, 1) && drainMs >= graceSeconds * 1000) c.rule('drainShorterThanGracePeriod');
}

function checkPod(c: Collector, gd: GatewayDeployment, options: RenderOptions): void {
  const spec = gd.spec ?? {};
  if (spec.image === undefined && !options.defaultImage) c.add('spec.image', 'required: the operator was started without a default proxy image (--proxy-image)');
  if (spec.image !== undefined && (typeof spec.image !== 'string' || spec.image.trim() === '')) c.add('spec.image', 'must be a non-empty image reference');
  checkEnum(c, 'spec.mode', spec.mode, ['ingress', 'egress']);
  checkEnum(c, 'spec.privilegedPorts', spec.privilegedPorts, ['sysctl', 'capability']);
  checkEnum(c, 'spec.imagePullPolicy', spec.imagePullPolicy, ['Always', 'IfNotPresent', 'Never']);
  checkLabels(c, 'spec.labels', spec.labels);
  if (spec.labels && GATEWAY_LABEL in spec.labels) c.rule('reservedLabel');
  if (spec.privilegedPorts === undefined && (spec.service?.ports ?? []).some((p) => (p.targetPort ?? p.port) < 1024)) c.rule('privilegedPortsRequired');

  checkUnique(c, 'spec.env', spec.env, (e) => e.name, 'env name');
  if ((spec.env ?? []).some((e) => (PROXY.reservedEnv as readonly string[]).includes(e.name))) c.rule('reservedEnv');
  checkUnique(c, 'spec.volumes', spec.volumes, (v) => v.name, 'volume name');
  if ((spec.volumes ?? []).some((v) => (PROXY.reservedVolumes as readonly string[]).includes(v.name))) c.rule('reservedVolumes');
  checkUnique(c, 'spec.volumeMounts', spec.volumeMounts, (m) => m.mountPath, 'mountPath');
  if ((spec.volumeMounts ?? []).some((m) => (PROXY.reservedMountPaths as readonly string[]).includes(m.mountPath))) c.rule('reservedMountPaths');
  const volumeNames = new Set<string>([...PROXY.reservedVolumes, ...(spec.volumes ?? []).map((v) => v.name)]);
  (spec.volumeMounts ?? []).forEach((m, i) => {
    if (!volumeNames.has(m.name)) c.add(`spec.volumeMounts[${i}].name`, `no volume named ${JSON.stringify(m.name)} in spec.volumes`);
  });
}

/**
 * Every problem with a GatewayDeployment, as `field: message` pairs; empty when it can be
 * rendered. `options` are the operator's (a default image makes `spec.image` optional).
 */
export function validateGatewayDeployment(gd: GatewayDeployment, options: RenderOptions = {}): FieldError[] {
  const c = new Collector();
  const name = gd.metadata?.name;
  // The name becomes the Service's name, which must be a DNS-1035 label (the CRD checks it too).
  if (typeof name !== 'string' || name.length > 63 || !DNS1035_LABEL.test(name)) {
    c.add('metadata.name', 'must be a DNS-1035 label (lower-case letters, digits and "-", starting with a letter, at most 63 characters): it names the Service');
  }
  checkPod(c, gd, options);
  checkService(c, gd);
  checkAutoscalingAndReplicas(c, gd);
  checkDisruptionAndRollout(c, gd);
  checkShutdown(c, gd);
  return c.errors;
}

/** Validates and throws InvalidGatewayDeploymentError with every problem (for the renderer). */
export function assertValidGatewayDeployment(gd: GatewayDeployment, options: RenderOptions = {}): void {
  const errors = validateGatewayDeployment(gd, options);
  if (errors.length > 0) throw new InvalidGatewayDeploymentError(`${gd.metadata?.namespace ?? ''}/${gd.metadata?.name ?? ''}`, errors);
}
