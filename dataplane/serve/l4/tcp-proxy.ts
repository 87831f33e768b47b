// The TCP proxy: one downstream connection (raw TCP, a TLS connection passed through with its
// ClientHello replayed, or the plaintext side of a terminated TLS connection) joined to one
// upstream connection picked by a tcp/tls route. Bytes flow downstream → upstream through
// pipe(), upstream → downstream through reused read buffers (upstream-reader.ts; pipe() for
// TLS-originating upstreams); either way a slow reader pauses the other side. A FIN on one
// side half-closes the other, an error or reset on either side closes both, and a connection idle in both
// directions for connectionPool.tcp.idleTimeout (default 1 h, 0 = never) is closed. With an
// access log, each connection gets one line when the downstream closes (connection-log.ts).

import type { OnReadOpts, Socket } from 'node:net';
import { connectTcp, tcpConnectOptions } from '../../upstream/tcp.js';
import type { AccessLog } from '../http/access-log.js';
import type { Lease, Upstreams } from '../http/upstreams.js';
import { clientAddress } from '../http/headers.js';
import { transportFailureReason, type RequestInfo } from '../http/request-info.js';
import { finishConnectionInfo } from './connection-log.js';
import { pickL4Destination, type CompiledL4Route } from './l4-routes.js';
import type { StreamMetrics } from './stream-metrics.js';
import { UpstreamReader } from './upstream-reader.js';

/** Envoy's tcp_proxy idle_timeout default. */
export const DEFAULT_TCP_IDLE_TIMEOUT = 3_600_000;

export interface TcpProxyDeps {
  upstreams: Upstreams;
  metrics: StreamMetrics;
  /** [0, 1): the weighted draw among a route's destinations. */
  random: () => number;
  /**
   * Opens the upstream connection of a lease (default: upstream/tcp.ts, with TLS origination);
   * may use `onread` (then the upstream emits no 'data') or ignore it.
   */
  connect?: (lease: Lease, signal: AbortSignal, onread: OnReadOpts) => Promise<Socket>;
  /** The idle timeout of a lease's cluster (default: connectionPool.tcp.idleTimeout via the upstream layer). */
  idleTimeoutOf?: (lease: Lease) => number | undefined;
  /** One line per connection at close (the `--access-log` of HTTP requests). */
  accessLog?: AccessLog;
}

export interface TcpProxyInput {
  /** Listener name, for metrics. */
  listener: string;
  /** Paused; owned by the proxy from now on. */
  downstream: Socket;
  route: CompiledL4Route;
  /** Bytes already read from the downstream (a peeked ClientHello): sent upstream first. */
  replay?: Buffer;
  /** The connection's access-log record (when the log is on): completed and logged at close. */
  info?: RequestInfo;
}

export function proxyTcp(deps: TcpProxyDeps, input: TcpProxyInput): void {
  const { downstream, route, listener, info } = input;
  const accessLog = deps.accessLog;
  if (info !== undefined && accessLog !== undefined && accessLog.enabled) {
    downstream.once('close', () => accessLog.log(finishConnectionInfo(info)));
  }
  const destination = pickL4Destination(route, deps.random());
  if (destination === undefined) {
    deps.metrics.noRouteFor(listener);
    info?.addFlag('NR');
    downstream.destroy();
    return;
  }
  if (info !== undefined) {
    info.upstreamCluster = destination.cluster;
    info.routeName = route.name;
  }
  const lease = deps.upstreams.lease(destination.cluster, {
    headers: {},
    sourceIp: clientAddress(downstream.remoteAddress),
    sourcePort: downstream.remotePort,
  });
  if (!lease.ok) {
    // Envoy's flags: a cluster it does not know is NC; no healthy host UH; a circuit breaker UO.
    info?.addFlag(lease.flag === 'NR' ? 'NC' : lease.flag);
    downstream.destroy();
    return;
  }
  if (info !== undefined) info.upstreamHost = lease.endpointKey;
  let settled = false;
  const settle = (outcome: Parameters<Lease['done']>[0]) => {
    if (settled) return;
    settled = true;
    lease.done(outcome);
  };
  // The client may leave while the upstream connection is being made.
  const abort = new AbortController();
  const onEarlyClose = () => {
    info?.addFlag('DC');
    abort.abort(new Error('downstream closed before the upstream connected'));
  };
  downstream.once('close', onEarlyClose);
  downstream.on('error', () => downstream.destroy());

  const reader = new UpstreamReader(downstream);
  const connect = deps.connect ?? connectTcp;
  connect(lease, abort.signal, reader.onread).then(
    (upstream) => {
      downstream.off('close', onEarlyClose);
      if (downstream.destroyed) {
        upstream.destroy();
        settle({ error: 'other' });
        return;
      }
      join(deps, input, destination.cluster, reader, lease, upstream, settle);
    },
    (err: unknown) => {
      downstream.off('close', onEarlyClose);
      if (!abort.signal.aborted && info !== undefined) {
        info.addFlag('UF');
        info.transportFailure = transportFailureReason(err);
      }
      settle(abort.signal.aborted ? { error: 'other' } : { error: 'connect-failure' });
      downstream.destroy();
    },
  );
}

function join(
  deps: TcpProxyDeps,
  input: TcpProxyInput,
  cluster: string,
  reader: UpstreamReader,
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

  const info = input.info;
  const countSent =
    info === undefined
      ? (n: number) => series.tx.inc(n)
      : (n: number) => {
          series.tx.inc(n);
          info.bytesSent += n;
        };
  if (info === undefined) {
    downstream.on('data', (chunk: Buffer) => series.rx.inc(chunk.length));
  } else {
    downstream.on('data', (chunk: Buffer) => {
      series.rx.inc(chunk.length);
      info.bytesReceived += chunk.length;
    });
  }
  if (input.replay !== undefined && input.replay.length > 0) {
    series.rx.inc(input.replay.length);
    if (info !== undefined) info.bytesReceived += input.replay.length;
    upstream.write(input.replay);
  }
  downstream.pipe(upstream);
  if (reader.inUse) {
    reader.start(upstream, countSent);
  } else {
    // Made without `onread` (TLS origination, a test's connect): ordinary reads.
    upstream.on('data', (chunk: Buffer) => countSent(chunk.length));
    upstream.pipe(downstream);
  }
  downstream.resume();
}

function defaultIdleTimeoutOf(lease: Lease): number | undefined {
  try {
    return tcpConnectOptions(lease).idleTimeout;
  } catch {
    return undefined; // not a lease from the ClusterManager (tests): the default applies
  }
}
