// The TCP proxy: one downstream connection (raw TCP, a TLS connection passed through with its
// ClientHello replayed, or the plaintext side of a terminated TLS connection) joined to one
// upstream connection picked by a tcp/tls route. Bytes flow both ways through pipe()
// (backpressure: a slow reader pauses the other side), a FIN on one side half-closes the
// other, an error or reset on either side closes both, and a connection idle in both
// directions for connectionPool.tcp.idleTimeout (default 1 h, 0 = never) is closed.

import type { Socket } from 'node:net';
import { connectTcp, tcpConnectOptions } from '../../upstream/tcp.js';
import type { Lease, Upstreams } from '../http/upstreams.js';
import { clientAddress } from '../http/headers.js';
import { pickL4Destination, type CompiledL4Route } from './l4-routes.js';
import type { StreamMetrics } from './stream-metrics.js';

/** Envoy's tcp_proxy idle_timeout default. */
export const DEFAULT_TCP_IDLE_TIMEOUT = 3_600_000;

export interface TcpProxyDeps {
  upstreams: Upstreams;
  metrics: StreamMetrics;
  /** [0, 1): the weighted draw among a route's destinations. */
  random: () => number;
  /** Opens the upstream connection of a lease (default: upstream/tcp.ts, with TLS origination). */
  connect?: (lease: Lease, signal: AbortSignal) => Promise<Socket>;
  /** The idle timeout of a lease's cluster (default: connectionPool.tcp.idleTimeout via the upstream layer). */
  idleTimeoutOf?: (lease: Lease) => number | undefined;
}

export interface TcpProxyInput {
  /** Listener name, for metrics. */
  listener: string;
  /** Paused; owned by the proxy from now on. */
  downstream: Socket;
  route: CompiledL4Route;
  /** Bytes already read from the downstream (a peeked ClientHello): sent upstream first. */
  replay?: Buffer;
}

export function proxyTcp(deps: TcpProxyDeps, input: TcpProxyInput): void {
  const { downstream, route, listener } = input;
  const destination = pickL4Destination(route, deps.random());
  if (destination === undefined) {
    deps.metrics.noRouteFor(listener);
    downstream.destroy();
    return;
  }
  const lease = deps.upstreams.lease(destination.cluster, {
    headers: {},
    sourceIp: clientAddress(downstream.remoteAddress),
    sourcePort: downstream.remotePort,
  });
  if (!lease.ok) {
    downstream.destroy();
    return;
  }
  let settled = false;
  const settle = (outcome: Parameters<Lease['done']>[0]) => {
    if (settled) return;
    settled = true;
    lease.done(outcome);
  };
  // The client may leave while the upstream connection is being made.
  const abort = new AbortController();
  const onEarlyClose = () => abort.abort(new Error('downstream closed before the upstream connected'));
  downstream.once('close', onEarlyClose);
  downstream.on('error', () => downstream.destroy());

  const connect = deps.connect ?? connectTcp;
  connect(lease, abort.signal).then(
    (upstream) => {
      downstream.off('close', onEarlyClose);
      if (downstream.destroyed) {
        upstream.destroy();
        settle({ error: 'other' });
        return;
      }
      join(deps, input, destination.cluster, lease, upstream, settle);
    },
    () => {
      downstream.off('close', onEarlyClose);
      settle(abort.signal.aborted ? { error: 'other' } : { error: 'connect-failure' });
      downstream.destroy();
    },
  );
}

function join(
  deps: TcpProxyDeps,
  input: TcpProxyInput,
  cluster: string,
  lease: Lease,
  upstream: Socket,
  settle: (outcome: Parameters<Lease['done']>[0]) => void,
): void {
  const { downstream, listener } = input;
  const series = deps.metrics.tcpProxy(listener, cluster);
  series.opened.inc();
  series.active.inc();
  // Keep reading after the peer's FIN: a half-closed connection still carries the other direction.
  upstream.allowHalfOpen = true;

  let closed = false;
  const closeBoth = () => {
    downstream.destroy();
    upstream.destroy();
  };
  const onClose = () => {
    if (closed) return;
    closed = true;
    series.active.dec();
    settle({});
  };
  downstream.on('error', closeBoth);
  upstream.on('error', closeBoth);
  // A side that is fully closed ends the other once its pending bytes are flushed.
  downstream.once('close', () => {
    onClose();
    if (!upstream.destroyed) upstream.destroySoon();
  });
  upstream.once('close', () => {
    onClose();
    if (!downstream.destroyed) downstream.destroySoon();
  });

  const idle = (deps.idleTimeoutOf ?? defaultIdleTimeoutOf)(lease) ?? DEFAULT_TCP_IDLE_TIMEOUT;
  if (idle > 0) {
    // Each socket's timer restarts on its own reads and writes, so traffic either way keeps both alive.
    downstream.setTimeout(idle, closeBoth);
    upstream.setTimeout(idle, closeBoth);
  }

  downstream.on('data', (chunk: Buffer) => series.rx.inc(chunk.length));
  upstream.on('data', (chunk: Buffer) => series.tx.inc(chunk.length));
  if (input.replay !== undefined && input.replay.length > 0) {
    series.rx.inc(input.replay.length);
    upstream.write(input.replay);
  }
  downstream.pipe(upstream);
  upstream.pipe(downstream);
  downstream.resume();
}

function defaultIdleTimeoutOf(lease: Lease): number | undefined {
  try {
    return tcpConnectOptions(lease).idleTimeout;
  } catch {
    return undefined; // not a lease from the ClusterManager (tests): the default applies
  }
}
