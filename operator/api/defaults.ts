// Every default of the GatewayDeployment API, in one place. The CRD stores only what the
// user wrote (plus `mode`, defaulted there too so `kubectl get` can print it); the operator
// resolves the rest here, so a default can change with an operator upgrade without
// rewriting stored objects. The field descriptions in the CRD quote these values.

import type {
  V1Affinity,
  V1EnvVar,
  V1LocalObjectReference,
  V1ResourceRequirements,
  V1Toleration,
  V1TopologySpreadConstraint,
  V1Volume,
  V1VolumeMount,
  V2HorizontalPodAutoscalerBehavior,
} from '@kubernetes/client-node';
import { gatewayPodSelector } from './labels.js';
import type {
  ExternalTrafficPolicy,
  GatewayDeployment,
  GatewayMode,
  IntOrPercent,
  PrivilegedPortsMode,
  ServiceType,
} from './types.js';

/** Fixed facts about the proxy container that the API builds on (not configurable). */
export const PROXY = {
  uid: 1337,
  statusPort: 15021,
  metricsPort: 15090,
  adminPort: 15000,
  readinessPath: '/healthz/ready',
  metricsPath: '/stats/prometheus',
  podInfoDir: '/etc/portway/podinfo',
  labelsFile: '/etc/portway/podinfo/labels',
  annotationsFile: '/etc/portway/podinfo/annotations',
  tmpDir: '/tmp',
  /** Volume names and env vars the operator adds itself; users may not reuse them. */
  reservedVolumes: ['podinfo', 'tmp'],
  reservedMountPaths: ['/etc/portway/podinfo', '/tmp'],
  reservedEnv: ['POD_NAME', 'POD_NAMESPACE', 'INSTANCE_IP'],
  /** Ports a gateway listener may not take: the admin server (loopback) and the metrics server. */
  reservedTargetPorts: [15000, 15090],
} as const;

export const DEFAULTS = {
  mode: 'ingress' as GatewayMode,
  terminationGracePeriodSeconds: 30,
  drainDuration: '5s',
  externalTrafficPolicy: 'Local' as ExternalTrafficPolicy,
  servicePorts: [
    { name: 'status-port', port: 15021, targetPort: 15021, protocol: 'TCP' },
    { name: 'http2', port: 80, targetPort: 8080, protocol: 'TCP' },
    { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' },
  ] as const,
  autoscaling: { minReplicas: 1, maxReplicas: 5, targetCPUUtilizationPercentage: 80 },
  /** Only when more than one replica is expected (or asked for): one may be evicted at a time. */
  podDisruptionBudget: { minAvailable: 1 as IntOrPercent },
  /** Surge a whole new set before taking old pods away: a gateway keeps its capacity. */
  strategy: { maxSurge: '100%' as IntOrPercent, maxUnavailable: '25%' as IntOrPercent },
  /**
   * Requests are what the HPA measures utilization against, so they must exist. No CPU
   * limit: throttling a proxy turns into tail latency for every request it carries.
   */
  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
} as const;

export interface RenderOptions {
  /** The proxy image for gateways that set no `spec.image` (the operator's --proxy-image). */
  defaultImage?: string;
}

export interface ResolvedServicePort {
  name: string;
  port: number;
  targetPort: number;
  protocol: 'TCP';
  nodePort?: number;
}

/** A GatewayDeployment with every default applied: what the renderers read. */
export interface ResolvedGateway {
  name: string;
  namespace: string;
  uid: string;
  mode: GatewayMode;
  image: string;
  imagePullPolicy?: string;
  imagePullSecrets?: V1LocalObjectReference[];
  /** Set only when the operator owns the count: never with an HPA, never when the user left it out. */
  replicas?: number;
  selectorLabels: Record<string, string>;
  podLabels: Record<string, string>;
  podAnnotations: Record<string, string>;
  service: {
    type: ServiceType;
    externalTrafficPolicy?: ExternalTrafficPolicy;
    ports: ResolvedServicePort[];
    annotations: Record<string, string>;
    loadBalancerClass?: string;
    loadBalancerIP?: string;
    loadBalancerSourceRanges?: string[];
  };
  /** Present when autoscaling is enabled. */
  autoscaling?: {
    minReplicas: number;
    maxReplicas: number;
    targetCPUUtilizationPercentage?: number;
    targetMemoryUtilizationPercentage?: number;
    behavior?: V2HorizontalPodAutoscalerBehavior;
  };
  /** Present when a PodDisruptionBudget is to be rendered; exactly one of the two is set. */
  podDisruptionBudget?: { minAvailable: IntOrPercent } | { maxUnavailable: IntOrPercent };
  resources: V1ResourceRequirements;
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  affinity?: V1Affinity;
  topologySpreadConstraints?: V1TopologySpreadConstraint[];
  priorityClassName?: string;
  strategy: { maxSurge: IntOrPercent; maxUnavailable: IntOrPercent };
  terminationGracePeriodSeconds: number;
  drainDuration: string;
  privilegedPorts?: PrivilegedPortsMode;
  env: V1EnvVar[];
  volumes: V1Volume[];
  volumeMounts: V1VolumeMount[];
}

/** `app: <name>`, `istio: <name without "istio-">`: what existing Istio Gateway selectors match. */
export function defaultPodLabels(name: string): Record<string, string> {
  return { app: name, istio: name.replace(/^istio-/, '') };
}

/** Prefer one replica per node: losing a node should not take the whole gateway with it. */
export function defaultAffinity(selector: Record<string, string>): V1Affinity {
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 100, podAffinityTerm: { labelSelector: { matchLabels: { ...selector } }, topologyKey: 'kubernetes.io/hostname' } },
      ],
    },
  };
}

