// Connection pools and circuit breakers for one cluster (Istio connectionPool settings):
// the undici Pool options for one endpoint, and the admission gate that enforces
// http1MaxPendingRequests, http2MaxRequests, maxConnections (TCP) and maxRetries.

import tls, { type ConnectionOptions } from 'node:tls';
import { errors, Pool, type buildConnector, type Dispatcher } from 'undici';
import type { Cluster, ConnectionPoolPolicy } from '../snapshot/types.js';

/** Envoy's "unlimited" for circuit-breaker thresholds (2^32 - 1). */
export const UNLIMITED = 4_294_967_295;

/** Concurrent streams on one upstream HTTP/2 connection (undici's and Envoy's usual 100). */
const H2_MAX_CONCURRENT_STREAMS = 100;

/** Everything that decides how an endpoint's pool is built; two equal settings share a pool. */
export interface PoolSettings {
  scheme: 'http' | 'https';
  h2: boolean;
  /** Connections per endpoint: the endpoint's share of maxConnections; null = unlimited. */
  connections: number | null;
  connectTimeout: number;
  keepAliveTimeout: number;
  /** undici's maxRequestsPerClient (off by one from Envoy's count, see below); 0 = unlimited. */
  maxRequestsPerClient: number;
  /** maxRequestsPerConnection 1: every request closes its connection. */
  closeAfterEachRequest: boolean;
  tcpKeepAliveDelay?: number;
  tls?: ConnectionOptions;
}

export function isH2(cluster: Cluster): boolean {
  return cluster.protocol === 'h2c' || (cluster.protocol === 'http1' && cluster.policy.connectionPool.h2UpgradePolicy === 'UPGRADE');
}

/** The share of maxConnections each of `endpointCount` endpoints gets (rounded up, at least 1). */
export function connectionsPerEndpoint(maxConnections: number, endpointCount: number): number | null {
  if (maxConnections >= UNLIMITED) return null;
  return Math.max(1, Math.ceil(maxConnections / Math.max(1, endpointCount)));
}

export function poolSettingsFor(cluster: Cluster, endpointCount: number, tls: ConnectionOptions | undefined): PoolSettings {
  const cp = cluster.policy.connectionPool;
  const perConnection = cp.maxRequestsPerConnection;
  const h2 = isH2(cluster);
  return {
    scheme: tls ? 'https' : 'http',
    h2,
    // HTTP/2 multiplexes: one connection per endpoint, as Envoy keeps (Envoy opens more only
    // past the peer's max concurrent streams; undici queues instead).
    connections: h2 ? 1 : connectionsPerEndpoint(cp.maxConnections, endpointCount),
    connectTimeout: cp.connectTimeout,
    keepAliveTimeout: Math.max(1, cp.httpIdleTimeout),
    // undici closes a connection after maxRequestsPerClient + 1 requests: ask for one less.
    maxRequestsPerClient: perConnection > 1 ? perConnection - 1 : 0,
    closeAfterEachRequest: perConnection === 1,
    tcpKeepAliveDelay: cp.tcpKeepalive?.time,
    tls,
  };
}

export function samePoolSettings(a: PoolSettings, b: PoolSettings): boolean {
  return (
    a.scheme === b.scheme &&
    a.h2 === b.h2 &&
    a.connections === b.connections &&
    a.connectTimeout === b.connectTimeout &&
    a.keepAliveTimeout === b.keepAliveTimeout &&
    a.maxRequestsPerClient === b.maxRequestsPerClient &&
    a.closeAfterEachRequest === b.closeAfterEachRequest &&
    a.tcpKeepAliveDelay === b.tcpKeepAliveDelay &&
    sameTlsOptions(a.tls, b.tls)
  );
}

/** Shallow comparison: the TLS module may hand out a new object for the same credentials. */
export function sameTlsOptions(a: ConnectionOptions | undefined, b: ConnectionOptions | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  const ka = Object.keys(a) as Array<keyof ConnectionOptions>;
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!sameValue(a[k], b[k])) return false;
  return true;
}

function sameValue(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  if (Buffer.isBuffer(x) && Buffer.isBuffer(y)) return x.equals(y);
  if (Array.isArray(x) && Array.isArray(y)) return x.length === y.length && x.every((v, i) => sameValue(v, y[i]));
  return false;
}

export interface EndpointPool {
  /** Owns the connections; closed to drain. */
  pool: Pool;
  /** What requests go through (the pool, or the pool with `reset: true` on every request). */
  dispatcher: Dispatcher;
}

