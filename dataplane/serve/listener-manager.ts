// The gateway listeners of the running proxy: one server per snapshot Listener, keyed by
// bind port. apply() opens servers for new ports, keeps servers whose port persists (their
// serving table is swapped in one synchronous step, so each request sees exactly one
// snapshot from start to end), and closes ports that disappeared gracefully. A port that
// fails to bind is reported and leaves the others serving. drain() implements shutdown:
// readiness fails at once, the listeners keep accepting for the whole drain window (a load
// balancer and kube-proxy keep sending new connections for seconds after SIGTERM), every
// response closes its connection, idle keep-alive connections are closed, HTTP/2 gets GOAWAY;
// it resolves when the window ends, or (only when asked) as soon as no connection is left.
//
// Plaintext HTTP/1.1 is served here, and cleartext HTTP/2 with prior knowledge on the same
// ports (http/h2c.ts: a connection that opens with the HTTP/2 preface goes to an HTTP/2
// server, as Envoy's codec AUTO does). Every other listener (TCP, MONGO, TLS, HTTPS) is a
// stream listener (l4/stream-server.ts): it owns the listening socket, reads the ClientHello
// where there is TLS, passes through, proxies TCP, or terminates with the chain's handshake
// from `secureServer` (the TLS module) and hands HTTP/1.1 to this listener's HTTP server
// (the same one the plaintext path uses, never listening itself) and HTTP/2 to its own.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Listener, Snapshot } from '../snapshot/types.js';
import type { ServeLimits } from './limits.js';
import type { ProxyState } from './proxy-state.js';
import type { HttpRequestHandler, ListenerBinding } from './http/request-handler.js';
import { compileServingListener, type ServingListener } from './http/serving-table.js';
import type { SeriesFactory } from './http/request-info.js';
import { reportClientError } from './http/client-errors.js';
import { isHttp2Preface, takeOverForHttp2 } from './http/h2c.js';
import { createGatewayHttp2, type GatewayHttp2 } from './l4/http2-server.js';
import type { Upstreams } from './http/upstreams.js';
import { isStreamListener, needsTermination, StreamServer, type TlsTerminators } from './l4/stream-server.js';
import type { StreamMetrics } from './l4/stream-metrics.js';

export type ListenerFamily = 'http' | 'stream';

/**
 * TLS termination for HTTPS and TLS listeners, built by the TLS module
 * (dataplane/runtime/tls-support.ts): the handshake of each terminating filter chain.
 */
export interface SecureServerFactory extends TlsTerminators {
  /** Whether this factory terminates the listener's chains; if not, the listener is reported unsupported. */
  serves(listener: Listener): boolean;
}

/** What stream listeners (TCP, TLS passthrough, TLS → TCP) need to reach upstreams. */
export interface StreamListenerDeps {
  upstreams: Upstreams;
  metrics: StreamMetrics;
  /** [0, 1): weighted destination draws. */
  random: () => number;
}

export interface ListenerManagerDeps {
  handler: HttpRequestHandler;
  state: ProxyState;
  limits: ServeLimits;
  series: SeriesFactory;
  secureServer?: SecureServerFactory;
  /** Without it, TCP/TLS/HTTPS listeners are reported unsupported. */
  streams?: StreamListenerDeps;
  /** Writes a client-error line (bad request, header overflow) to the access log. */
  onClientError?: (record: ClientErrorRecord, serving: ServingListener) => void;
}

export interface DrainOptions {
  /** End the drain as soon as no downstream connection is left (off by default, as in Istio). */
  exitOnZeroConnections?: boolean;
}

export interface ClientErrorRecord {
  listener: string;
  status: number;
  code: string;
  remote: string;
}

export interface ListenerReport {
  name: string;
  bindAddress: string;
  bindPort: number;
  /** bound: opened now; kept: already open, new snapshot swapped in; failed: could not bind; unsupported: protocol not served. */
  status: 'bound' | 'kept' | 'failed' | 'unsupported';
  error?: string;
  /** For a failed bind, the system error (EADDRINUSE, EACCES…): may succeed when tried again. */
  code?: string;
}

