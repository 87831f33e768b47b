// The HTTP request path, from the request head to the action: reads the listener's serving
// table once (the snapshot the request started with is the one it finishes with), picks the
// filter chain, virtual host and route, answers what the gateway answers itself (httpsRedirect,
// CORS preflight, fault abort, redirect, direct response, 404) and hands the rest to the
// forwarder or, for an Upgrade, to the tunnel. Before routing, the path is normalized
// (path-normalization.ts), headers with underscores are handled as configured, and the client
// address and scheme are worked out from the trusted hops (forwarded-headers.ts). One authority
// decides routing and the upstream's Host: an absolute-form target's replaces Host; targets
// that are not paths (`OPTIONS *`, ftp://…) and CONNECT get a local 4xx. Every path
// is wrapped: a request never crashes the proxy, it gets a 500 and a log line.

import { randomUUID } from 'node:crypto';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { ProxyState } from '../proxy-state.js';
import type { ServeLimits } from '../limits.js';
import type { AccessLog } from './access-log.js';
import { bodyKind, countStreamedBytes, noBody, readBody, type RequestBody } from './body.js';
import { addCorsResponseHeaders, isPreflight, originAllowed, preflightHeaders } from './cors.js';
import { forward, type ForwardDeps } from './forward.js';
import { trustedClientAddress, trustedForwardedProto } from './forwarded-headers.js';
import { applyHeaderOperations, clientAddress, forwardableRequestHeaders, hostWithoutPort, socketAddress, type HeaderMap } from './headers.js';
import { sendLocalReply, type LocalReply } from './local-reply.js';
import { sendMirror } from './mirror.js';
import { normalizePath } from './path-normalization.js';
import { httpsRedirectLocation, redirectLocation } from './redirect.js';
import { RequestInfo } from './request-info.js';
import { rewritePath } from './rewrite.js';
import { RequestView, selectRoute, selectVirtualHost } from './route-selection.js';
import { chainCoversHost, pickDestination, selectChain, type ServingChain, type ServingListener, type ServingRoute } from './serving-table.js';
import { forwardUpgrade } from './upgrade.js';
import type { LeaseContext, Upstreams } from './upstreams.js';

/** A bound listener as the request path sees it. */
export interface ListenerBinding {
  /** Replaced whole when a snapshot is applied; read once per request. */
  serving: ServingListener;
  /** The listener is going away: every response closes its connection. */
  closing: boolean;
}

export interface HttpHandlerDeps {
  upstreams: Upstreams;
  limits: ServeLimits;
  state: ProxyState;
  accessLog: AccessLog;
  /** [0, 1): weighted splits, fault and mirror percentages, retry jitter. */
  random?: () => number;
  /** A bug caught on the request path (default: a warning on stderr). */
  onError?: (err: unknown, request: string) => void;
}

const NO_DECORATION = (): void => {};

const GRPC_STATUS: Record<string, number> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

/** One request on its way through the handler. */
interface Exchange {
  readonly serving: ServingListener;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly info: RequestInfo;
  /** The trusted client address (the peer, or an X-Forwarded-For entry with trusted hops). */
  readonly sourceIp: string;
  /** The request's scheme: the listener's, or a trusted X-Forwarded-Proto. */
  readonly scheme: string;
  /** The X-Forwarded-Proto sent upstream. */
  readonly forwardedProto: string;
  /** Set when the request is refused before routing (bad path, header with an underscore). */
  readonly refused: LocalReply | undefined;
  /** Set for Upgrade requests. */
  readonly upgrade: { socket: Duplex; head: Buffer; done: () => void } | undefined;
  /** The forwarder's part of the response's 'close' (one listener per request serves both). */
  onClose: (() => void) | undefined;
}

/** A connection's addresses, worked out on its first request (keep-alive serves many). */
interface SocketAddresses {
  readonly local: string;
  readonly remote: string;
  readonly sourceIp: string;
}

