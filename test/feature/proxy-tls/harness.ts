// The real proxy (`portway proxy --config DIR`, a child process) with TLS configuration in
// YAML files, plus the clients and backends TLS feature tests need: HTTPS/HTTP-2 clients that
// report the certificate they got, raw TLS and TCP clients, and TLS, HTTPS and TCP echo backends.

import { X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { closedPort } from '../../support/echo-backend.js';
import { listenLocal } from '../../support/local-server.js';
import { startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';

export const NS = 'istio-system';

/** A config folder and the proxy serving it, with each Gateway port mapped to a free local port. */
export class TlsProxy {
  readonly dir = mkdtempSync(join(tmpdir(), 'portway-tls-'));
  /** Certificates referenced by path (outside the config folder). */
  readonly auxDir = mkdtempSync(join(tmpdir(), 'portway-tls-files-'));
  proxy!: ProxyProcess;
  private constructor(readonly ports: ReadonlyMap<number, number>) {}

  static async prepare(gatewayPorts: number[]): Promise<TlsProxy> {
    const ports = new Map<number, number>();
    for (const p of gatewayPorts) ports.set(p, await closedPort());
    return new TlsProxy(ports);
  }

  /**
   * The usual fixture: prepare the ports, let `setup` write the config files, start the proxy
   * (`flags` and `processEnv` as for start). A proxy that fails to start is cleaned up.
   */
  static async launch(gatewayPorts: number[], setup: (env: TlsProxy) => void, flags: string[] = [], processEnv: NodeJS.ProcessEnv = {}): Promise<TlsProxy> {
    const env = await TlsProxy.prepare(gatewayPorts);
    try {
      setup(env);
      await env.start(flags, processEnv);
    } catch (err) {
      await env.close();
      throw err;
    }
    return env;
  }

  /** The local port the proxy listens on for a Gateway port. */
  port(gatewayPort: number): number {
    const p = this.ports.get(gatewayPort);
    if (p === undefined) throw new Error(`gateway port ${gatewayPort} was not prepared`);
    return p;
  }

  /** Writes a config file the way tools replace files: a new file renamed into place. */
  write(file: string, text: string): void {
    const path = join(this.dir, file);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  }

  /** A file outside the config folder's YAML set (certificates referenced by path). */
  writeAux(file: string, text: string): string {
    const path = join(this.auxDir, file);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
    return path;
  }

  remove(file: string): void {
    rmSync(join(this.dir, file), { force: true });
  }

  /**
   * Starts the proxy; `extra` flags come last (a repeated flag overrides the default),
   * `processEnv` is added to the proxy process's environment.
   */
  async start(extra: string[] = [], processEnv: NodeJS.ProcessEnv = {}): Promise<ProxyProcess> {
    const portMap = [...this.ports].map(([g, l]) => `${g}=${l}`).join(',');
    this.proxy = await startProxyProcess(['--config', this.dir, '--namespace', NS, '--labels', 'istio=ingressgateway', '--port-map', portMap, '--drain-duration', '1s', '--access-log', 'off', ...extra], processEnv);
    return this.proxy;
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.proxy.metricsPort}/stats/prometheus`)).text();
  }

  async close(): Promise<void> {
    await this.proxy?.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.auxDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Config YAML.

/** YAML documents in one file. */
export function yamlDocuments(...docs: string[]): string {
  return docs.map((d) => (d.endsWith('\n') ? d : `${d}\n`)).join('---\n');
}

/** One server of the Gateway; `tls` is its tls field as a YAML flow mapping. */
export interface GatewayServer {
  port: number;
  name: string;
  protocol: string;
  hosts: string[];
  tls?: string;
}

/** A Gateway in istio-system (`gw` unless named) that selects this proxy (istio: ingressgateway). */
export function gatewayYaml(servers: GatewayServer[], name = 'gw'): string {
  const text = servers.map((s) => `  - port: {number: ${s.port}, name: ${s.name}, protocol: ${s.protocol}}
    hosts: [${s.hosts.map((h) => JSON.stringify(h)).join(', ')}]
${s.tls === undefined ? '' : `    tls: ${s.tls}\n`}`);
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: ${NS}}
spec:
  selector: {istio: ingressgateway}
  servers:
${text.join('')}`;
}

/**
 * A VirtualService in `default` bound to the Gateway `gateway` of istio-system (gw unless
 * named); `rules` is the rest of its spec (http:, tcp: or tls:), unindented.
 */
export function virtualServiceYaml(name: string, hosts: string[], rules: string, gateway = 'gw'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${hosts.map((h) => JSON.stringify(h)).join(', ')}]
  gateways: ["${NS}/${gateway}"]
${rules
  .trimEnd()
  .split('\n')
  .map((line) => `  ${line}`)
  .join('\n')}
`;
}

/** A VirtualService sending every HTTP request for `hosts` to one destination host. */
export function httpRouteYaml(name: string, hosts: string[], destinationHost: string): string {
  return virtualServiceYaml(name, hosts, `http: [{route: [{destination: {host: ${destinationHost}}}]}]`);
}

/** A Secret manifest; `type` decides the key names (kubernetes.io/tls: tls.crt/tls.key/ca.crt; generic: cert/key/cacert). */
export function secretYaml(name: string, material: { cert?: string; key?: string; ca?: string }, type: 'kubernetes.io/tls' | 'generic' = 'kubernetes.io/tls'): string {
  const names = type === 'kubernetes.io/tls' ? { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } : { cert: 'cert', key: 'key', ca: 'cacert' };
  const data: string[] = [];
  for (const field of ['cert', 'key', 'ca'] as const) {
    const v = material[field];
    if (v !== undefined) data.push(`  ${names[field]}: ${Buffer.from(v).toString('base64')}`);
  }
  return `apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: ${NS}}
type: ${type === 'generic' ? 'Opaque' : type}
data:
${data.join('\n')}
`;
}

/** A ConfigMap holding a CA (caCertCredentialName may name one); `key` is ca.crt or cacert. */
export function configMapYaml(name: string, key: 'ca.crt' | 'cacert', pem: string): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}, namespace: ${NS}}\ndata:\n  ${key}: ${JSON.stringify(pem)}\n`;
}