export interface ApplyResult {
  version: number;
  ok: boolean;
  listeners: ListenerReport[];
  /** Listeners closed because the snapshot no longer has them. */
  removed: string[];
  errors: Array<{ listener: string; message: string }>;
}

interface BoundListener extends ListenerBinding {
  readonly key: number;
  readonly name: string;
  readonly bindAddress: string;
  readonly family: ListenerFamily;
  /** The listening server: the HTTP server itself, or a stream listener's. */
  readonly server: NetServer;
  /** The HTTP/1.1 server (for a stream listener: fed terminated TLS connections). */
  readonly http: Server;
  readonly stream: StreamServer | undefined;
  /** Plaintext listeners: the HTTP/2 server of connections that open with the preface (h2c). */
  readonly h2c: GatewayHttp2 | undefined;
  readonly sockets: Set<Socket>;
  /** Responses not finished yet: told to close their connection when a drain starts. */
  readonly responses: Set<ServerResponse>;
}

const kActiveRequests = Symbol('portway.activeRequests');
const kServed = Symbol('portway.served');
type TrackedSocket = Socket & { [kActiveRequests]?: number; [kServed]?: boolean };

export class ListenerManager {
  private readonly bound = new Map<number, BoundListener>();
  private readonly closingListeners = new Set<BoundListener>();
  private readonly closing = new Map<BoundListener, Promise<void>>();
  private applying: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Drains in progress: each ends at its window's end, at close(), or when no connection is left if it asked to. */
  private drainWaiters: Array<{ finish: () => void; onZeroConnections: boolean }> = [];

  constructor(private readonly deps: ListenerManagerDeps) {}

