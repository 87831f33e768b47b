// Forwarding one request upstream: leases an endpoint per attempt, streams the body both
// ways with backpressure (undici's dispatch handler: pause/resume against the downstream
// socket), and applies the route's timeout and retry policy. The handler is undici's raw
// one (onConnect/onHeaders/onData/onComplete/onError): the controller-based interface costs
// an adapter per request in undici, which parses the headers into an object that would
// then have its hop-by-hop headers deleted; here they are built once, already stripped. Local replies carry Envoy's
// response flags: UF/UC/UH/UO/NC → 503, UT → 504, URX when retries ran out.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { util as undiciUtil, type Dispatcher } from 'undici';
import { appendHeader, applyHeaderOperations, responseHeadersFromRaw, type HeaderMap } from './headers.js';
import type { RequestBody } from './body.js';
import { sendLocalReply, type LocalReply } from './local-reply.js';
import { transportFailureReason, type RequestInfo } from './request-info.js';
import { isRetriableFailure, isRetriableResponse, retryBackoff } from './retry-policy.js';
import type { ServingDestination, ServingRoute } from './serving-table.js';
import { classifyUpstreamError, leaseFailureReply, type Lease, type LeaseContext, type LeaseOutcome, type RetryPermit, type Upstreams } from './upstreams.js';

export interface ForwardDeps {
  upstreams: Upstreams;
  retryBackoffBase: number;
  attemptCountHeader: boolean;
  random: () => number;
  /** A bug caught while proxying (the request still gets an answer). */
  onError: (err: unknown, request: string) => void;
}

export interface ForwardInput {
  req: IncomingMessage;
  res: ServerResponse;
  info: RequestInfo;
  route: ServingRoute;
  destination: ServingDestination;
  method: string;
  /** The upstream path (after rewrites), with the query string. */
  path: string;
  /** Upstream request headers, every operation applied. */
  headers: HeaderMap;
  body: RequestBody;
  lease: LeaseContext;
  /** Route response header operations and CORS: applied to upstream and local responses alike. */
  decorateResponse: (headers: HeaderMap) => void;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

type Failure = 'connect-failure' | 'reset' | 'timeout';

const FAILURE_REPLIES: Record<Failure, Omit<LocalReply, 'decorate'>> = {
  'connect-failure': {
    status: 503,
    flag: 'UF',
    details: 'upstream_reset_before_response_started{connection_failure}',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
  },
  reset: {
    status: 503,
    flag: 'UC',
    details: 'upstream_reset_before_response_started{connection_termination}',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
  },
  timeout: { status: 504, flag: 'UT', details: 'upstream_per_try_timeout', body: 'upstream request timeout' },
};

/**
 * Starts forwarding. With `callerHandlesClose` the caller, which already listens for the
 * response's 'close', must call the returned function from that listener (one listener per
 * request instead of two); otherwise the forwarder listens itself and returns undefined.
 */
export function forward(deps: ForwardDeps, input: ForwardInput, callerHandlesClose = false): (() => void) | undefined {
  const exchange = new ProxyExchange(deps, input);
  exchange.start(!callerHandlesClose);
  return callerHandlesClose ? () => exchange.downstreamClosed() : undefined;
}

/** One downstream request and its upstream attempts. */
class ProxyExchange {
  private readonly cluster: string;
  private readonly replayable: boolean;
  private retries = 0;
  private tried: Set<string> | undefined;
  private current: Attempt | undefined;
  private routeTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private pendingPermit: RetryPermit | undefined;
  private responseStarted = false;
  private finished = false;
  private safetyRetryUsed = false;

  constructor(
    private readonly deps: ForwardDeps,
    private readonly input: ForwardInput,
  ) {
    this.cluster = input.destination.cluster;
    this.replayable = input.body.kind !== 'stream';
    input.info.upstreamCluster = this.cluster;
  }

  start(listenForClose: boolean): void {
    if (listenForClose) this.input.res.once('close', () => this.downstreamClosed());
    const timeout = this.input.route.timeout;
    if (timeout !== undefined) this.routeTimer = setTimeout(() => this.safely(() => this.onRouteTimeout()), timeout);
    this.attempt(undefined);
  }

