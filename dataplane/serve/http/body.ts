// Request bodies: small ones are read into memory so a retry or a mirror can send them again;
// larger or chunked ones stream through once.

import type { IncomingMessage } from 'node:http';

export type RequestBody =
  | { kind: 'none' }
  | { kind: 'buffered'; data: Buffer }
  | { kind: 'stream' };

const NONE: RequestBody = { kind: 'none' };

/** What the body of this request will be, without reading it. */
export function bodyKind(req: IncomingMessage, maxBuffered: number): 'none' | 'buffered' | 'stream' {
  if (req.headers['transfer-encoding'] !== undefined) return 'stream';
  const cl = req.headers['content-length'];
  if (cl === undefined || cl === '0') return 'none';
  return Number(cl) <= maxBuffered ? 'buffered' : 'stream';
}

export function noBody(): RequestBody {
  return NONE;
}

/** Reads a body whose Content-Length is within the buffer limit (the parser enforces the length). */
export function readBody(req: IncomingMessage): Promise<RequestBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
    };
    const onEnd = () => {
      cleanup();
      resolve({ kind: 'buffered', data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      if (!req.complete) onError(new Error('request aborted while reading the body'));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** Counts the bytes of a body streamed through undici, without taking it out of paused mode. */
export function countStreamedBytes(req: IncomingMessage, add: (n: number) => void): void {
  req.pause();
  req.on('data', (chunk: Buffer) => add(chunk.length));
}