const socketAddresses = new WeakMap<object, SocketAddresses>();

function addressesOf(socket: Socket): SocketAddresses {
  let a = socketAddresses.get(socket);
  if (a === undefined) {
    a = {
      local: socketAddress(socket.localAddress, socket.localPort),
      remote: socketAddress(socket.remoteAddress, socket.remotePort),
      sourceIp: clientAddress(socket.remoteAddress),
    };
    // A socket without a peer yet (or any more) is not cached: its addresses may still change.
    if (socket.remoteAddress !== undefined) socketAddresses.set(socket, a);
  }
  return a;
}

export class HttpRequestHandler {
  private readonly random: () => number;
  private readonly forwardDeps: ForwardDeps;
  private readonly onError: (err: unknown, request: string) => void;

  constructor(private readonly deps: HttpHandlerDeps) {
    this.random = deps.random ?? Math.random;
    this.onError = deps.onError ?? ((err, request) => process.emitWarning(`portway: error serving ${request}: ${(err as Error)?.stack ?? err}`));
    this.forwardDeps = {
      upstreams: deps.upstreams,
      retryBackoffBase: deps.limits.retryBackoffBase,
      attemptCountHeader: deps.limits.attemptCountHeader,
      random: this.random,
      onError: this.onError,
    };
  }

  /** The 'request' event of a listener's server. */
  handleRequest(binding: ListenerBinding, req: IncomingMessage, res: ServerResponse): void {
    const serving = binding.serving;
    let ex: Exchange | undefined;
    try {
      if (this.deps.state.draining || binding.closing) res.shouldKeepAlive = false;
      const exchange = (ex = this.begin(serving, req, res, undefined));
      res.once('close', () => {
        this.complete(exchange.info, res.writableFinished);
        exchange.onClose?.();
      });
      this.route(exchange);
    } catch (err) {
      this.internalError(ex, res, err);
    }
  }

  /** The 'upgrade' event: node has handed over the socket. */
  handleUpgrade(binding: ListenerBinding, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const serving = binding.serving;
    let ex: Exchange | undefined;
    // A response bound to the raw socket, so that every local reply works as for any request.
    const res = new ServerResponse(req);
    try {
      res.assignSocket(socket as Socket);
      res.shouldKeepAlive = false;
      socket.on('error', () => socket.destroy());
      res.once('finish', () => (socket as Socket).destroySoon?.() ?? socket.end());
      let completed = false;
      const done = () => {
        if (completed) return;
        completed = true;
        this.complete(ex!.info, true);
      };
      ex = this.begin(serving, req, res, { socket, head, done });
      res.once('finish', done);
      // After the tunnel's own close handler has counted its bytes.
      socket.once('close', () => setImmediate(() => {
        if (!completed && !res.writableFinished) ex!.info.addFlag('DC');
        done();
      }));
      this.route(ex);
    } catch (err) {
      this.internalError(ex, res, err);
    }
  }