  /** Timer and event callbacks run outside any caller's try/catch: a bug there must not crash the proxy. */
  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.abortOnBug(this.current, err);
    }
  }

  private attempt(permit: RetryPermit | undefined): void {
    this.retryTimer = undefined;
    this.pendingPermit = undefined;
    if (this.finished) {
      permit?.release();
      return;
    }
    const { input } = this;
    const ctx = input.lease;
    ctx.exclude = this.tried;
    ctx.retry = permit;
    const lease = this.deps.upstreams.lease(this.cluster, ctx);
    if (!lease.ok) {
      const r = leaseFailureReply(lease);
      if (this.retries > 0) input.info.addFlag('URX');
      input.info.transportFailure = '-';
      this.reply({ status: r.status, flag: r.flag, details: r.details, body: r.body });
      return;
    }
    input.info.upstreamHost = lease.endpointKey;
    const attempt = new Attempt(this, lease);
    this.current = attempt;
    if (this.deps.attemptCountHeader) input.headers['x-envoy-attempt-count'] = String(this.retries + 1);
    const perTry = input.route.retry.perTryTimeout;
    if (perTry !== undefined) attempt.timer = setTimeout(() => this.safely(() => this.onPerTryTimeout(attempt)), perTry);
    const body = input.body.kind === 'buffered' ? input.body.data : input.body.kind === 'stream' ? input.req : null;
    try {
      lease.dispatcher.dispatch({ origin: lease.origin, path: input.path, method: input.method, headers: input.headers as Record<string, string | string[]>, body }, attempt);
    } catch (err) {
      this.onAttemptError(attempt, err as Error);
    }
  }

  // ---- attempt callbacks (only for the current, uncancelled attempt) ----

  onResponseHead(a: Attempt, status: number, rawHeaders: RawHeaders, statusMessage: string | undefined): void {
    if (status < 200) return; // 1xx: informational, not forwarded
    clearTimeout(a.timer);
    const { info, route, res } = this.input;
    info.upstreamServiceTime = Math.round(performance.now() - a.startMark);
    // Hop-by-hop headers (and those Connection names) are left out.
    const headers = responseHeadersFromRaw(rawHeaders);
    if (isRetriableResponse(route.retry, status, headers)) {
      if (this.mayRetry()) {
        const permit = this.deps.upstreams.tryAcquireRetry(this.cluster);
        if (permit !== undefined) {
          a.cancel({ status });
          this.scheduleRetry(a, permit);
          return;
        }
      } else if (route.retry.attempts > 0 && this.retries >= route.retry.attempts) {
        info.addFlag('URX');
      }
    }
    this.responseStarted = true;
    a.status = status;
    const destOps = this.input.destination.responseHeaders;
    if (destOps !== undefined) applyHeaderOperations(headers, destOps);
    this.input.decorateResponse(headers);
    if (a.lease.setCookie !== undefined) appendHeader(headers, 'set-cookie', a.lease.setCookie);
    headers['x-envoy-upstream-service-time'] = String(info.upstreamServiceTime);
    if (res.destroyed) {
      a.cancel({ error: 'other' });
      this.cleanup();
      return;
    }
    try {
      if (statusMessage) res.statusMessage = statusMessage;
      res.writeHead(status, headers as Record<string, string | string[]>);
    } catch (err) {
      // An upstream header value node refuses to send: answer 502 instead.
      a.cancel({ status });
      this.responseStarted = false;
      res.statusMessage = '';
      this.reply({ status: 502, details: 'invalid_upstream_response_headers', body: `invalid upstream response: ${(err as Error).message}` });
      return;
    }
    info.status = status;
    info.details = 'via_upstream';
  }

  onResponseData(a: Attempt, chunk: Buffer): void {
    const res = this.input.res;
    this.input.info.bytesSent += chunk.length;
    if (!res.write(chunk) && !a.waitingForDrain && !res.destroyed) {
      a.waitingForDrain = true;
      a.paused = true;
      res.once('drain', () => {
        a.waitingForDrain = false;
        a.resumeResponse();
      });
    }
  }

  onResponseEnd(a: Attempt, upstreamTrailers: UpstreamTrailers): void {
    a.settle({ status: a.status });
    this.finished = true;
    this.cleanup();
    const res = this.input.res;
    // Node sends them on a chunked HTTP/1.1 response or an HTTP/2 stream; gRPC status lives here.
    if (upstreamTrailers && !res.destroyed) {
      const trailers = trailersOf(upstreamTrailers);
      if (trailers !== undefined) res.addTrailers(trailers);
    }
    res.end();
  }

  onAttemptError(a: Attempt, err: Error): void {
    clearTimeout(a.timer);
    const kind = classifyUpstreamError(err);
    const { info, route, res, method } = this.input;
    if (this.responseStarted) {
      a.settle({ error: kind === 'timeout' ? 'timeout' : kind === 'other' ? 'other' : 'reset' });
      info.addFlag('UR');
      info.details = 'upstream_reset_after_response_started{remote_reset}';
      this.finished = true;
      this.cleanup();
      res.destroy();
      return;
    }
    a.settle({ error: kind });
    const failure: Failure = kind === 'connect-failure' ? 'connect-failure' : kind === 'timeout' ? 'timeout' : 'reset';
    info.transportFailure = transportFailureReason(err);
    const byPolicy = isRetriableFailure(route.retry, failure);
    // Do better than a 503 from a keep-alive race: an idempotent request whose connection was
    // reset before any response is retried once, within the retry budget.
    const safety = !byPolicy && failure === 'reset' && !this.safetyRetryUsed && this.replayable && IDEMPOTENT.has(method);
    if ((byPolicy && this.mayRetry()) || (safety && !this.finished)) {
      const permit = this.deps.upstreams.tryAcquireRetry(this.cluster);
      if (permit !== undefined) {
        if (safety) this.safetyRetryUsed = true;
        this.scheduleRetry(a, permit);
        return;
      }
    } else if (byPolicy && route.retry.attempts > 0 && this.retries >= route.retry.attempts) {
      info.addFlag('URX');
    }
    const reply = FAILURE_REPLIES[failure];
    this.reply(failure === 'timeout' ? { ...reply, details: 'upstream_response_timeout' } : reply);
  }

  private onRouteTimeout(): void {
    this.routeTimer = undefined;
    if (this.finished) return;
    const { info, res } = this.input;
    this.current?.cancel({ error: 'timeout' });
    info.addFlag('UT');
    if (!this.responseStarted) {
      this.reply({ status: 504, flag: 'UT', details: 'upstream_response_timeout', body: 'upstream request timeout' });
      return;
    }
    info.details = 'upstream_response_timeout';
    this.finished = true;
    this.cleanup();
    res.destroy();
  }

  private onPerTryTimeout(a: Attempt): void {
    if (a !== this.current || a.cancelled || this.responseStarted || this.finished) return;
    a.cancel({ error: 'timeout' });
    const retry = this.input.route.retry;
    if (isRetriableFailure(retry, 'timeout')) {
      if (this.mayRetry()) {
        const permit = this.deps.upstreams.tryAcquireRetry(this.cluster);
        if (permit !== undefined) {
          this.scheduleRetry(a, permit);
          return;
        }
      } else if (retry.attempts > 0) {
        this.input.info.addFlag('URX');
      }
    }
    this.reply(FAILURE_REPLIES.timeout);
  }

  /** The response's 'close'. */
  downstreamClosed(): void {
    try {
      this.onDownstreamClose();
    } catch (err) {
      this.abortOnBug(this.current, err);
    }
  }

  private onDownstreamClose(): void {
    if (this.finished) {
      this.cleanup();
      return;
    }
    // The client went away before the response was complete.
    this.finished = true;
    this.current?.cancel({ error: 'other' });
    this.cleanup();
  }

  // ---- helpers ----

  private mayRetry(): boolean {
    return !this.finished && this.replayable && this.retries < this.input.route.retry.attempts;
  }

  private scheduleRetry(a: Attempt, permit: RetryPermit): void {
    this.retries++;
    (this.tried ??= new Set()).add(a.lease.endpointKey);
    this.current = undefined;
    this.pendingPermit = permit;
    const delay = retryBackoff(this.deps.retryBackoffBase, this.retries, this.deps.random);
    this.retryTimer = setTimeout(() => this.safely(() => this.attempt(permit)), delay);
  }

  private reply(reply: LocalReply): void {
    this.finished = true;
    this.cleanup();
    sendLocalReply(this.input.res, this.input.info, { ...reply, decorate: this.input.decorateResponse });
  }

  private cleanup(): void {
    if (this.routeTimer !== undefined) {
      clearTimeout(this.routeTimer);
      this.routeTimer = undefined;
    }
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (this.pendingPermit !== undefined) {
      this.pendingPermit.release();
      this.pendingPermit = undefined;
    }
  }

  /** A bug while handling an upstream callback: never leave the downstream hanging. */
  abortOnBug(a: Attempt | undefined, err: unknown): void {
    try {
      a?.cancel({ error: 'other' });
    } catch {
      // already failing: the downstream answer below is what matters
    }
    this.deps.onError(err, `${this.input.method} ${this.input.info.authority}${this.input.info.path}`);
    if (this.finished) return;
    if (this.responseStarted) {
      this.finished = true;
      this.cleanup();
      this.input.res.destroy();
      return;
    }
    try {
      this.reply({ status: 500, details: 'internal_error', body: 'internal error' });
    } catch {
      this.input.res.destroy();
    }
  }

  /** Attempt callbacks land here only for the live attempt. */
  isLive(a: Attempt): boolean {
    return a === this.current && !a.cancelled;
  }
}

