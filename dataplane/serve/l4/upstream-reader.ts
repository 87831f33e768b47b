// The TCP proxy's upstream → downstream direction without a fresh buffer per read. By default
// every read of a net.Socket allocates a new buffer (64 KiB while data streams in); under
// sustained transfer those buffers, some held in the downstream's write queue, kept V8's
// garbage collector busy (~30% of the proxy's CPU in TLS passthrough, hack/bench/README.md).
// Here the upstream connection reads (net.connect's `onread`) into buffers this reader owns
// and each read is written to the downstream as a view of its buffer.
//
// net.Socket.write does not copy a Buffer: a write that is not flushed at once keeps a
// reference until it is, so that buffer is set aside ("pinned") and the next read goes into
// another one; pinned buffers are reused once the downstream has nothing queued. Reading
// stops while the downstream is past its high-water mark (the callback returns false) and
// resumes on its 'drain', as pipe() does, so a slow reader never makes the proxy buffer more
// than one read beyond it. Buffers are small (4 KiB) until a read fills one, then 64 KiB, and
// small again after a read of 4 KiB or less, so an idle connection usually holds a small one
// (one 64 KiB buffer, and at most one spare, when its last read was larger).

import type { OnReadOpts, Socket } from 'node:net';

const SMALL = 4 * 1024;
const LARGE = 64 * 1024;
/**
 * Large buffers kept for reuse per connection, beyond the one the socket reads into: one is
 * enough, as reading stops while a write is queued past the high-water mark.
 */
const MAX_SPARE = 1;

export class UpstreamReader {
  /** net.connect's `onread` option; the socket asks `buffer()` for each next read buffer. */
  readonly onread: OnReadOpts;
  private source: Socket | undefined;
  /** The buffer of the last read, when its write was flushed at once: the next read may use it. */
  private free: Buffer | undefined;
  private readonly pinned: Buffer[] = [];
  private readonly spare: Buffer[] = [];
  private size = SMALL;
  private bound = false;
  private waitingForDrain = false;
  /** Each read's length, before it is written (metrics, access log); set by start(). */
  private count: (bytes: number) => void = (n) => {
    this.early += n;
  };
  /** Read before start(): none in practice (the proxy starts it as the connection opens). */
  private early = 0;

  /** `target`: where the bytes go. */
  constructor(private readonly target: Socket) {
    this.onread = {
      buffer: () => this.nextBuffer(),
      // `buf` is what buffer() returned, a Buffer.
      callback: (nread, buf) => this.forward(nread, buf as Buffer),
    };
  }

  /** Whether a connection was made with `onread` (TLS origination is not; it is piped). */
  get inUse(): boolean {
    return this.bound;
  }

  /** Starts forwarding from `source`, the connection made with `onread`: its FIN ends the target. */
  start(source: Socket, count: (bytes: number) => void): void {
    this.source = source;
    this.count = count;
    if (this.early > 0) count(this.early);
    source.once('end', () => this.target.end());
  }

  private nextBuffer(): Buffer {
    this.bound = true;
    const free = this.free;
    this.free = undefined;
    if (free !== undefined && free.length === this.size) return free;
    if (free !== undefined) this.keep(free);
    if (this.size === LARGE) return this.spare.pop() ?? Buffer.allocUnsafeSlow(LARGE);
    return Buffer.allocUnsafeSlow(SMALL);
  }

  private keep(buf: Buffer): void {
    if (buf.length === LARGE && this.size === LARGE && this.spare.length < MAX_SPARE) this.spare.push(buf);
  }

  private forward(nread: number, buf: Buffer): boolean {
    this.count(nread);
    const target = this.target;
    const ok = target.write(nread === buf.length ? buf : buf.subarray(0, nread));
    // A full read means more is waiting: read in large buffers; 4 KiB or less, back to small.
    if (nread === buf.length) this.size = LARGE;
    else if (nread <= SMALL && this.size === LARGE) {
      // Traffic turned small (or the connection goes idle): give the large buffers back.
      this.size = SMALL;
      this.spare.length = 0;
    }
    if (target.writableLength === 0) {
      // Written through to the kernel already: nothing references the buffer, nothing waits.
      // (write() returns false for any read above the high-water mark even then; pausing
      // would cost a readStop/readStart per read for nothing.)
      this.free = buf;
      this.unpin();
      return true;
    }
    this.pinned.push(buf);
    if (!ok && !this.waitingForDrain && !target.destroyed) {
      this.waitingForDrain = true;
      target.once('drain', this.onDrain);
    }
    return ok;
  }

  private readonly onDrain = (): void => {
    this.waitingForDrain = false;
    this.unpin();
    this.source?.resume();
  };

  private unpin(): void {
    const pinned = this.pinned;
    for (let i = 0; i < pinned.length; i++) this.keep(pinned[i]!);
    pinned.length = 0;
  }
}
