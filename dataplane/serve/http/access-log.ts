// The access log: one line per request (and per TCP connection, l4/connection-log.ts) in
// Envoy's (Istio's) default text format, or as JSON with Istio's key names. Lines are
// batched and written once per event-loop turn to a stream that writes through libuv's
// thread pool (stdout as a pipe is synchronous on Linux and would block the event loop);
// when the reader falls behind, lines are dropped and counted, never queued without bound.

import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { RequestInfo } from './request-info.js';

export type AccessLogFormat = 'text' | 'json' | 'off';

export interface AccessLogOptions {
  format: AccessLogFormat;
  /** Where lines go (default: file descriptor 1 through an fs stream). */
  stream?: Writable;
  /** Lines waiting for a slow reader beyond this many bytes are dropped. */
  maxPendingBytes?: number;
}

export interface AccessLog {
  readonly enabled: boolean;
  log(info: RequestInfo): void;
  /** Lines dropped because the reader was too slow. */
  readonly dropped: number;
  /** Writes what is pending. */
  flush(): Promise<void>;
}

/**
 * Istio's default format:
 * [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
 * %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
 * "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
 * %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
 * "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER%
 * %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
 * %REQUESTED_SERVER_NAME% %ROUTE_NAME%
 */
export function formatTextLine(i: RequestInfo): string {
  return (
    `[${new Date(i.startTime).toISOString()}] "${i.method} ${i.path} ${i.protocol}" ${i.status} ${i.flags || '-'} ${i.details} ${i.terminationDetails} ` +
    `"${i.transportFailure}" ${i.bytesReceived} ${i.bytesSent} ${i.duration} ${i.upstreamServiceTime < 0 ? '-' : i.upstreamServiceTime} ` +
    `"${dash(i.forwardedFor)}" "${dash(i.userAgent)}" "${dash(i.requestId)}" "${dash(i.authority)}" "${i.upstreamHost}" ${i.upstreamCluster} - ` +
    `${i.downstreamLocal} ${i.downstreamRemote} ${i.serverName} ${i.routeName}\n`
  );
}

/** Istio's JSON access log keys. */
export function formatJsonLine(i: RequestInfo): string {
  return (
    JSON.stringify({
      start_time: new Date(i.startTime).toISOString(),
      // A TCP connection has none of these (Envoy renders an absent value as null).
      method: nullIfDash(i.method),
      path: nullIfDash(i.path),
      protocol: nullIfDash(i.protocol),
      response_code: i.status,
      response_flags: i.flags || '-',
      response_code_details: i.details,
      connection_termination_details: nullIfDash(i.terminationDetails),
      upstream_transport_failure_reason: nullIfDash(i.transportFailure),
      bytes_received: i.bytesReceived,
      bytes_sent: i.bytesSent,
      duration: i.duration,
      upstream_service_time: i.upstreamServiceTime < 0 ? null : String(i.upstreamServiceTime),
      x_forwarded_for: i.forwardedFor || null,
      user_agent: i.userAgent || null,
      request_id: i.requestId || null,
      authority: i.authority || null,
      upstream_host: nullIfDash(i.upstreamHost),
      upstream_cluster: nullIfDash(i.upstreamCluster),
      upstream_local_address: null,
      downstream_local_address: i.downstreamLocal,
      downstream_remote_address: i.downstreamRemote,
      requested_server_name: nullIfDash(i.serverName),
      route_name: nullIfDash(i.routeName),
    }) + '\n'
  );
}

function dash(v: string): string {
  return v === '' ? '-' : v;
}

function nullIfDash(v: string): string | null {
  return v === '-' || v === '' ? null : v;
}

const DISABLED: AccessLog = { enabled: false, dropped: 0, log() {}, flush: async () => {} };

export function createAccessLog(options: AccessLogOptions): AccessLog {
  if (options.format === 'off') return DISABLED;
  return new BatchingAccessLog(options.format === 'json' ? formatJsonLine : formatTextLine, options.stream ?? stdoutStream(), options.maxPendingBytes ?? 8 * 1024 * 1024);
}

let sharedStdout: Writable | undefined;
function stdoutStream(): Writable {
  // autoClose false: fd 1 stays open for everything else that writes to stdout.
  sharedStdout ??= createWriteStream('', { fd: 1, autoClose: false });
  return sharedStdout;
}

class BatchingAccessLog implements AccessLog {
  readonly enabled = true;
  dropped = 0;
  private batch: string[] = [];
  private batchBytes = 0;
  private scheduled = false;
  /** The stream asked us to wait for 'drain'. */
  private blocked = false;
  private idleWaiters: Array<() => void> = [];
  private failed = false;
  /** Writes handed to the stream and not yet completed. */
  private writing = 0;

  constructor(
    private readonly format: (i: RequestInfo) => string,
    private readonly stream: Writable,
    private readonly maxPendingBytes: number,
  ) {
    stream.on('error', () => {
      // A closed stdout must not take the proxy down: stop logging.
      this.failed = true;
      this.batch = [];
      this.batchBytes = 0;
      this.blocked = false;
      this.notifyIdle();
    });
  }

  log(info: RequestInfo): void {
    if (this.failed) return;
    const line = this.format(info);
    if (this.batchBytes + line.length > this.maxPendingBytes) {
      this.dropped++;
      return;
    }
    this.batch.push(line);
    this.batchBytes += line.length;
    if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      setImmediate(() => this.write());
    }
  }

  private write(): void {
    this.scheduled = false;
    if (this.blocked || this.batch.length === 0) return this.notifyIdle();
    const chunk = this.batch.length === 1 ? this.batch[0]! : this.batch.join('');
    this.batch = [];
    this.batchBytes = 0;
    this.writing++;
    const ok = this.stream.write(chunk, () => {
      this.writing--;
      this.notifyIdle();
    });
    if (!ok) {
      this.blocked = true;
      this.stream.once('drain', () => {
        this.blocked = false;
        this.write();
      });
      return;
    }
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (!this.failed && (this.batch.length > 0 || this.blocked || this.writing > 0)) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when every line logged so far has been written (or the stream failed). */
  flush(): Promise<void> {
    if (this.failed || (this.batch.length === 0 && !this.blocked && this.writing === 0)) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      if (!this.scheduled && !this.blocked) {
        this.scheduled = true;
        setImmediate(() => this.write());
      }
    });
  }
}
