// Layer 4 through the real proxy process: TLS PASSTHROUGH by SNI with weights, HTTPS and
// PASSTHROUGH servers sharing a port, TCP routes by port (half-close, backpressure, idle
// timeout), TLS terminated then proxied as TCP, bad input on a TLS port, and the metrics.

import assert from 'node:assert/strict';
import net from 'node:net';
import { serverCert, testCa } from '../../support/certs.js';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import {
  exchange,
  gatewayYaml,
  handshake,
  httpRouteYaml,
  httpsGet,
  secretYaml,
  serviceEntryYaml,
  startTcpEcho,
  startTlsEcho,
  TlsProxy,
  virtualServiceYaml,
  yamlDocuments,
  type Backend,
} from './harness.js';

function config(b: Record<string, { port: number }>): string {
  return yamlDocuments(
    gatewayYaml([
      // PASSTHROUGH first: the port's listener is a TLS one that also terminates HTTPS for web.example.com.
      { port: 9443, name: 'tls-pass', protocol: 'TLS', hosts: ['*.pass.example.com'], tls: '{mode: PASSTHROUGH}' },
      { port: 9443, name: 'https-web', protocol: 'HTTPS', hosts: ['web.example.com'], tls: '{mode: SIMPLE, credentialName: web-cert}' },
      { port: 9444, name: 'tls-term', protocol: 'TLS', hosts: ['tcp.example.com'], tls: '{mode: SIMPLE, credentialName: tcp-cert}' },
      { port: 9000, name: 'tcp-a', protocol: 'TCP', hosts: ['*'] },
      { port: 9001, name: 'tcp-b', protocol: 'TCP', hosts: ['*'] },
      { port: 9002, name: 'mongo', protocol: 'MONGO', hosts: ['*'] },
    ]),
    virtualServiceYaml(
      'pass',
      ['*.pass.example.com'],
      `tls:
- match: [{sniHosts: [a.pass.example.com]}]
  route: [{destination: {host: a.tls.internal, port: {number: 443}}}]
- match: [{sniHosts: [b.pass.example.com]}]
  route:
  - {destination: {host: b1.tls.internal, port: {number: 443}}, weight: 70}
  - {destination: {host: b2.tls.internal, port: {number: 443}}, weight: 30}`,
    ),
    httpRouteYaml('web', ['web.example.com'], 'web.internal'),
    virtualServiceYaml(
      'tcp',
      ['*'],
      `tcp:
- match: [{port: 9000}, {port: 9444}]
  route: [{destination: {host: tcp-a.internal, port: {number: 7000}}}]
- match: [{port: 9001}]
  route: [{destination: {host: tcp-b.internal, port: {number: 7000}}}]
- match: [{port: 9002}]
  route: [{destination: {host: tcp-idle.internal, port: {number: 7000}}}]`,
    ),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-idle, namespace: default}
spec:
  host: tcp-idle.internal
  trafficPolicy: {connectionPool: {tcp: {idleTimeout: 1s}}}
`,
    serviceEntryYaml('a.tls.internal', 443, 'TLS', b.a!.port),
    serviceEntryYaml('b1.tls.internal', 443, 'TLS', b.b1!.port),
    serviceEntryYaml('b2.tls.internal', 443, 'TLS', b.b2!.port),
    serviceEntryYaml('web.internal', 80, 'HTTP', b.web!.port),
    serviceEntryYaml('tcp-a.internal', 7000, 'TCP', b.tcpA!.port),
    serviceEntryYaml('tcp-b.internal', 7000, 'TCP', b.tcpB!.port),
    serviceEntryYaml('tcp-idle.internal', 7000, 'TCP', b.tcpIdle!.port),
  );
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    if (want.every((w) => labelText.split(',').includes(w))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

describe('proxy TLS: passthrough, TCP and TLS → TCP (real proxy process)', function () {
  this.timeout(60_000);
  const ca = testCa();
  let env: TlsProxy;
  const backends: Record<string, Backend> = {};
  let web: EchoBackend;

  before(async () => {
    backends.a = await startTlsEcho('tls-a', serverCert({ dnsNames: ['a.pass.example.com'] }));
    const bCert = serverCert({ dnsNames: ['b.pass.example.com'] });
    backends.b1 = await startTlsEcho('tls-b1', bCert);
    backends.b2 = await startTlsEcho('tls-b2', bCert);
    backends.tcpA = await startTcpEcho('tcp-a');
    backends.tcpB = await startTcpEcho('tcp-b');
    backends.tcpIdle = await startTcpEcho('tcp-idle');
    web = await startEchoBackend('web');
    const webCert = serverCert({ dnsNames: ['web.example.com'] });
    const tcpCert = serverCert({ dnsNames: ['tcp.example.com'] });
    env = await TlsProxy.launch([9443, 9444, 9000, 9001, 9002], (e) => {
      e.write('config.yaml', config({ ...backends, web }));
      e.write('secrets.yaml', yamlDocuments(secretYaml('web-cert', { cert: webCert.chain, key: webCert.key }), secretYaml('tcp-cert', { cert: tcpCert.chain, key: tcpCert.key })));
    });
  });
  after(async () => {
    await env?.close();
    for (const b of Object.values(backends)) await b.close();
    await web?.close();
  });

  it('PASSTHROUGH: the backend’s own certificate answers, chosen by SNI; bytes flow both ways', async () => {
    const h = await handshake(env.port(9443), { servername: 'a.pass.example.com', ca: ca.cert });
    assert.ok(h.ok, `handshake failed: ${!h.ok && h.error}`);
    assert.equal(h.peer.subjectAltName, 'DNS:a.pass.example.com');
    h.socket.destroy();
    assert.equal(await exchange(env.port(9443), 'ping', { servername: 'a.pass.example.com', ca: ca.cert }), 'tls-a\npingbye 4\n');
    assert.equal(backends.a!.seen.at(-1)?.sni, 'a.pass.example.com');
  });

  it('PASSTHROUGH: weighted destinations (70/30 over 200 connections)', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const reply = await exchange(env.port(9443), 'x', { servername: 'b.pass.example.com', ca: ca.cert });
      const name = reply.split('\n')[0]!;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    assert.equal((counts['tls-b1'] ?? 0) + (counts['tls-b2'] ?? 0), 200, JSON.stringify(counts));
    // Expected 140/60; six standard deviations either way.
    assert.ok(counts['tls-b1']! > 100 && counts['tls-b1']! < 180, JSON.stringify(counts));
  });

  it('PASSTHROUGH: an SNI with no tls route, an SNI no server takes, and no SNI are closed', async () => {
    assert.match(await exchange(env.port(9443), 'x', { servername: 'c.pass.example.com', ca: ca.cert }), /^error:/);
    assert.match(await exchange(env.port(9443), 'x', { servername: 'unknown.example.org', ca: ca.cert }), /^error:/);
    assert.match(await exchange(env.port(9443), 'x', { ca: ca.cert, checkServerIdentity: () => undefined } as never), /^error:/);
  });

  it('HTTPS and PASSTHROUGH servers share a port: the SNI decides between terminating and passing through', async () => {
    const r = await httpsGet(env.port(9443), { servername: 'web.example.com', ca: ca.cert, path: '/mixed' });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).name, 'web');
    assert.equal(web.requests.at(-1)?.headers['x-forwarded-proto'], 'https');
    assert.equal(await exchange(env.port(9443), 'z', { servername: 'a.pass.example.com', ca: ca.cert }), 'tls-a\nzbye 1\n');
  });

  it('TCP: routes by port, half-closes (the reply after the client’s FIN arrives), carries 4 MiB with backpressure', async () => {
    assert.equal(await exchange(env.port(9000), 'hello'), 'tcp-a\nhellobye 5\n');
    assert.equal(await exchange(env.port(9001), 'hello'), 'tcp-b\nhellobye 5\n');
    const big = 'x'.repeat(4 * 1024 * 1024);
    const reply = await exchange(env.port(9000), big);
    assert.equal(reply.length, 'tcp-a\n'.length + big.length + `bye ${big.length}\n`.length);
    assert.ok(reply.endsWith(`bye ${big.length}\n`));
  });

  it('TLS terminated with the server’s certificate, then proxied as TCP', async () => {
    const h = await handshake(env.port(9444), { servername: 'tcp.example.com', ca: ca.cert });
    assert.ok(h.ok);
    assert.equal(h.peer.subjectAltName, 'DNS:tcp.example.com');
    h.socket.destroy();
    assert.equal(await exchange(env.port(9444), 'over tls', { servername: 'tcp.example.com', ca: ca.cert }), 'tcp-a\nover tlsbye 8\n');
  });

  it('connectionPool.tcp.idleTimeout closes an idle proxied connection', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: env.port(9002) });
    const start = Date.now();
    let banner = '';
    socket.on('data', (d: Buffer) => (banner += d.toString()));
    await new Promise<void>((resolve, reject) => {
      socket.once('close', () => resolve());
      socket.once('error', reject);
      setTimeout(() => reject(new Error('not closed within 10 s')), 10_000).unref();
    });
    const elapsed = Date.now() - start;
    assert.equal(banner, 'tcp-idle\n');
    assert.ok(elapsed >= 800, `closed after ${elapsed} ms, before the 1 s idle timeout`);
  });

  it('non-TLS bytes on a TLS port close that connection only; metrics count connections, failures and bytes', async () => {
    // Closed by the proxy (not left hanging until the client's own timeout).
    const reply = await exchange(env.port(9443), 'GET / HTTP/1.1\r\nHost: web.example.com\r\n\r\n', undefined, false);
    assert.ok(reply === '' || reply === 'error:ECONNRESET', reply);
    const garbage = await exchange(env.port(9444), '\x16\x03\x01\x00\x05hello', undefined, false);
    assert.ok(garbage === '' || garbage === 'error:ECONNRESET', garbage);
    assert.equal((await httpsGet(env.port(9443), { servername: 'web.example.com', ca: ca.cert })).status, 200);

    const text = await env.metrics();
    const l9443 = `0.0.0.0_${env.port(9443)}`;
    const l9000 = `0.0.0.0_${env.port(9000)}`;
    assert.ok(metric(text, 'portway_listener_tls_failures_total', { listener: l9443, reason: 'not_tls' }) >= 1, 'not_tls failures');
    assert.ok(metric(text, 'portway_listener_tls_failures_total', { listener: l9443, reason: 'no_chain' }) >= 1, 'no_chain failures');
    assert.ok(metric(text, 'portway_tcp_proxy_no_route_total', { listener: l9443 }) >= 1, 'no route');
    assert.ok(metric(text, 'portway_listener_cx_total', { listener: l9443 }) >= 200);
    const cluster = 'outbound|7000||tcp-a.internal';
    assert.ok(metric(text, 'portway_tcp_proxy_cx_total', { listener: l9000, cluster }) >= 2);
    assert.ok(metric(text, 'portway_tcp_proxy_rx_bytes_total', { listener: l9000, cluster }) >= 4 * 1024 * 1024);
    assert.ok(metric(text, 'portway_tcp_proxy_tx_bytes_total', { listener: l9000, cluster }) >= 4 * 1024 * 1024);
    assert.equal(metric(text, 'portway_tcp_proxy_cx_active', { listener: l9000, cluster }), 0);
    assert.ok(metric(text, 'portway_tcp_proxy_cx_total', { listener: l9443, cluster: 'outbound|443||b1.tls.internal' }) > 0);
  });
});
