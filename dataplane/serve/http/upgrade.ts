// HTTP/1.1 Upgrade (WebSocket) passthrough: the upgrade request goes to a leased endpoint
// through its undici pool; on 101 the proxy relays the upstream's answer and then pipes
// bytes both ways until either side closes (or the tunnel idles past the limit). Any other
// answer is relayed as an ordinary response and the connection closed.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { applyHeaderOperations, stripResponseHopByHop, type HeaderMap } from './headers.js';
import { sendLocalReply } from './local-reply.js';
import type { RequestInfo } from './request-info.js';
import type { ServingDestination } from './serving-table.js';
import { classifyUpstreamError, leaseFailureReply, type Lease, type LeaseContext, type Upstreams } from './upstreams.js';

export interface UpgradeInput {
  req: IncomingMessage;
  /** The downstream socket, detached from node's HTTP parser. */
  socket: Duplex;
  /** Bytes the client sent after the request head. */
  head: Buffer;
  /** A response bound to the socket, for anything but a 101. */
  res: ServerResponse;
  info: RequestInfo;
  destination: ServingDestination;
  path: string;
  headers: HeaderMap;
  lease: LeaseContext;
  decorateResponse: (headers: HeaderMap) => void;
  idleTimeout: number;
  /** Called once when the tunnel is over (the caller logs and counts the request). */
  onTunnelClosed: () => void;
}

export function forwardUpgrade(upstreams: Upstreams, onError: (err: unknown, request: string) => void, input: UpgradeInput): void {
  const { info, destination } = input;
  info.upstreamCluster = destination.cluster;
  const lease = upstreams.lease(destination.cluster, input.lease);
  if (!lease.ok) {
    const r = leaseFailureReply(lease);
    sendLocalReply(input.res, info, { ...r, decorate: input.decorateResponse });
    return;
  }
  info.upstreamHost = lease.endpointKey;
  const handler = new UpgradeHandler(input, lease, onError);
  const upgrade = String(input.req.headers.upgrade ?? 'websocket');
  try {
    lease.dispatcher.dispatch({ origin: lease.origin, path: input.path, method: input.req.method ?? 'GET', headers: input.headers as Record<string, string | string[]>, upgrade, body: null }, handler);
  } catch (err) {
    handler.onResponseError(undefined, err as Error);
  }
}


class UpgradeHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private settled = false;
  private tunnelOpen = false;
  private readonly startMark = performance.now();

  constructor(
    private readonly input: UpgradeInput,
    private readonly lease: Lease,
    private readonly reportError: (err: unknown, request: string) => void,
  ) {
    input.socket.once('close', () => {
      // The client left before the upstream answered.
      if (!this.settled && !this.tunnelOpen) {
        this.settle({ error: 'other' });
        this.controller?.abort(new Error('downstream closed'));
      }
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.input.socket.destroyed) controller.abort(new Error('downstream closed'));
  }

  onRequestUpgrade(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, upstream: Duplex): void {
    this.guard(() => this.tunnel(statusCode, headers, upstream), upstream);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.guard(() => this.relayHead(controller, statusCode, headers));
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.guard(() => {
      this.input.info.bytesSent += chunk.length;
      if (!this.input.res.destroyed) this.input.res.write(chunk);
    });
  }

  onResponseEnd(): void {
    this.guard(() => {
      this.settle({ status: this.input.info.status });
      this.input.res.end();
    });
  }

  /** A bug in a callback: report it, close both sides, never throw into undici. */
  private guard(fn: () => void, upstream?: Duplex): void {
    try {
      fn();
    } catch (err) {
      this.reportError(err, `${this.input.info.method} ${this.input.info.authority}${this.input.info.path} (upgrade)`);
      this.settle({ error: 'other' });
      upstream?.destroy();
      this.controller?.abort(new Error('upgrade failed'));
      this.input.socket.destroy();
    }
  }

  private tunnel(statusCode: number, headers: Record<string, string | string[] | undefined>, upstream: Duplex): void {
    const { input } = this;
    const { socket, info } = input;
    this.tunnelOpen = true;
    info.status = statusCode;
    info.details = 'via_upstream';
    info.upstreamServiceTime = Math.round(performance.now() - this.startMark);
    if (socket.destroyed) {
      upstream.destroy();
      this.settle({ status: statusCode });
      input.onTunnelClosed();
      return;
    }
    const h: HeaderMap = { ...headers };
    const destOps = input.destination.responseHeaders;
    if (destOps !== undefined) applyHeaderOperations(h, destOps);
    input.decorateResponse(h);
    input.res.detachSocket(socket as Socket);
    let head = `HTTP/1.1 ${statusCode} Switching Protocols\r\n`;
    for (const name in h) {
      const v = h[name];
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v) head += `${name}: ${item}\r\n`;
      else head += `${name}: ${v}\r\n`;
    }
    socket.write(`${head}\r\n`);
    if (input.head.length > 0) upstream.write(input.head);
    const down = socket as Socket;
    const up = upstream as Socket;
    const downRead0 = down.bytesRead ?? 0;
    const downWritten0 = down.bytesWritten ?? 0;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      info.bytesReceived += Math.max(0, (down.bytesRead ?? 0) - downRead0);
      info.bytesSent += Math.max(0, (down.bytesWritten ?? 0) - downWritten0);
      socket.destroy();
      upstream.destroy();
      this.settle({ status: statusCode });
      input.onTunnelClosed();
    };
    for (const s of [socket, upstream]) {
      s.on('error', close);
      s.on('close', close);
      if (input.idleTimeout > 0 && typeof (s as Socket).setTimeout === 'function') (s as Socket).setTimeout(input.idleTimeout, close);
    }
    down.setNoDelay?.(true);
    up.setNoDelay?.(true);
    socket.pipe(upstream);
    upstream.pipe(socket);
  }

  /** The upstream refused the upgrade: relay its answer as a normal response. */
  private relayHead(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return;
    const { res, info } = this.input;
    if (res.headersSent || res.destroyed) {
      controller.abort(new Error('downstream closed'));
      return;
    }
    const h: HeaderMap = { ...headers };
    stripResponseHopByHop(h);
    const destOps = this.input.destination.responseHeaders;
    if (destOps !== undefined) applyHeaderOperations(h, destOps);
    this.input.decorateResponse(h);
    info.status = statusCode;
    info.details = 'via_upstream';
    info.upstreamServiceTime = Math.round(performance.now() - this.startMark);
    try {
      res.writeHead(statusCode, h as Record<string, string | string[]>);
    } catch {
      controller.abort(new Error('invalid upstream headers'));
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    this.guard(() => this.fail(err));
  }

  private fail(err: Error): void {
    const kind = classifyUpstreamError(err);
    this.settle({ error: kind });
    if (this.tunnelOpen) return;
    const { res, info } = this.input;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const connect = kind === 'connect-failure';
    sendLocalReply(res, info, {
      status: 503,
      flag: connect ? 'UF' : 'UC',
      details: connect ? 'upstream_reset_before_response_started{connection_failure}' : 'upstream_reset_before_response_started{connection_termination}',
      body: `upstream connect error or disconnect/reset before headers. reset reason: ${connect ? 'connection failure' : 'connection termination'}`,
      decorate: this.input.decorateResponse,
    });
  }

  private settle(outcome: { status?: number; error?: 'connect-failure' | 'reset' | 'timeout' | 'other' }): void {
    if (this.settled) return;
    this.settled = true;
    this.lease.done(outcome);
  }
}
