// Metrics of the stream listeners (TCP, TLS passthrough, TLS termination) on the proxy's
// registry: connections per listener, TLS front-end failures by reason, and the TCP proxy's
// connections and bytes per listener and cluster (Envoy's tcp_proxy downstream_cx_* stats).
// Label children are cached, so a data chunk costs one increment.

import { Counter, Gauge, type Registry } from 'prom-client';

export type TlsFailureReason =
  /** The first bytes were not a TLS ClientHello (or it was too large, or never completed). */
  | 'not_tls'
  /** No filter chain takes the SNI. */
  | 'no_chain'
  /** The chain's certificate is missing or unusable. */
  | 'no_certificate'
  /** The TLS handshake failed (protocol, cipher, client certificate refused by OpenSSL). */
  | 'handshake'
  /** subjectAltNames / SPKI / hash checks, or OPTIONAL_MUTUAL's chain verification, refused the client certificate. */
  | 'client_certificate';

export class StreamMetrics {
  private readonly connections: Counter<'listener'>;
  private readonly active: Gauge<'listener'>;
  private readonly tlsFailures: Counter<'listener' | 'reason'>;
  private readonly noRoute: Counter<'listener'>;
  private readonly proxied: Counter<'listener' | 'cluster'>;
  private readonly proxiedActive: Gauge<'listener' | 'cluster'>;
  private readonly rxBytes: Counter<'listener' | 'cluster'>;
  private readonly txBytes: Counter<'listener' | 'cluster'>;
  private readonly series = new Map<string, TcpProxySeries>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.connections = new Counter({
      name: 'portway_listener_cx_total',
      help: 'Connections accepted by the TCP, TLS and HTTPS listeners.',
      labelNames: ['listener'],
      registers,
    });
    this.active = new Gauge({
      name: 'portway_listener_cx_active',
      help: 'Open connections on the TCP, TLS and HTTPS listeners.',
      labelNames: ['listener'],
      registers,
    });
    this.tlsFailures = new Counter({
      name: 'portway_listener_tls_failures_total',
      help: 'Connections closed before serving by the TLS front end, by reason (not_tls, no_chain, no_certificate, handshake, client_certificate).',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.noRoute = new Counter({
      name: 'portway_tcp_proxy_no_route_total',
      help: 'TCP and TLS connections closed because no tcp/tls route matched.',
      labelNames: ['listener'],
      registers,
    });
    this.proxied = new Counter({
      name: 'portway_tcp_proxy_cx_total',
      help: 'TCP proxy connections to upstream clusters.',
      labelNames: ['listener', 'cluster'],
      registers,
    });
    this.proxiedActive = new Gauge({
      name: 'portway_tcp_proxy_cx_active',
      help: 'Open TCP proxy connections.',
      labelNames: ['listener', 'cluster'],
      registers,
    });
    this.rxBytes = new Counter({
      name: 'portway_tcp_proxy_rx_bytes_total',
      help: 'Bytes received from downstream clients and sent upstream by the TCP proxy (after TLS termination, plaintext bytes).',
      labelNames: ['listener', 'cluster'],
      registers,
    });
    this.txBytes = new Counter({
      name: 'portway_tcp_proxy_tx_bytes_total',
      help: 'Bytes received from upstreams and sent to downstream clients by the TCP proxy.',
      labelNames: ['listener', 'cluster'],
      registers,
    });
  }

  connectionOpened(listener: string): void {
    this.connections.inc({ listener });
    this.active.inc({ listener });
  }

  connectionClosed(listener: string): void {
    this.active.dec({ listener });
  }

  tlsFailure(listener: string, reason: TlsFailureReason): void {
    this.tlsFailures.inc({ listener, reason });
  }

  noRouteFor(listener: string): void {
    this.noRoute.inc({ listener });
  }

  tcpProxy(listener: string, cluster: string): TcpProxySeries {
    const key = `${listener}\u0000${cluster}`;
    let s = this.series.get(key);
    if (s === undefined) {
      s = {
        opened: this.proxied.labels(listener, cluster),
        active: this.proxiedActive.labels(listener, cluster),
        rx: this.rxBytes.labels(listener, cluster),
        tx: this.txBytes.labels(listener, cluster),
      };
      // Bounded by listeners × clusters of the snapshots seen; cleared if it ever grows past reason.
      if (this.series.size > 10_000) this.series.clear();
      this.series.set(key, s);
    }
    return s;
  }
}

export interface TcpProxySeries {
  readonly opened: Counter.Internal;
  readonly active: Gauge.Internal<'listener' | 'cluster'>;
  readonly rx: Counter.Internal;
  readonly tx: Counter.Internal;
}
