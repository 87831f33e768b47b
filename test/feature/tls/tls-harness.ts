// Real TLS listeners on 127.0.0.1 wired the two ways the serving code can use the tls/
// building blocks, and a client that reports what it got. A served connection gets the line
// "chain:<name>\n" and then an echo, so tests can tell which chain answered and whether an
// open connection still works.

import type { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { listenerClientCertVerification, type DownstreamTlsChain } from '../../../dataplane/tls/downstream-context.js';
import { createSniSelector } from '../../../dataplane/tls/sni-selector.js';
import { handOverToTlsServer, readClientHello } from '../../../dataplane/tls/tls-termination.js';
import { listenLocal } from '../../support/local-server.js';

export interface Listener {
  port: number;
  /** Why handshakes or connections were refused on the server side, in order. */
  failures: string[];
  close(): Promise<void>;
}

/** Serves a greeting and then echoes. */
function serve(socket: tls.TLSSocket, chain: DownstreamTlsChain, failures: string[]): void {
  const reason = chain.verifyPeer(socket);
  if (reason) {
    failures.push(reason);
    socket.destroy();
    return;
  }
  socket.write(`chain:${chain.name}\n`);
  socket.on('data', (d) => socket.write(d));
  socket.on('error', () => {});
}

/** One tls.Server for all chains, choosing the context in SNICallback. */
export async function startSniListener(chains: DownstreamTlsChain[]): Promise<Listener> {
  const failures: string[] = [];
  const selector = createSniSelector(chains);
  const server = tls.createServer({ SNICallback: selector, ...listenerClientCertVerification(chains.map((c) => c.policy.mode)) });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const chain = selector.select(socket.servername || undefined);
    if (!chain) {
      failures.push('no chain');
      socket.destroy();
      return;
    }
    serve(socket, chain, failures);
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => failures.push(err.code ?? err.message));
  return listen(server, failures);
}

/** ClientHello first, then the chosen chain's own handshake server. */
export async function startChainListener(chains: DownstreamTlsChain[]): Promise<Listener> {
  const failures: string[] = [];
  const selector = createSniSelector(chains);
  const wired = new WeakSet<tls.Server>();
  const server = net.createServer(async (raw) => {
    raw.on('error', () => {});
    const peeked = await readClientHello(raw);
    if (peeked instanceof Error) {
      failures.push(peeked.message);
      raw.destroy();
      return;
    }
    const chain = selector.select(peeked.hello.sni);
    const handshake = chain ? chain.handshakeServer() : new Error(`no TLS server for SNI ${peeked.hello.sni}`);
    if (handshake instanceof Error) {
      failures.push(handshake.message);
      raw.destroy();
      return;
    }
    if (!wired.has(handshake)) {
      wired.add(handshake);
      handshake.on('secureConnection', (socket: tls.TLSSocket) => serve(socket, chain!, failures));
      handshake.on('tlsClientError', (err: NodeJS.ErrnoException) => failures.push(err.code ?? err.message));
    }
    handOverToTlsServer(handshake, raw, peeked.buffered);
  });
  return listen(server, failures);
}

async function listen(server: net.Server, failures: string[]): Promise<Listener> {
  return { failures, ...(await listenLocal(server)) };
}

export type Outcome =
  | { ok: true; chain: string; peer: X509Certificate; protocol: string | null; alpn: string | false | null; socket: tls.TLSSocket; session?: Buffer }
  | { ok: false; error: string };

/**
 * Connects, and resolves once the server's greeting arrives (ok) or the connection fails or
 * closes first. With TLS 1.3 a rejected client certificate shows up after the client thinks
 * the handshake is done, so "ok" means the server accepted and spoke. An ok socket is left
 * open: the caller destroys it.
 */
export function connect(port: number, options: tls.ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    let text = '';
    let settled = false;
    let session: Buffer | undefined;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      if (!outcome.ok) socket.destroy();
      resolve(outcome);
    };
    socket.on('session', (s: Buffer) => (session = s));
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      const line = /^chain:(.*)\n/.exec(text);
      if (!line) return;
      socket.removeAllListeners('data');
      settle({
        ok: true,
        chain: line[1]!,
        peer: socket.getPeerX509Certificate()!,
        protocol: socket.getProtocol(),
        alpn: socket.alpnProtocol,
        socket,
        get session() {
          return session;
        },
      });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => settle({ ok: false, error: err.code ?? err.message }));
    socket.on('close', () => settle({ ok: false, error: 'closed before the greeting' }));
  });
}

/** Sends a line on an open connection and resolves with the echo. */
export function echo(socket: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(text);
  });
}

/** Waits for the TLS 1.3 session ticket of an ok outcome. */
export function sessionOf(outcome: Extract<Outcome, { ok: true }>): Promise<Buffer> {
  if (outcome.session) return Promise.resolve(outcome.session);
  return new Promise((resolve) => outcome.socket.once('session', resolve));
}