/** A ServiceEntry for a backend on 127.0.0.1 (`port` is what routes name, `targetPort` where it listens). */
export function serviceEntryYaml(host: string, port: number, protocol: string, targetPort: number): string {
  const name = host.replace(/[^a-z0-9]+/g, '-');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${host}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: ${port}, name: p-${port}, protocol: ${protocol}, targetPort: ${targetPort}}]
  endpoints: [{address: 127.0.0.1}]
`;
}

// ---------------------------------------------------------------------------------------
// Clients.

export interface TlsClientOptions {
  servername?: string;
  ca?: string | string[];
  cert?: string;
  key?: string;
  /** Forces the server's choice of certificate type (RSA vs ECDSA). */
  sigalgs?: string;
  ciphers?: string;
  maxVersion?: tls.SecureVersion;
  minVersion?: tls.SecureVersion;
  session?: Buffer;
  ALPNProtocols?: string[];
}

export interface HttpsReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The server certificate of the connection that carried the request. */
  peer: X509Certificate | undefined;
  reusedSocket: boolean;
}

/** One HTTPS request to 127.0.0.1:port; `host` defaults to the SNI. */
export function httpsGet(port: number, o: TlsClientOptions & { host?: string; path?: string; agent?: https.Agent | false }): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: o.path ?? '/',
        servername: o.servername,
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        sigalgs: o.sigalgs,
        ciphers: o.ciphers,
        maxVersion: o.maxVersion,
        headers: { host: o.host ?? o.servername ?? 'localhost' },
        agent: o.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        const socket = res.socket as tls.TLSSocket;
        const peer = socket.getPeerX509Certificate?.();
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peer, reusedSocket: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Settles with what a request got, or the error's code/message: for asserting refusals. */
export async function httpsOutcome(port: number, o: Parameters<typeof httpsGet>[1]): Promise<HttpsReply | { error: string }> {
  try {
    return await httpsGet(port, o);
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}

export type Handshake =
  | { ok: true; socket: tls.TLSSocket; peer: X509Certificate; alpn: string | false | null; protocol: string | null }
  | { ok: false; error: string };

/** A TLS handshake only; an ok socket is left open (the caller destroys it). */
export function handshake(port: number, o: TlsClientOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...o });
    let settled = false;
    const settle = (h: Handshake) => {
      if (settled) return;
      settled = true;
      if (!h.ok) socket.destroy();
      resolve(h);
    };
    socket.once('secureConnect', () => settle({ ok: true, socket, peer: socket.getPeerX509Certificate()!, alpn: socket.alpnProtocol, protocol: socket.getProtocol() }));
    socket.once('error', (err: NodeJS.ErrnoException) => settle({ ok: false, error: err.code ?? err.message }));
    socket.once('close', () => settle({ ok: false, error: 'closed' }));
  });
}

/** The SAN text of the certificate a handshake with this SNI gets, or the handshake error. */
export async function servedCertificate(port: number, o: TlsClientOptions): Promise<string> {
  const h = await handshake(port, o);
  if (!h.ok) return `error:${h.error}`;
  h.socket.destroy();
  return h.peer.subjectAltName ?? h.peer.subject;
}

/** The subject of the certificate a handshake gets, or the handshake error. */
export async function servedSubject(port: number, o: TlsClientOptions): Promise<string> {
  const h = await handshake(port, o);
  if (!h.ok) return `error:${h.error}`;
  h.socket.destroy();
  return h.peer.subject;
}

/** A full handshake; resolves with the first session ticket the server sends. */
export function newSession(port: number, o: TlsClientOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...o });
    s.once('session', (session: Buffer) => {
      s.destroy();
      resolve(session);
    });
    s.once('error', reject);
  });
}

/** An HTTP/2 session to 127.0.0.1:port with the given SNI. */
export function h2Connect(port: number, o: TlsClientOptions): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername: o.servername, ca: o.ca, cert: o.cert, key: o.key });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

export function h2Request(session: http2.ClientHttp2Session, authority: string, path = '/', body?: string): Promise<{ status: number; body: string; headers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': path, ':authority': authority }, { endStream: body === undefined });
    let headers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(headers[':status']), body: Buffer.concat(chunks).toString('utf8'), headers }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/**
 * Opens a connection (TLS when `tlsOptions` is given), sends `text`, half-closes, and resolves
 * with everything received until the server closes; or with "error:<code>".
 */
export function exchange(port: number, text: string, tlsOptions?: TlsClientOptions, halfClose = true): Promise<string> {
  return new Promise((resolve) => {
    const socket: net.Socket = tlsOptions ? tls.connect({ host: '127.0.0.1', port, ...tlsOptions }) : net.connect({ host: '127.0.0.1', port });
    let got = '';
    let settled = false;
    let connected = false;
    const settle = (v: string) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(v);
    };
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      connected = true;
      socket.write(text);
      if (halfClose) socket.end();
    });
    socket.on('data', (d: Buffer) => (got += d.toString('utf8')));
    socket.once('end', () => settle(connected ? got : 'error:closed during the handshake'));
    socket.once('error', (err: NodeJS.ErrnoException) => settle(got || `error:${err.code ?? err.message}`));
    socket.once('close', () => settle(got || 'error:closed'));
    socket.setTimeout(10_000, () => settle(`${got}error:timeout`));
  });
}

// ---------------------------------------------------------------------------------------
// Backends.

export interface Backend {
  readonly name: string;
  readonly port: number;
  /** What each connection or request saw (SNI, client certificate subject, …). */
  readonly seen: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * A TCP backend: on each connection it sends "<name>\n", echoes every byte, and when the
 * client half-closes it sends "bye <bytes received>\n" and closes (proves half-close).
 */
export async function startTcpEcho(name: string): Promise<Backend> {
  const seen: Array<Record<string, unknown>> = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    let received = 0;
    s.on('error', () => s.destroy());
    s.write(`${name}\n`);
    s.on('data', (d: Buffer) => {
      received += d.length;
      s.write(d);
    });
    s.on('end', () => {
      seen.push({ received });
      s.end(`bye ${received}\n`);
    });
  });
  return { name, seen, ...(await listenLocal(server)) };
}

/** A TLS backend (for passthrough): serves `cert`, then behaves like startTcpEcho. */
export async function startTlsEcho(name: string, cert: { chain: string; key: string }): Promise<Backend> {
  const seen: Array<Record<string, unknown>> = [];
  const server = tls.createServer({ cert: cert.chain, key: cert.key, allowHalfOpen: true }, (s) => {
    seen.push({ sni: s.servername });
    s.on('error', () => s.destroy());
    s.write(`${name}\n`);
    let received = 0;
    s.on('data', (d: Buffer) => {
      received += d.length;
      s.write(d);
    });
    s.on('end', () => s.end(`bye ${received}\n`));
  });
  return { name, seen, ...(await listenLocal(server)) };
}

/** An HTTPS backend answering JSON {name, sni, host, url, clientCert}; optionally requiring client certificates. */
export async function startHttpsEcho(name: string, cert: { chain: string; key: string }, clientCa?: string): Promise<Backend> {
  const seen: Array<Record<string, unknown>> = [];
  const server = https.createServer({ cert: cert.chain, key: cert.key, ...(clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: true } : {}) }, (req, res) => {
    const socket = req.socket as tls.TLSSocket;
    const record = { name, sni: socket.servername, host: req.headers.host, url: req.url, clientCert: clientCa ? socket.getPeerX509Certificate()?.subject : undefined };
    seen.push(record);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(record));
  });
  return { name, seen, ...(await listenLocal(server)) };
}

/** Polls `check` until it returns true or `timeoutMs` passes; resolves with the elapsed ms, or rejects. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
