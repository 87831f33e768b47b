// Raw connections for the TCP proxy: where and how to connect for a lease (connect timeout,
// TCP keepalive, TLS origination), and a helper that does it.

import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { isUpstreamLease } from './cluster-runtime.js';
import type { Lease } from './lease.js';

export interface TcpConnectOptions {
  host: string;
  port: number;
  /** connectionPool.tcp.connectTimeout. */
  connectTimeout: number;
  /** TCP keepalive initial delay (tcpKeepalive.time), undefined = Node's default when enabled. */
  keepAliveInitialDelay: number | undefined;
  /** connectionPool.tcp.idleTimeout, for the proxy's idle handling (undefined = none set). */
  idleTimeout: number | undefined;
  /** Set when the DestinationRule originates TLS (SIMPLE/MUTUAL): use tls.connect with these. */
  tls: ConnectionOptions | undefined;
}

export function tcpConnectOptions(lease: Lease): TcpConnectOptions {
  if (!isUpstreamLease(lease)) throw new TypeError('not a lease from ClusterManager');
  const { settings, tls: tlsOptions, idleTimeout } = lease.runtime.connectSettings;
  return {
    host: lease.endpoint.address,
    port: lease.endpoint.port,
    connectTimeout: settings.connectTimeout,
    keepAliveInitialDelay: settings.tcpKeepAliveDelay,
    idleTimeout,
    tls: tlsOptions,
  };
}

export class ConnectTimeoutError extends Error {
  override readonly name = 'ConnectTimeoutError';
  readonly code = 'ETIMEDOUT';
}

/**
 * Connects to the leased endpoint; resolves once connected (after the TLS handshake when
 * originating TLS). On failure it counts a connect failure in the cluster's metrics and
 * rejects; the caller still calls `lease.done({ error: 'connect-failure' })`, and
 * `lease.done({})` when a connection that did open closes.
 *
 * `onread` (net.connect's option: reads go into the caller's buffers, no 'data' events) is
 * used for plain TCP only; a TLS-originating connection ignores it and emits 'data'.
 */
export function connectTcp(lease: Lease, signal?: AbortSignal, onread?: net.OnReadOpts): Promise<net.Socket> {
  const o = tcpConnectOptions(lease);
  const runtime = isUpstreamLease(lease) ? lease.runtime : undefined;
  return new Promise<net.Socket>((resolve, reject) => {
    const socket: net.Socket = o.tls
      ? tls.connect({ ...o.tls, host: o.host, port: o.port })
      : net.connect(onread === undefined ? { host: o.host, port: o.port } : { host: o.host, port: o.port, onread });
    const connectedEvent = o.tls ? 'secureConnect' : 'connect';
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.destroy();
      runtime?.connectFailed();
      reject(err);
    };
    const onError = (err: Error) => fail(err);
    const onAbort = () => fail(signal?.reason instanceof Error ? signal.reason : new Error('connect aborted'));
    const timer = setTimeout(() => fail(new ConnectTimeoutError(`connect to ${o.host}:${o.port} timed out`)), o.connectTimeout);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off(connectedEvent, onConnected);
      signal?.removeEventListener('abort', onAbort);
    };
    const onConnected = () => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.setKeepAlive(true, o.keepAliveInitialDelay ?? 0);
      socket.setNoDelay(true);
      resolve(socket);
    };
    socket.once('error', onError);
    socket.once(connectedEvent, onConnected);
    if (signal) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}
