// Cleartext HTTP/2 with prior knowledge on plaintext listeners, as Envoy's codec AUTO serves it
// (Istio's gateway connection managers use AUTO): a gRPC client that opens port 80 with the
// HTTP/2 preface is served HTTP/2. Plaintext listeners are node:http servers; node's HTTP/1.1
// parser stops at "PRI * HTTP/2.0" with HPE_PAUSED_H2_UPGRADE and reports it as a client error
// with the bytes it read. The connection is then taken from the HTTP/1.1 server the way node
// itself hands a socket over on Upgrade (its listeners removed, the parser unconsumed, dropped
// from the server's connection list and freed, reading paused) and those bytes are put back for
// the HTTP/2 server, which reads what a socket has buffered before its own reads. Freeing the
// parser matters: one only removed stays referenced by node (a native parser is held until it
// is freed or closed), and with it the socket and the HTTP/2 session: ~9.5 KB per connection.

import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/**
 * Node's own `freeParser` (what its HTTP server runs on an upgraded connection): unconsume,
 * drop the parser's references, remove it from the connection list, and give it back to
 * node's parser pool or close it. Taken from node's `_http_common` module; if a future node
 * no longer has it, the parser is removed and closed here instead.
 */
const nodeFreeParser = (() => {
  try {
    const fn = (createRequire(import.meta.url)('_http_common') as { freeParser?: unknown }).freeParser;
    return typeof fn === 'function' ? (fn as (parser: Http1Parser, req: null, socket: Socket) => void) : undefined;
  } catch {
    return undefined;
  }
})();

/** Whether a client error is node's HTTP/1.1 parser meeting the HTTP/2 connection preface. */
export function isHttp2Preface(err: NodeJS.ErrnoException): boolean {
  return err.code === 'HPE_PAUSED_H2_UPGRADE';
}

interface Http1Parser {
  _consumed?: boolean;
  unconsume?(): void;
  remove?(): void;
  close?(): void;
}

/**
 * Detaches a connection whose first bytes are the HTTP/2 preface from the HTTP/1.1 server;
 * returns false when it cannot be (it is then destroyed by the caller).
 */
export function takeOverForHttp2(socket: Socket, err: NodeJS.ErrnoException & { rawPacket?: Buffer }): boolean {
  const raw = err.rawPacket;
  if (!Buffer.isBuffer(raw) || socket.destroyed) return false;
  const s = socket as Socket & { parser?: Http1Parser | null };
  // The preface is the first thing on the connection: every listener of these events is the
  // HTTP/1.1 server's (the listener manager only listens for 'close', which stays).
  for (const event of ['data', 'end', 'drain', 'timeout', 'pause', 'resume']) socket.removeAllListeners(event);
  const parser = s.parser;
  if (parser) {
    // Off the server's connection list (its header timeout must not answer 408 on this
    // socket), and freed.
    if (nodeFreeParser !== undefined) {
      nodeFreeParser(parser, null, socket);
    } else {
      if (parser._consumed) parser.unconsume?.();
      parser._consumed = false;
      parser.remove?.();
      // After the parser's stack has unwound, as node does before closing one.
      setImmediate(() => parser.close?.());
    }
    s.parser = null;
  }
  // Neither flowing nor paused, as node leaves an upgraded socket (the typings call it read-only).
  (socket as { readableFlowing: boolean | null }).readableFlowing = null;
  socket.unshift(raw);
  return true;
}
