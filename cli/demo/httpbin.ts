// A small httpbin-like backend for the demo and the examples: /status/{code}, /delay/{s},
// /headers, /get, /ip, and anything else echoes the request. Each instance has a name
// (e.g. "reviews-v2") so a response shows which backend served it.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpbinOptions {
  name: string;
  host?: string;
  port?: number;
}

export interface RunningHttpbin {
  name: string;
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

function reply(res: ServerResponse, status: number, body: unknown, name: string): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-served-by': name });
  res.end(text);
}

function handle(name: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://backend');
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v ?? '']));
  const status = /^\/status\/(\d{3})$/.exec(url.pathname);
  if (status) {
    const code = Number(status[1]);
    res.writeHead(code, { 'x-served-by': name, 'content-length': 0 });
    res.end();
    return;
  }
  const delay = /^\/delay\/(\d+(?:\.\d+)?)$/.exec(url.pathname);
  if (delay) {
    const seconds = Math.min(Number(delay[1]), 10);
    const timer = setTimeout(() => reply(res, 200, { served_by: name, delay: seconds, url: req.url }, name), seconds * 1000);
    req.socket.once('close', () => clearTimeout(timer));
    return;
  }
  if (url.pathname === '/headers') return reply(res, 200, { served_by: name, headers }, name);
  if (url.pathname === '/ip') return reply(res, 200, { origin: req.socket.remoteAddress }, name);
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () =>
    reply(res, 200, {
      served_by: name,
      method: req.method,
      url: req.url,
      args: Object.fromEntries(url.searchParams),
      headers,
      origin: req.socket.remoteAddress,
      body: Buffer.concat(chunks).toString('utf8'),
    }, name),
  );
}

export function startHttpbin(options: HttpbinOptions): Promise<RunningHttpbin> {
  const server = createServer({ keepAliveTimeout: 75_000 }, (req, res) => handle(options.name, req, res));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        name: options.name,
        port,
        url: `http://${options.host ?? '127.0.0.1'}:${port}`,
        server,
        close: () => new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
      });
    });
  });
}
