// Istio/Envoy retry policy, compiled once per distinct RetryPolicy object into flags and
// sets, and the two questions the forwarder asks: is this response retriable, is this
// failure retriable.

import type { RetryPolicy } from '../../snapshot/types.js';
import type { HeaderMap } from './headers.js';

export interface RetryRules {
  /** Retries after the first attempt (Istio `attempts`). */
  readonly attempts: number;
  readonly perTryTimeout: number | undefined;
  readonly on5xx: boolean;
  readonly onGatewayError: boolean;
  readonly onReset: boolean;
  readonly onConnectFailure: boolean;
  readonly onRetriable4xx: boolean;
  readonly onRefusedStream: boolean;
  /** retriable-status-codes (numeric tokens, 503 when the condition is listed without codes). */
  readonly statusCodes: ReadonlySet<number> | undefined;
  /** gRPC statuses from cancelled, deadline-exceeded, resource-exhausted, unavailable. */
  readonly grpcStatuses: ReadonlySet<string> | undefined;
}

const GRPC_CONDITIONS: Record<string, string> = {
  cancelled: '1',
  'deadline-exceeded': '4',
  'resource-exhausted': '8',
  unavailable: '14',
};

const cache = new WeakMap<RetryPolicy, RetryRules>();

export function compileRetryPolicy(policy: RetryPolicy): RetryRules {
  const cached = cache.get(policy);
  if (cached) return cached;
  const on = new Set(policy.retryOn.map((s) => s.trim().toLowerCase()));
  const codes = new Set<number>();
  const grpc = new Set<string>();
  for (const token of on) {
    if (/^\d{3}$/.test(token)) codes.add(Number(token));
    const g = GRPC_CONDITIONS[token];
    if (g !== undefined) grpc.add(g);
  }
  // Istio's default policy lists retriable-status-codes with 503; Envoy needs codes to act on it.
  if (on.has('retriable-status-codes') && codes.size === 0) codes.add(503);
  const rules: RetryRules = {
    attempts: Math.max(0, policy.attempts | 0),
    perTryTimeout: policy.perTryTimeout && policy.perTryTimeout > 0 ? policy.perTryTimeout : undefined,
    on5xx: on.has('5xx'),
    onGatewayError: on.has('gateway-error'),
    onReset: on.has('reset'),
    onConnectFailure: on.has('connect-failure'),
    onRetriable4xx: on.has('retriable-4xx'),
    onRefusedStream: on.has('refused-stream'),
    statusCodes: codes.size > 0 ? codes : undefined,
    grpcStatuses: grpc.size > 0 ? grpc : undefined,
  };
  cache.set(policy, rules);
  return rules;
}

/** A response head that the policy retries. */
export function isRetriableResponse(r: RetryRules, status: number, headers: HeaderMap): boolean {
  if (status >= 500) {
    if (r.on5xx) return true;
    if (r.onGatewayError && (status === 502 || status === 503 || status === 504)) return true;
  }
  if (r.onRetriable4xx && status === 409) return true;
  if (r.statusCodes !== undefined && r.statusCodes.has(status)) return true;
  if (r.grpcStatuses !== undefined) {
    const g = headers['grpc-status'];
    if (typeof g === 'string' && r.grpcStatuses.has(g.trim())) return true;
  }
  return false;
}

/** A failure without a response that the policy retries. */
export function isRetriableFailure(r: RetryRules, failure: 'connect-failure' | 'reset' | 'timeout' | 'refused-stream'): boolean {
  switch (failure) {
    case 'connect-failure':
      return r.onConnectFailure || r.on5xx || r.onGatewayError;
    case 'reset':
      return r.onReset || r.on5xx || r.onGatewayError;
    case 'timeout':
      // A per-try timeout: Envoy retries it under 5xx, gateway-error and reset.
      return r.on5xx || r.onGatewayError || r.onReset;
    case 'refused-stream':
      return r.onRefusedStream || r.on5xx;
  }
}

/** Envoy's jittered exponential back-off: uniform in [0, base·2^(n-1)], capped at 10× base. */
export function retryBackoff(base: number, retryNumber: number, random: () => number = Math.random): number {
  const ceiling = Math.min(base * 10, base * 2 ** Math.max(0, retryNumber - 1));
  return Math.floor(random() * ceiling);
}
