// One authority per request (HARDENING.md, issue 13 items 9–11): the proxy routes and forwards
// by the same value. An absolute-form target's authority replaces Host (RFC 9112 §3.2.2), on
// HTTP/2 :authority wins over a `host` header, Host survives a client naming it in Connection,
// and targets the proxy cannot route (`OPTIONS *`, ftp://…, CONNECT) get a local 4xx and an
// access-log line instead of an upstream error.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { startEchoBackend, type EchoBackend, type EchoReply } from '../../support/echo-backend.js';
import { cluster, clusterName, route, virtualHost } from '../../support/snapshot-builder.js';
import { raw, send, serveHttp, startHarness, type Harness } from './harness.js';

/** One h2c request with prior knowledge; `headers` may carry a `host` next to :authority. */
function h2cRequest(port: number, headers: http2.OutgoingHttpHeaders): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request(headers, { endStream: true });
    let status = 0;
    let body = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: Buffer) => (body += c.toString('utf8')));
    stream.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    stream.on('error', reject);
  });
}

describe('serve: one authority per request', () => {
  let h: Harness;
  let internal: EchoBackend;
  let capture: EchoBackend;
  let port: number;
  const c = (name: string) => clusterName(`${name}.default.svc.cluster.local`);

  before(async () => {
    h = await startHarness({ format: 'json' });
    internal = await startEchoBackend('internal');
    capture = await startEchoBackend('capture');
    port = await serveHttp(h, {
      virtualHosts: [virtualHost(['internal.example.com'], [route('default/internal.0', { to: c('internal') })]), virtualHost(['capture.example.com'], [route('default/capture.0', { to: c('capture') })])],
      clusters: [cluster(c('internal'), [internal]), cluster(c('capture'), [capture])],
    });
  });
  after(async () => {
    await h.close();
    await internal.close();
    await capture.close();
  });

  async function logLine(pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown> | undefined> {
    return (await h.logLines()).map((l) => JSON.parse(l) as Record<string, unknown>).find(pred);
  }

  it('absolute-form: the target’s authority replaces Host, for routing and for the upstream', async () => {
    const r = await send(port, { host: 'capture.example.com', path: 'http://internal.example.com/abs?x=1' });
    assert.equal(r.status, 200);
    const reply = r.json<EchoReply>();
    assert.equal(reply.name, 'internal');
    assert.equal(reply.headers.host, 'internal.example.com');
    assert.equal(reply.url, '/abs?x=1');
  });

  it('absolute-form with userinfo: the userinfo is dropped, the host decides route and Host', async () => {
    const r = await send(port, { host: 'capture.example.com', path: 'http://user:pw@internal.example.com/userinfo' });
    assert.equal(r.status, 200);
    const reply = r.json<EchoReply>();
    assert.equal(reply.name, 'internal');
    assert.equal(reply.headers.host, 'internal.example.com');
    assert.equal(reply.url, '/userinfo');
  });

  it('HTTP/2: :authority decides the route and the upstream Host, not a differing host header', async () => {
    const r = await h2cRequest(port, { ':method': 'GET', ':path': '/h2', ':authority': 'internal.example.com', host: 'capture.example.com' });
    assert.equal(r.status, 200);
    const reply = JSON.parse(r.body) as EchoReply;
    assert.equal(reply.name, 'internal');
    assert.equal(reply.headers.host, 'internal.example.com');
  });

  it('Connection: host does not strip Host (nor do other end-to-end essentials go)', async () => {
    const r = await send(port, { host: 'internal.example.com', path: '/conn', headers: { connection: 'host, content-length, x-hop' , 'x-hop': '1' } });
    assert.equal(r.status, 200);
    const reply = r.json<EchoReply>();
    assert.equal(reply.name, 'internal');
    assert.equal(reply.headers.host, 'internal.example.com');
    assert.equal(reply.headers['x-hop'], undefined, 'a header named in Connection is still hop-by-hop');
  });

  it('Connection: content-length does not lose the body’s length', async () => {
    const r = await send(port, { method: 'POST', host: 'internal.example.com', path: '/conn-body', headers: { connection: 'content-length, content-type', 'content-type': 'text/plain' }, body: 'hello' });
    assert.equal(r.status, 200);
    const reply = r.json<EchoReply>();
    assert.equal(reply.body, 'hello');
    assert.equal(reply.headers['content-length'], '5');
  });

  it('OPTIONS * gets a local 400 (Envoy: http1.invalid_url), logged, nothing upstream', async () => {
    const before = internal.requests.length + capture.requests.length;
    const got = await raw(port, 'OPTIONS * HTTP/1.1\r\nHost: internal.example.com\r\n\r\n');
    assert.match(got, /^HTTP\/1\.1 400 /);
    assert.equal(internal.requests.length + capture.requests.length, before);
    assert.ok(await logLine((l) => l.method === 'OPTIONS' && l.response_code === 400 && l.response_code_details === 'http1.invalid_url'));
  });

  it('a non-http(s) absolute target gets a local 400, logged, nothing upstream', async () => {
    const before = internal.requests.length + capture.requests.length;
    const got = await raw(port, 'GET ftp://internal.example.com/file HTTP/1.1\r\nHost: internal.example.com\r\n\r\n');
    assert.match(got, /^HTTP\/1\.1 400 /);
    assert.equal(internal.requests.length + capture.requests.length, before);
    assert.ok(await logLine((l) => typeof l.path === 'string' && l.path.startsWith('ftp:') && l.response_code === 400));
  });

  it('CONNECT gets 405 and an access-log line', async () => {
    const got = await raw(port, 'CONNECT internal.example.com:443 HTTP/1.1\r\nHost: internal.example.com:443\r\n\r\n');
    assert.match(got, /^HTTP\/1\.1 405 /);
    assert.ok(await logLine((l) => l.method === 'CONNECT' && l.response_code === 405));
  });
});
