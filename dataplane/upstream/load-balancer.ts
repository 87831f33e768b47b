// Load balancing over one cluster's hosts: picks the endpoint for one request.
//
// A load balancer is built once per endpoint set (and policy); per-request state is only the
// hosts' `active` counters and `available` flags, which the cluster runtime keeps current.
// Ejected hosts are skipped at pick time instead of rebuilding the balancer, so an ejection
// never moves the keys of a consistent-hash host that is still healthy.

import type { LoadBalancerPolicy } from '../snapshot/types.js';

/** What a balancer needs to know about a host; the cluster runtime's hosts extend this. */
export interface LbHost {
  /** "address:port"; unique inside the cluster, stable across snapshots. */
  readonly key: string;
  /** Relative weight, at least 1. */
  readonly weight: number;
  /** Requests (or TCP connections) in flight on this host. */
  active: number;
  /** False while outlier detection ejects the host (and the cluster is not in panic). */
  available: boolean;
}

export interface LoadBalancer<H extends LbHost> {
  /**
   * Picks a host. `hash` is the request's consistent-hash key (ignored by the other policies;
   * undefined under CONSISTENT_HASH means "no key on this request": a random host).
   * Hosts in `exclude` (already tried by this request) are avoided unless no other host is
   * available, as Envoy's previous_hosts retry predicate gives up and reuses one.
   * Returns undefined only when no host is available.
   */
  pick(hash: number | undefined, exclude: ReadonlySet<string> | undefined): H | undefined;
}

export type RandomSource = () => number; // [0, 1)

export const MAGLEV_TABLE_SIZE = 65537;
const MAX_RING_SIZE = 8 * 1024 * 1024;
/** Ring points for a host of the lightest weight, however many hosts there are. */
const POINTS_PER_HOST = 128;

export function createLoadBalancer<H extends LbHost>(
  policy: LoadBalancerPolicy,
  hosts: readonly H[],
  random: RandomSource = Math.random,
): LoadBalancer<H> {
  switch (policy.kind) {
    case 'ROUND_ROBIN':
    case 'PASSTHROUGH': // the original destination means nothing at a gateway: round robin
      return new RoundRobin(hosts);
    case 'LEAST_REQUEST':
      return new LeastRequest(hosts, random);
    case 'RANDOM':
      return new RandomBalancer(hosts, random);
    case 'CONSISTENT_HASH':
      return policy.algorithm === 'maglev'
        ? new Maglev(hosts, random, MAGLEV_TABLE_SIZE)
        : new RingHash(hosts, random, policy.minimumRingSize);
  }
}

function allWeightsEqual(hosts: readonly LbHost[]): boolean {
  for (let i = 1; i < hosts.length; i++) if (hosts[i]!.weight !== hosts[0]!.weight) return false;
  return true;
}

/** First available host that is not excluded, scanning from `start`; else an available excluded one. */
function scanFrom<H extends LbHost>(hosts: readonly H[], start: number, exclude: ReadonlySet<string> | undefined): H | undefined {
  const n = hosts.length;
  let fallback: H | undefined;
  for (let i = 0; i < n; i++) {
    const h = hosts[(start + i) % n]!;
    if (!h.available) continue;
    if (exclude !== undefined && exclude.has(h.key)) {
      fallback ??= h;
      continue;
    }
    return h;
  }
  return fallback;
}

function usable(h: LbHost, exclude: ReadonlySet<string> | undefined): boolean {
  return h.available && (exclude === undefined || !exclude.has(h.key));
}

// ---------------------------------------------------------------------------------------
// Round robin: plain rotation for equal weights (O(1)); smooth weighted round robin
// (nginx's algorithm) otherwise, which interleaves hosts instead of sending bursts.

class RoundRobin<H extends LbHost> implements LoadBalancer<H> {
  private next = 0;
  private readonly weighted: boolean;
  private readonly current: Float64Array;

