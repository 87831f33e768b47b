// The contract between the upstream layer and its users (HTTP forwarder, TCP proxy):
// a lease is one attempt on one endpoint; its holder calls done() exactly once.

import type { Dispatcher } from 'undici';
import type { Endpoint } from '../snapshot/types.js';

export type UpstreamError = 'connect-failure' | 'reset' | 'timeout' | 'other';

export interface LeaseOutcome {
  /** The upstream's HTTP status, when a response head arrived. */
  status?: number;
  /**
   * Set when no response arrived: 'connect-failure' (refused, connect timeout, TLS handshake),
   * 'reset' (connection closed or reset mid-request), 'timeout' (per-try or route timeout),
   * 'other' (not the upstream's fault, e.g. the client went away: not held against the host).
   */
  error?: UpstreamError;
}

export interface LeaseContext {
  /** Request headers, lower-case names (node's IncomingMessage.headers shape). */
  headers: Record<string, string | string[] | undefined>;
  sourceIp: string;
  /** Optional, for a generated hash cookie: spreads clients behind one address. */
  sourcePort?: number;
  query?: URLSearchParams;
  /** Endpoint keys this request already tried (retries avoid them while others are available). */
  exclude?: Set<string>;
  /** A retry slot from tryAcquireRetry(): the lease releases it in done() (or at once if it fails). */
  retry?: RetryPermit;
}

export interface Lease {
  ok: true;
  /** The endpoint picked (for DNS clusters, with the resolved IP as address). */
  endpoint: Endpoint;
  /** "address:port": what `exclude` holds. */
  endpointKey: string;
  /** "http://ip:port" ("https://…" with TLS origination; IPv6 in brackets). */
  origin: string;
  /** The endpoint's pool; requests need only path/method/headers/body. */
  dispatcher: Dispatcher;
  /** A Set-Cookie header value to add to the response (generated consistent-hash cookie). */
  setCookie?: string;
  done(outcome: LeaseOutcome): void;
}

export interface LeaseFailure {
  ok: false;
  /** NR: no such cluster; UH: no healthy upstream; UO: circuit breaker overflow. */
  flag: 'NR' | 'UH' | 'UO';
  message: string;
}

export interface RetryPermit {
  /** Idempotent. */
  release(): void;
}