/**
 * Spread across zones when the cluster has them. Soft, so a single-zone cluster still
 * schedules; matchLabelKeys keeps a rollout's new ReplicaSet spreading on its own.
 */
export function defaultTopologySpreadConstraints(selector: Record<string, string>): V1TopologySpreadConstraint[] {
  return [
    {
      maxSkew: 1,
      topologyKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: { matchLabels: { ...selector } },
      matchLabelKeys: ['pod-template-hash'],
    },
  ];
}

/** The replica count the gateway is expected to run with at least, when it is known. */
function expectedMinimumReplicas(spec: NonNullable<GatewayDeployment['spec']>, autoscaling: ResolvedGateway['autoscaling']): number | undefined {
  return autoscaling ? autoscaling.minReplicas : spec.replicas;
}

function resolvePodDisruptionBudget(
  spec: NonNullable<GatewayDeployment['spec']>,
  autoscaling: ResolvedGateway['autoscaling'],
): ResolvedGateway['podDisruptionBudget'] {
  const pdb = spec.podDisruptionBudget ?? {};
  if (pdb.enabled === false) return undefined;
  if (pdb.maxUnavailable !== undefined) return { maxUnavailable: pdb.maxUnavailable };
  if (pdb.minAvailable !== undefined) return { minAvailable: pdb.minAvailable };
  if (pdb.enabled === true) return { ...DEFAULTS.podDisruptionBudget };
  // With one replica, minAvailable: 1 would block every node drain; with an unknown count
  // (replicas left to `kubectl scale`) we cannot tell, so only explicit configuration counts.
  const expected = expectedMinimumReplicas(spec, autoscaling);
  return expected !== undefined && expected > 1 ? { ...DEFAULTS.podDisruptionBudget } : undefined;
}

function resolveAutoscaling(spec: NonNullable<GatewayDeployment['spec']>): ResolvedGateway['autoscaling'] {
  const a = spec.autoscaling;
  if (!a?.enabled) return undefined;
  const noTarget = a.targetCPUUtilizationPercentage === undefined && a.targetMemoryUtilizationPercentage === undefined;
  return {
    minReplicas: a.minReplicas ?? DEFAULTS.autoscaling.minReplicas,
    maxReplicas: a.maxReplicas ?? DEFAULTS.autoscaling.maxReplicas,
    // CPU 80% only when no target was chosen: a memory-only HPA stays memory-only.
    targetCPUUtilizationPercentage: noTarget ? DEFAULTS.autoscaling.targetCPUUtilizationPercentage : a.targetCPUUtilizationPercentage,
    targetMemoryUtilizationPercentage: a.targetMemoryUtilizationPercentage,
    behavior: a.behavior,
  };
}

