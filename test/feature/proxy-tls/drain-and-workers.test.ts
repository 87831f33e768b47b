// TLS listeners in the process lifecycle: SIGTERM drain (HTTP/2 sessions get GOAWAY, idle
// HTTPS keep-alive connections close, a request in flight completes, new connections are
// still served) and --concurrency workers serving HTTPS and TCP with Secret rotation.

import assert from 'node:assert/strict';
import https from 'node:https';
import { serverCert, testCa } from '../../support/certs.js';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import {
  eventually,
  exchange,
  gatewayYaml,
  h2Connect,
  h2Request,
  httpRouteYaml,
  httpsGet,
  secretYaml,
  servedSubject,
  serviceEntryYaml,
  startTcpEcho,
  TlsProxy,
  virtualServiceYaml,
  yamlDocuments,
  type Backend,
} from './harness.js';

function config(backend: EchoBackend, tcp: Backend): string {
  return yamlDocuments(
    gatewayYaml([
      { port: 443, name: 'https', protocol: 'HTTPS', hosts: ['*.example.com'], tls: '{mode: SIMPLE, credentialName: site-cert}' },
      { port: 9000, name: 'tcp', protocol: 'TCP', hosts: ['*'] },
    ]),
    httpRouteYaml('app', ['*.example.com'], 'app.internal'),
    virtualServiceYaml('tcp', ['*'], 'tcp: [{route: [{destination: {host: tcp.internal, port: {number: 7000}}}]}]'),
    serviceEntryYaml('app.internal', 80, 'HTTP', backend.port),
    serviceEntryYaml('tcp.internal', 7000, 'TCP', tcp.port),
  );
}

describe('proxy TLS: drain and worker processes (real proxy process)', function () {
  this.timeout(60_000);
  const ca = testCa();
  let backend: EchoBackend;
  let tcp: Backend;
  let env: TlsProxy | undefined;

  before(async () => {
    backend = await startEchoBackend('app');
    tcp = await startTcpEcho('tcp');
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });
  after(async () => {
    await backend?.close();
    await tcp?.close();
  });

  async function start(extra: string[]): Promise<TlsProxy> {
    const cert = serverCert({ dnsNames: ['*.example.com'], commonName: 'site-v1' });
    env = await TlsProxy.launch(
      [443, 9000],
      (e) => {
        e.write('config.yaml', config(backend, tcp));
        e.write('secret.yaml', secretYaml('site-cert', { cert: cert.chain, key: cert.key }));
      },
      extra,
    );
    return env;
  }

  it('SIGTERM: GOAWAY on HTTP/2, idle HTTPS keep-alive closed, the request in flight completes, new connections served during the window', async () => {
    const e = await start(['--drain-duration', '4s']);
    const port = e.port(443);
    const session = await h2Connect(port, { servername: 'www.example.com', ca: ca.cert });
    assert.equal((await h2Request(session, 'www.example.com', '/before')).status, 200);
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await httpsGet(port, { servername: 'www.example.com', ca: ca.cert, agent })).status, 200);
    const idleSocket = Object.values(agent.freeSockets).flat()[0]!;
    const idleClosed = new Promise<void>((resolve) => idleSocket.once('close', () => resolve()));
    // A slow request in flight when the drain starts.
    const slow = httpsGet(port, { servername: 'www.example.com', ca: ca.cert, path: '/delay/1500' });
    await new Promise((r) => setTimeout(r, 200));

    e.proxy.child.kill('SIGTERM');
    await goaway;
    // Still accepting while connections are open (the slow request keeps the drain going).
    const late = await httpsGet(port, { servername: 'www.example.com', ca: ca.cert });
    assert.equal(late.status, 200);
    assert.equal(late.headers.connection, 'close');
    await idleClosed;
    const slowReply = await slow;
    assert.equal(slowReply.status, 200);
    assert.equal(slowReply.headers.connection, 'close');
    session.destroy();
    agent.destroy();
    assert.equal(await e.proxy.exited, 0);
  });

  it('--concurrency 2: workers terminate HTTPS, proxy TCP, and pick up a rotated Secret', async () => {
    const e = await start(['--concurrency', '2']);
    const port = e.port(443);
    for (let i = 0; i < 6; i++) assert.equal((await httpsGet(port, { servername: 'www.example.com', ca: ca.cert })).status, 200);
    assert.equal(await exchange(e.port(9000), 'w'), 'tcp\nwbye 1\n');
    const v2 = serverCert({ dnsNames: ['*.example.com'], commonName: 'site-v2' });
    e.write('secret.yaml', secretYaml('site-cert', { cert: v2.chain, key: v2.key }));
    // Every worker: several handshakes in a row all get v2.
    await eventually('all workers serve v2', async () => {
      for (let i = 0; i < 6; i++) {
        if (!/CN=site-v2/.test(await servedSubject(port, { servername: 'www.example.com', ca: ca.cert }))) return false;
      }
      return true;
    });
  });
});
