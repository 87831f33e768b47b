// The gateway PDB (policy/v1), rendered only when it helps: with more than one replica
// expected, or when asked for. With a single replica, minAvailable: 1 would block node drains.

import type { V1PodDisruptionBudgetSpec } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { namespacedMeta, type RenderedObject } from './metadata.js';

export interface RenderedPodDisruptionBudget extends RenderedObject {
  apiVersion: 'policy/v1';
  kind: 'PodDisruptionBudget';
  spec: V1PodDisruptionBudgetSpec;
}

export function renderPodDisruptionBudget(r: ResolvedGateway): RenderedPodDisruptionBudget | undefined {
  if (!r.podDisruptionBudget) return undefined;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: namespacedMeta(r, r.name),
    spec: {
      selector: { matchLabels: { ...r.selectorLabels } },
      ...r.podDisruptionBudget,
      // A pod that is not ready serves nothing: evicting it cannot hurt, and refusing to
      // would let one broken pod block every node drain.
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  };
}