  private begin(serving: ServingListener, req: IncomingMessage, res: ServerResponse, upgrade: Exchange['upgrade']): Exchange {
    const socket = req.socket;
    const limits = this.deps.limits;
    let path = req.url ?? '/';
    let refused: LocalReply | undefined;
    // HTTP/2 (through node's compatibility API) carries the authority as :authority.
    let authority = req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '';
    if (req.method === 'CONNECT') {
      // No route tunnels CONNECT (node hands it over as its own event; HTTP/2 as a request).
      refused = { status: 405, details: 'connect_not_allowed', body: 'CONNECT is not allowed', headers: { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE' } };
    } else if (path.charCodeAt(0) !== 47 /* '/' */) {
      const target = absoluteTarget(path);
      if (target !== undefined) {
        // absolute-form (RFC 9112 §3.2.2): the target's authority replaces Host, for routing
        // and upstream alike; userinfo is dropped and a default port left out (as Envoy does).
        path = target.path;
        authority = target.authority;
        req.headers.host = authority;
      } else {
        // `OPTIONS *`, ftp://…, anything else that is not a path: nothing upstream can serve it.
        // Envoy: 400 http1.invalid_url; on HTTP/2, 404 absolute_path_rejected.
        refused = req.httpVersionMajor === 2 ? { status: 404, details: 'absolute_path_rejected', body: 'Not Found' } : { status: 400, details: 'http1.invalid_url', body: 'Bad Request' };
      }
    }
    if (refused === undefined && limits.pathNormalization !== 'NONE') {
      const normalized = normalizePath(path, limits.pathNormalization);
      if (normalized === null) refused = { status: 400, details: 'path_normalization_failed', body: 'Bad Request' };
      else path = normalized;
    }
    if (limits.headersWithUnderscores !== 'ALLOW') refused ??= underscoreHeaders(req, limits.headersWithUnderscores === 'REJECT_REQUEST');
    const sni = (socket as TLSSocket).servername;
    const addresses = addressesOf(socket);
    const xff = req.headers['x-forwarded-for'];
    let sourceIp = addresses.sourceIp;
    let remote = addresses.remote;
    let scheme: string = serving.scheme;
    let forwardedProto: string = serving.scheme;
    const trustedHops = limits.numTrustedProxies;
    if (trustedHops > 0) {
      // Envoy with use_remote_address and xff_num_trusted_hops N: the client is the Nth entry
      // from the right of the X-Forwarded-For received (the peer when there are fewer), and the
      // X-Forwarded-Proto of the load balancer is kept.
      const trusted = xff === undefined ? undefined : trustedClientAddress(xff, trustedHops);
      if (trusted !== undefined) {
        sourceIp = trusted;
        remote = socketAddress(trusted, 0);
      }
      const xfp = trustedForwardedProto(req.headers['x-forwarded-proto']);
      if (xfp !== undefined) {
        forwardedProto = xfp.value;
        scheme = xfp.scheme;
      }
    }
    const version = req.httpVersion;
    const info = new RequestInfo(
      req.method ?? 'GET',
      path,
      version === '1.1' ? 'HTTP/1.1' : `HTTP/${version}`,
      authority,
      req.headers['user-agent'] ?? '',
      addresses.local,
      remote,
      typeof sni === 'string' && sni !== '' ? sni : '-',
      serving.unmatchedSeries,
    );
    // The peer is appended whatever the trusted hops (Envoy's use_remote_address).
    const peer = addresses.sourceIp;
    info.forwardedFor = xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}` : peer;
    const rid = req.headers['x-request-id'];
    info.requestId = typeof rid === 'string' && rid !== '' ? rid : randomUUID();
    return { serving, req, res, info, sourceIp, scheme, forwardedProto, refused, upgrade, onClose: undefined };
  }

  private route(ex: Exchange): void {
    const { serving, req, res, info } = ex;
    if (req.rawHeaders.length > this.deps.limits.maxHeadersCount * 2) {
      res.shouldKeepAlive = false;
      sendLocalReply(res, info, { status: 431, flag: 'DPE', details: 'http1.too_many_headers', body: 'too many headers' });
      return;
    }
    if (ex.refused !== undefined) {
      res.shouldKeepAlive = false;
      sendLocalReply(res, info, ex.refused);
      return;
    }
    const chain: ServingChain | undefined = selectChain(serving, info.serverName === '-' ? undefined : info.serverName, req.socket);
    if (chain === undefined) {
      sendLocalReply(res, info, { status: 404, flag: 'NR', details: 'filter_chain_not_found' });
      return;
    }
    // Envoy's require_tls reads X-Forwarded-Proto: behind a trusted TLS-terminating load
    // balancer (numTrustedProxies) a request that arrived over https is not redirected again.
    if (chain.httpsRedirect && ex.scheme !== 'https') {
      sendLocalReply(res, info, { status: 301, details: 'https_redirect', headers: { location: httpsRedirectLocation(info.authority, info.path) } });
      return;
    }
    const table = chain.table;
    const host = hostWithoutPort(info.authority);
    if (serving.scheme === 'https' && !chainCoversHost(chain, host)) {
      sendLocalReply(res, info, { status: 421, details: 'misdirected_request', body: 'misdirected request' });
      return;
    }
    const vh = table === undefined ? undefined : selectVirtualHost(table, host);
    if (vh === undefined) {
      sendLocalReply(res, info, { status: 404, flag: 'NR', details: 'route_not_found' });
      return;
    }
    info.virtualHost = vh.name;
    info.series = vh.unmatchedSeries;
    if (vh.httpsRedirect && ex.scheme !== 'https') {
      sendLocalReply(res, info, { status: 301, details: 'https_redirect', headers: { location: httpsRedirectLocation(info.authority, info.path) } });
      return;
    }
    const view = new RequestView(info.method, info.path, info.authority, host, ex.scheme, req.headers, serving.listener.gatewayPort);
    const route = selectRoute(vh, view);
    if (route === undefined) {
      sendLocalReply(res, info, { status: 404, flag: 'NR', details: 'route_not_found' });
      return;
    }
    info.routeName = route.name;
    info.series = route.series;

    let corsOrigin: string | undefined;
    const origin = req.headers.origin;
    if (route.cors !== undefined && typeof origin === 'string') {
      const allowed = originAllowed(route.cors, origin);
      if (isPreflight(info.method, req.headers)) {
        if (allowed) {
          sendLocalReply(res, info, { status: 200, details: 'cors_response', headers: preflightHeaders(route.cors, origin), responseHeaders: route.responseHeaders });
          return;
        }
        if (route.cors.unmatchedPreflights === 'IGNORE') {
          sendLocalReply(res, info, { status: 200, details: 'cors_response', responseHeaders: route.responseHeaders });
          return;
        }
      }
      if (allowed) corsOrigin = origin;
    }
    const decorate = decoratorFor(route, corsOrigin);

    const fault = route.fault;
    if (fault !== undefined) {
      const abort = fault.abort !== undefined && this.hit(fault.abort.percentage);
      const delay = fault.delay !== undefined && this.hit(fault.delay.percentage) ? fault.delay.fixedDelay : 0;
      if (delay > 0) {
        info.addFlag('DI');
        const timer = setTimeout(() => {
          if (res.destroyed || res.headersSent) return;
          try {
            this.act(ex, route, view, decorate, abort);
          } catch (err) {
            this.internalError(ex, res, err);
          }
        }, delay);
        res.once('close', () => clearTimeout(timer));
        return;
      }
      if (abort) {
        this.act(ex, route, view, decorate, true);
        return;
      }
    }
    this.act(ex, route, view, decorate, false);
  }

  private act(ex: Exchange, route: ServingRoute, view: RequestView, decorate: (h: HeaderMap) => void, abortFault: boolean): void {
    const { res, info, serving } = ex;
    if (abortFault) {
      sendLocalReply(res, info, { ...faultAbortReply(route), decorate });
      return;
    }
    const action = route.action;
    switch (action.kind) {
      case 'redirect':
        sendLocalReply(res, info, {
          status: action.code,
          details: 'direct_response',
          headers: { location: redirectLocation(action, ex.scheme, info.authority, info.path, serving.listener.gatewayPort) },
          decorate,
        });
        return;
      case 'directResponse':
        sendLocalReply(res, info, { status: action.status, details: 'direct_response', body: action.body, contentType: action.contentType, decorate });
        return;
      case 'route':
        this.proxy(ex, route, view, decorate);
        return;
      default:
        throw new Error(`route ${route.name} has an action this proxy does not know: ${(action as { kind?: unknown }).kind}`);
    }
  }

  private proxy(ex: Exchange, route: ServingRoute, view: RequestView, decorate: (h: HeaderMap) => void): void {
    const { req, res, info, serving } = ex;
    const destination = pickDestination(route, this.random());
    if (destination === undefined) {
      sendLocalReply(res, info, { status: 503, flag: 'NC', details: 'cluster_not_found', body: 'no destination', decorate });
      return;
    }
    const headers = forwardableRequestHeaders(req.headers);
    headers['x-forwarded-for'] = info.forwardedFor;
    headers['x-forwarded-proto'] = ex.forwardedProto;
    // Every request is external to the gateway (Envoy ≥ 1.33 with Istio's default: no internal
    // address ranges): upstreams get the trusted client address here.
    headers['x-envoy-external-address'] = ex.sourceIp;
    headers['x-request-id'] = info.requestId;
    let path = info.path;
    const rewrite = route.route.rewrite;
    if (rewrite !== undefined) {
      if (rewrite.uri !== undefined || rewrite.uriRegex !== undefined) {
        path = rewritePath(rewrite, view.match, info.path);
        if (path !== info.path) headers['x-envoy-original-path'] = info.path;
      }
      if (rewrite.authority !== undefined) headers.host = rewrite.authority;
    }
    // Mirrors see the route's header operations, not one destination's.
    let mirrorHeaders: HeaderMap | undefined;
    if (route.mirrors.length > 0) {
      mirrorHeaders = { ...headers };
      if (route.requestHeaders !== undefined) applyHeaderOperations(mirrorHeaders, route.requestHeaders);
    }
    // Envoy applies the destination's operations first, then the route's (the route wins).
    if (destination.requestHeaders !== undefined) applyHeaderOperations(headers, destination.requestHeaders);
    if (route.requestHeaders !== undefined) applyHeaderOperations(headers, route.requestHeaders);

    const lease: LeaseContext = {
      headers: req.headers,
      sourceIp: ex.sourceIp,
      sourcePort: req.socket.remotePort,
      query: destination.hashesOnQuery && view.queryString !== '' ? view.query : undefined,
    };

    // WebSocket (and any upgrade carrying a body) is tunnelled; other upgrade offers, such as
    // curl's `Upgrade: h2c`, are ignored as Envoy does: the request is served as HTTP/1.1.
    const kind = bodyKind(req, this.deps.limits.maxReplayBodyBytes);
    if (ex.upgrade !== undefined && (isWebSocketUpgrade(req) || kind !== 'none')) {
      const upgrade = ex.upgrade;
      forwardUpgrade(this.deps.upstreams, this.onError, {
        req,
        socket: upgrade.socket,
        head: upgrade.head,
        res,
        info,
        destination,
        path,
        headers,
        lease,
        decorateResponse: decorate,
        idleTimeout: this.deps.limits.upgradeIdleTimeout,
        onTunnelClosed: upgrade.done,
      });
      return;
    }

    const start = (body: RequestBody) => {
      if (mirrorHeaders !== undefined) {
        const mirrorBody = body.kind === 'buffered' ? body.data : null;
        for (const mirror of route.mirrors) {
          sendMirror(this.deps.upstreams, mirror, { method: info.method, path, headers: mirrorHeaders, body: mirrorBody, lease }, this.deps.limits.mirrorTimeout, this.random);
        }
      }
      // Upgrade requests served as HTTP/1.1 (h2c offers) keep the forwarder's own 'close' listener.
      const closed = forward(this.forwardDeps, { req, res, info, route, destination, method: info.method, path, headers, body, lease, decorateResponse: decorate }, ex.upgrade === undefined);
      if (closed !== undefined) ex.onClose = closed;
    };

    switch (kind) {
      case 'none':
        start(noBody());
        return;
      case 'stream':
        countStreamedBytes(req, (n) => (info.bytesReceived += n));
        start({ kind: 'stream' });
        return;
      case 'buffered':
        readBody(req).then(
          (body) => {
            if (res.destroyed) return;
            if (body.kind === 'buffered') info.bytesReceived = body.data.length;
            try {
              start(body);
            } catch (err) {
              this.internalError(ex, res, err);
            }
          },
          () => {
            // The client went away mid-body; the close handler logs it.
            if (!res.destroyed) res.destroy();
          },
        );
        return;
    }
  }

  private hit(percentage: number): boolean {
    return percentage >= 100 || (percentage > 0 && this.random() * 100 < percentage);
  }

  private complete(info: RequestInfo, finished: boolean): void {
    try {
      info.duration = Math.round(performance.now() - info.startMark);
      if (!finished) {
        info.addFlag('DC');
        if (info.details === '-' || info.status === 0) info.details = 'downstream_remote_disconnect';
      }
      info.series.record(info.status, info.duration / 1000);
      if (this.deps.accessLog.enabled) this.deps.accessLog.log(info);
    } catch (err) {
      this.onError(err, `${info.method} ${info.path}`);
    }
  }

  private internalError(ex: Exchange | undefined, res: ServerResponse, err: unknown): void {
    try {
      this.onError(err, ex ? `${ex.info.method} ${ex.info.authority}${ex.info.path}` : 'a request');
      if (ex === undefined) {
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(500, { 'content-type': 'text/plain', 'content-length': '14' });
          res.end('internal error');
        } else res.destroy();
        return;
      }
      sendLocalReply(res, ex.info, { status: 500, details: 'internal_error', body: 'internal error' });
    } catch {
      res.destroy();
    }
  }
}

/**
 * Envoy's headers_with_underscores_action for a request whose header names contain "_":
 * REJECT_REQUEST answers 400; DROP_HEADER removes them before routing and forwarding.
 */
function underscoreHeaders(req: IncomingMessage, reject: boolean): LocalReply | undefined {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (!name.includes('_')) continue;
    if (reject) return { status: 400, details: `http${req.httpVersionMajor === 2 ? 2 : 1}.unexpected_underscore`, body: 'Bad Request' };
    delete req.headers[name.toLowerCase()];
  }
  return undefined;
}

/** An http(s) absolute-form target's path and authority (host[:port], no userinfo, no default port). */
function absoluteTarget(target: string): { path: string; authority: string } | undefined {
  const scheme = target.slice(0, 8).toLowerCase();
  if (!scheme.startsWith('http://') && !scheme.startsWith('https://')) return undefined;
  try {
    const url = new URL(target);
    if (url.host === '') return undefined;
    return { path: url.pathname + url.search, authority: url.host };
  } catch {
    return undefined;
  }
}

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const u = req.headers.upgrade;
  return typeof u === 'string' && u.toLowerCase().split(',').some((t) => t.trim() === 'websocket');
}

function decoratorFor(route: ServingRoute, corsOrigin: string | undefined): (h: HeaderMap) => void {
  const ops = route.responseHeaders;
  const cors = route.cors;
  if (corsOrigin === undefined || cors === undefined) return ops === undefined ? NO_DECORATION : (h) => applyHeaderOperations(h, ops);
  return (h) => {
    if (ops !== undefined) applyHeaderOperations(h, ops);
    addCorsResponseHeaders(cors, corsOrigin, h);
  };
}

function faultAbortReply(route: ServingRoute): LocalReply {
  const abort = route.fault!.abort!;
  if (abort.httpStatus === undefined && abort.grpcStatus !== undefined) {
    const code = /^\d+$/.test(abort.grpcStatus) ? Number(abort.grpcStatus) : (GRPC_STATUS[abort.grpcStatus.toUpperCase()] ?? 2);
    return {
      status: 200,
      flag: 'FI',
      details: 'fault_filter_abort',
      headers: { 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': 'fault filter abort' },
    };
  }
  return { status: abort.httpStatus ?? 503, flag: 'FI', details: 'fault_filter_abort', body: 'fault filter abort' };
}
