// The gateway Deployment. spec.replicas is left out whenever the operator does not own the
// count (an HPA owns it, or the user left it to `kubectl scale`): server-side apply then
// never fights whoever does.

import type { V1DeploymentSpec } from '@kubernetes/client-node';
import type { ResolvedGateway } from '../api/defaults.js';
import { namespacedMeta, type RenderedObject } from './metadata.js';
import { renderProxyPodTemplate } from './pod-template.js';

export interface RenderedDeployment extends RenderedObject {
  apiVersion: 'apps/v1';
  kind: 'Deployment';
  spec: V1DeploymentSpec;
}

export function renderDeployment(r: ResolvedGateway): RenderedDeployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: namespacedMeta(r, r.name),
    spec: {
      ...(r.replicas !== undefined ? { replicas: r.replicas } : {}),
      // Immutable once created, hence the one fixed label rather than spec.labels.
      selector: { matchLabels: { ...r.selectorLabels } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: r.strategy.maxSurge, maxUnavailable: r.strategy.maxUnavailable } },
      template: renderProxyPodTemplate(r),
    },
  };
}
