// Bulk transfer through the TCP proxy (real proxy process): 64 MiB of random bytes each way at
// once through a TCP route and a TLS PASSTHROUGH route (and 48 MiB through TLS terminated → TCP),
// with readers that stop reading for a while. The bytes arrive intact (SHA-256 at both ends:
// the proxy reads the upstream into reused buffers, upstream-reader.ts, and must never
// overwrite one still queued for writing), both half-closes arrive, the byte counters agree,
// and while a reader stops, the sender stalls well short of the payload (the proxy does not
// buffer what the reader does not take).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { serverCert, testCa } from '../../support/certs.js';
import { NS, secretYaml, serviceEntryYaml, TlsProxy } from '../proxy-tls/harness.js';

const MiB = 1024 * 1024;
/** A reader stops here until the sender's progress stops (or a time limit passes). */
const STALL_AT = 8 * MiB;

/** One end of a transfer: sends `payload` (respecting backpressure, then FIN), hashes what it receives. */
class Peer {
  submitted = 0;
  received = 0;
  /** Set while this end's reader is stopped: how far the other end's sender got. */
  otherSenderAtStall: number | undefined;
  private readonly hash = createHash('sha256');
  readonly done: Promise<{ sha256: string; bytes: number }>;

  constructor(
    private readonly socket: net.Socket,
    private readonly payload: Buffer,
    other: () => Peer | undefined,
  ) {
    this.done = new Promise((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        const before = this.received;
        this.received += chunk.length;
        this.hash.update(chunk);
        if (before < STALL_AT && this.received >= STALL_AT) {
          socket.pause();
          void waitForStall(() => other()?.submitted ?? 0).then((at) => {
            this.otherSenderAtStall = at;
            socket.resume();
          });
        }
      });
      socket.once('end', () => resolve({ sha256: this.hash.digest('hex'), bytes: this.received }));
    });
  }

  send(): void {
    const chunk = 64 * 1024;
    const next = (): void => {
      while (this.submitted < this.payload.length) {
        const end = Math.min(this.submitted + chunk, this.payload.length);
        const ok = this.socket.write(this.payload.subarray(this.submitted, end));
        this.submitted = end;
        if (!ok) {
          this.socket.once('drain', next);
          return;
        }
      }
      this.socket.end();
    };
    next();
  }
}

