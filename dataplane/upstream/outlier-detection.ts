// Outlier detection (Istio DestinationRule.trafficPolicy.outlierDetection) as Envoy runs it:
// consecutive 5xx and consecutive gateway errors per host, ejection capped by
// maxEjectionPercent, ejection time growing with repeated ejections, un-ejection on the
// interval sweep, and panic (all hosts used) below minHealthPercent.
//
// Pure state plus an injectable clock: the cluster runtime drives `sweep()` from a timer,
// tests call it directly.

import type { OutlierDetectionPolicy } from '../snapshot/types.js';

/** Envoy's default max_ejection_time; the ejection time stops growing there. */
export const DEFAULT_MAX_EJECTION_TIME = 300_000;

export interface OutlierHost {
  readonly key: string;
  consecutive5xx: number;
  consecutiveGateway: number;
  ejected: boolean;
  /** When the current (or last) ejection started. */
  ejectedAt: number;
  /** Envoy's ejection-time multiplier: +1 per ejection, -1 per healthy interval. */
  backoff: number;
  /** Total ejections of this host, for logs and the config dump. */
  timesEjected: number;
  lastUnejectedAt: number | undefined;
}

export interface OutlierEvents {
  onEject?(host: OutlierHost): void;
  onUneject?(host: OutlierHost): void;
}

/**
 * Maps a request's outcome to the code outlier detection sees: Envoy, with
 * split_external_local_origin_errors off (Istio's setting), counts a connect failure or a
 * reset as 503 and a timeout as 504. Undefined = not the upstream's doing (e.g. the client
 * went away): not counted.
 */
export function outlierCode(outcome: { status?: number; error?: 'connect-failure' | 'reset' | 'timeout' | 'other' }): number | undefined {
  switch (outcome.error) {
    case 'connect-failure':
    case 'reset':
      return 503;
    case 'timeout':
      return 504;
    case 'other':
      return undefined;
    case undefined:
      return outcome.status ?? 200;
  }
}

export class OutlierDetector {
  private readonly hosts = new Set<OutlierHost>();
  private ejected = 0;
  private policy: OutlierDetectionPolicy | undefined;

  constructor(
    policy: OutlierDetectionPolicy | undefined,
    private readonly now: () => number,
    private readonly events: OutlierEvents = {},
  ) {
    this.policy = policy;
  }

  get enabled(): boolean {
    return this.policy !== undefined;
  }

  get interval(): number | undefined {
    return this.policy?.interval;
  }

  get hostCount(): number {
    return this.hosts.size;
  }

  get ejectedCount(): number {
    return this.ejected;
  }

  /** A new policy keeps every host's counters and ejections; no policy returns every host. */
  setPolicy(policy: OutlierDetectionPolicy | undefined): void {
    this.policy = policy;
    if (policy === undefined) {
      for (const h of this.hosts) if (h.ejected) this.uneject(h);
    }
  }

  add(key: string): OutlierHost {
    const host: OutlierHost = {
      key,
      consecutive5xx: 0,
      consecutiveGateway: 0,
      ejected: false,
      ejectedAt: 0,
      backoff: 0,
      timesEjected: 0,
      lastUnejectedAt: undefined,
    };
    this.hosts.add(host);
    return host;
  }

  remove(host: OutlierHost): void {
    if (!this.hosts.delete(host)) return;
    if (host.ejected) {
      host.ejected = false;
      this.ejected--;
      this.events.onUneject?.(host);
    }
  }

  /**
   * Records one result for a host: an HTTP status, or a local error mapped by `outlierCode`.
   * Returns true when the host was ejected by this result.
   */
  record(host: OutlierHost, code: number): boolean {
    const policy = this.policy;
    if (policy === undefined || !this.hosts.has(host)) return false;
    if (code < 500 || code > 599) {
      host.consecutive5xx = 0;
      host.consecutiveGateway = 0;
      return false;
    }
    if (code === 502 || code === 503 || code === 504) host.consecutiveGateway++;
    else host.consecutiveGateway = 0;
    host.consecutive5xx++;
    if (host.ejected) return false;
    const by5xx = policy.consecutive5xxErrors > 0 && host.consecutive5xx >= policy.consecutive5xxErrors;
    const byGateway = policy.consecutiveGatewayErrors > 0 && host.consecutiveGateway >= policy.consecutiveGatewayErrors;
    if (!by5xx && !byGateway) return false;
    // Envoy resets the counter that fired, whether or not the ejection is allowed.
    if (by5xx) host.consecutive5xx = 0;
    if (byGateway) host.consecutiveGateway = 0;
    return this.tryEject(host, policy);
  }

  /**
   * Envoy's rule: eject only if the ejected share, this host included, stays within
   * maxEjectionPercent (so 10% of 3 hosts ejects nobody; 34% ejects one).
   */
  private tryEject(host: OutlierHost, policy: OutlierDetectionPolicy): boolean {
    const percent = (100 * (this.ejected + 1)) / this.hosts.size;
    if (percent > policy.maxEjectionPercent) return false;
    const now = this.now();
    host.ejected = true;
    host.ejectedAt = now;
    host.timesEjected++;
    const max = Math.max(DEFAULT_MAX_EJECTION_TIME, policy.baseEjectionTime);
    if (host.backoff * policy.baseEjectionTime < max + policy.baseEjectionTime) host.backoff++;
    this.ejected++;
    this.events.onEject?.(host);
    return true;
  }

  /** How long the host's current ejection lasts. */
  ejectionTime(host: OutlierHost): number {
    const policy = this.policy;
    if (policy === undefined) return 0;
    const max = Math.max(DEFAULT_MAX_EJECTION_TIME, policy.baseEjectionTime);
    return Math.min(policy.baseEjectionTime * host.backoff, max);
  }

  /**
   * The interval sweep: returns hosts whose ejection time has passed, and lowers the
   * multiplier of hosts that stayed healthy for a whole interval. Returns true if any host
   * came back.
   */
  sweep(): boolean {
    const policy = this.policy;
    if (policy === undefined) return false;
    const now = this.now();
    let changed = false;
    for (const h of this.hosts) {
      if (h.ejected) {
        if (now - h.ejectedAt >= this.ejectionTime(h)) {
          this.uneject(h);
          changed = true;
        }
      } else if (h.backoff > 0 && h.lastUnejectedAt !== undefined && now - h.lastUnejectedAt >= policy.interval) {
        h.backoff--;
      }
    }
    return changed;
  }

  /**
   * Panic (Envoy's healthy panic threshold, Istio's minHealthPercent): with fewer healthy
   * hosts than that share, ejections are ignored and every host takes traffic.
   */
  inPanic(): boolean {
    const policy = this.policy;
    if (policy === undefined || policy.minHealthPercent <= 0 || this.ejected === 0) return false;
    const total = this.hosts.size;
    return (100 * (total - this.ejected)) / total < policy.minHealthPercent;
  }

  private uneject(h: OutlierHost): void {
    h.ejected = false;
    h.consecutive5xx = 0;
    h.consecutiveGateway = 0;
    h.lastUnejectedAt = this.now();
    this.ejected--;
    this.events.onUneject?.(h);
  }
}
