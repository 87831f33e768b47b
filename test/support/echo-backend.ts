// An HTTP backend for feature tests: answers every request with JSON describing it (its
// name, method, url, headers, body), plus
//   .../status/<code>       that status (JSON body as usual), at the end of any path
//   .../delay/<ms>          the answer after <ms> milliseconds, at the end of any path
//   /response-headers?k=v   the query parameters as response headers (repeatable)
//   Upgrade (WebSocket)     101 Switching Protocols, then echoes every byte back
// Listens on 127.0.0.1 (port 0 = any free port) and records what it received.

import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { listenLocal } from './local-server.js';
import { unusedPort } from './ports.js';

export interface EchoRecord {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface EchoReply extends EchoRecord {
  name: string;
}

export interface EchoBackend {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** "127.0.0.1:<port>", as upstream hosts are named in logs and lease keys. */
  readonly hostPort: string;
  readonly server: Server;
  readonly requests: EchoRecord[];
  /** Upgrade requests received. */
  readonly upgrades: EchoRecord[];
  close(): Promise<void>;
}

export interface EchoOptions {
  port?: number;
  /** Answer every request with this status (a failing backend). */
  status?: number;
}

export async function startEchoBackend(name: string, options: EchoOptions = {}): Promise<EchoBackend> {
  const requests: EchoRecord[] = [];
  const upgrades: EchoRecord[] = [];
  // Large header blocks pass through the proxy in tests: accept more than node's 16 KiB.
  const server = createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const record: EchoRecord = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(record);
      const url = new URL(req.url ?? '/', 'http://backend');
      let status = options.status ?? 200;
      let delay = 0;
      const statusMatch = /\/status\/(\d{3})$/.exec(url.pathname);
      if (statusMatch) status = Number(statusMatch[1]);
      const delayMatch = /\/delay\/(\d+)$/.exec(url.pathname);
      if (delayMatch) delay = Number(delayMatch[1]);
      const extra: Array<[string, string]> = url.pathname === '/response-headers' ? [...url.searchParams.entries()] : [];
      const send = () => {
        if (res.destroyed) return;
        const body = JSON.stringify({ name, ...record } satisfies EchoReply);
        res.statusCode = status;
        res.setHeader('content-type', 'application/json');
        res.setHeader('x-echo-name', name);
        for (const [k, v] of extra) res.appendHeader(k, v);
        res.end(status === 204 || status === 304 || req.method === 'HEAD' ? undefined : body);
      };
      if (delay > 0) setTimeout(send, delay);
      else send();
    });
  });
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    upgrades.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' });
    const key = req.headers['sec-websocket-key'];
    const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `X-Echo-Name: ${name}`];
    if (typeof key === 'string') lines.push(`Sec-WebSocket-Accept: ${createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  const { port, close } = await listenLocal(server, options.port);
  return {
    name,
    address: '127.0.0.1',
    port,
    hostPort: `127.0.0.1:${port}`,
    server,
    requests,
    upgrades,
    close,
  };
}

/** A port nothing listens on: connections to it are refused (test/support/ports.ts). */
export function closedPort(): Promise<number> {
  return unusedPort();
}

/** A free port to put in a snapshot Listener. */
export const freePort = closedPort;
