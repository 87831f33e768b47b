// The server of a listener that is not plaintext HTTP: TCP/MONGO, TLS and HTTPS ports. It owns
// the listening socket and decides, per connection, from the serving snapshot of the moment:
//   - TCP listener: the first `tcp` route matching the gateway port (and destination subnets)
//     → TCP proxy;
//   - TLS/HTTPS listener: the ClientHello is read without being consumed, its SNI picks the
//     filter chain (exact name, longest wildcard, catch-all), then
//       PASSTHROUGH chain  → the first `tls` route matching SNI/port → TCP proxy, ClientHello replayed;
//       terminating chain  → the chain's handshake server (its certificates, both of an
//                            RSA+ECDSA pair; its client-certificate mode) → after the handshake
//                            and the chain's client-certificate checks:
//                              HTTP routes: ALPN h2 → the HTTP/2 server, else HTTP/1.1 server;
//                              TCP routes:  TCP proxy of the plaintext stream.
// HTTPS and PASSTHROUGH servers therefore share a port. Anything that is not TLS on a TLS port,
// an unknown SNI, a chain whose certificate is missing, a refused client certificate or no
// matching route closes that connection only; nothing a client sends can throw out of here.

import net, { type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { FilterChain, Listener } from '../../snapshot/types.js';
import { createSniSelector } from '../../tls/sni-selector.js';
import { readClientHello, type PeekedClientHello } from '../../tls/tls-termination.js';
import type { ServeLimits } from '../limits.js';
import type { ProxyState } from '../proxy-state.js';
import type { ListenerBinding } from '../http/request-handler.js';
import { assignFilterChain, type ServingChain, type ServingListener } from '../http/serving-table.js';
import { createGatewayHttp2, type GatewayHttp2 } from './http2-server.js';
import { compileTcpRoutes, compileTlsRoutes, selectL4Route, type CompiledL4Route } from './l4-routes.js';
import type { StreamMetrics, TlsFailureReason } from './stream-metrics.js';
import { connectionInfo, connectionStart, finishConnectionInfo, type ConnectionStart } from './connection-log.js';
import { startHandshake } from './tls-handoff.js';
import { proxyTcp, type TcpProxyDeps } from './tcp-proxy.js';

/** A client must complete its ClientHello this fast (Envoy's listener filter timeout is 15 s). */
export const CLIENT_HELLO_TIMEOUT = 10_000;

/** One terminating filter chain's TLS, kept current with the credential store (dataplane/tls DownstreamTlsChain). */
export interface TlsTerminator {
  /** A never-listening tls.Server with the chain's current context, or why the chain cannot serve now. */
  handshakeServer(): TlsServer | Error;
  /** After the handshake: null to serve the connection, else why it is refused. */
  verifyPeer(socket: TLSSocket): string | null;
}

/** Where terminating chains get their TLS (the TLS module); asked once per chain and snapshot. */
export interface TlsTerminators {
  terminator(listener: Listener, chain: FilterChain): TlsTerminator;
}

export interface StreamServerDeps {
  binding: ListenerBinding;
  /** HTTP/1.1 over TLS: the listener's HTTP server (never listening), fed TLS sockets. */
  http1: HttpServer;
  /** The listener's request handler, for HTTP/2 requests. */
  request: (req: Http2ServerRequest, res: Http2ServerResponse) => void;
  tls: TlsTerminators | undefined;
  tcp: TcpProxyDeps;
  metrics: StreamMetrics;
  limits: ServeLimits;
  state: ProxyState;
}

type ChainPlan =
  | { kind: 'passthrough'; routes: CompiledL4Route[] }
  | { kind: 'http'; terminator: TlsTerminator }
  | { kind: 'tcp'; terminator: TlsTerminator; routes: CompiledL4Route[] }
  | { kind: 'unserved'; reason: string };

interface StreamTable {
  readonly tls: boolean;
  readonly tcpRoutes: CompiledL4Route[];
  /** TLS listeners: the chain for an SNI (sni-selector.ts rules) and what to do with it. */
  readonly select: (sni: string | undefined) => { chain: ServingChain; plan: ChainPlan } | undefined;
}

export class StreamServer {
  readonly server: net.Server;
  private readonly h2: GatewayHttp2;
  private readonly http1Sockets = new Set<TLSSocket>();
  private tables = new WeakMap<ServingListener, StreamTable>();

  constructor(private readonly deps: StreamServerDeps) {
    // Half-open: a client that is done sending (FIN) still receives the rest (TCP proxy).
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(socket));
    this.h2 = createGatewayHttp2({
      limits: deps.limits,
      onRequest: deps.request,
      closing: () => deps.state.draining || deps.binding.closing,
    });
    // The HTTP/1.1 server never listens itself; node enforces its header and request timeouts
    // from 'listening' on, so it starts when the socket it serves for does.
    this.server.once('listening', () => deps.http1.emit('listening'));
    this.server.once('close', () => {
      deps.http1.close();
      this.h2.close();
    });
  }

  /** Open HTTP/1.1-over-TLS connections (drain closes the idle ones). */
  httpSockets(): Iterable<Socket> {
    return this.http1Sockets;
  }

  /** Drain or listener removal: HTTP/2 sessions get GOAWAY (HTTP/1.1 gets `Connection: close` from the handler). */
  goAway(): void {
    this.h2.goAway();
  }

  private get name(): string {
    return this.deps.binding.serving.listener.name;
  }

  private onConnection(raw: Socket): void {
    const started = connectionStart();
    const listener = this.name;
    this.deps.metrics.connectionOpened(listener);
    raw.once('close', () => this.deps.metrics.connectionClosed(listener));
    // Resets and the like: the socket closes, nothing else happens.
    raw.on('error', () => raw.destroy());
    try {
      const serving = this.deps.binding.serving;
      const table = this.tableFor(serving);
      if (!table.tls) {
        raw.pause();
        this.proxy(raw, table.tcpRoutes, serving, undefined, undefined, started);
        return;
      }
      raw.setTimeout(CLIENT_HELLO_TIMEOUT, () => raw.destroy());
      void readClientHello(raw).then((peeked) => {
        try {
          this.onClientHello(raw, peeked, started);
        } catch (err) {
          this.bug(raw, err);
        }
      });
    } catch (err) {
      this.bug(raw, err);
    }
  }

  private onClientHello(raw: Socket, peeked: PeekedClientHello | Error, started: ConnectionStart): void {
    raw.setTimeout(0);
    const listener = this.name;
    if (peeked instanceof Error) {
      this.fail(raw, 'not_tls');
      return;
    }
    if (raw.destroyed) return;
    // The snapshot of this moment: a connection that waited for its ClientHello across a swap uses the new one.
    const serving = this.deps.binding.serving;
    const table = this.tableFor(serving);
    const sni = peeked.hello.sni;
    const selected = table.select(sni);
    if (selected === undefined) {
      // Istio's listener access log keeps exactly these (response flag NR): no chain for the SNI.
      this.logNoRoute(raw, sni, started);
      this.fail(raw, 'no_chain');
      return;
    }
    const { chain, plan } = selected;
    switch (plan.kind) {
      case 'passthrough':
        this.proxy(raw, plan.routes, serving, sni, peeked.buffered, started);
        return;
      case 'unserved':
        this.fail(raw, 'no_certificate');
        return;
      case 'http':
      case 'tcp': {
        const server = plan.terminator.handshakeServer();
        if (server instanceof Error) {
          this.fail(raw, 'no_certificate');
          return;
        }
        let outcome = false;
        // OpenSSL refusing a client certificate (MUTUAL) on TLS 1.3 just closes the connection.
        raw.once('close', () => {
          if (!outcome) this.deps.metrics.tlsFailure(listener, 'handshake');
        });
        // A client that leaves during the handshake (EOF: a flood client closing right after its
        // own handshake completes drops its last flight) must be let go at once. The listening
        // socket allows half-open connections for TCP proxying, and a half-open TLS socket
        // ignored the EOF and held its OpenSSL state until the handshake timeout: at 1,100
        // handshakes/s, ~11,000 such connections and ~900 MB. Terminated HTTP handles its own
        // end of connection; TCP over terminated TLS keeps half-close.
        if (plan.kind === 'http') raw.allowHalfOpen = false;
        startHandshake(server, raw, peeked.buffered, {
          secure: (socket) => {
            outcome = true;
            try {
              this.onSecure(socket, chain, plan, serving, sni, started);
            } catch (err) {
              this.bug(socket, err);
            }
          },
          failed: () => {
            outcome = true;
            this.deps.metrics.tlsFailure(listener, 'handshake');
            raw.destroy();
          },
        });
        return;
      }
    }
  }

  private onSecure(socket: TLSSocket, chain: ServingChain, plan: Extract<ChainPlan, { kind: 'http' | 'tcp' }>, serving: ServingListener, sni: string | undefined, started: ConnectionStart): void {
    const refused = plan.terminator.verifyPeer(socket);
    if (refused !== null) {
      this.fail(socket, 'client_certificate');
      return;
    }
    if (plan.kind === 'tcp') {
      socket.pause();
      this.proxy(socket, plan.routes, serving, sni, undefined, started);
      return;
    }
    // Requests on this connection use the chain its handshake was made with (421 for other hosts).
    assignFilterChain(socket, chain.chain.name);
    if (socket.alpnProtocol === 'h2') {
      this.h2.serve(socket);
      return;
    }
    this.http1Sockets.add(socket);
    socket.once('close', () => this.http1Sockets.delete(socket));
    this.deps.http1.emit('connection', socket);
  }

  private proxy(downstream: Socket, routes: CompiledL4Route[], serving: ServingListener, sni: string | undefined, replay: Buffer | undefined, started: ConnectionStart): void {
    const route = selectL4Route(routes, { gatewayPort: serving.listener.gatewayPort, localAddress: downstream.localAddress, sni });
    if (route === undefined) {
      this.deps.metrics.noRouteFor(serving.listener.name);
      this.logNoRoute(downstream, sni, started);
      downstream.destroy();
      return;
    }
    const accessLog = this.deps.tcp.accessLog;
    const info = accessLog !== undefined && accessLog.enabled ? connectionInfo(downstream, sni, started) : undefined;
    proxyTcp(this.deps.tcp, { listener: serving.listener.name, downstream, route, replay, info });
  }

  /** A connection no filter chain or tcp/tls route takes: one access-log line with NR. */
  private logNoRoute(socket: Socket, sni: string | undefined, started: ConnectionStart): void {
    const accessLog = this.deps.tcp.accessLog;
    if (accessLog === undefined || !accessLog.enabled) return;
    const info = connectionInfo(socket, sni, started);
    info.addFlag('NR');
    info.details = 'filter_chain_not_found';
    accessLog.log(finishConnectionInfo(info));
  }

  private fail(socket: Socket, reason: TlsFailureReason): void {
    this.deps.metrics.tlsFailure(this.name, reason);
    socket.destroy();
  }

  private bug(socket: Socket, err: unknown): void {
    socket.destroy();
    process.emitWarning(`portway: listener ${this.name}: error handling a connection: ${(err as Error)?.stack ?? err}`);
  }

  /** The serving snapshot's routes and chain plans for this listener, compiled on first use. */
  private tableFor(serving: ServingListener): StreamTable {
    let table = this.tables.get(serving);
    if (table === undefined) {
      table = compileStreamTable(serving, this.deps.tls);
      this.tables.set(serving, table);
    }
    return table;
  }
}