function resolveServiceType(gd: GatewayDeployment, mode: GatewayMode): ServiceType {
  return gd.spec?.service?.type ?? (mode === 'egress' ? 'ClusterIP' : 'LoadBalancer');
}

/** The Service type a GatewayDeployment gets, for checks that run before defaults (validate.ts). */
export function effectiveServiceType(gd: GatewayDeployment): ServiceType {
  return resolveServiceType(gd, gd.spec?.mode ?? DEFAULTS.mode);
}

/**
 * Applies every default. Call it on an object that passed validateGatewayDeployment: it
 * throws only for what validation reports too (no image), or for metadata the apiserver
 * always sets (namespace, uid).
 */
export function applyDefaults(gd: GatewayDeployment, options: RenderOptions = {}): ResolvedGateway {
  const { name, namespace, uid } = gd.metadata;
  if (!namespace || !uid) throw new Error(`GatewayDeployment ${namespace ?? '?'}/${name} has no namespace or uid: pass the object as read from the API`);
  const spec = gd.spec ?? {};
  const image = spec.image ?? options.defaultImage;
  if (!image) throw new Error(`GatewayDeployment ${namespace}/${name}: spec.image is unset and the operator has no default proxy image`);
  const mode = spec.mode ?? DEFAULTS.mode;
  const selectorLabels = gatewayPodSelector(name);
  const serviceType = resolveServiceType(gd, mode);
  const svc = spec.service ?? {};
  const autoscaling = resolveAutoscaling(spec);
  return {
    name,
    namespace,
    uid,
    mode,
    image,
    imagePullPolicy: spec.imagePullPolicy,
    imagePullSecrets: spec.imagePullSecrets,
    replicas: autoscaling ? undefined : spec.replicas,
    selectorLabels,
    // Istio's sidecar injector must leave the gateway alone in an injection-enabled namespace;
    // users may override app/istio; the selector label always wins (validation forbids setting it).
    podLabels: { 'sidecar.istio.io/inject': 'false', ...defaultPodLabels(name), ...spec.labels, ...selectorLabels },
    podAnnotations: { ...spec.podAnnotations },
    service: {
      type: serviceType,
      // Local keeps the client's source IP (no second hop through another node).
      externalTrafficPolicy: serviceType === 'ClusterIP' ? undefined : (svc.externalTrafficPolicy ?? DEFAULTS.externalTrafficPolicy),
      ports: (svc.ports ?? DEFAULTS.servicePorts).map((p) => ({
        name: p.name,
        port: p.port,
        targetPort: p.targetPort ?? p.port,
        protocol: 'TCP',
        ...('nodePort' in p && p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
      })),
      annotations: { ...svc.annotations },
      loadBalancerClass: svc.loadBalancerClass,
      loadBalancerIP: svc.loadBalancerIP,
      loadBalancerSourceRanges: svc.loadBalancerSourceRanges,
    },
    autoscaling,
    podDisruptionBudget: resolvePodDisruptionBudget(spec, autoscaling),
    resources: spec.resources ?? structuredClone(DEFAULTS.resources) as V1ResourceRequirements,
    nodeSelector: spec.nodeSelector,
    tolerations: spec.tolerations,
    // Unset means the defaults; an explicit {} or [] turns them off.
    affinity: spec.affinity ?? defaultAffinity(selectorLabels),
    topologySpreadConstraints: spec.topologySpreadConstraints ?? defaultTopologySpreadConstraints(selectorLabels),
    priorityClassName: spec.priorityClassName,
    strategy: {
      maxSurge: spec.strategy?.rollingUpdate?.maxSurge ?? DEFAULTS.strategy.maxSurge,
      maxUnavailable: spec.strategy?.rollingUpdate?.maxUnavailable ?? DEFAULTS.strategy.maxUnavailable,
    },
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds ?? DEFAULTS.terminationGracePeriodSeconds,
    drainDuration: spec.drainDuration ?? DEFAULTS.drainDuration,
    privilegedPorts: spec.privilegedPorts,
    env: spec.env ?? [],
    volumes: spec.volumes ?? [],
    volumeMounts: spec.volumeMounts ?? [],
  };
}