/** Response headers or trailers as undici hands them over: name, value, name, value… */
type RawHeaders = Array<Buffer | string | Array<Buffer | string>>;

/**
 * Trailers as undici hands them over: a raw list from an HTTP/1.1 upstream, node:http2's
 * header object from an h2c one (client-h2.js passes its 'trailers' event on as is).
 */
type UpstreamTrailers = RawHeaders | Record<string, string | string[] | undefined> | null | undefined;

/** Trailers to send downstream (lower-case names, repeated values joined), or undefined for none. */
export function trailersOf(upstream: NonNullable<UpstreamTrailers>): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  if (Array.isArray(upstream)) {
    if (upstream.length === 0) return undefined;
    const parsed = undiciUtil.parseHeaders(upstream as Buffer[]) as Record<string, string | string[]>;
    for (const name in parsed) (out ??= {})[name] = joined(parsed[name]!);
    return out;
  }
  for (const name in upstream) {
    const value = upstream[name];
    // HTTP/2 pseudo-headers never belong in trailers.
    if (value === undefined || name.charCodeAt(0) === 58) continue;
    (out ??= {})[name.toLowerCase()] = joined(value);
  }
  return out;
}

function joined(value: string | string[]): string {
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * One attempt on one leased endpoint: undici's raw dispatch handler. Returning false from
 * onHeaders/onData pauses the upstream connection; `resume` (given with the head) restarts it.
 * A throw inside a callback would surface in undici's parser: each one catches its own.
 */
class Attempt implements Dispatcher.DispatchHandler {
  private abortRequest: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private aborted = false;
  cancelled = false;
  settled = false;
  waitingForDrain = false;
  /** Set while the downstream is not draining: undici stops reading until resumeResponse(). */
  paused = false;
  status: number | undefined;
  timer: NodeJS.Timeout | undefined;
  readonly startMark = performance.now();

  constructor(
    private readonly exchange: ProxyExchange,
    readonly lease: Lease,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.abortRequest = abort;
    if (this.cancelled) this.abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusMessage: string): boolean {
    this.resumeUpstream = resume;
    if (!this.exchange.isLive(this)) return true;
    try {
      this.exchange.onResponseHead(this, statusCode, rawHeaders, statusMessage);
    } catch (err) {
      this.exchange.abortOnBug(this, err);
    }
    return !this.paused;
  }

  onData(chunk: Buffer): boolean {
    if (!this.exchange.isLive(this)) return true;
    try {
      this.exchange.onResponseData(this, chunk);
    } catch (err) {
      this.exchange.abortOnBug(this, err);
    }
    return !this.paused;
  }

  onComplete(trailers: UpstreamTrailers): void {
    if (!this.exchange.isLive(this)) return;
    try {
      this.exchange.onResponseEnd(this, trailers);
    } catch (err) {
      this.exchange.abortOnBug(this, err);
    }
  }

  onError(error: Error): void {
    if (!this.exchange.isLive(this)) {
      // A cancelled attempt's abort comes back here; its lease was settled by cancel().
      this.settle({ error: 'other' });
      return;
    }
    try {
      this.exchange.onAttemptError(this, error);
    } catch (err) {
      this.exchange.abortOnBug(this, err);
    }
  }

  resumeResponse(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeUpstream?.();
  }

  cancel(outcome: LeaseOutcome): void {
    if (this.cancelled) return;
    this.cancelled = true;
    clearTimeout(this.timer);
    this.settle(outcome);
    this.abort();
  }

  private abort(): void {
    if (this.aborted || this.abortRequest === undefined) return;
    this.aborted = true;
    this.abortRequest(new Error('attempt cancelled'));
  }

  settle(outcome: LeaseOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.lease.done(outcome);
  }
}
