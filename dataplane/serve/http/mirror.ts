// Traffic mirroring (Istio mirror / mirrors[]): a fire-and-forget copy of the request to
// another cluster, with "-shadow" appended to the host as Envoy does. The copy carries the
// body only when the proxy buffered it; its response is read and thrown away, and nothing
// about it touches the main response.

import type { Dispatcher } from 'undici';
import type { MirrorPolicy } from '../../snapshot/types.js';
import { authorityPort, type HeaderMap } from './headers.js';
import { classifyUpstreamError, type Lease, type LeaseContext, type Upstreams } from './upstreams.js';

export interface MirrorRequest {
  method: string;
  path: string;
  /** The upstream headers of the main request (copied, not modified). */
  headers: HeaderMap;
  /** The buffered body, or null when there is none or it was streamed. */
  body: Buffer | null;
  lease: LeaseContext;
}

/** "host:8080" → "host-shadow:8080" (Envoy puts the suffix before the port). */
export function shadowHost(authority: string): string {
  const port = authorityPort(authority);
  return `${authority.slice(0, authority.length - port.length)}-shadow${port}`;
}

export function sendMirror(upstreams: Upstreams, mirror: MirrorPolicy, request: MirrorRequest, timeoutMs: number, random: () => number): boolean {
  if (mirror.percentage < 100 && random() * 100 >= mirror.percentage) return false;
  const lease = upstreams.lease(mirror.cluster, { ...request.lease, exclude: undefined, retry: undefined });
  if (!lease.ok) return false;
  const headers: HeaderMap = { ...request.headers };
  const host = headers.host;
  headers.host = shadowHost(typeof host === 'string' && host !== '' ? host : mirror.host);
  if (request.body === null) {
    delete headers['content-length'];
    delete headers['transfer-encoding'];
  }
  const handler = new MirrorHandler(lease, timeoutMs);
  try {
    lease.dispatcher.dispatch({ origin: lease.origin, path: request.path, method: request.method, headers: headers as Record<string, string | string[]>, body: request.body }, handler);
  } catch {
    handler.finish({ error: 'other' });
  }
  return true;
}

class MirrorHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private status: number | undefined;
  private done = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly lease: Lease,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(() => {
      this.finish({ error: 'timeout' });
      this.controller?.abort(new Error('mirror timeout'));
    }, timeoutMs);
    this.timer.unref();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.done) controller.abort(new Error('mirror abandoned'));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode >= 200) this.status = statusCode;
  }

  onResponseData(): void {}

  onResponseEnd(): void {
    this.finish({ status: this.status });
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.finish({ error: classifyUpstreamError(err) });
  }

  finish(outcome: { status?: number; error?: 'connect-failure' | 'reset' | 'timeout' | 'other' }): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.lease.done(outcome);
  }
}