  /** Serialized: a second apply waits for the first. */
  apply(snapshot: Snapshot): Promise<ApplyResult> {
    const run = this.applying.then(() => this.applyNow(snapshot));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(snapshot: Snapshot): Promise<ApplyResult> {
    const result: ApplyResult = { version: snapshot.version, ok: true, listeners: [], removed: [], errors: [] };
    if (this.closed) {
      result.ok = false;
      result.errors.push({ listener: '*', message: 'the listener manager is closed' });
      return result;
    }
    const wanted = new Map<number, { listener: Listener; serving: ServingListener; family: ListenerFamily }>();
    for (const listener of snapshot.listeners) {
      const family = this.familyOf(listener);
      if (family === undefined) {
        result.listeners.push({ name: listener.name, bindAddress: listener.bindAddress, bindPort: listener.bindPort, status: 'unsupported', error: `protocol ${listener.protocol} is not served by this proxy yet` });
        continue;
      }
      if (wanted.has(listener.bindPort)) {
        const message = `port ${listener.bindPort} is already used by ${wanted.get(listener.bindPort)!.listener.name}`;
        result.listeners.push({ name: listener.name, bindAddress: listener.bindAddress, bindPort: listener.bindPort, status: 'failed', error: message });
        result.errors.push({ listener: listener.name, message });
        continue;
      }
      wanted.set(listener.bindPort, { listener, serving: compileServingListener(snapshot, listener, this.deps.series), family });
    }

    // Ports that went away, or whose address or kind of server changed, stop listening now
    // (freeing the port for a replacement) and finish their in-flight requests in the background.
    for (const [port, b] of this.bound) {
      const w = wanted.get(port);
      if (w === undefined || w.listener.bindAddress !== b.bindAddress || w.family !== b.family) {
        this.bound.delete(port);
        if (w === undefined) result.removed.push(b.name);
        void this.closeListener(b, this.deps.limits.listenerDrainTimeout);
      }
    }

    // New ports: bind them (each with the new snapshot from its first request).
    const swaps: Array<() => void> = [];
    await Promise.all(
      [...wanted].map(async ([port, w]) => {
        const existing = this.bound.get(port);
        const report: ListenerReport = { name: w.listener.name, bindAddress: w.listener.bindAddress, bindPort: port, status: 'kept' };
        result.listeners.push(report);
        if (existing !== undefined) {
          swaps.push(() => {
            existing.serving = w.serving;
          });
          return;
        }
        try {
          const b = await this.open(w.listener, w.serving, w.family);
          this.bound.set(port, b);
          report.status = 'bound';
        } catch (err) {
          report.status = 'failed';
          report.error = (err as Error).message;
          report.code = (err as NodeJS.ErrnoException).code;
          result.errors.push({ listener: w.listener.name, message: `cannot listen on ${w.listener.bindAddress}:${port}: ${(err as Error).message}` });
        }
      }),
    );
    // Kept ports switch in one synchronous step.
    for (const swap of swaps) swap();
    result.listeners.sort((a, b) => a.bindPort - b.bindPort);
    result.ok = result.errors.length === 0;
    return result;
  }

  private familyOf(listener: Listener): ListenerFamily | undefined {
    if (isStreamListener(listener)) {
      if (this.deps.streams === undefined) return undefined;
      if (needsTermination(listener) && !this.deps.secureServer?.serves(listener)) return undefined;
      return 'stream';
    }
    const plaintextHttp = listener.protocol === 'HTTP' || listener.protocol === 'HTTP2' || listener.protocol === 'GRPC' || listener.protocol === 'GRPC-WEB';
    if (plaintextHttp && listener.filterChains.every((c) => c.tls === undefined)) return 'http';
    return undefined;
  }

  private open(listener: Listener, serving: ServingListener, family: ListenerFamily): Promise<BoundListener> {
    const { limits, handler } = this.deps;
    const binding = { serving, closing: false } as ListenerBinding;
    const request = (req: IncomingMessage, res: ServerResponse) => {
      // HTTP/2 streams share a session: drain sends it GOAWAY (l4/http2-server.ts) instead.
      if (req.httpVersionMajor !== 2) this.trackRequest(b, req.socket as TrackedSocket, res);
      handler.handleRequest(b, req, res);
    };
    const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // A tunnel is busy until it closes: drain never treats it as idle.
      (socket as TrackedSocket)[kActiveRequests] = 1;
      handler.handleUpgrade(b, req, socket, head);
    };
    const server = createServer(
      {
        maxHeaderSize: limits.maxHeaderSize,
        headersTimeout: limits.headersTimeout,
        requestTimeout: limits.requestTimeout,
        keepAliveTimeout: limits.keepAliveTimeout,
        // How often node enforces headersTimeout/requestTimeout (its default, 30 s, would let a
        // slowloris client hold a connection well past the limit).
        connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(limits.headersTimeout / 4))),
        insecureHTTPParser: false,
        requireHostHeader: true,
        noDelay: true,
      },
      request,
    );
    server.on('upgrade', upgrade);
    // CONNECT: without a listener node closes the socket with no reply and no log line; the
    // handler answers it like a refused upgrade (405, access-logged).
    server.on('connect', upgrade);
    // Node drops headers past maxHeadersCount silently (possibly Host, which then fails as a
    // 400): it keeps a generous number, and the handler answers 431 past the real limit.
    server.maxHeadersCount = Math.max(limits.maxHeadersCount + 1, 2000);
    server.maxRequestsPerSocket = limits.maxRequestsPerConnection;
    server.keepAliveTimeout = limits.keepAliveTimeout;
    server.headersTimeout = limits.headersTimeout;
    server.requestTimeout = limits.requestTimeout;
    const stream =
      family === 'stream'
        ? new StreamServer({
            binding,
            http1: server,
            request: request as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
            tls: this.deps.secureServer,
            tcp: this.deps.streams!,
            metrics: this.deps.streams!.metrics,
            limits,
            state: this.deps.state,
          })
        : undefined;
    const h2c =
      family === 'http'
        ? createGatewayHttp2({
            limits,
            onRequest: request as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
            closing: () => this.deps.state.draining || binding.closing,
          })
        : undefined;
    if (h2c !== undefined) server.once('close', () => h2c.close());
    const listening: NetServer = stream?.server ?? server;
    const b: BoundListener = Object.assign(binding, {
      key: listener.bindPort,
      name: listener.name,
      bindAddress: listener.bindAddress,
      family,
      server: listening,
      http: server,
      stream,
      h2c,
      sockets: new Set<Socket>(),
      responses: new Set<ServerResponse>(),
    });
    listening.on('connection', (socket: Socket) => {
      b.sockets.add(socket);
      this.deps.state.activeConnections++;
      socket.once('close', () => {
        b.sockets.delete(socket);
        this.deps.state.activeConnections--;
        if (this.deps.state.activeConnections === 0) this.notifyDrained();
      });
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      try {
        if (h2c !== undefined && isHttp2Preface(err)) {
          if (takeOverForHttp2(socket as Socket, err)) h2c.serve(socket as Socket);
          else socket.destroy();
          return;
        }
        const record = reportClientError(err, socket);
        if (record !== undefined) this.deps.onClientError?.({ listener: listener.name, ...record }, b.serving);
      } catch {
        socket.destroy();
      }
    });
    return new Promise<BoundListener>((resolve, reject) => {
      const onError = (err: Error) => {
        listening.off('listening', onListening);
        listening.close();
        reject(err);
      };
      const onListening = () => {
        listening.off('error', onError);
        listening.on('error', (err) => process.emitWarning(`portway: listener ${listener.name}: ${err.message}`));
        resolve(b);
      };
      listening.once('error', onError);
      listening.once('listening', onListening);
      // Not exclusive: --concurrency workers share each listening socket through node:cluster.
      listening.listen({ host: listener.bindAddress, port: listener.bindPort });
    });
  }

  /** Counts requests per connection so drain can close a connection the moment it goes idle. */
  private trackRequest(b: BoundListener, socket: TrackedSocket, res: ServerResponse): void {
    socket[kActiveRequests] = (socket[kActiveRequests] ?? 0) + 1;
    socket[kServed] = true;
    b.responses.add(res);
    res.once('close', () => {
      b.responses.delete(res);
      const n = (socket[kActiveRequests] ?? 1) - 1;
      socket[kActiveRequests] = n;
      if (n === 0 && (this.deps.state.draining || b.closing)) closeWhenFlushed(socket);
    });
  }

  /** The actual port of a bound listener (useful when the snapshot asked for port 0). */
  address(bindPort: number): { address: string; port: number } | undefined {
    const addr = this.bound.get(bindPort)?.server.address();
    return addr && typeof addr === 'object' ? { address: addr.address, port: addr.port } : undefined;
  }

  get boundPorts(): number[] {
    return [...this.bound.keys()].sort((a, b) => a - b);
  }

  /**
   * Shutdown drain: readiness fails now; listeners keep accepting and serving for the whole
   * `durationMs` (Envoy's drain, as Istio runs it); idle connections close at once, busy ones
   * after their current response (which carries `Connection: close`), new ones after their
   * first; HTTP/2 sessions get GOAWAY. Resolves when the window ends, or once no connection is
   * left with `exitOnZeroConnections` (Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS), or at close().
   */
  async drain(durationMs: number, options: DrainOptions = {}): Promise<void> {
    this.deps.state.startDraining();
    for (const b of this.allListeners()) closeAfterCurrentResponses(b);
    if (this.closed) return;
    const onZeroConnections = options.exitOnZeroConnections === true;
    if (onZeroConnections && this.deps.state.activeConnections === 0) return;
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.drainWaiters = this.drainWaiters.filter((w) => w !== waiter);
        resolve();
      };
      const waiter = { finish, onZeroConnections };
      // Not unref'd: the window is the process's to keep, even with no listener left.
      const timer = setTimeout(finish, durationMs);
      this.drainWaiters.push(waiter);
    });
  }

  private notifyDrained(): void {
    const [now, later] = partition(this.drainWaiters, (w) => w.onZeroConnections);
    this.drainWaiters = later;
    for (const w of now) w.finish();
  }

  private *allListeners(): Iterable<BoundListener> {
    yield* this.bound.values();
    yield* this.closingListeners;
  }

  /** Stops every listener; connections still open are destroyed; a drain in progress ends. */
  async close(): Promise<void> {
    this.closed = true;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w.finish();
    await this.applying;
    const all = [...this.bound.values()];
    this.bound.clear();
    for (const b of this.closingListeners) destroyAll(b);
    await Promise.all(all.map((b) => this.closeListener(b, 0)));
    await Promise.all([...this.closing.values()]);
  }

  /** Stops accepting; in-flight requests get up to `graceMs` (their responses close the connection). */
  private closeListener(b: BoundListener, graceMs: number): Promise<void> {
    const pending = this.closing.get(b);
    if (pending !== undefined) return pending;
    b.closing = true;
    this.closingListeners.add(b);
    const done = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      b.server.close(() => {
        clearTimeout(timer);
        this.closingListeners.delete(b);
        resolve();
      });
      closeAfterCurrentResponses(b);
      if (graceMs > 0) {
        timer = setTimeout(() => destroyAll(b), graceMs);
        timer.unref();
      } else {
        destroyAll(b);
      }
    }).finally(() => this.closing.delete(b));
    this.closing.set(b, done);
    return done;
  }
}

