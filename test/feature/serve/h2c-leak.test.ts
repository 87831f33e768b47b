// h2c connections must be freed whole (issue 13 item 3): a connection that opens with the
// HTTP/2 preface on a plaintext port is taken from the HTTP/1.1 server, and the HTTP/1.1
// parser it leaves behind was removed but never freed, so node kept it, and through it the
// socket and the HTTP/2 session (~9.5 KB per connection, 60,000 connections: RSS 93 → 660 MB).
// The check is not a memory figure: after the connections are closed and a full GC has run,
// the server-side sockets (each seen through a WeakRef-like FinalizationRegistry, taken from
// the `net.server.socket` diagnostics channel) must have been collected.

import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, route, virtualHost } from '../../support/snapshot-builder.js';
import { serveHttp, startHarness, type Harness } from './harness.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const CONNECTIONS = 40;

/** Counts the server-side sockets accepted on `port` that were closed, and those garbage-collected. */
function watchServerSockets(port: number) {
  const counts = { accepted: 0, closed: 0, collected: 0 };
  const registry = new FinalizationRegistry<void>(() => counts.collected++);
  const onSocket = (message: unknown) => {
    const socket = (message as { socket: Socket }).socket;
    if (socket.localPort !== port) return;
    counts.accepted++;
    registry.register(socket);
    socket.once('close', () => counts.closed++);
  };
  diagnostics.subscribe('net.server.socket', onSocket);
  return { counts, stop: () => diagnostics.unsubscribe('net.server.socket', onSocket) };
}

async function collectedAfterGc(counts: { collected: number }, want: number): Promise<number> {
  for (let i = 0; i < 50 && counts.collected < want; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return counts.collected;
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 10));
}

function h2cRequest(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':path': '/h2c', ':authority': 'leak.example.com' });
    req.on('error', reject);
    req.resume();
    req.on('end', () => {
      session.close();
      session.once('close', () => resolve());
    });
  });
}

function http1Request(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/h1', headers: { host: 'leak.example.com' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serve: h2c connections are freed whole', function () {
  this.timeout(120_000);
  let echo: EchoBackend;
  let h: Harness;
  let port: number;

  before(async () => {
    echo = await startEchoBackend('echo');
    h = await startHarness();
    const c = clusterName('echo');
    port = await serveHttp(h, { virtualHosts: [virtualHost(['*'], [route('default/vs', { to: c })])], clusters: [cluster(c, [echo])] });
  });
  after(async () => {
    await h.close();
    await echo.close();
  });

  for (const [name, request] of [['HTTP/1.1 (control)', http1Request], ['h2c', h2cRequest]] as const) {
    it(`${name}: ${CONNECTIONS} one-request connections, closed, are garbage-collected`, async () => {
      const watch = watchServerSockets(port);
      try {
        for (let i = 0; i < CONNECTIONS; i++) await request(port);
        await until(() => watch.counts.closed === CONNECTIONS);
        assert.equal(watch.counts.accepted, CONNECTIONS);
        // All of them, but for the odd one some cache holds a moment longer; a leak keeps every one.
        const collected = await collectedAfterGc(watch.counts, CONNECTIONS);
        assert.ok(collected >= CONNECTIONS - 2, `${collected} of ${CONNECTIONS} closed server-side sockets were collected`);
      } finally {
        watch.stop();
      }
    });
  }
});
