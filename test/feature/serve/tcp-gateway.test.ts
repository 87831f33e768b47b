// The MONGO scenario of Istio's Gateway and VirtualService reference (seed 001: a MONGO server,
// a VirtualService `tcp` rule `match: port 27017` to mongo.prod.svc.cluster.local:5555) through
// the real proxy process, with real sockets: bytes both ways, half-close in both directions,
// a port the rule does not match. Every TCP connection (plain, TLS passthrough, TLS terminated
// then proxied) writes one access-log line at close with Istio's TCP fields.

import assert from 'node:assert/strict';
import net from 'node:net';
import { serverCert, testCa } from '../../support/certs.js';
import { listenLocal } from '../../support/local-server.js';
import { eventually, exchange, gatewayYaml, secretYaml, serviceEntryYaml, startTcpEcho, startTlsEcho, TlsProxy, virtualServiceYaml, yamlDocuments, type Backend } from '../proxy-tls/harness.js';

const SEED_001_MONGO = `# Seed 001 (istio.io Gateway reference), the MONGO part.
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: my-gateway
  namespace: some-config-namespace
spec:
  selector:
    app: my-gateway-controller
  servers:
  - port:
      number: 27017
      name: mongo
      protocol: MONGO
    hosts:
    - "*"
  - port:
      number: 2379 # the reference's own MONGO port: no tcp rule matches it
      name: mongo-2379
      protocol: MONGO
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo-mongo
  namespace: bookinfo-namespace
spec:
  hosts:
  - mongosvr.prod.svc.cluster.local # name of internal Mongo service
  gateways:
  - some-config-namespace/my-gateway
  tcp:
  - match:
    - port: 27017
    route:
    - destination:
        host: mongo.prod.svc.cluster.local
        port:
          number: 5555
`;

function config(ports: { mongo: number; early: number; pass: number; term: number }): string {
  return yamlDocuments(
    SEED_001_MONGO,
    serviceEntryYaml('mongo.prod.svc.cluster.local', 5555, 'MONGO', ports.mongo),
    gatewayYaml(
      [
        { port: 27018, name: 'mongo-early', protocol: 'MONGO', hosts: ['*'] },
        { port: 9443, name: 'tls-pass', protocol: 'TLS', hosts: ['*.pass.example.com'], tls: '{mode: PASSTHROUGH}' },
        { port: 9444, name: 'tls-term', protocol: 'TLS', hosts: ['tcp.example.com'], tls: '{mode: SIMPLE, credentialName: tcp-cert}' },
      ],
      'tls-gw',
    ),
    virtualServiceYaml(
      'tls',
      ['*.pass.example.com', 'tcp.example.com'],
      `tls:
- match: [{sniHosts: [a.pass.example.com]}]
  route: [{destination: {host: pass.internal, port: {number: 443}}}]
tcp:
- match: [{port: 9444}]
  route: [{destination: {host: term.internal, port: {number: 7000}}}]
- match: [{port: 27018}]
  route: [{destination: {host: early.internal, port: {number: 5555}}}]`,
      'tls-gw',
    ),
    serviceEntryYaml('early.internal', 5555, 'MONGO', ports.early),
    serviceEntryYaml('pass.internal', 443, 'TLS', ports.pass),
    serviceEntryYaml('term.internal', 7000, 'TCP', ports.term),
  );
}

/** A backend that greets and half-closes at once, then records what the client still sends. */
async function startEarlyCloser(): Promise<Backend & { close(): Promise<void> }> {
  const seen: Array<Record<string, unknown>> = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => s.destroy());
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('utf8')));
    s.on('end', () => seen.push({ got }));
    s.end('server done\n');
  });
  return { name: 'early-closer', seen, ...(await listenLocal(server)) };
}

type LogLine = Record<string, unknown>;

