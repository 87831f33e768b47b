// Socket plumbing for choosing a filter chain before TLS starts: read the ClientHello off a
// raw TCP socket (nothing is consumed: the bytes are handed back), then either forward the
// bytes untouched (PASSTHROUGH) or replay them into the chosen chain's handshake server
// (DownstreamTlsChain.handshakeServer), which runs the handshake with that chain's
// certificates and client-certificate mode.

import type { Socket } from 'node:net';
import type { Server } from 'node:tls';
import { ClientHelloReader, type ClientHello } from './client-hello.js';

export interface PeekedClientHello {
  hello: ClientHello;
  /** Every byte read so far, ClientHello first: replay it to whoever takes the connection. */
  buffered: Buffer;
}

/**
 * Reads until the ClientHello is complete. Resolves with an Error for non-TLS bytes, a
 * ClientHello over 16 KiB, or a connection that ends or fails first; the socket is then the
 * caller's to destroy. Set a timeout on the socket beforehand: a client that sends nothing
 * keeps this pending. The socket is left paused, with an error listener that keeps late
 * socket errors from crashing the process.
 */
export function readClientHello(socket: Socket): Promise<PeekedClientHello | Error> {
  return new Promise((resolve) => {
    const reader = new ClientHelloReader();
    let done = false;
    const finish = (result: PeekedClientHello | Error) => {
      if (done) return;
      done = true;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      const result = reader.push(chunk);
      if (result === 'need-more-bytes') return;
      finish(result instanceof Error ? result : { hello: result, buffered: reader.buffered });
    };
    const onEnd = () => finish(new Error('connection closed before a complete ClientHello'));
    const onError = (err: Error) => finish(new Error(`connection failed before a complete ClientHello: ${err.message}`));
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
  });
}

/**
 * Starts the TLS handshake of `server` on a socket whose first bytes were already read:
 * they are pushed back first, then the server takes the socket as if it had accepted it
 * ('connection' is documented as injectable). Its 'secureConnection' and 'tlsClientError'
 * events report the outcome.
 */
export function handOverToTlsServer(server: Server, socket: Socket, buffered: Buffer): void {
  if (buffered.length > 0) socket.unshift(buffered);
  server.emit('connection', socket);
}
