// Reads the SNI and ALPN of a TLS ClientHello from the first bytes of a TCP stream, without
// terminating TLS: what PASSTHROUGH routing and per-chain termination need before choosing
// where the connection goes. Handles a ClientHello split across TCP chunks and spread over
// several TLS records, and gives up past 16 KiB (a real ClientHello is well under that,
// even with post-quantum key shares) so a client cannot make the proxy buffer without end.
// Pure: bytes in, a verdict out.

export interface ClientHello {
  /** server_name (host_name) in lower case; absent when the client sent none. */
  sni?: string;
  /** application_layer_protocol_negotiation, in the client's order. */
  alpn: string[];
}

export type ClientHelloResult = ClientHello | 'need-more-bytes' | Error;

export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_SERVER_NAME = 0;
const EXTENSION_ALPN = 16;

/** Parses a ClientHello from the start of `data` (everything received so far). */
export function parseClientHello(data: Buffer): ClientHelloResult {
  // Gather the handshake bytes from consecutive records until the whole message is there.
  const fragments: Buffer[] = [];
  let handshakeBytes = 0;
  let messageLength = -1;
  let offset = 0;
  for (;;) {
    if (messageLength >= 0 && handshakeBytes >= HANDSHAKE_HEADER + messageLength) break;
    if (data.length - offset < RECORD_HEADER) return moreOrTooLarge(data);
    const type = data[offset]!;
    if (type !== CONTENT_TYPE_HANDSHAKE) {
      return new Error(offset === 0 ? notTlsReason(data) : `record of type ${type} before the ClientHello was complete`);
    }
    if (data[offset + 1] !== 3) return new Error(`unsupported record version ${data[offset + 1]}.${data[offset + 2]}`);
    const length = data.readUInt16BE(offset + 3);
    if (length === 0 || length > 16384) return new Error(`invalid TLS record length ${length}`);
    if (data.length - offset - RECORD_HEADER < length) return moreOrTooLarge(data);
    fragments.push(data.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length));
    handshakeBytes += length;
    offset += RECORD_HEADER + length;
    if (messageLength < 0 && handshakeBytes >= HANDSHAKE_HEADER) {
      const head = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return new Error(`first handshake message is type ${head[0]}, not ClientHello`);
      messageLength = head.readUIntBE(1, 3);
      if (HANDSHAKE_HEADER + messageLength > MAX_CLIENT_HELLO_BYTES) return new Error(`ClientHello of ${messageLength} bytes is larger than ${MAX_CLIENT_HELLO_BYTES}`);
    }
  }
  const handshake = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
  return parseClientHelloBody(handshake.subarray(HANDSHAKE_HEADER, HANDSHAKE_HEADER + messageLength));
}

/**
 * Accumulates the chunks of one connection until the ClientHello can be parsed. `buffered`
 * holds every byte pushed, to replay into the TLS socket or the upstream connection. Once a
 * verdict (ClientHello or Error) is reached, further pushes return it and store nothing:
 * stop reading at the verdict.
 */
export class ClientHelloReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private verdict: ClientHelloResult = 'need-more-bytes';

  push(chunk: Buffer): ClientHelloResult {
    if (this.verdict !== 'need-more-bytes') return this.verdict;
    this.chunks.push(chunk);
    this.length += chunk.length;
    this.verdict = parseClientHello(this.buffered);
    return this.verdict;
  }

  get buffered(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  get bufferedLength(): number {
    return this.length;
  }
}

// ---------------------------------------------------------------------------------------

