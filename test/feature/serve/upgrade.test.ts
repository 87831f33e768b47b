// WebSocket (HTTP/1.1 Upgrade) passthrough.

import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, match, ops, prefix, route, virtualHost } from '../../support/snapshot-builder.js';
import { serveHttp, startHarness, type Harness } from './harness.js';

type UpgradeResult = { kind: 'upgraded'; res: IncomingMessage; socket: Socket; head: Buffer } | { kind: 'response'; res: IncomingMessage; body: string };

function upgradeRequest(port: number, host: string, path: string, headers: Record<string, string> = {}): Promise<UpgradeResult> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      agent: false,
      headers: { host, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('upgrade', (res, socket, head) => resolve({ kind: 'upgraded', res, socket, head }));
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ kind: 'response', res, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function readSome(socket: Socket, bytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer) => {
      got += c.toString();
      if (got.length >= bytes) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

describe('serve: WebSocket upgrade passthrough', () => {
  let h: Harness;
  let ws: EchoBackend;
  let refuser: Server;
  let port: number;
  const cWs = clusterName('ws');
  const cRefuse = clusterName('refuse');

  before(async () => {
    h = await startHarness();
    ws = await startEchoBackend('ws');
    // A backend that does not speak WebSocket: node answers the upgrade request as a plain request.
    refuser = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' });
      res.end('upgrade required elsewhere');
    });
    await new Promise<void>((r) => refuser.listen(0, '127.0.0.1', () => r()));
    port = await serveHttp(h, {
      virtualHosts: [
        virtualHost(['ws.example.com'], [
          route('default/ws.refuse', { matches: [match({ uri: prefix('/refuse') })], to: cRefuse }),
          route('default/ws.0', { matches: [match({ uri: prefix('/socket') })], rewrite: { uri: '/ws' }, requestHeaders: ops({ set: { 'x-via': 'portway' } }), to: cWs }),
        ]),
      ],
      clusters: [cluster(cWs, [ws]), cluster(cRefuse, [{ address: '127.0.0.1', port: (refuser.address() as { port: number }).port }])],
    });
  });
  after(async () => {
    await h.close();
    await ws.close();
    await new Promise<void>((r) => refuser.close(() => r()));
  });

  it('relays the 101 and pipes bytes both ways', async () => {
    const up = await upgradeRequest(port, 'ws.example.com', '/socket/chat');
    assert.equal(up.kind, 'upgraded');
    if (up.kind !== 'upgraded') return;
    assert.equal(up.res.statusCode, 101);
    assert.equal(up.res.headers['x-echo-name'], 'ws');
    assert.equal(up.res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(String(up.res.headers.upgrade).toLowerCase(), 'websocket');
    up.socket.write('hello through the tunnel');
    assert.equal(await readSome(up.socket, 'hello through the tunnel'.length), 'hello through the tunnel');
    up.socket.write('second');
    assert.equal(await readSome(up.socket, 6), 'second');
    const seen = ws.upgrades.at(-1)!;
    assert.equal(seen.url, '/ws/chat', 'route rewrite applies to the upgrade request');
    assert.equal(seen.headers['x-via'], 'portway');
    assert.equal(seen.headers.host, 'ws.example.com');
    assert.equal(String(seen.headers.upgrade).toLowerCase(), 'websocket');
    up.socket.end();
    await new Promise((r) => up.socket.once('close', r));
    for (let i = 0; i < 100 && !(await h.logLines()).some((l) => l.includes('"GET /socket/chat HTTP/1.1" 101')); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok((await h.logLines()).some((l) => l.includes('"GET /socket/chat HTTP/1.1" 101 - via_upstream')), 'the tunnel is logged when it closes');
  });
  it('an h2c upgrade offer is ignored: the request is served as HTTP/1.1', async () => {
    const upgradesBefore = ws.upgrades.length;
    const r = await upgradeRequest(port, 'ws.example.com', '/socket/plain', { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA' });
    assert.equal(r.kind, 'response');
    if (r.kind !== 'response') return;
    assert.equal(r.res.statusCode, 200);
    const seen = JSON.parse(r.body);
    assert.equal(seen.url, '/ws/plain');
    assert.equal(seen.headers.upgrade, undefined);
    assert.equal(seen.headers['http2-settings'], undefined);
    assert.equal(ws.upgrades.length, upgradesBefore);
  });
  it('an upgrade for an unknown host gets a plain 404 and the connection closes', async () => {
    const r = await upgradeRequest(port, 'nobody.example.com', '/socket');
    assert.equal(r.kind, 'response');
    assert.equal(r.res.statusCode, 404);
    assert.equal(r.res.headers.connection, 'close');
  });
  it("relays a backend's refusal as an ordinary response", async () => {
    const r = await upgradeRequest(port, 'ws.example.com', '/refuse');
    assert.equal(r.kind, 'response');
    if (r.kind !== 'response') return;
    assert.equal(r.res.statusCode, 426);
    assert.equal(r.body, 'upgrade required elsewhere');
  });
});
