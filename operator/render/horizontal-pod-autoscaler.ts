// The gateway HPA (autoscaling/v2), rendered only when autoscaling is enabled. It scales
// the Deployment directly; the Deployment then carries no spec.replicas of ours.

import type { V2HorizontalPodAutoscalerSpec, V2MetricSpec } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { namespacedMeta, type RenderedObject } from './metadata.js';

export interface RenderedHorizontalPodAutoscaler extends RenderedObject {
  apiVersion: 'autoscaling/v2';
  kind: 'HorizontalPodAutoscaler';
  spec: V2HorizontalPodAutoscalerSpec;
}

function utilization(resource: 'cpu' | 'memory', percent: number): V2MetricSpec {
  return { type: 'Resource', resource: { name: resource, target: { type: 'Utilization', averageUtilization: percent } } };
}

export function renderHorizontalPodAutoscaler(r: ResolvedGateway): RenderedHorizontalPodAutoscaler | undefined {
  const a = r.autoscaling;
  if (!a) return undefined;
  const metrics: V2MetricSpec[] = [];
  if (a.targetCPUUtilizationPercentage !== undefined) metrics.push(utilization('cpu', a.targetCPUUtilizationPercentage));
  if (a.targetMemoryUtilizationPercentage !== undefined) metrics.push(utilization('memory', a.targetMemoryUtilizationPercentage));
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: namespacedMeta(r, r.name),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: r.name },
      minReplicas: a.minReplicas,
      maxReplicas: a.maxReplicas,
      metrics,
      ...(a.behavior ? { behavior: a.behavior } : {}),
    },
  };
}
