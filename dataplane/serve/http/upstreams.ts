// What the HTTP path needs from the upstream layer (dataplane/upstream's ClusterManager
// satisfies it): a lease per attempt and a retry budget.

import type { Lease, LeaseContext, LeaseFailure, RetryPermit } from '../../upstream/index.js';

export type { Lease, LeaseContext, LeaseFailure, LeaseOutcome, RetryPermit } from '../../upstream/index.js';
export { classifyUpstreamError } from '../../upstream/index.js';

export interface Upstreams {
  lease(clusterName: string, ctx: LeaseContext): Lease | LeaseFailure;
  tryAcquireRetry(clusterName: string): RetryPermit | undefined;
}

/** The local reply for a lease that could not be had. */
export function leaseFailureReply(failure: LeaseFailure): { status: number; flag: 'NC' | 'UH' | 'UO'; details: string; body: string } {
  switch (failure.flag) {
    case 'NR':
      // Envoy: a route to a cluster it does not know is 503 NC (cluster_not_found).
      return { status: 503, flag: 'NC', details: 'cluster_not_found', body: 'cluster not found' };
    case 'UH':
      return { status: 503, flag: 'UH', details: 'no_healthy_upstream', body: 'no healthy upstream' };
    case 'UO':
      return { status: 503, flag: 'UO', details: 'upstream_reset_before_response_started{overflow}', body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow' };
  }
}
