// HTTP/2 rapid reset (CVE-2023-44487; issue 13 item 5): streams a client opens and resets at
// once must not reach the upstream, and a connection that mostly resets its streams is sent
// GOAWAY (ENHANCE_YOUR_CALM) and closed, as Envoy does. The client writes raw frames, so each
// HEADERS and its RST_STREAM leave in one write.

import assert from 'node:assert/strict';
import net from 'node:net';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, route, virtualHost } from '../../support/snapshot-builder.js';
import { PREMATURE_RESET_MIN_STREAMS } from '../../../dataplane/serve/l4/http2-server.js';
import { serveHttp, startHarness, type Harness } from './harness.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** GET / with :authority "x" (HPACK: static :method GET, :scheme http, :path /, literal :authority). */
const HEADER_BLOCK = Buffer.from([0x82, 0x86, 0x84, 0x01, 0x01, 0x78]);
const headers = (id: number) => frame(0x1, 0x5, id, HEADER_BLOCK); // END_STREAM | END_HEADERS
const rstCancel = (id: number) => frame(0x3, 0x0, id, Buffer.from([0, 0, 0, 0x8]));

/** Opens an h2c connection and writes `count` HEADERS + RST_STREAM pairs in one write; resolves with what the server did. */
function rapidReset(port: number, count: number): Promise<{ goAwayCodes: number[]; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const goAwayCodes: number[] = [];
    let buffered = Buffer.alloc(0);
    let closedByServer = false;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const type = buffered[3];
        if (type === 0x7) goAwayCodes.push(buffered.readUInt32BE(9 + 4));
        if (type === 0x4 && (buffered[4]! & 0x1) === 0) socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0))); // SETTINGS ack
        buffered = buffered.subarray(9 + length);
      }
    });
    socket.on('end', () => {
      closedByServer = true;
      socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') closedByServer = true;
      else reject(err);
    });
    socket.on('close', () => resolve({ goAwayCodes, closedByServer }));
    socket.on('connect', () => {
      const frames: Buffer[] = [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0))];
      for (let i = 0; i < count; i++) frames.push(headers(2 * i + 1), rstCancel(2 * i + 1));
      socket.write(Buffer.concat(frames));
      // A client that is not closed by the server ends after its frames were answered.
      if (count < PREMATURE_RESET_MIN_STREAMS) setTimeout(() => socket.end(frame(0x7, 0, 0, Buffer.alloc(8))), 1_000);
    });
  });
}

describe('serve: HTTP/2 rapid reset', function () {
  this.timeout(60_000);
  let echo: EchoBackend;
  let h: Harness;
  let port: number;
  let upstreamConnections = 0;

  before(async () => {
    echo = await startEchoBackend('echo');
    echo.server.on('connection', () => upstreamConnections++);
    h = await startHarness();
    const c = clusterName('echo');
    port = await serveHttp(h, { virtualHosts: [virtualHost(['*'], [route('default/vs', { to: c })])], clusters: [cluster(c, [echo])] });
  });
  after(async () => {
    await h.close();
    await echo.close();
  });

  it('streams reset in the same read as their HEADERS start no upstream work', async () => {
    const [connectionsBefore, requestsBefore] = [upstreamConnections, echo.requests.length];
    const result = await rapidReset(port, 300);
    assert.deepEqual(result.goAwayCodes.filter((c) => c !== 0), [], 'below the limit the connection is not refused');
    const upstream = upstreamConnections - connectionsBefore + (echo.requests.length - requestsBefore);
    // Each stream that does start would show here (every one did before); a read that splits a
    // HEADERS from its RST_STREAM may let a few through.
    assert.ok(upstream <= 30, `${upstream} upstream connections and requests for 300 reset streams`);
  });

  it(`a connection that resets ${PREMATURE_RESET_MIN_STREAMS * 2} streams at once gets GOAWAY (ENHANCE_YOUR_CALM) and is closed`, async () => {
    const result = await rapidReset(port, PREMATURE_RESET_MIN_STREAMS * 2);
    assert.ok(result.goAwayCodes.includes(0xb), `GOAWAY codes: ${result.goAwayCodes.join(',')}`);
    assert.equal(result.closedByServer, true);
  });

  it('an ordinary client is not affected', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/after`, { headers: { host: 'x' } });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  });

  it('an h2c client that closes its side (FIN) after its response: the proxy closes the connection, and counts it closed', async () => {
    // Other tests' keep-alive connections may still be open (or close meanwhile).
    const before = h.dataPlane.state.activeConnections;
    const socket = net.connect(port, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    const responded = new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 9) {
          const length = buffered.readUIntBE(0, 3);
          if (buffered.length < 9 + length) break;
          const [type, flags] = [buffered[3], buffered[4]!];
          if (type === 0x4 && (flags & 0x1) === 0) socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
          if (type === 0x0 && (flags & 0x1) === 1) resolve(); // DATA with END_STREAM
          buffered = buffered.subarray(9 + length);
        }
      });
    });
    const serverEnded = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), headers(1)]));
    await responded;
    socket.end(); // FIN, as curl leaves an HTTP/2 connection
    await serverEnded; // before: the proxy kept the session until its idle timeout (620 s)
    socket.destroy();
    while (h.dataPlane.state.activeConnections > before) await new Promise((r) => setTimeout(r, 20));
  });
});
