// HTTP/2 through the data plane, with node:http2 and raw frames over real TLS and over
// plaintext (h2c with prior knowledge, which Envoy's codec AUTO accepts on HTTP ports): the downstream
// header timeout (a session that never completes its first request's headers is closed, as
// an HTTP/1.1 connection is), the idle timeout (no open stream; PINGs do not count), and gRPC
// responses from an h2c upstream keeping their grpc-status/grpc-message trailers for HTTP/2
// and for HTTP/1.1 clients that send `TE: trailers`.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { serverCert, testCa } from '../../support/certs.js';
import { freePort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, httpListener, match, prefix, route, snapshot, virtualHost } from '../../support/snapshot-builder.js';
import type { Listener } from '../../../dataplane/snapshot/types.js';
import type { SecureServerFactory } from '../../../dataplane/serve/data-plane.js';
import { send, startHarness, type Harness } from './harness.js';

const HOST = 'h2.example.com';
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
/** HEADERS on stream 1 (END_STREAM, no END_HEADERS): :method GET, :scheme https, :path / — and no CONTINUATION ever. */
const UNFINISHED_HEADERS = Buffer.from([0, 0, 3, 1, 0x1, 0, 0, 0, 1, 0x82, 0x87, 0x84]);

/** Terminates every chain with one certificate, offering h2 and http/1.1 (what dataplane/tls does per chain). */
function testTls(): SecureServerFactory {
  const cert = serverCert({ dnsNames: [HOST] });
  const server = tls.createServer({ cert: cert.chain, key: cert.key, ALPNProtocols: ['h2', 'http/1.1'] });
  return { serves: () => true, terminator: () => ({ handshakeServer: () => server, verifyPeer: () => null }) };
}

/** The HTTP listener turned into an HTTPS one (SIMPLE TLS on its chain). */
function httpsListener(plain: Listener): Listener {
  return {
    ...plain,
    protocol: 'HTTPS',
    filterChains: plain.filterChains.map((c) => ({
      ...c,
      serverNames: [HOST],
      tls: { mode: 'SIMPLE', credentials: ['test'], subjectAltNames: [], verifyCertificateSpki: [], verifyCertificateHash: [], minProtocolVersion: 'TLSv1.2' },
    })),
  };
}

/** A gRPC-shaped h2c upstream: reads the request, answers one message and trailers with grpc-status 5. */
async function startGrpcUpstream(): Promise<{ port: number; seen: http2.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: http2.IncomingHttpHeaders[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.on('data', () => undefined);
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '5', 'grpc-message': 'item 42 not found' }));
      stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const GRPC_REQUEST = Buffer.from([0, 0, 0, 0, 2, 8, 42]);

/** Opens TLS with ALPN h2 (or plaintext), writes `bytes`, resolves when the server closes the connection. */
function closedAfterWriting(port: number, bytes: Buffer[], plaintext = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = plaintext ? net.connect({ host: '127.0.0.1', port }) : tls.connect({ host: '127.0.0.1', port, servername: HOST, ca: testCa().cert, ALPNProtocols: ['h2'] });
    socket.once(plaintext ? 'connect' : 'secureConnect', () => {
      if (!plaintext && (socket as tls.TLSSocket).alpnProtocol !== 'h2') reject(new Error(`ALPN ${(socket as tls.TLSSocket).alpnProtocol}`));
      for (const b of bytes) socket.write(b);
    });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.once('close', () => resolve('closed'));
    // A guard only: the limits below are a fraction of it.
    setTimeout(() => {
      socket.destroy();
      reject(new Error('the server kept the connection open'));
    }, 10_000).unref();
  });
}

