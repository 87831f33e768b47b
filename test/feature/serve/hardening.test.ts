// What the proxy must survive (HARDENING.md): oversized and too many headers, request
// smuggling framings, slow headers, connection reuse limits, and bugs on the request path.

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, match, prefix, route, virtualHost } from '../../support/snapshot-builder.js';
import { resolveLimits } from '../../../dataplane/serve/limits.js';
import type { Route } from '../../../dataplane/snapshot/types.js';
import { raw, send, serveHttp, startHarness, type Harness } from './harness.js';

describe('serve: hardening', () => {
  let h: Harness;
  let echo: EchoBackend;
  let port: number;
  const c = clusterName('echo');

  before(async () => {
    h = await startHarness({ limits: { maxRequestsPerConnection: 3, headersTimeout: 400, requestTimeout: 5_000 } });
    // A route whose action the proxy cannot run: stands in for a bug on the request path.
    const broken = route('default/broken.0', { matches: [match({ uri: prefix('/broken') })], to: c });
    (broken as { action: unknown }).action = { kind: 'not-an-action' };
    echo = await startEchoBackend('echo');
    port = await serveHttp(h, { virtualHosts: [virtualHost(['*'], [broken as Route, route('default/echo.0', { to: c })])], clusters: [cluster(c, [echo])] });
  });
  after(async () => {
    await h.close();
    await echo.close();
  });

  it('431 for a header block over the size limit (60 KiB)', async () => {
    const r = await send(port, { host: 'a.example.com', headers: { 'x-big': 'x'.repeat(70 * 1024) } });
    assert.equal(r.status, 431);
    const ok = await send(port, { host: 'a.example.com', headers: { 'x-big': 'x'.repeat(30 * 1024) } });
    assert.equal(ok.status, 200, 'a large header below the limit passes');
  });
  it('431 for more headers than the count limit (100)', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 120; i++) headers[`x-h-${i}`] = String(i);
    const before = echo.requests.length;
    const r = await send(port, { host: 'a.example.com', path: '/many', headers });
    assert.equal(r.status, 431);
    assert.equal(r.headers.connection, 'close');
    assert.equal(echo.requests.length, before);
    assert.ok((await h.logLines()).some((l) => l.includes('"GET /many HTTP/1.1" 431 DPE http1.too_many_headers')));
  });
  it('rejects Content-Length with Transfer-Encoding (CL.TE) with 400 and closes the connection', async () => {
    const before = echo.requests.length;
    const got = await raw(port, 'POST /smuggle HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
    assert.match(got, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.equal((got.match(/HTTP\/1\.1 /g) ?? []).length, 1, 'the smuggled second request got no answer');
    assert.equal(echo.requests.length, before, 'nothing reached the upstream');
    assert.ok((await h.logLines()).some((l) => / 400 DPE http1\.codec_error\{HPE_/.test(l)));
  });
  it('rejects an obfuscated Transfer-Encoding and differing duplicate Content-Lengths', async () => {
    assert.match(await raw(port, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n'), /^HTTP\/1\.1 400 /);
  });
  it('408 and close for a client that never finishes its headers (headersTimeout)', async () => {
    const got = await raw(port, 'GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Slow: 1\r\n');
    assert.match(got, /^HTTP\/1\.1 408 /);
  });
  it('closes a keep-alive connection after the request limit', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const r1 = await send(port, { host: 'a.example.com', agent });
    const r2 = await send(port, { host: 'a.example.com', agent });
    const r3 = await send(port, { host: 'a.example.com', agent });
    agent.destroy();
    assert.equal(r1.headers.connection, 'keep-alive');
    assert.equal(r2.headers.connection, 'keep-alive');
    assert.equal(r3.headers.connection, 'close');
  });
  it('answers 500 for a bug on the request path, logs it, and keeps serving', async () => {
    const r = await send(port, { host: 'a.example.com', path: '/broken' });
    assert.equal(r.status, 500);
    assert.ok(h.errors.some((e) => e.includes('/broken') && e.includes('not-an-action')), h.errors.join('\n'));
    assert.ok((await h.logLines()).some((l) => l.includes('"GET /broken HTTP/1.1" 500 - internal_error')));
    const next = await send(port, { host: 'a.example.com', path: '/fine' });
    assert.equal(next.status, 200);
  });
  it('refuses a headersTimeout that is not below requestTimeout', () => {
    assert.throws(() => resolveLimits({ headersTimeout: 30_000, requestTimeout: 20_000 }), /must be below requestTimeout/);
    const d = resolveLimits(undefined);
    assert.ok(d.headersTimeout <= 20_000 && d.headersTimeout < d.requestTimeout);
    assert.equal(d.maxHeaderSize, 60 * 1024);
  });
});
