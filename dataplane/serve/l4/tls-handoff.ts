// Hands a raw connection whose ClientHello was already read to a terminating chain's
// handshake server (DownstreamTlsChain.handshakeServer(): a tls.Server that never listens,
// holding the chain's current context and client-certificate mode) and reports the outcome
// to this connection's callbacks. A chain's handshake server outlives snapshots and may be
// shared by listeners over time, so its events are wired once and dispatched per connection
// through the raw socket the TLS socket wraps.

import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { handOverToTlsServer } from '../../tls/tls-termination.js';

export interface HandshakeCallbacks {
  secure(socket: TLSSocket): void;
  failed(error: Error): void;
}

const callbacks = new WeakMap<Socket, HandshakeCallbacks>();
const wired = new WeakSet<TlsServer>();

/**
 * Starts the handshake of `server` on `raw` (its first bytes, `buffered`, are replayed). One
 * of the callbacks runs, unless the connection just closes (a client certificate refused by
 * OpenSSL under MUTUAL ends that way on TLS 1.3).
 */
export function startHandshake(server: TlsServer, raw: Socket, buffered: Buffer, cb: HandshakeCallbacks): void {
  if (!wired.has(server)) {
    wired.add(server);
    server.on('secureConnection', (socket: TLSSocket) => {
      const cbs = takeCallbacks(socket);
      if (cbs === undefined) socket.destroy();
      else cbs.secure(socket);
    });
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      socket.destroy();
      takeCallbacks(socket)?.failed(err);
    });
  }
  callbacks.set(raw, cb);
  handOverToTlsServer(server, raw, buffered);
}

function takeCallbacks(socket: TLSSocket): HandshakeCallbacks | undefined {
  // Node keeps the wrapped net.Socket as `_parent` (stable since Node 0.11; not in the typings).
  const raw = (socket as unknown as { _parent?: Socket })._parent;
  if (raw === undefined) return undefined;
  const cbs = callbacks.get(raw);
  callbacks.delete(raw);
  return cbs;
}