/** Resolves with `progress()` once it has not moved for 300 ms (at most 15 s). */
async function waitForStall(progress: () => number): Promise<number> {
  let last = -1;
  let still = 0;
  for (let i = 0; i < 150 && still < 3; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = progress();
    still = now === last ? still + 1 : 0;
    last = now;
  }
  return last;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A backend that, per connection, sends its payload and hashes what it receives (plain TCP or TLS). */
async function startBulkBackend(cert?: { chain: string; key: string }) {
  const waiting: Array<(p: Peer) => void> = [];
  let payload: Buffer = Buffer.alloc(0);
  const onSocket = (s: net.Socket) => {
    const peer = new Peer(s, payload, () => client);
    peer.send();
    waiting.shift()?.(peer);
  };
  let client: Peer | undefined;
  const server = cert
    ? tls.createServer({ cert: cert.chain, key: cert.key, allowHalfOpen: true }, onSocket)
    : net.createServer({ allowHalfOpen: true }, onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    /** The next connection's payload; resolves with that connection's peer. */
    expect(next: Buffer): Promise<Peer> {
      payload = next;
      return new Promise((resolve) => waiting.push(resolve));
    },
    /** The client end of the current transfer (whose sender a stalled backend reader watches). */
    setClient(p: Peer) {
      client = p;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('TCP proxy bulk transfer: 64 MiB each way with stalling readers, hashes at both ends (real proxy process)', function () {
  this.timeout(180_000);
  const ca = testCa();
  const passCert = serverCert({ dnsNames: ['bulk.pass.example.com'] });
  const termCert = serverCert({ dnsNames: ['bulk.term.example.com'] });
  let env: TlsProxy;
  let tcpBackend: Awaited<ReturnType<typeof startBulkBackend>>;
  let passBackend: Awaited<ReturnType<typeof startBulkBackend>>;
  let termBackend: Awaited<ReturnType<typeof startBulkBackend>>;

  before(async () => {
    tcpBackend = await startBulkBackend();
    passBackend = await startBulkBackend(passCert);
    termBackend = await startBulkBackend();
    env = await TlsProxy.prepare([7100, 7443, 7444]);
    env.write(
      'config.yaml',
      `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bulk-gw, namespace: ${NS}}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 7100, name: tcp-bulk, protocol: TCP}
    hosts: ["*"]
  - port: {number: 7443, name: tls-pass, protocol: TLS}
    hosts: ["bulk.pass.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 7444, name: tls-term, protocol: TLS}
    hosts: ["bulk.term.example.com"]
    tls: {mode: SIMPLE, credentialName: bulk-term}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bulk, namespace: default}
spec:
  hosts: ["bulk.pass.example.com", "bulk.term.example.com", "tcp.bulk.internal"]
  gateways: ["${NS}/bulk-gw"]
  tls:
  - match: [{sniHosts: [bulk.pass.example.com]}]
    route: [{destination: {host: pass.bulk.internal, port: {number: 443}}}]
  tcp:
  - match: [{port: 7100}]
    route: [{destination: {host: tcp.bulk.internal, port: {number: 7000}}}]
  - match: [{port: 7444}]
    route: [{destination: {host: term.bulk.internal, port: {number: 7000}}}]
---
${serviceEntryYaml('tcp.bulk.internal', 7000, 'TCP', tcpBackend.port)}---
${serviceEntryYaml('pass.bulk.internal', 443, 'TLS', passBackend.port)}---
${serviceEntryYaml('term.bulk.internal', 7000, 'TCP', termBackend.port)}`,
    );
    env.write('secrets.yaml', secretYaml('bulk-term', { cert: termCert.chain, key: termCert.key }));
    await env.start(['--access-log', 'json']);
  });
  after(async () => {
    await env?.close();
    await tcpBackend?.close();
    await passBackend?.close();
    await termBackend?.close();
  });

  async function transfer(
    backend: Awaited<ReturnType<typeof startBulkBackend>>,
    size: number,
    connect: () => net.Socket,
    connectedEvent: 'connect' | 'secureConnect',
  ): Promise<{ clientPort: number }> {
    const up = randomBytes(size);
    const down = randomBytes(size);
    const serverPeer = backend.expect(down);
    const socket = connect();
    await new Promise<void>((resolve, reject) => {
      socket.once(connectedEvent, () => resolve());
      socket.once('error', reject);
    });
    const clientPort = socket.localPort!;
    let server: Peer | undefined;
    const client = new Peer(socket, up, () => server);
    backend.setClient(client);
    client.send();
    server = await serverPeer;
    const [atClient, atServer] = await Promise.all([client.done, server.done]);
    assert.equal(atClient.bytes, size, 'bytes downstream');
    assert.equal(atServer.bytes, size, 'bytes upstream');
    assert.equal(atClient.sha256, sha256(down), 'upstream → client payload intact');
    assert.equal(atServer.sha256, sha256(up), 'client → upstream payload intact');
    // The four kernel socket buffers on the way (sender, proxy in and out, reader; autotuned)
    // held 10–14 MiB in our runs; the proxy adds at most about one read. Buffering without
    // backpressure would let the sender finish the payload.
    for (const [reader, stalledAt] of [
      ['client', client.otherSenderAtStall],
      ['upstream', server.otherSenderAtStall],
    ] as const) {
      assert.ok(stalledAt !== undefined && stalledAt < STALL_AT + 40 * MiB && stalledAt < size, `${reader} stopped reading at ${STALL_AT}: the other sender got to ${stalledAt}`);
    }
    socket.destroy();
    return { clientPort };
  }

  /** TLS over a half-open TCP connection (the TLS socket takes allowHalfOpen from it). */
  const tlsConnect = (port: number, servername: string): tls.TLSSocket =>
    tls.connect({ socket: net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }), servername, ca: ca.cert });

  const logLine = async (clientPort: number): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 100; i++) {
      const line = env.proxy.stdout
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.downstream_remote_address === `127.0.0.1:${clientPort}`);
      if (line !== undefined) return line;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no access-log line for client port ${clientPort}`);
  };

  it('TCP route: 64 MiB each way intact, half-closes both ways, byte counts in the access log', async () => {
    const size = 64 * MiB;
    const { clientPort } = await transfer(tcpBackend, size, () => net.connect({ host: '127.0.0.1', port: env.port(7100), allowHalfOpen: true }), 'connect');
    const line = await logLine(clientPort);
    assert.equal(line.bytes_received, size);
    assert.equal(line.bytes_sent, size);
  });

  it('TLS PASSTHROUGH route: 64 MiB each way intact through the encrypted stream', async () => {
    await transfer(
      passBackend,
      64 * MiB,
      () => tlsConnect(env.port(7443), 'bulk.pass.example.com'),
      'secureConnect',
    );
  });

  it('TLS terminated → TCP route: 48 MiB each way intact (the proxy writes into a TLS socket)', async () => {
    const size = 48 * MiB;
    const { clientPort } = await transfer(
      termBackend,
      size,
      () => tlsConnect(env.port(7444), 'bulk.term.example.com'),
      'secureConnect',
    );
    const line = await logLine(clientPort);
    assert.equal(line.bytes_received, size);
    assert.equal(line.bytes_sent, size);
  });
});