describe('serve: HTTP/2 downstream timeouts and gRPC trailers', function () {
  this.timeout(30_000);
  let h: Harness;
  let echo: EchoBackend;
  let grpc: Awaited<ReturnType<typeof startGrpcUpstream>>;
  let tlsPort: number;
  let plainPort: number;
  const echoCluster = clusterName('echo.default.svc.cluster.local');
  const grpcCluster = clusterName('grpc.default.svc.cluster.local', 9000);

  before(async () => {
    echo = await startEchoBackend('echo');
    grpc = await startGrpcUpstream();
    h = await startHarness({ limits: { headersTimeout: 400, requestTimeout: 10_000, keepAliveTimeout: 800 }, secureServer: testTls() });
    tlsPort = await freePort();
    plainPort = await freePort();
    const routes = [
      route('default/grpc.0', { matches: [match({ uri: prefix('/pkg.') })], to: grpcCluster }),
      route('default/echo.0', { to: echoCluster }),
    ];
    await h.apply(
      snapshot({
        listeners: [httpsListener(httpListener({ port: tlsPort, gatewayPort: 443, virtualHosts: [virtualHost([HOST], routes)] })), httpListener({ port: plainPort, virtualHosts: [virtualHost([HOST], routes)] })],
        clusters: [cluster(echoCluster, [echo]), { ...cluster(grpcCluster, [{ address: '127.0.0.1', port: grpc.port }]), protocol: 'h2c' }],
      }),
    );
  });
  after(async () => {
    await h.close();
    await echo.close();
    await grpc.close();
  });

  it('a session that never sends the preface is closed after the header timeout', async () => {
    assert.equal(await closedAfterWriting(tlsPort, []), 'closed');
  });

  it('a session whose first HEADERS never ends (no END_HEADERS, no CONTINUATION) is closed after the header timeout', async () => {
    assert.equal(await closedAfterWriting(tlsPort, [PREFACE, SETTINGS, UNFINISHED_HEADERS]), 'closed');
  });

  for (const transport of ['TLS', 'h2c'] as const) {
    it(`a request slower than the header timeout is served; the idle session then gets GOAWAY, PINGs notwithstanding (${transport})`, async () => {
      // h2c: the connection has left the HTTP/1.1 server, whose own header timeout would end it.
      const session = transport === 'TLS' ? http2.connect(`https://127.0.0.1:${tlsPort}`, { servername: HOST, ca: testCa().cert }) : http2.connect(`http://127.0.0.1:${plainPort}`);
      session.on('error', () => undefined);
      const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
      const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/delay/700', ':authority': HOST });
        req.on('response', (hd) => resolve(Number(hd[':status'])));
        req.on('error', reject);
        req.resume();
      });
      assert.equal(status, 200, 'the stream outlived the header timeout');
      // The session is destroyed a tick before 'close' is emitted: a ping then would throw.
      const pinger = setInterval(() => {
        if (!session.destroyed && !session.closed) session.ping(() => undefined);
      }, 100);
      try {
        await goaway;
        await closed;
      } finally {
        clearInterval(pinger);
      }
    });
  }

  it('h2c on a plaintext port: the preface alone, or an unfinished HEADERS, is closed after the header timeout', async () => {
    assert.equal(await closedAfterWriting(plainPort, [PREFACE, SETTINGS], true), 'closed');
    assert.equal(await closedAfterWriting(plainPort, [PREFACE, SETTINGS, UNFINISHED_HEADERS], true), 'closed');
  });

  for (const transport of ['TLS', 'h2c'] as const) {
    it(`gRPC over HTTP/2 (${transport}): grpc-status and grpc-message trailers from the h2c upstream reach the client`, async () => {
      const session = transport === 'TLS' ? http2.connect(`https://127.0.0.1:${tlsPort}`, { servername: HOST, ca: testCa().cert }) : http2.connect(`http://127.0.0.1:${plainPort}`);
      try {
        const result = await new Promise<{ status: number; body: Buffer; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': '/pkg.Items/Get', ':authority': HOST, 'content-type': 'application/grpc', te: 'trailers' });
          let status = 0;
          const chunks: Buffer[] = [];
          let trailers: http2.IncomingHttpHeaders = {};
          req.on('response', (hd) => (status = Number(hd[':status'])));
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('trailers', (t) => (trailers = t));
          req.on('end', () => resolve({ status, body: Buffer.concat(chunks), trailers }));
          req.on('error', reject);
          req.end(GRPC_REQUEST);
        });
        assert.equal(result.status, 200);
        assert.deepEqual([...result.body], [0, 0, 0, 0, 2, 8, 1]);
        assert.equal(result.trailers['grpc-status'], '5');
        assert.equal(result.trailers['grpc-message'], 'item 42 not found');
        assert.equal(grpc.seen.at(-1)?.te, 'trailers');
        assert.equal(grpc.seen.at(-1)?.['x-forwarded-proto'], transport === 'TLS' ? 'https' : 'http');
      } finally {
        session.close();
      }
    });
  }

  it('h2c: plain requests are routed and logged as HTTP/2; HTTP/1.1 on the same port is unaffected', async () => {
    const session = http2.connect(`http://127.0.0.1:${plainPort}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/h2c-path', ':authority': HOST });
        let text = '';
        req.on('data', (c: Buffer) => (text += c.toString('utf8')));
        req.on('end', () => resolve(text));
        req.on('error', reject);
      });
      assert.equal(JSON.parse(body).url, '/h2c-path');
    } finally {
      session.close();
    }
    assert.ok((await h.logLines()).some((l) => l.includes('"GET /h2c-path HTTP/2.0" 200')), (await h.logLines()).join('\n'));
    assert.equal((await send(plainPort, { host: HOST, path: '/h1' })).json().url, '/h1');
  });

  for (const transport of ['TLS', 'plaintext'] as const) {
    it(`gRPC to an HTTP/1.1 client with TE: trailers (${transport}): the trailers arrive on the chunked response`, async () => {
      const port = transport === 'TLS' ? tlsPort : plainPort;
      const result = await new Promise<{ status: number; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
        const options = { host: '127.0.0.1', port, method: 'POST', path: '/pkg.Items/Get', headers: { host: HOST, 'content-type': 'application/grpc', te: 'trailers' }, agent: false as const };
        const req = transport === 'TLS' ? https.request({ ...options, servername: HOST, ca: testCa().cert }) : http.request(options);
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, trailers: res.trailers }));
        });
        req.on('error', reject);
        req.end(GRPC_REQUEST);
      });
      assert.equal(result.status, 200);
      assert.equal(result.trailers['grpc-status'], '5');
      assert.equal(result.trailers['grpc-message'], 'item 42 not found');
    });
  }

  it('HTTP/1.1 keeps its own header timeout next to it (control)', async () => {
    assert.equal((await send(plainPort, { host: HOST, path: '/ok' })).status, 200);
  });

  // Last: the data plane stays drained.
  it('drain: HTTP/2 sessions, h2c and TLS, get GOAWAY while a stream is still in flight; the stream completes', async () => {
    const sessions = [http2.connect(`http://127.0.0.1:${plainPort}`), http2.connect(`https://127.0.0.1:${tlsPort}`, { servername: HOST, ca: testCa().cert })];
    const order: string[][] = [[], []];
    const done = sessions.map((session, i) => {
      session.on('error', () => undefined);
      session.once('goaway', () => order[i]!.push('goaway'));
      return new Promise<void>((resolve, reject) => {
        const req = session.request({ ':path': '/delay/600', ':authority': HOST });
        req.on('response', () => order[i]!.push('response'));
        req.on('error', reject);
        req.on('end', () => {
          order[i]!.push('end');
          resolve();
        });
        req.resume();
      });
    });
    // Both streams are open (the upstream has them) before the drain starts.
    await new Promise<void>((resolve) => {
      const check = () => (echo.requests.filter((r) => r.url === '/delay/600').length >= 2 ? resolve() : setTimeout(check, 20));
      check();
    });
    const drained = h.dataPlane.drain(5_000, { exitOnZeroConnections: true });
    await Promise.all(done);
    // Idle sessions get GOAWAY only once no stream is open: before 'end', it came from the drain.
    assert.deepEqual(order, [['goaway', 'response', 'end'], ['goaway', 'response', 'end']]);
    for (const session of sessions) session.destroy();
    await drained;
  });
});
