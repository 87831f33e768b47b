// The HTTP/2 side of a terminated HTTPS connection (ALPN "h2"), and of a plaintext connection
// that opened with the HTTP/2 preface (h2c): a node:http2 server that never listens and is
// handed sockets, with request/response classes adapted so the same
// request handler serves HTTP/1.1 and HTTP/2:
//   - `host` is set from :authority, replacing a differing `host` header (HTTP/1.1 upstreams
//     need it; routing reads it);
//   - a request body of unknown length (no content-length, no END_STREAM on the headers) is
//     marked `transfer-encoding: chunked`, which is what it becomes on an HTTP/1.1 upstream
//     and what makes the handler stream it (the header is hop-by-hop: never forwarded as is);
//   - `destroyed` reflects the stream; `shouldKeepAlive` and `statusMessage` (HTTP/1.1-only)
//     are ignored instead of warning.
// Timeouts, as for HTTP/1.1 (limits.ts): a session that has not completed the headers of its
// first request within headersTimeout (no preface or SETTINGS, or a HEADERS frame never
// finished by END_HEADERS) is closed; a session with no open stream for keepAliveTimeout gets
// GOAWAY and closes (PINGs do not keep it open, as with Envoy's idle_timeout).
// Rapid reset (CVE-2023-44487): a stream the client has already reset when its request would
// start (HEADERS and RST_STREAM arrive in the same read) starts no upstream work; and, as
// Envoy does, a connection whose streams are mostly reset prematurely (by the client, before
// the response began, within a second) once it has opened PREMATURE_RESET_MIN_STREAMS streams
// gets GOAWAY (ENHANCE_YOUR_CALM) and is closed at once.

import http2, { type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { ReadableOptions } from 'node:stream';
import type { Socket } from 'node:net';
import type { ServeLimits } from '../limits.js';

class GatewayHttp2Request extends http2.Http2ServerRequest {
  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, options: ReadableOptions, rawHeaders: readonly string[]) {
    // :authority wins over a `host` header (RFC 9113 §8.3.1): routing and the upstream's Host
    // both read `host`, so one value decides both.
    const authority = headers[':authority'];
    if (typeof authority === 'string' && authority !== '') headers.host = authority;
    if (!stream.endAfterHeaders && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) {
      headers['transfer-encoding'] = 'chunked';
    }
    super(stream, headers, options, rawHeaders);
  }
}

class GatewayHttp2Response extends http2.Http2ServerResponse {}
Object.defineProperties(GatewayHttp2Response.prototype, {
  destroyed: {
    get(this: http2.Http2ServerResponse) {
      return this.stream.destroyed;
    },
  },
  shouldKeepAlive: { get: () => true, set: () => undefined },
  statusMessage: { get: () => '', set: () => undefined },
});

/** Envoy's premature_reset_total_stream_count: below it a connection is never closed for resets. */
export const PREMATURE_RESET_MIN_STREAMS = 500;
/** Envoy's premature_reset_min_stream_lifetime_seconds: a reset later than this is not premature. */
const PREMATURE_RESET_LIFETIME_MS = 1_000;

/** GOAWAY; a peer that keeps the connection open anyway loses it shortly after. */
function closeIdle(session: ServerHttp2Session): void {
  session.close();
  setTimeout(() => session.destroy(), 1_000).unref();
}

export interface GatewayHttp2Options {
  limits: ServeLimits;
  /** The request handler (receives the adapted classes, typed as node:http's). */
  onRequest: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /** Whether a session should stop taking new streams (drain, listener going away). */
  closing: () => boolean;
}

export interface GatewayHttp2 {
  readonly server: Http2Server;
  /** Hands over a TLS socket that negotiated "h2", or a plaintext one that opened with the HTTP/2 preface (h2c). */
  serve(socket: Socket): void;
  /** GOAWAY on every open session: streams in flight finish, new ones go to a new connection. */
  goAway(): void;
  readonly sessionCount: number;
  close(): void;
}

/** Reset by the client (not by us, not a clean end) before any response headers, soon after it opened. */
function isPrematureReset(stream: ServerHttp2Stream, openedAt: number): boolean {
  return stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !stream.headersSent && performance.now() - openedAt < PREMATURE_RESET_LIFETIME_MS;
}

export function createGatewayHttp2(options: GatewayHttp2Options): GatewayHttp2 {
  const { limits } = options;
  const sessions = new Set<ServerHttp2Session>();
  const server = http2.createServer({
    Http2ServerRequest: GatewayHttp2Request as unknown as typeof http2.Http2ServerRequest,
    Http2ServerResponse: GatewayHttp2Response,
    maxSessionMemory: 32,
    settings: {
      // HARDENING.md: an explicit stream limit (also bounds rapid-reset abuse with node's own protection).
      maxConcurrentStreams: 128,
      maxHeaderListSize: limits.maxHeaderSize,
    },
  });
  server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    // Draining: this stream is served, and GOAWAY tells the client to open a new connection for the next.
    if (options.closing()) req.stream.session?.close();
    // Once the frames read with this HEADERS are processed: a RST_STREAM among them has closed
    // the stream by then, and a reset stream goes nowhere (no upstream lease, no connection).
    setImmediate(() => {
      if (req.stream.destroyed || req.stream.closed) return;
      options.onRequest(req, res);
    });
  });
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.on('error', () => session.destroy());
    // One timer per session: the header timeout until the first stream's headers are in,
    // then the idle timeout whenever no stream is open.
    let timer: NodeJS.Timeout | undefined = limits.headersTimeout > 0 ? setTimeout(() => session.destroy(), limits.headersTimeout) : undefined;
    let open = 0;
    let streams = 0;
    let prematureResets = 0;
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      streams++;
      const openedAt = performance.now();
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      stream.once('close', () => {
        open--;
        if (isPrematureReset(stream, openedAt) && ++prematureResets * 2 > streams && streams >= PREMATURE_RESET_MIN_STREAMS && !session.destroyed) {
          // Mostly resets: GOAWAY and close now (not a graceful close that waits on the peer).
          session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
          session.destroy();
          return;
        }
        if (open > 0 || session.closed || session.destroyed || limits.keepAliveTimeout <= 0) return;
        timer = setTimeout(() => closeIdle(session), limits.keepAliveTimeout);
      });
    });
    session.once('close', () => {
      clearTimeout(timer);
      sessions.delete(session);
    });
  });
  // Protocol errors of one session are that client's problem: never the process's.
  server.on('sessionError', () => undefined);
  return {
    server,
    serve(socket) {
      let session: ServerHttp2Session | undefined;
      const onSession = (s: ServerHttp2Session) => (session = s);
      server.once('session', onSession);
      server.emit('connection', socket);
      server.off('session', onSession);
      // HTTP/2 has no half-close: a peer that closed its side (FIN) is gone. These sockets allow
      // half-open connections (node's HTTP/1.1 server, the TLS listener), so nothing else ends
      // them: the session and its socket stayed for the whole idle timeout (620 s, CLOSE-WAIT),
      // counted as active connections. Streams in flight finish, then the session closes.
      socket.once('end', () => {
        if (session !== undefined && !session.closed && !session.destroyed) session.close();
        else socket.destroy();
      });
    },
    goAway() {
      for (const s of sessions) if (!s.closed && !s.destroyed) s.close();
    },
    get sessionCount() {
      return sessions.size;
    },
    close() {
      for (const s of sessions) s.destroy();
      server.close();
    },
  };
}
