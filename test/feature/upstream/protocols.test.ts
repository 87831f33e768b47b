// Upstream protocols against real servers: DNS resolution, h2c, TLS origination, raw TCP.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import forge from 'node-forge';
import { Registry } from 'prom-client';
import { ClusterManager } from '../../../dataplane/upstream/cluster-manager.js';
import { classifyUpstreamError } from '../../../dataplane/upstream/errors.js';
import { connectTcp, tcpConnectOptions } from '../../../dataplane/upstream/tcp.js';
import type { UpstreamTlsPolicy } from '../../../dataplane/snapshot/types.js';
import { clusterMap, endpoint, makeCluster } from '../../unit/upstream/cluster-fixture.js';
import { closedPort, get, ok, startBackend, waitFor, type Backend } from './backends.js';

const CTX = { headers: {}, sourceIp: '127.0.0.1' };

function selfSigned(commonName: string): { key: string; cert: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3_600_000);
  const attrs = [{ name: 'commonName', value: commonName }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: commonName }] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { key: privateKey, cert: forge.pki.certificateToPem(cert) };
}

describe('upstream: protocols', () => {
  let registry: Registry;
  let mgr: ClusterManager | undefined;
  const cleanup: Array<() => Promise<void> | void> = [];

  beforeEach(() => {
    registry = new Registry();
  });

  afterEach(async () => {
    await mgr?.close();
    mgr = undefined;
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('DNS cluster: resolves "localhost" and sends requests to the resolved address', async () => {
    const backend = await startBackend('dns');
    cleanup.push(() => backend.close());
    mgr = new ClusterManager({ registry });
    const c = makeCluster({ resolution: 'dns', endpoints: [endpoint('localhost', backend.port)] });
    mgr.update(clusterMap(c));
    await waitFor('localhost to resolve', () => mgr!.lease(c.name, CTX).ok);
    const lease = ok(mgr.lease(c.name, CTX));
    assert.equal(lease.endpoint.address, '127.0.0.1');
    assert.equal(lease.origin, `http://127.0.0.1:${backend.port}`);
    const res = await get(lease);
    assert.deepEqual([res.status, res.body], [200, 'dns']);
  });

  it('DNS cluster: refreshes follow the answer, drain the old address, and a failed lookup keeps the last answer', async () => {
    // Two loopback addresses stand in for two DNS answers, one backend on each, same port.
    const a = await startBackend('a');
    cleanup.push(() => a.close());
    const b = await startBackend('b', undefined, { host: '127.0.0.2', port: a.port });
    cleanup.push(() => b.close());
    let answer: () => Promise<string[]> = async () => ['127.0.0.1'];
    let lookups = 0;
    mgr = new ClusterManager({
      registry,
      resolver: () => {
        lookups++;
        return answer();
      },
      dnsRefreshInterval: 20,
    });
    const c = makeCluster({ resolution: 'dns', endpoints: [endpoint('svc.example', a.port)] });
    mgr.update(clusterMap(c));
    await waitFor('the first answer', () => mgr!.lease(c.name, CTX).ok);
    assert.equal((await get(ok(mgr.lease(c.name, CTX)))).body, 'a');

    answer = async () => ['127.0.0.2'];
    await waitFor('a refresh to move the cluster to 127.0.0.2', () => mgr!.runtime(c.name)!.hosts[0]?.key === `127.0.0.2:${a.port}`);
    assert.equal((await get(ok(mgr.lease(c.name, CTX)))).body, 'b');
    await waitFor("the old address's connection to close", () => a.openSockets.size === 0);

    answer = async () => {
      throw Object.assign(new Error('queryA ESERVFAIL svc.example'), { code: 'ESERVFAIL' });
    };
    const failedFrom = lookups;
    await waitFor('failed refreshes', () => lookups >= failedFrom + 3);
    assert.equal((await get(ok(mgr.lease(c.name, CTX)))).body, 'b');
    assert.equal(a.hits, 1);
  });

  it('h2c: HTTP/2 with prior knowledge to a node:http2 server, concurrent POSTs multiplexed on one connection', async () => {
    const versions: string[] = [];
    const held: Array<() => void> = [];
    let sessions = 0;
    const server = http2.createServer((req, res) => {
      versions.push(req.httpVersion);
      req.resume();
      req.on('end', () =>
        held.push(() => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('h2c ok');
        }),
      );
    });
    server.on('session', () => sessions++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    mgr = new ClusterManager({ registry });
    const c = makeCluster({ protocol: 'h2c', endpoints: [endpoint('127.0.0.1', (server.address() as AddressInfo).port)] });
    mgr.update(clusterMap(c));
    const post = async () => {
      const lease = ok(mgr!.lease(c.name, CTX));
      const res = await lease.dispatcher.request({ path: '/svc.Echo/Call', method: 'POST', body: 'payload', headers: { 'content-type': 'application/grpc' } });
      const body = await res.body.text();
      lease.done({ status: res.statusCode });
      return [res.statusCode, body];
    };
    const results = Promise.all([post(), post(), post()]);
    // All three are at the server at once: they share the connection instead of queueing.
    await waitFor('three concurrent streams at the server', () => held.length === 3, 5000);
    for (const f of held) f();
    assert.deepEqual(await results, [[200, 'h2c ok'], [200, 'h2c ok'], [200, 'h2c ok']]);
    assert.deepEqual(versions, ['2.0', '2.0', '2.0']);
    assert.equal(sessions, 1);
  });

  it('TLS origination: passes tlsOptionsFor() to the connection, with the policy\'s SNI', async function () {
    this.timeout(60_000);
    const creds = selfSigned('backend.example.com');
    const backend: Backend = await startBackend('tls', creds);
    cleanup.push(() => backend.close());
    const seen: UpstreamTlsPolicy[] = [];
    mgr = new ClusterManager({
      registry,
      tlsOptionsFor: (policy) => {
        seen.push(policy);
        return { ca: creds.cert };
      },
    });
    const tls: UpstreamTlsPolicy = { mode: 'SIMPLE', sni: 'backend.example.com', subjectAltNames: [], insecureSkipVerify: false };
    const c = makeCluster({ endpoints: [endpoint('127.0.0.1', backend.port)], tls });
    mgr.update(clusterMap(c));
    const lease = ok(mgr.lease(c.name, CTX));
    assert.equal(lease.origin, `https://127.0.0.1:${backend.port}`);
    const res = await get(lease);
    assert.deepEqual([res.status, res.body, res.headers['x-sni']], [200, 'tls', 'backend.example.com']);
    assert.equal(seen[0]?.mode, 'SIMPLE');

    // Without the CA the handshake fails: a connect failure, counted.
    const untrusting = new ClusterManager({ registry: new Registry(), tlsOptionsFor: () => ({}) });
    cleanup.push(() => untrusting.close());
    untrusting.update(clusterMap(c));
    const err = await get(ok(untrusting.lease(c.name, CTX))).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err, 'an unknown CA must fail the handshake');
    assert.equal(classifyUpstreamError(err), 'connect-failure');
  });

  it('HTTP/2 over TLS: ALPN h2 only, concurrent POSTs on one connection; an HTTP/1.1-only server is refused', async function () {
    this.timeout(60_000);
    const creds = selfSigned('grpc.example.com');
    let sessions = 0;
    const held: Array<() => void> = [];
    const server = http2.createSecureServer({ key: creds.key, cert: creds.cert }, (req, res) => {
      req.resume();
      req.on('end', () =>
        held.push(() => {
          res.writeHead(200);
          res.end(`${req.httpVersion} ${(req.socket as unknown as { alpnProtocol?: string }).alpnProtocol}`);
        }),
      );
    });
    server.on('session', () => sessions++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const h1Only = await startBackend('h1', creds);
    cleanup.push(() => h1Only.close());

    mgr = new ClusterManager({ registry, tlsOptionsFor: () => ({ ca: creds.cert }) });
    const tls: UpstreamTlsPolicy = { mode: 'SIMPLE', sni: 'grpc.example.com', subjectAltNames: [], insecureSkipVerify: false };
    const c = makeCluster({ name: 'grpc', protocol: 'h2c', endpoints: [endpoint('127.0.0.1', (server.address() as AddressInfo).port)], tls });
    const h1 = makeCluster({ name: 'h1', protocol: 'h2c', endpoints: [endpoint('127.0.0.1', h1Only.port)], tls });
    mgr.update(clusterMap(c, h1));
    const post = async () => {
      const lease = ok(mgr!.lease('grpc', CTX));
      const res = await lease.dispatcher.request({ path: '/svc.Echo/Call', method: 'POST', body: 'x', headers: { 'content-type': 'application/grpc' } });
      const body = await res.body.text();
      lease.done({ status: res.statusCode });
      return body;
    };
    const results = Promise.all([post(), post(), post()]);
    await waitFor('three concurrent streams at the server', () => held.length === 3, 5000);
    for (const f of held) f();
    assert.deepEqual(await results, ['2.0 h2', '2.0 h2', '2.0 h2']);
    assert.equal(sessions, 1);

    const err = await get(ok(mgr.lease('h1', CTX))).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof Error, 'an HTTP/1.1-only server must not be used for an HTTP/2 cluster');
    assert.equal(classifyUpstreamError(err), 'connect-failure');
    assert.equal(h1Only.hits, 0);
  });

  it('TCP: connectTcp() reaches the leased endpoint with the cluster\'s connect settings', async () => {
    const server = net.createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as AddressInfo).port;
    mgr = new ClusterManager({ registry });
    const c = makeCluster({ protocol: 'tcp', endpoints: [endpoint('127.0.0.1', port)], connectionPool: { connectTimeout: 1500, tcpKeepalive: { time: 30_000 }, tcpIdleTimeout: 60_000 } });
    mgr.update(clusterMap(c));
    const lease = ok(mgr.lease(c.name, CTX));
    assert.deepEqual(tcpConnectOptions(lease), { host: '127.0.0.1', port, connectTimeout: 1500, keepAliveInitialDelay: 30_000, idleTimeout: 60_000, tls: undefined });
    const socket = await connectTcp(lease);
    const echoed = await new Promise<string>((resolve) => {
      socket.once('data', (d) => resolve(d.toString()));
      socket.write('ping');
    });
    assert.equal(echoed, 'ping');
    socket.destroy();
    lease.done({});
  });

  it('TCP: a refused connection rejects and is counted as a connect failure', async () => {
    mgr = new ClusterManager({ registry });
    const c = makeCluster({ protocol: 'tcp', endpoints: [endpoint('127.0.0.1', await closedPort())] });
    mgr.update(clusterMap(c));
    const lease = ok(mgr.lease(c.name, CTX));
    const err = await connectTcp(lease).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.equal(classifyUpstreamError(err), 'connect-failure');
    lease.done({ error: 'connect-failure' });
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'portway_upstream_cx_connect_fail_total');
    assert.equal((m?.values as Array<{ value: number }>)[0]?.value, 1);
  });
});
