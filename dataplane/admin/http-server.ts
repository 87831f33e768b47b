// A tiny HTTP server for the admin endpoints: GET-only routing by path, errors answered
// with a 500 instead of escaping.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export type AdminRoute = (req: IncomingMessage, url: URL) => Promise<AdminResponse> | AdminResponse;

export interface AdminResponse {
  status: number;
  body: string | Buffer;
  contentType?: string;
}

export function text(status: number, body: string): AdminResponse {
  return { status, body, contentType: 'text/plain; charset=utf-8' };
}

export function json(status: number, value: unknown): AdminResponse {
  return { status, body: `${JSON.stringify(value, null, 2)}\n`, contentType: 'application/json' };
}

export function createAdminHttpServer(name: string, routes: Record<string, AdminRoute>): Server {
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000 }, (req, res) => {
    void handle(name, routes, req, res);
  });
  return server;
}

async function handle(name: string, routes: Record<string, AdminRoute>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://admin.local');
    const route = routes[url.pathname];
    let out: AdminResponse;
    if (route === undefined) out = text(404, `not found: ${url.pathname}\navailable: ${Object.keys(routes).join(' ')}\n`);
    else if (req.method !== 'GET' && req.method !== 'HEAD') out = text(405, 'method not allowed\n');
    else out = await route(req, url);
    const body = typeof out.body === 'string' ? Buffer.from(out.body, 'utf8') : out.body;
    res.writeHead(out.status, { 'content-type': out.contentType ?? 'text/plain; charset=utf-8', 'content-length': String(body.length), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    process.emitWarning(`portway: ${name} server error: ${(err as Error)?.stack ?? err}`);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('internal error\n');
  }
}

export function listen(server: Server, port: number, host: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`${name} server cannot listen on ${host}:${port}: ${err.message}`));
    server.once('error', onError);
    server.listen({ port, host }, () => {
      server.off('error', onError);
      const addr = server.address();
      resolve(addr && typeof addr === 'object' ? addr.port : port);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