  constructor(private readonly hosts: readonly H[]) {
    this.weighted = !allWeightsEqual(hosts);
    this.current = new Float64Array(this.weighted ? hosts.length : 0);
  }

  pick(_hash: number | undefined, exclude: ReadonlySet<string> | undefined): H | undefined {
    const hosts = this.hosts;
    if (hosts.length === 0) return undefined;
    if (!this.weighted) {
      const n = hosts.length;
      let fallback = -1;
      for (let i = 0; i < n; i++) {
        const index = (this.next + i) % n;
        const h = hosts[index]!;
        if (!h.available) continue;
        if (exclude !== undefined && exclude.has(h.key)) {
          if (fallback < 0) fallback = index;
          continue;
        }
        this.next = (index + 1) % n;
        return h;
      }
      if (fallback < 0) return undefined;
      this.next = (fallback + 1) % n;
      return hosts[fallback];
    }
    const current = this.current;
    let total = 0;
    let best = -1;
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      if (!usable(h, exclude)) continue;
      current[i]! += h.weight;
      total += h.weight;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    if (best < 0) return scanFrom(hosts, 0, exclude);
    current[best]! -= total;
    return hosts[best];
  }
}

// ---------------------------------------------------------------------------------------
// Weighted random selection shared by RANDOM and LEAST_REQUEST.

class WeightedSampler<H extends LbHost> {
  private readonly cumulative: Float64Array;
  private readonly total: number;
  private readonly equal: boolean;

  constructor(readonly hosts: readonly H[], private readonly random: RandomSource) {
    this.equal = allWeightsEqual(hosts);
    this.cumulative = new Float64Array(this.equal ? 0 : hosts.length);
    let sum = 0;
    if (!this.equal) {
      for (let i = 0; i < hosts.length; i++) {
        sum += hosts[i]!.weight;
        this.cumulative[i] = sum;
      }
    }
    this.total = sum;
  }

