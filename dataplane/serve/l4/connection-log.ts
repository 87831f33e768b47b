// The access-log record of one TCP connection (TCP/MONGO, TLS passthrough, TLS terminated then
// proxied as TCP), written when the downstream connection closes. It is the HTTP line with
// the request fields empty, as Istio's default format renders a tcp_proxy connection:
//   [start] "- - -" 0 <flags> - - "-" <bytes received> <bytes sent> <duration ms> - "-" "-" "-" "-"
//   "<upstream host>" <cluster> - <downstream local> <downstream remote> <SNI> -

import type { Socket } from 'node:net';
import { socketAddress } from '../http/headers.js';
import { NO_SERIES, RequestInfo } from '../http/request-info.js';

/** When a connection was accepted: its log line's start time and the origin of its duration. */
export interface ConnectionStart {
  readonly time: number;
  readonly mark: number;
}

export function connectionStart(): ConnectionStart {
  return { time: Date.now(), mark: performance.now() };
}

/** A connection's record; `sni` is the ClientHello's server name on TLS listeners. */
export function connectionInfo(downstream: Socket, sni: string | undefined, started: ConnectionStart): RequestInfo {
  return new RequestInfo(
    '-',
    '-',
    '-',
    '',
    '',
    socketAddress(downstream.localAddress, downstream.localPort),
    socketAddress(downstream.remoteAddress, downstream.remotePort),
    sni === undefined || sni === '' ? '-' : sni,
    NO_SERIES,
    started,
  );
}

/** Sets the duration: the record is complete. */
export function finishConnectionInfo(info: RequestInfo): RequestInfo {
  info.duration = Math.round(performance.now() - info.startMark);
  return info;
}