/** An undici Pool for one endpoint origin ("http://10.0.0.1:8080"). */
export function createEndpointPool(origin: string, s: PoolSettings): EndpointPool {
  const pool = new Pool(origin, {
    connections: s.connections,
    connectTimeout: s.connectTimeout,
    keepAliveTimeout: s.keepAliveTimeout,
    keepAliveMaxTimeout: s.keepAliveTimeout,
    pipelining: s.h2 ? H2_MAX_CONCURRENT_STREAMS : 1,
    maxRequestsPerClient: s.maxRequestsPerClient || undefined,
    allowH2: s.h2,
    maxConcurrentStreams: s.h2 ? H2_MAX_CONCURRENT_STREAMS : undefined,
    connect: s.h2 && s.scheme === 'https' ? h2TlsConnector(s) : {
      ...s.tls,
      // Cleartext HTTP/2 with prior knowledge (h2c): undici's connector marks the socket h2.
      ...(s.h2 && s.scheme === 'http' ? { useH2c: true } : {}),
      keepAlive: true,
      ...(s.tcpKeepAliveDelay !== undefined ? { keepAliveInitialDelay: s.tcpKeepAliveDelay } : {}),
    } as Pool.Options['connect'],
  });
  let dispatcher: Dispatcher = pool;
  // TLS origination sends the cluster's SNI (DestinationRule sni, else the cluster host), not
  // each request's Host: undici would take the Host over the connect option, and reconnect
  // whenever two requests' Hosts differ.
  const servername = s.scheme === 'https' ? s.tls?.servername : undefined;
  // (undici's Request takes `servername`; its DispatchOptions typing leaves it out.)
  const sni: Partial<Dispatcher.DispatchOptions> = servername !== undefined ? ({ servername } as Partial<Dispatcher.DispatchOptions>) : {};
  if (s.h2) {
    // undici holds back a non-idempotent request (POST: every gRPC call) while others run on
    // the same HTTP/2 connection; a proxy forwards streams independently, so let them share it.
    dispatcher = withDispatchOptions(pool, { ...sni, idempotent: true });
  } else if (s.closeAfterEachRequest) {
    dispatcher = withDispatchOptions(pool, { ...sni, reset: true });
  } else if (servername !== undefined) {
    dispatcher = withDispatchOptions(pool, sni);
  }
  return { pool, dispatcher };
}

/**
 * The pool, with `extra` added to every request's options. Not undici's compose(): its
 * interceptors wrap each handler twice (WrapHandler, then UnwrapHandler), and the unwrapping
 * loses HTTP/2 trailers (client-h2 hands over an object where UnwrapHandler expects a raw
 * list), so gRPC's grpc-status would never reach the client; it also costs two objects per request.
 */
function withDispatchOptions(pool: Pool, extra: Partial<Dispatcher.DispatchOptions>): Dispatcher {
  const dispatch = (opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => pool.dispatch({ ...opts, ...extra }, handler);
  return new Proxy(pool, { get: (target, key) => (key === 'dispatch' ? dispatch : Reflect.get(target, key, target)) });
}

/**
 * HTTP/2 over TLS offers only "h2" in ALPN, as Envoy does for an HTTP/2 cluster: undici's own
 * connector also offers http/1.1, and a server picking it would get up to 100 pipelined
 * HTTP/1.1 requests on one connection.
 */
function h2TlsConnector(s: PoolSettings): buildConnector.connector {
  return ({ hostname, port, servername }, callback) => {
    const socket = tls.connect({
      ...s.tls,
      host: hostname,
      port: Number(port) || 443,
      servername: s.tls?.servername ?? (servername || undefined),
      ALPNProtocols: ['h2'],
    });
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', finish);
      if (err === null && socket.alpnProtocol !== 'h2') {
        err = Object.assign(new Error(`${hostname}:${port} did not negotiate HTTP/2 (ALPN h2)`), { code: 'ERR_TLS_ALPN_H2_REQUIRED' });
      }
      if (err) {
        socket.destroy();
        callback(err, null);
      } else {
        callback(null, socket);
      }
    };
    const timer = setTimeout(() => finish(new errors.ConnectTimeoutError(`connect to ${hostname}:${port} timed out`)), s.connectTimeout);
    socket.setKeepAlive(true, s.tcpKeepAliveDelay ?? 60_000);
    socket.setNoDelay(true);
    socket.once('secureConnect', () => finish(null));
    socket.once('error', finish);
  };
}

// ---------------------------------------------------------------------------------------
// Admission: Envoy's per-cluster circuit breakers, counted over leases.

export interface GateLimits {
  /** Requests (HTTP) or connections (TCP) in flight beyond which new ones are rejected (UO). */
  maxInFlight: number;
  /** Concurrent retries across the cluster. */
  maxRetries: number;
}

/**
 * HTTP/1.1: a request needs a connection of its own, so requests beyond maxConnections wait
 * in the pool, and more than http1MaxPendingRequests waiting overflow; http2MaxRequests caps
 * requests in flight for every HTTP protocol. HTTP/2: requests multiplex, only
 * http2MaxRequests applies. TCP: maxConnections connections.
 */
export function gateLimitsFor(cluster: Cluster): GateLimits {
  const cp: ConnectionPoolPolicy = cluster.policy.connectionPool;
  let maxInFlight: number;
  if (cluster.protocol === 'tcp' || cluster.protocol === 'tls') maxInFlight = cp.maxConnections;
  else if (isH2(cluster)) maxInFlight = cp.http2MaxRequests;
  else maxInFlight = Math.min(cp.http2MaxRequests, cp.maxConnections + cp.http1MaxPendingRequests);
  return { maxInFlight: Math.min(maxInFlight, Number.MAX_SAFE_INTEGER), maxRetries: cp.maxRetries };
}

export class AdmissionGate {
  inFlight = 0;
  retries = 0;

  constructor(public limits: GateLimits) {}

  tryEnter(): boolean {
    if (this.inFlight >= this.limits.maxInFlight) return false;
    this.inFlight++;
    return true;
  }

  leave(): void {
    if (this.inFlight > 0) this.inFlight--;
  }

  tryAcquireRetry(): boolean {
    if (this.retries >= this.limits.maxRetries) return false;
    this.retries++;
    return true;
  }

  releaseRetry(): void {
    if (this.retries > 0) this.retries--;
  }
}