describe('TCP gateway: the MONGO seed scenario and TCP access log lines (real proxy process)', function () {
  this.timeout(60_000);
  const ca = testCa();
  let env: TlsProxy;
  let mongo: Backend;
  let early: Awaited<ReturnType<typeof startEarlyCloser>>;
  let pass: Backend;
  let term: Backend;

  /** Access-log lines (JSON) on the proxy's stdout so far. */
  const lines = (): LogLine[] =>
    env.proxy.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
  const lineFor = async (what: string, match: (l: LogLine) => boolean): Promise<LogLine> => {
    await eventually(what, async () => lines().some(match));
    return lines().find(match)!;
  };

  before(async () => {
    mongo = await startTcpEcho('mongo');
    early = await startEarlyCloser();
    pass = await startTlsEcho('pass', serverCert({ dnsNames: ['a.pass.example.com'] }));
    term = await startTcpEcho('term');
    const tcpCert = serverCert({ dnsNames: ['tcp.example.com'] });
    env = await TlsProxy.launch(
      [27017, 27018, 2379, 9443, 9444],
      (e) => {
        e.write('config.yaml', config({ mongo: mongo.port, early: early.port, pass: pass.port, term: term.port }));
        e.write('secrets.yaml', secretYaml('tcp-cert', { cert: tcpCert.chain, key: tcpCert.key }));
      },
      ['--labels', 'istio=ingressgateway,app=my-gateway-controller', '--access-log', 'json'],
    );
  });
  after(async () => {
    await env?.close();
    await mongo?.close();
    await early?.close();
    await pass?.close();
    await term?.close();
  });

  it('port 27017 reaches mongo.prod.svc.cluster.local:5555; bytes both ways; the client’s FIN half-closes, the reply still arrives', async () => {
    // An OP_MSG-sized message's worth of bytes, then FIN; the backend answers after the FIN.
    const message = 'isMaster'.repeat(1000);
    assert.equal(await exchange(env.port(27017), message), `mongo\n${message}bye ${message.length}\n`);
    assert.deepEqual(mongo.seen.at(-1), { received: message.length });
  });

  it('the upstream’s FIN half-closes the other way: the client still sends after it, and the upstream receives it', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: env.port(27018), allowHalfOpen: true });
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('utf8')));
    await new Promise<void>((resolve, reject) => {
      socket.once('end', () => resolve());
      socket.once('error', reject);
    });
    assert.equal(got, 'server done\n');
    socket.end('sent after the server’s FIN');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await eventually('the upstream saw the late bytes', async () => early.seen.some((s) => s.got === 'sent after the server’s FIN'));
  });

  it('the reference’s own MONGO port 2379 has no matching tcp rule: the connection is closed, the line says NR', async () => {
    assert.match(await exchange(env.port(2379), 'hello'), /^(error:.*)?$/);
    const line = await lineFor('NR line', (l) => l.response_flags === 'NR' && String(l.downstream_local_address).endsWith(`:${env.port(2379)}`));
    assert.equal(line.upstream_cluster, null);
    assert.equal(line.response_code_details, 'filter_chain_not_found');
  });

  it('a TCP connection logs one line at close: cluster, upstream host, bytes each way, addresses, no HTTP fields', async () => {
    const payload = 'count-me';
    const socket = net.connect({ host: '127.0.0.1', port: env.port(27017) });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const clientPort = socket.localPort!;
    socket.end(payload);
    let received = 0;
    socket.on('data', (d: Buffer) => (received += d.length));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const line = await lineFor('the TCP line', (l) => l.downstream_remote_address === `127.0.0.1:${clientPort}`);
    assert.equal(line.upstream_cluster, 'outbound|5555||mongo.prod.svc.cluster.local');
    assert.equal(line.upstream_host, `127.0.0.1:${mongo.port}`);
    assert.equal(line.bytes_received, payload.length);
    assert.equal(line.bytes_sent, received);
    assert.equal(received, `mongo\n${payload}bye ${payload.length}\n`.length);
    assert.equal(line.downstream_local_address, `127.0.0.1:${env.port(27017)}`);
    assert.equal(line.response_flags, '-');
    assert.equal(line.response_code, 0);
    assert.equal(line.method, null);
    assert.equal(line.path, null);
    assert.equal(line.protocol, null);
    assert.equal(line.requested_server_name, null);
    assert.equal(typeof line.duration, 'number');
    assert.ok(!Number.isNaN(Date.parse(String(line.start_time))));
  });

  it('a TLS connection whose SNI no server takes is logged with NR (as Istio’s listener access log does)', async () => {
    assert.match(await exchange(env.port(9443), 'x', { servername: 'nobody.example.org', ca: ca.cert }), /^error:/);
    const line = await lineFor('no chain line', (l) => l.requested_server_name === 'nobody.example.org');
    assert.equal(line.response_flags, 'NR');
    assert.equal(line.response_code_details, 'filter_chain_not_found');
    assert.equal(line.upstream_cluster, null);
  });

  it('TLS passthrough and TLS terminated → TCP log the SNI and the plaintext byte counts; a refused upstream is UF', async () => {
    assert.equal(await exchange(env.port(9443), 'pass-bytes', { servername: 'a.pass.example.com', ca: ca.cert }), 'pass\npass-bytesbye 10\n');
    const passLine = await lineFor('passthrough line', (l) => l.requested_server_name === 'a.pass.example.com');
    assert.equal(passLine.upstream_cluster, 'outbound|443||pass.internal');
    // Passthrough counts the TLS records (ClientHello included): more than the plaintext.
    assert.ok(Number(passLine.bytes_received) > 'pass-bytes'.length, JSON.stringify(passLine));

    assert.equal(await exchange(env.port(9444), 'term-bytes', { servername: 'tcp.example.com', ca: ca.cert }), 'term\nterm-bytesbye 10\n');
    const termLine = await lineFor('terminated line', (l) => l.requested_server_name === 'tcp.example.com');
    assert.equal(termLine.upstream_cluster, 'outbound|7000||term.internal');
    assert.equal(termLine.bytes_received, 'term-bytes'.length);
    assert.equal(termLine.bytes_sent, 'term\nterm-bytesbye 10\n'.length);

    await term.close();
    assert.match(await exchange(env.port(9444), 'nobody', { servername: 'tcp.example.com', ca: ca.cert }), /^(error:.*)?$/);
    const failed = await lineFor('UF line', (l) => l.requested_server_name === 'tcp.example.com' && l.response_flags === 'UF');
    assert.equal(failed.upstream_host, `127.0.0.1:${term.port}`);
    assert.match(String(failed.upstream_transport_failure_reason), /ECONNREFUSED/);
  });
});
