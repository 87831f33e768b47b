// Requests node's parser refused before they reached the handler: header block too large
// (431), request timeout (408), malformed or smuggling-prone framing such as Content-Length
// together with Transfer-Encoding (400). The connection is answered when nothing was sent on
// it yet, and always closed.

import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { socketAddress } from './headers.js';

export interface ClientErrorReport {
  status: number;
  code: string;
  remote: string;
}

export function clientErrorStatus(code: string | undefined): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 413;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    default:
      return 400;
  }
}

/** Answers and closes; returns what to log, or undefined for a connection that simply broke. */
export function reportClientError(err: NodeJS.ErrnoException, socket: Duplex): ClientErrorReport | undefined {
  const s = socket as Socket & { _httpMessage?: { headersSent?: boolean } | null };
  const code = typeof err.code === 'string' ? err.code : 'UNKNOWN';
  if (code === 'ECONNRESET' || code === 'EPIPE' || !s.writable) {
    s.destroy();
    return undefined;
  }
  const status = clientErrorStatus(code);
  if (!s._httpMessage || !s._httpMessage.headersSent) {
    s.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }
  if (typeof s.destroySoon === 'function') s.destroySoon();
  else s.destroy();
  return { status, code, remote: socketAddress(s.remoteAddress, s.remotePort) };
}
