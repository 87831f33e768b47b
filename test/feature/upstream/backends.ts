// Real HTTP backends on 127.0.0.1 for upstream feature tests: each answers with its name,
// counts requests and connections, and can fail or hold requests on demand.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import assert from 'node:assert/strict';
import type { Lease, LeaseFailure } from '../../../dataplane/upstream/cluster-manager.js';
import { classifyUpstreamError } from '../../../dataplane/upstream/errors.js';

export interface Backend {
  name: string;
  port: number;
  /** Requests received. */
  hits: number;
  /** Connections accepted so far. */
  connections: number;
  /** Connections open now. */
  openSockets: Set<Socket>;
  /** Remote ports of the connections requests arrived on, in order. */
  requestPorts: number[];
  /** Status to answer with. */
  status: number;
  /** While true, requests wait until release(). */
  holding: boolean;
  inFlight: number;
  maxInFlight: number;
  release(): void;
  close(): Promise<void>;
}

export async function startBackend(name: string, tls?: { key: string; cert: string }, listen: { host?: string; port?: number } = {}): Promise<Backend> {
  const held: Array<() => void> = [];
  const b: Backend = {
    name,
    port: 0,
    hits: 0,
    connections: 0,
    openSockets: new Set(),
    requestPorts: [],
    status: 200,
    holding: false,
    inFlight: 0,
    maxInFlight: 0,
    release() {
      this.holding = false;
      for (const f of held.splice(0)) f();
    },
    async close() {
      for (const s of b.openSockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const handler: http.RequestListener = (req, res) => {
    b.hits++;
    b.inFlight++;
    b.maxInFlight = Math.max(b.maxInFlight, b.inFlight);
    b.requestPorts.push(req.socket.remotePort ?? 0);
    const answer = () => {
      b.inFlight--;
      const servername = (req.socket as { servername?: string }).servername;
      res.writeHead(b.status, { 'content-type': 'text/plain', ...(servername ? { 'x-sni': servername } : {}) });
      res.end(name);
    };
    req.resume();
    req.on('end', () => (b.holding ? held.push(answer) : answer()));
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    b.connections++;
    b.openSockets.add(socket);
    socket.on('close', () => b.openSockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(listen.port ?? 0, listen.host ?? '127.0.0.1', resolve));
  b.port = (server.address() as AddressInfo).port;
  return b;
}

export function ok(l: Lease | LeaseFailure): Lease {
  assert.equal(l.ok, true, l.ok ? '' : `${l.flag}: ${l.message}`);
  return l as Lease;
}

/** One GET through the lease's dispatcher, reporting the outcome with done() as the forwarder does. */
export async function get(lease: Lease, path = '/'): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  try {
    const res = await lease.dispatcher.request({ path, method: 'GET', headers: { host: 'backend.example.com' } });
    const body = await res.body.text();
    lease.done({ status: res.statusCode });
    return { status: res.statusCode, body, headers: res.headers };
  } catch (err) {
    lease.done({ error: classifyUpstreamError(err) });
    throw err;
  }
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs` (a deadline, not a timing assertion). */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