function parseClientHelloBody(body: Buffer): ClientHelloResult {
  const r = new ByteReader(body);
  r.skip(2 + 32); // legacy_version, random
  r.skip(r.u8()); // legacy_session_id
  r.skip(r.u16()); // cipher_suites
  r.skip(r.u8()); // legacy_compression_methods
  const hello: ClientHello = { alpn: [] };
  if (r.failed) return malformed('truncated before the extensions');
  if (r.remaining === 0) return hello; // a ClientHello may carry no extensions at all
  const extensions = r.sub(r.u16());
  if (r.failed) return malformed('extensions longer than the message');
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.sub(extensions.u16());
    if (extensions.failed) return malformed('truncated extension');
    if (seen.has(type)) return malformed(`duplicate extension ${type}`);
    seen.add(type);
    if (type === EXTENSION_SERVER_NAME) {
      const sni = readServerName(data);
      if (sni instanceof Error) return sni;
      if (sni !== undefined) hello.sni = sni;
    } else if (type === EXTENSION_ALPN) {
      const alpn = readAlpn(data);
      if (alpn instanceof Error) return alpn;
      hello.alpn = alpn;
    }
  }
  return hello;
}

function readServerName(ext: ByteReader): string | undefined | Error {
  if (ext.remaining === 0) return undefined; // allowed in a ServerHello echo; harmless here
  const list = ext.sub(ext.u16());
  while (!list.failed && list.remaining > 0) {
    const nameType = list.u8();
    const text = list.latin1(list.u16());
    if (list.failed) break;
    if (nameType !== 0) continue; // only host_name is defined
    if (!/^[\x21-\x7e]{1,255}$/.test(text)) return malformed('server_name is not a printable ASCII host name');
    return text.toLowerCase();
  }
  return list.failed || ext.failed ? malformed('truncated server_name') : undefined;
}

function readAlpn(ext: ByteReader): string[] | Error {
  const list = ext.sub(ext.u16());
  const protocols: string[] = [];
  while (!list.failed && list.remaining > 0) {
    const length = list.u8();
    if (length === 0) return malformed('empty ALPN protocol name');
    protocols.push(list.latin1(length));
  }
  return list.failed || ext.failed ? malformed('truncated ALPN list') : protocols;
}

function moreOrTooLarge(data: Buffer): ClientHelloResult {
  return data.length >= MAX_CLIENT_HELLO_BYTES ? new Error(`no complete ClientHello in the first ${MAX_CLIENT_HELLO_BYTES} bytes`) : 'need-more-bytes';
}

function notTlsReason(data: Buffer): string {
  if (data[0]! & 0x80) return 'SSLv2-style ClientHello (not supported)';
  const start = data.subarray(0, 8).toString('latin1');
  if (/^[A-Z]{3,7} /.test(start) || start.startsWith('PRI * H')) return 'plain HTTP on a TLS port';
  return `not a TLS handshake (first byte 0x${data[0]!.toString(16).padStart(2, '0')})`;
}

function malformed(detail: string): Error {
  return new Error(`malformed ClientHello: ${detail}`);
}

/**
 * Bounds-checked cursor over [start, end) of a buffer: a read past the end sets `failed`
 * instead of throwing. Reads index the buffer directly (no Buffer view per field: this runs
 * once per connection on every TLS port).
 */
class ByteReader {
  private pos: number;
  failed = false;

  constructor(
    private readonly buf: Buffer,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    const at = this.advance(1);
    return at < 0 ? 0 : this.buf[at]!;
  }

  u16(): number {
    const at = this.advance(2);
    return at < 0 ? 0 : (this.buf[at]! << 8) | this.buf[at + 1]!;
  }

  /** The next n bytes as a latin1 string ("" when past the end). */
  latin1(n: number): string {
    const at = this.advance(n);
    return at < 0 ? '' : this.buf.toString('latin1', at, at + n);
  }

  skip(n: number): void {
    this.advance(n);
  }

  /** A reader over the next n bytes (failed, and empty, when they are not there). */
  sub(n: number): ByteReader {
    const at = this.advance(n);
    const reader = at < 0 ? new ByteReader(this.buf, this.end, this.end) : new ByteReader(this.buf, at, at + n);
    reader.failed = this.failed;
    return reader;
  }

  /** Where the next n bytes start, or -1 (and failed) when they are not all there. */
  private advance(n: number): number {
    if (this.failed || this.end - this.pos < n) {
      this.failed = true;
      return -1;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }
}