  /** A usable host drawn by weight; a few draws, then a scan so ejections cannot starve it. */
  sample(exclude: ReadonlySet<string> | undefined): H | undefined {
    const hosts = this.hosts;
    const n = hosts.length;
    if (n === 0) return undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const h = hosts[this.drawIndex()]!;
      if (usable(h, exclude)) return h;
    }
    return scanFrom(hosts, Math.floor(this.random() * n), exclude);
  }

  private drawIndex(): number {
    const n = this.hosts.length;
    if (this.equal) return Math.min(n - 1, Math.floor(this.random() * n));
    const target = this.random() * this.total;
    const c = this.cumulative;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

class RandomBalancer<H extends LbHost> implements LoadBalancer<H> {
  private readonly sampler: WeightedSampler<H>;
  constructor(hosts: readonly H[], random: RandomSource) {
    this.sampler = new WeightedSampler(hosts, random);
  }
  pick(_hash: number | undefined, exclude: ReadonlySet<string> | undefined): H | undefined {
    return this.sampler.sample(exclude);
  }
}

/**
 * Power of two choices: two hosts drawn by weight, the one with fewer active requests per
 * unit of weight wins (Envoy's default choice_count of 2).
 */
class LeastRequest<H extends LbHost> implements LoadBalancer<H> {
  private readonly sampler: WeightedSampler<H>;
  constructor(hosts: readonly H[], random: RandomSource) {
    this.sampler = new WeightedSampler(hosts, random);
  }
  pick(_hash: number | undefined, exclude: ReadonlySet<string> | undefined): H | undefined {
    const a = this.sampler.sample(exclude);
    if (a === undefined) return undefined;
    const b = this.sampler.sample(exclude);
    if (b === undefined || b === a) return a;
    // Compare (active+1)/weight without dividing.
    return (b.active + 1) * a.weight < (a.active + 1) * b.weight ? b : a;
  }
}

// ---------------------------------------------------------------------------------------
// Consistent hashing. Host positions depend only on the host's key, so removing one of N
// hosts moves about 1/N of the keys; an unavailable host is skipped by walking forward.

abstract class HashBalancer<H extends LbHost> implements LoadBalancer<H> {
  constructor(
    protected readonly hosts: readonly H[],
    private readonly random: RandomSource,
  ) {}

  pick(hash: number | undefined, exclude: ReadonlySet<string> | undefined): H | undefined {
    if (this.hosts.length === 0) return undefined;
    const h = hash ?? Math.floor(this.random() * 0x1_0000_0000);
    return this.walk(this.slot(h), exclude);
  }

  protected abstract slot(hash: number): number;
  protected abstract readonly slots: Int32Array;

  private walk(start: number, exclude: ReadonlySet<string> | undefined): H | undefined {
    const slots = this.slots;
    const n = slots.length;
    const first = this.hosts[slots[start]!]!;
    if (usable(first, exclude)) return first;
    let fallback: H | undefined = first.available ? first : undefined;
    for (let i = 1; i < n; i++) {
      const h = this.hosts[slots[(start + i) % n]!]!;
      if (!h.available) continue;
      if (exclude !== undefined && exclude.has(h.key)) {
        fallback ??= h;
        continue;
      }
      return h;
    }
    return fallback;
  }
}

/**
 * Ring hash: each host owns points proportional to its weight, at least minimumRingSize in
 * all. Unlike Envoy, a host of the lightest weight gets at least POINTS_PER_HOST points, so
 * the point count of a host does not depend on how many hosts there are (once there are a
 * few): removing one of N hosts then moves only that host's keys. Still a pure function of
 * the host set, so every gateway replica maps a key to the same host.
 */
export class RingHash<H extends LbHost> extends HashBalancer<H> {
  private readonly points: Uint32Array;
  protected readonly slots: Int32Array;

  constructor(hosts: readonly H[], random: RandomSource, minimumRingSize: number) {
    super(hosts, random);
    if (hosts.length === 0) {
      this.points = new Uint32Array(0);
      this.slots = new Int32Array(0);
      return;
    }
    let totalWeight = 0;
    let minWeight = Infinity;
    for (const h of hosts) {
      totalWeight += h.weight;
      minWeight = Math.min(minWeight, h.weight);
    }
    const minRing = Math.max(1, minimumRingSize || 1024);
    // Points per unit of the lightest weight.
    let perUnit = Math.max(POINTS_PER_HOST, Math.ceil((minRing * minWeight) / totalWeight));
    if ((perUnit * totalWeight) / minWeight > MAX_RING_SIZE) perUnit = Math.max(1, Math.floor((MAX_RING_SIZE * minWeight) / totalWeight));
    const counts = hosts.map((h) => Math.max(1, Math.ceil((h.weight / minWeight) * perUnit)));
    const size = counts.reduce((a, b) => a + b, 0);
    // Sort (hash, host index) pairs as one number: hash * 2^21 + index stays exact in a double.
    const packed = new Float64Array(size);
    let k = 0;
    for (let i = 0; i < hosts.length; i++) {
      const key = hosts[i]!.key;
      for (let j = 0; j < counts[i]!; j++) packed[k++] = hash32(`${key}_${j}`) * 2_097_152 + i;
    }
    packed.sort();
    this.points = new Uint32Array(size);
    this.slots = new Int32Array(size);
    for (let p = 0; p < size; p++) {
      const v = packed[p]!;
      const hostIndex = v % 2_097_152;
      this.points[p] = (v - hostIndex) / 2_097_152;
      this.slots[p] = hostIndex;
    }
  }

  get size(): number {
    return this.points.length;
  }

  protected slot(hash: number): number {
    const points = this.points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    return lo === points.length ? 0 : lo;
  }
}

/** Maglev (Eisenbud et al.): a prime-sized lookup table filled by per-host permutations, weighted. */
export class Maglev<H extends LbHost> extends HashBalancer<H> {
  protected readonly slots: Int32Array;

  constructor(hosts: readonly H[], random: RandomSource, tableSize: number) {
    super(hosts, random);
    const m = tableSize;
    this.slots = new Int32Array(hosts.length === 0 ? 0 : m).fill(-1);
    if (hosts.length === 0) return;
    const n = hosts.length;
    const offset = new Float64Array(n);
    const skip = new Float64Array(n);
    const next = new Float64Array(n);
    const target = new Float64Array(n);
    let maxWeight = 0;
    for (let i = 0; i < n; i++) {
      const key = hosts[i]!.key;
      offset[i] = hash32(key, 0x9e3779b9) % m;
      skip[i] = (hash32(key, 0x85ebca6b) % (m - 1)) + 1;
      maxWeight = Math.max(maxWeight, hosts[i]!.weight);
    }
    // A host of the largest weight takes a slot every round; one of a third of it, every third round.
    let filled = 0;
    for (let round = 1; filled < m; round++) {
      for (let i = 0; i < n && filled < m; i++) {
        if (round * hosts[i]!.weight < target[i]!) continue;
        target[i]! += maxWeight;
        let c = (offset[i]! + skip[i]! * next[i]!) % m;
        while (this.slots[c] !== -1) {
          next[i]!++;
          c = (offset[i]! + skip[i]! * next[i]!) % m;
        }
        this.slots[c] = i;
        next[i]!++;
        filled++;
      }
    }
  }

  protected slot(hash: number): number {
    return hash % this.slots.length;
  }
}

// ---------------------------------------------------------------------------------------
// Hashing.

/** FNV-1a over UTF-16 code units with murmur3's final mix: fast, well spread, 32-bit unsigned. */
export function hash32(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A small seeded generator (mulberry32) for reproducible tests and benchmarks. */
export function seededRandom(seed: number): RandomSource {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------
// The request's hash key (Istio consistentHash.httpHeaderName / httpCookie / useSourceIp /
// httpQueryParameterName).

export type HashOn = Extract<LoadBalancerPolicy, { kind: 'CONSISTENT_HASH' }>['hashOn'];

export interface HashRequest {
  headers: Record<string, string | string[] | undefined>;
  sourceIp: string;
  query?: URLSearchParams;
}

/** The string the request hashes on, or undefined when the request does not carry it. */
export function hashKeyOf(hashOn: HashOn, req: HashRequest): string | undefined {
  switch (hashOn.kind) {
    case 'header': {
      const v = req.headers[hashOn.name];
      return v === undefined ? undefined : typeof v === 'string' ? v : v.join(',');
    }
    case 'cookie':
      return cookieValue(req.headers.cookie, hashOn.name);
    case 'sourceIp':
      return req.sourceIp || undefined;
    case 'queryParameter':
      return req.query?.get(hashOn.name) ?? undefined;
  }
}

/** One cookie's value from Cookie header(s); surrounding double quotes are dropped. */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string') {
    for (const h of header) {
      const v = cookieValue(h, name);
      if (v !== undefined) return v;
    }
    return undefined;
  }
  let from = 0;
  while (from < header.length) {
    let end = header.indexOf(';', from);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', from);
    if (eq > 0 && eq < end && header.slice(from, eq).trim() === name) {
      let v = header.slice(eq + 1, end).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      return v;
    }
    from = end + 1;
  }
  return undefined;
}

/**
 * The Set-Cookie value for a generated hash cookie (Envoy generates one when the cookie has a
 * ttl and the request has none; ttl 0 makes a session cookie).
 */
export function hashCookieHeader(name: string, value: string, ttl: number, path: string | undefined): string {
  let cookie = `${name}=${value}`;
  if (path) cookie += `; Path=${path}`;
  if (ttl > 0) cookie += `; Max-Age=${Math.max(1, Math.floor(ttl / 1000))}`;
  return `${cookie}; HttpOnly`;
}