function partition<T>(items: readonly T[], test: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const item of items) (test(item) ? yes : no).push(item);
  return [yes, no];
}

/** Responses still to be written carry `Connection: close`; idle keep-alive connections close now. */
function closeAfterCurrentResponses(b: BoundListener): void {
  for (const res of b.responses) if (!res.headersSent) res.shouldKeepAlive = false;
  for (const socket of b.sockets) closeIfIdle(socket);
  b.h2c?.goAway();
  if (b.stream !== undefined) {
    // Terminated TLS: the HTTP/1.1 state lives on the TLS sockets, HTTP/2 gets GOAWAY.
    for (const socket of b.stream.httpSockets()) closeIfIdle(socket);
    b.stream.goAway();
  }
}

function destroyAll(b: BoundListener): void {
  for (const socket of b.sockets) socket.destroy();
  b.http.closeAllConnections();
}

/**
 * How long a keep-alive connection idle when a drain starts may still send a request (answered
 * with `Connection: close`) before it is closed. Closing it at once raced the client's next
 * request already on the wire: a busy keep-alive client saw "socket hang up" for the request
 * in flight when the drain began (seen in the e2e rollout under load, 8 connections at once).
 */
const IDLE_CLOSE_GRACE_MS = 1_000;

/**
 * An idle keep-alive connection (it served a request and has none in flight) closes after
 * IDLE_CLOSE_GRACE_MS unless a request arrives meanwhile (its response then closes it); a
 * connection that has not sent its first request yet is left to get `Connection: close`.
 */
function closeIfIdle(socket: TrackedSocket): void {
  if (socket[kServed] !== true || (socket[kActiveRequests] ?? 0) > 0) return;
  setTimeout(() => {
    if (!socket.destroyed && !(socket[kActiveRequests] ?? 0)) socket.destroy();
  }, IDLE_CLOSE_GRACE_MS).unref();
}

/** After the last response on it: half-close once the data is flushed. */
function closeWhenFlushed(socket: Socket): void {
  setImmediate(() => {
    if (socket.destroyed || ((socket as TrackedSocket)[kActiveRequests] ?? 0) > 0) return;
    socket.end();
    socket.setTimeout(5_000, () => socket.destroy());
  });
}