function compileStreamTable(serving: ServingListener, tls: TlsTerminators | undefined): StreamTable {
  const { listener } = serving;
  const isTls = listener.filterChains.some((c) => c.tls !== undefined);
  if (!isTls) {
    return { tls: false, tcpRoutes: serving.chains.flatMap((c) => compileTcpRoutes(c.chain.tcp)), select: () => undefined };
  }
  const entries: Array<{ serverNames: readonly string[]; contextProvider: () => Error; chain: ServingChain; plan: ChainPlan }> = [];
  for (const chain of serving.chains) {
    const c = chain.chain;
    if (c.tls === undefined) continue;
    let plan: ChainPlan;
    if (c.tls.mode === 'PASSTHROUGH') plan = { kind: 'passthrough', routes: compileTlsRoutes(c.tlsPassthrough) };
    else if (tls === undefined) plan = { kind: 'unserved', reason: 'TLS termination is not available in this proxy' };
    else if (c.http !== undefined) plan = { kind: 'http', terminator: tls.terminator(listener, c) };
    else plan = { kind: 'tcp', terminator: tls.terminator(listener, c), routes: compileTcpRoutes(c.tcp) };
    // The selector's context hook is not used here: each plan has its own handshake.
    entries.push({ serverNames: c.serverNames, contextProvider: () => new Error('unused'), chain, plan });
  }
  const selector = createSniSelector(entries);
  return { tls: true, tcpRoutes: [], select: (sni) => selector.select(sni) };
}

/** Whether a listener is served by a StreamServer (everything but plaintext HTTP). */
export function isStreamListener(listener: Listener): boolean {
  return listener.protocol === 'TCP' || listener.protocol === 'MONGO' || listener.filterChains.some((c) => c.tls !== undefined);
}

/** Whether a stream listener needs TLS termination (a chain that is not PASSTHROUGH). */
export function needsTermination(listener: Listener): boolean {
  return listener.filterChains.some((c) => c.tls !== undefined && c.tls.mode !== 'PASSTHROUGH');
}
