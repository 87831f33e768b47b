// Downstream HTTP limits (HARDENING.md): every value is explicit here, with the reference
// default it follows, so the proxy never runs on a library default by accident. The last
// three are the HTTP connection manager settings Istio derives from mesh and proxy config.

import type { PathNormalization } from './http/path-normalization.js';

export type HeadersWithUnderscores = 'ALLOW' | 'DROP_HEADER' | 'REJECT_REQUEST';

export interface ServeLimits {
  /** Request line + headers, bytes; past it Node answers 431 (Envoy: 60 KiB). */
  maxHeaderSize: number;
  /** Header lines per request; past it the proxy answers 431 (Envoy: 100). */
  maxHeadersCount: number;
  /** Time to receive the request head (slowloris); ≤ 20 s and below requestTimeout. */
  headersTimeout: number;
  /** Time to receive the whole request (head and body). */
  requestTimeout: number;
  /** Idle keep-alive connections close after this; longer than cloud load balancers' idle timeouts. */
  keepAliveTimeout: number;
  /** Requests per downstream connection, then `Connection: close` (nginx: 1000). */
  maxRequestsPerConnection: number;
  /** Request bodies up to this size are buffered so a retry or a mirror can replay them. */
  maxReplayBodyBytes: number;
  /** An upgraded (WebSocket) tunnel with no traffic either way for this long is closed; 0 = never. */
  upgradeIdleTimeout: number;
  /** A mirrored request is abandoned after this long. */
  mirrorTimeout: number;
  /** First retry back-off (Envoy: 25 ms, jittered, doubling up to 10×). */
  retryBackoffBase: number;
  /** Listeners that disappear from a snapshot finish their in-flight requests for this long. */
  listenerDrainTimeout: number;
  /** Send `x-envoy-attempt-count` upstream (Envoy's include_request_attempt_count). */
  attemptCountHeader: boolean;
  /** meshConfig.pathNormalization: how the path is normalized before routing (Istio: BASE). */
  pathNormalization: PathNormalization;
  /** Envoy's headers_with_underscores_action; Istio leaves Envoy's default, ALLOW. */
  headersWithUnderscores: HeadersWithUnderscores;
  /**
   * gatewayTopology.numTrustedProxies (Envoy xff_num_trusted_hops): proxies in front of the
   * gateway whose X-Forwarded-For entries and X-Forwarded-Proto are believed; 0 = the edge.
   */
  numTrustedProxies: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  maxHeaderSize: 60 * 1024,
  maxHeadersCount: 100,
  headersTimeout: 20_000,
  requestTimeout: 300_000,
  keepAliveTimeout: 620_000,
  maxRequestsPerConnection: 1000,
  maxReplayBodyBytes: 64 * 1024,
  upgradeIdleTimeout: 3_600_000,
  mirrorTimeout: 30_000,
  retryBackoffBase: 25,
  listenerDrainTimeout: 30_000,
  attemptCountHeader: false,
  pathNormalization: 'BASE',
  headersWithUnderscores: 'ALLOW',
  numTrustedProxies: 0,
};

export function resolveLimits(overrides: Partial<ServeLimits> | undefined): ServeLimits {
  const limits = { ...DEFAULT_LIMITS, ...overrides };
  if (limits.requestTimeout > 0 && limits.headersTimeout >= limits.requestTimeout) {
    throw new Error(`headersTimeout (${limits.headersTimeout} ms) must be below requestTimeout (${limits.requestTimeout} ms)`);
  }
  if (!Number.isInteger(limits.numTrustedProxies) || limits.numTrustedProxies < 0) {
    throw new Error(`numTrustedProxies must be a whole number ≥ 0, got ${limits.numTrustedProxies}`);
  }
  return limits;
}
