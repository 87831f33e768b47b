// The GatewayDeployment API (portway.dev/v1alpha1): what a user writes to get a gateway.
// The CRD in crds/portway.dev_gatewaydeployments.yaml is the schema the apiserver enforces
// and the manual (`kubectl explain gatewaydeployment.spec`); these types mirror it field for
// field. Defaults live in defaults.ts, checks beyond the CRD's CEL rules in validate.ts.

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
import type { ObjectMeta } from '../../dataplane/config/resources.js';
import type { Condition } from '../controller/conditions.js';

export const GROUP = 'portway.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'GatewayDeployment';
export const PLURAL = 'gatewaydeployments';

/** An integer or a percentage such as "25%" (Kubernetes' IntOrString). */
export type IntOrPercent = number | string;

export type GatewayMode = 'ingress' | 'egress';
export type ServiceType = 'LoadBalancer' | 'NodePort' | 'ClusterIP';
export type ExternalTrafficPolicy = 'Local' | 'Cluster';
/**
 * How an unprivileged proxy binds ports below 1024: `sysctl` sets
 * net.ipv4.ip_unprivileged_port_start=0 for the pod (Linux ≥ 4.11, a "safe" sysctl since
 * Kubernetes 1.22); `capability` adds NET_BIND_SERVICE for older kernels.
 */
export type PrivilegedPortsMode = 'sysctl' | 'capability';

export interface GatewayServicePort {
  name: string;
  port: number;
  /** Where the proxy listens; defaults to `port` (the built-in ports map 80 → 8080, 443 → 8443). */
  targetPort?: number;
  protocol?: 'TCP';
  nodePort?: number;
}

export interface GatewayServiceSpec {
  type?: ServiceType;
  externalTrafficPolicy?: ExternalTrafficPolicy;
  ports?: GatewayServicePort[];
  annotations?: Record<string, string>;
  loadBalancerClass?: string;
  loadBalancerIP?: string;
  loadBalancerSourceRanges?: string[];
}

export interface GatewayAutoscalingSpec {
  enabled?: boolean;
  minReplicas?: number;
  maxReplicas?: number;
  targetCPUUtilizationPercentage?: number;
  targetMemoryUtilizationPercentage?: number;
  behavior?: V2HorizontalPodAutoscalerBehavior;
}

export interface GatewayPodDisruptionBudgetSpec {
  /** Unset: a PDB when more than one replica is expected. true: always. false: never. */
  enabled?: boolean;
  minAvailable?: IntOrPercent;
  maxUnavailable?: IntOrPercent;
}

export interface GatewayStrategySpec {
  rollingUpdate?: { maxSurge?: IntOrPercent; maxUnavailable?: IntOrPercent };
}

export interface GatewayDeploymentSpec {
  replicas?: number;
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  imagePullSecrets?: V1LocalObjectReference[];
  mode?: GatewayMode;
  labels?: Record<string, string>;
  podAnnotations?: Record<string, string>;
  service?: GatewayServiceSpec;
  autoscaling?: GatewayAutoscalingSpec;
  podDisruptionBudget?: GatewayPodDisruptionBudgetSpec;
  resources?: V1ResourceRequirements;
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  affinity?: V1Affinity;
  topologySpreadConstraints?: V1TopologySpreadConstraint[];
  priorityClassName?: string;
  strategy?: GatewayStrategySpec;
  terminationGracePeriodSeconds?: number;
  /** How long the proxy keeps serving after SIGTERM (Go duration: "5s", "1m30s"). */
  drainDuration?: string;
  privilegedPorts?: PrivilegedPortsMode;
  env?: V1EnvVar[];
  volumes?: V1Volume[];
  volumeMounts?: V1VolumeMount[];
}

export type GatewayConditionType = 'Ready' | 'Progressing' | 'Degraded';

export interface GatewayAddress {
  type: 'IPAddress' | 'Hostname';
  value: string;
}

export interface GatewayDeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  readyReplicas?: number;
  /** The pod selector as a string (`portway.dev/gateway=x`), for the scale subresource. */
  selector?: string;
  addresses?: GatewayAddress[];
  conditions?: Condition[];
}

/** ObjectMeta as read from the API, with what a reconciler of finalizers looks at. */
export interface GatewayDeploymentMeta extends ObjectMeta {
  finalizers?: string[];
  deletionTimestamp?: string;
}

export interface GatewayDeployment {
  apiVersion: string;
  kind: string;
  metadata: GatewayDeploymentMeta;
  spec?: GatewayDeploymentSpec;
  status?: GatewayDeploymentStatus;
}
