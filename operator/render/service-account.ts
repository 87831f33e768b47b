// The gateway pods' identity: the subject of the Role and ClusterRole bindings.

import type { ResolvedGateway } from '../api/defaults.js';
import { namespacedMeta, type RenderedObject } from './metadata.js';

export interface RenderedServiceAccount extends RenderedObject {
  apiVersion: 'v1';
  kind: 'ServiceAccount';
}

export function renderServiceAccount(r: ResolvedGateway): RenderedServiceAccount {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: namespacedMeta(r, r.name) };
}
