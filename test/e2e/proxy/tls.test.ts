// TLS at the gateway in a cluster (issues 4 and 5), done the way users do it: certificates go
// into Secrets and ConfigMaps with `kubectl create secret tls` / `kubectl create configmap`,
// a Gateway names them, and two `portway proxy` processes at kwok gateway pod IPs (one of them
// with --concurrency 2 worker processes) run as the ServiceAccount with the RBAC the operator
// renders. Clients are real HTTPS clients that verify the certificate they are served.
//
// Rotation is measured and logged, never asserted on: the propagation target is measured by
// hack/bench/propagation.mjs; here a generous bound is only a wait timeout.

import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { clientCert, newCa, serverCert, testCa, type IssuedCert, type TestCa } from '../../support/certs.js';
import { printLogsIfFailed, type ProxyProcess } from '../../support/proxy-process.js';
import { useNamespace } from '../support/cluster.js';
import { applyObjects, applyRenderedGateway, backendDeployment, ingressGateway, installIstioCrds, service, startGatewayProxies } from '../support/istio-gateway.js';
import { readyEndpoints, servePods, type PodBackends } from '../support/pod-backends.js';
import { eventually } from '../support/wait.js';

/** The rendered Service maps Gateway port 443 to the pod's 8443. */
const HTTPS_PORT = 8443;
/** A wait bound, not a performance assertion. */
const CONVERGE_MS = 60_000;

interface Served {
  status: number;
  /** The start of the body of a response other than 200: a local reply names its reason (e.g. "no healthy upstream"). */
  detail: string;
  /** The CN of the certificate the proxy served on the connection that carried the request. */
  servedCn: string;
  reusedSocket: boolean;
}

interface ClientOptions {
  ca: string;
  cert?: IssuedCert;
  agent?: https.Agent;
}

/** GET https://<host><path> sent to ip:8443 with SNI <host>; the served certificate is verified against `ca` and the host name. */
function httpsGet(ip: string, host: string, path: string, o: ClientOptions): Promise<Served> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: ip, port: HTTPS_PORT, servername: host, path, headers: { host }, ca: o.ca, cert: o.cert?.chain, key: o.cert?.key, agent: o.agent ?? false },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerX509Certificate?.();
        let detail = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (res.statusCode !== 200 && detail.length < 160) detail += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, detail: detail.slice(0, 160), servedCn: commonName(peer), reusedSocket: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out after 15 s')));
    req.on('error', reject);
    req.end();
  });
}

function commonName(cert: X509Certificate | undefined): string {
  return /(?:^|\n)CN=([^\n]*)/.exec(cert?.subject ?? '')?.[1] ?? '';
}

/** "200", or "refused" when the handshake or request failed (MUTUAL without an accepted client certificate). */
async function outcome(ip: string, host: string, o: ClientOptions): Promise<string> {
  try {
    return String((await httpsGet(ip, host, '/status/200', o)).status);
  } catch {
    return 'refused';
  }
}

/** "count × message" lines, most frequent first: a failure under load is usually one cause repeated. */
function summarize(messages: string[]): string {
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m, (counts.get(m) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([m, n]) => `  ${n} × ${m}`).join('\n');
}

/**
 * Clients looping GET through the proxies until stopped, each on its own: per proxy, two on
 * keep-alive connections and two that open a new connection for every request.
 */
class LoadGenerator {
  ok = 0;
  reused = 0;
  /** Each failed request: what went wrong, and when (Date.now()). */
  readonly failures: Array<{ message: string; at: number }> = [];
  /** Served certificate CNs seen on new connections, in order. */
  readonly freshCns: string[] = [];
  private running = true;
  private readonly agents: https.Agent[] = [];
  private readonly loops: Promise<void>[] = [];

  constructor(ips: string[], host: string, ca: string) {
    for (const ip of ips) {
      for (let i = 0; i < 2; i++) {
        const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
        this.agents.push(agent);
        this.loops.push(this.loop(ip, host, { ca, agent }, `keep-alive client ${i} → ${ip}`));
        this.loops.push(this.loop(ip, host, { ca }, `new-connection client ${i} → ${ip}`));
      }
    }
  }

  private async loop(ip: string, host: string, o: ClientOptions, who: string): Promise<void> {
    while (this.running) {
      try {
        const r = await httpsGet(ip, host, '/status/200', o);
        if (r.status !== 200) this.fail(`${who}: status ${r.status} ${r.detail}`);
        else this.ok++;
        if (r.reusedSocket) this.reused++;
        if (!o.agent) this.freshCns.push(r.servedCn);
      } catch (err) {
        this.fail(`${who}: ${(err as Error).message}`);
      }
      // A short pause keeps the 2-core machine's apiserver and proxies responsive.
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private fail(message: string): void {
    this.failures.push({ message, at: Date.now() });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
  }
}

describe('e2e: TLS at the gateway from Secrets and ConfigMaps', function () {
  this.timeout(180_000);
  const env = useNamespace('proxy-tls');
  const proxies: ProxyProcess[] = [];
  let backends: PodBackends | undefined;
  let ips: string[] = [];
  let work: string;
  const serverCa = testCa();
  let clientCaA: TestCa;
  let clientCaB: TestCa;
  let clientA: IssuedCert;
  let clientB: IssuedCert;

  const kubectl = (args: string[], input?: string) => env.cluster.kubectl([...args, '-n', env.namespace], input === undefined ? {} : { input });
  /** Writes PEM files for `kubectl --cert/--key/--from-file`. */
  const pemFiles = (name: string, parts: Record<string, string>) => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(parts)) writeFileSync((out[k] = join(work, `${name}.${k}.pem`)), v);
    return out;
  };
  /** `kubectl create secret tls NAME --cert --key` */
  const createTlsSecret = async (name: string, cert: IssuedCert) => {
    const f = pemFiles(name, { crt: cert.chain, key: cert.key });
    await kubectl(['create', 'secret', 'tls', name, `--cert=${f.crt}`, `--key=${f.key}`]);
  };
  /** `kubectl create ... --dry-run=client -o yaml | kubectl replace -f -` */
  const replaceWith = async (create: string[]) => {
    const yaml = await kubectl([...create, '--dry-run=client', '-o', 'yaml']);
    await kubectl(['replace', '-f', '-'], yaml);
  };
  const pids = () => proxies.map((p) => p.child.pid);

  before(async function () {
    this.timeout(300_000);
    work = mkdtempSync(join(env.cluster.workDir, 'proxy-tls-'));
    clientCaA = newCa('Client CA A');
    clientCaB = newCa('Client CA B');
    clientA = clientCert({ commonName: 'client-a', ca: clientCaA });
    clientB = clientCert({ commonName: 'client-b', ca: clientCaB });

    await installIstioCrds(env.cluster);
    await applyRenderedGateway(env, 2);
    const apply = (objects: unknown[]) => applyObjects(env.cluster, env.namespace, objects);
    await apply([backendDeployment('httpbin', { app: 'httpbin' }, 1), service('httpbin', { app: 'httpbin' }, 8000, 8080)]);
    backends = await servePods(env.cluster, env.namespace, 'app=httpbin', 8080, 1);
    await readyEndpoints(env.cluster, env.namespace, 'httpbin', 1);

    // SIMPLE: a kubernetes.io/tls Secret made by `kubectl create secret tls`.
    await createTlsSecret('site-cert', serverCert({ dnsNames: ['site.example.com'], commonName: 'site-v1' }));
    // MUTUAL with the client CA in the same kubernetes.io/tls Secret (ca.crt), as Istio's docs create it.
    const mtls = serverCert({ dnsNames: ['mtls.example.com'], commonName: 'mtls' });
    const mf = pemFiles('mtls-cert', { crt: mtls.chain, key: mtls.key, ca: clientCaA.cert });
    await kubectl(['create', 'secret', 'generic', 'mtls-cert', '--type=kubernetes.io/tls', `--from-file=tls.crt=${mf.crt}`, `--from-file=tls.key=${mf.key}`, `--from-file=ca.crt=${mf.ca}`]);
    // MUTUAL with caCertCredentialName naming a ConfigMap; the server Secret has no CA.
    await createTlsSecret('cm-cert', serverCert({ dnsNames: ['cm.example.com'], commonName: 'cm' }));
    const ca = pemFiles('client-ca-a', { crt: clientCaA.cert });
    await kubectl(['create', 'configmap', 'client-ca', `--from-file=ca.crt=${ca.crt}`]);

    const https443 = (name: string, host: string, tls: Record<string, string>) => ({ port: { number: 443, name, protocol: 'HTTPS' }, hosts: [host], tls });
    await apply([
      ingressGateway([
        https443('https-site', 'site.example.com', { mode: 'SIMPLE', credentialName: 'site-cert' }),
        https443('https-mtls', 'mtls.example.com', { mode: 'MUTUAL', credentialName: 'mtls-cert' }),
        https443('https-cm', 'cm.example.com', { mode: 'MUTUAL', credentialName: 'cm-cert', caCertCredentialName: 'client-ca' }),
        // Its Secret is created by a test, after the proxies started.
        https443('https-late', 'late.example.com', { mode: 'SIMPLE', credentialName: 'late-cert' }),
      ]),
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'httpbin' },
        spec: {
          hosts: ['site.example.com', 'mtls.example.com', 'cm.example.com', 'late.example.com'],
          gateways: ['ingress'],
          http: [{ route: [{ destination: { host: 'httpbin', port: { number: 8000 } } }] }],
        },
      },
    ]);

    // The second proxy serves from two worker processes (Secrets and ConfigMaps reach them over IPC).
    const started = await startGatewayProxies(env, 2, work, ['--access-log', 'off'], [[], ['--concurrency', '2']]);
    proxies.push(...started.proxies);
    ips = started.ips;
    // Every test starts from proxies that serve: the load test counts every 503 as a failure,
    // and a backend not yet a ready endpoint is rightly a 503 "no healthy upstream" (seen for
    // 27 s on a loaded CI-like machine before readyEndpoints above waited for the EndpointSlice).
    const waitStarted = Date.now();
    let endpointsAtFirst503: string | undefined;
    for (const ip of ips) {
      await eventually(
        async () => {
          const r = await httpsGet(ip, 'site.example.com', '/status/200', { ca: serverCa.cert });
          if (r.status !== 200) {
            endpointsAtFirst503 ??= await kubectl(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=httpbin', '-o', 'jsonpath={range .items[*].endpoints[*]}{.addresses[0]} ready={.conditions.ready} {end}']);
            throw new Error(`status ${r.status} ${r.detail}`);
          }
          return r;
        },
        { timeoutMs: CONVERGE_MS, what: `${ip} to serve site.example.com from the backend` },
      );
    }
    // Logged, not asserted: tells a slow EndpointSlice from a slow proxy when this takes long.
    if (endpointsAtFirst503 !== undefined) {
      console.log(`      the backend was served through every proxy after ${Date.now() - waitStarted} ms; at the first 503 its EndpointSlice listed: ${endpointsAtFirst503 || 'no endpoints'}`);
    }
  });

  afterEach(function () {
    printLogsIfFailed(this, proxies);
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.stop('SIGKILL')));
    await backends?.close();
  });

  it('SIMPLE with a `kubectl create secret tls` Secret: every proxy serves HTTPS with that certificate', async () => {
    for (const ip of ips) {
      // Each request is a new connection; several reach both workers of the second proxy.
      for (let i = 0; i < 4; i++) {
        const r = await eventually(() => httpsGet(ip, 'site.example.com', '/status/200', { ca: serverCa.cert }), { timeoutMs: CONVERGE_MS, what: `HTTPS from ${ip}` });
        assert.equal(r.status, 200);
        assert.equal(r.servedCn, 'site-v1');
      }
    }
  });

  it('replacing the Secret under load: zero failed requests, new handshakes get the new certificate', async () => {
    const load = new LoadGenerator(ips, 'site.example.com', serverCa.cert);
    try {
      await eventually(() => load.ok >= 100, { timeoutMs: CONVERGE_MS, intervalMs: 50, what: 'the load generator to get going' });
      const v2 = serverCert({ dnsNames: ['site.example.com'], commonName: 'site-v2' });
      const f = pemFiles('site-cert-v2', { crt: v2.chain, key: v2.key });
      const started = Date.now();
      await replaceWith(['create', 'secret', 'tls', 'site-cert', `--cert=${f.crt}`, `--key=${f.key}`]);
      const replacedAt = Date.now();
      // Four new connections in a row per proxy (both workers of the second one) get v2.
      for (const ip of ips) {
        await eventually(
          async () => {
            for (let i = 0; i < 4; i++) if ((await httpsGet(ip, 'site.example.com', '/status/200', { ca: serverCa.cert })).servedCn !== 'site-v2') return false;
            return true;
          },
          { timeoutMs: CONVERGE_MS, intervalMs: 20, what: `new handshakes on ${ip} to get the new certificate` },
        );
      }
      const took = Date.now() - started;
      // Keep the load going a little longer on the connections opened before the change.
      const okAtSwitch = load.ok;
      await eventually(() => load.ok >= okAtSwitch + 100, { timeoutMs: CONVERGE_MS, intervalMs: 50, what: 'more requests after the rotation' });
      await load.stop();
      console.log(
        `      Secret rotation: new certificate on every proxy ${took} ms after kubectl started (kubectl replace returned after ${replacedAt - started} ms); ` +
          `${load.ok} requests (${load.reused} on reused connections), ${load.failures.length} failed`,
      );
      const [first, last] = [load.failures[0], load.failures.at(-1)];
      const window = first && last ? ` from ${first.at - started} ms to ${last.at - started} ms after the rotation started` : '';
      assert.equal(load.failures.length, 0, `${load.failures.length} of ${load.ok + load.failures.length} requests failed${window}, by kind:\n${summarize(load.failures.map((f) => f.message))}`);
      assert.ok(load.reused > 0, 'keep-alive connections were reused across the rotation');
      assert.equal(load.freshCns.at(-1), 'site-v2');
      assert.ok(load.freshCns.includes('site-v1'), 'the load ran before the rotation too');
    } finally {
      await load.stop();
    }
  });

  it('MUTUAL with ca.crt in the same kubernetes.io/tls Secret: a client certificate from that CA is served; none, or one from another CA, is refused', async () => {
    for (const ip of ips) {
      for (let i = 0; i < 2; i++) {
        assert.equal(await outcome(ip, 'mtls.example.com', { ca: serverCa.cert, cert: clientA }), '200', ip);
        assert.equal(await outcome(ip, 'mtls.example.com', { ca: serverCa.cert }), 'refused', ip);
        assert.equal(await outcome(ip, 'mtls.example.com', { ca: serverCa.cert, cert: clientB }), 'refused', ip);
      }
    }
  });

  it('MUTUAL with caCertCredentialName naming a ConfigMap, rotated by replacing the ConfigMap', async () => {
    for (const ip of ips) {
      for (let i = 0; i < 2; i++) {
        assert.equal(await outcome(ip, 'cm.example.com', { ca: serverCa.cert, cert: clientA }), '200', ip);
        assert.equal(await outcome(ip, 'cm.example.com', { ca: serverCa.cert }), 'refused', ip);
        assert.equal(await outcome(ip, 'cm.example.com', { ca: serverCa.cert, cert: clientB }), 'refused', ip);
      }
    }
    const before = pids();
    const b = pemFiles('client-ca-b', { crt: clientCaB.cert });
    const started = Date.now();
    await replaceWith(['create', 'configmap', 'client-ca', `--from-file=ca.crt=${b.crt}`]);
    for (const ip of ips) {
      await eventually(
        async () => {
          for (let i = 0; i < 4; i++) if ((await outcome(ip, 'cm.example.com', { ca: serverCa.cert, cert: clientB })) !== '200') return false;
          return true;
        },
        { timeoutMs: CONVERGE_MS, intervalMs: 20, what: `${ip} to trust the ConfigMap's new CA` },
      );
      for (let i = 0; i < 2; i++) assert.equal(await outcome(ip, 'cm.example.com', { ca: serverCa.cert, cert: clientA }), 'refused', ip);
    }
    console.log(`      ConfigMap CA rotation: new CA on every proxy ${Date.now() - started} ms after kubectl started`);
    assert.deepEqual(pids(), before);
    for (const p of proxies) assert.equal(p.child.exitCode, null);
  });

  it('a Secret created after the Gateway activates its server, without a restart', async () => {
    const before = pids();
    for (const ip of ips) {
      assert.equal(await outcome(ip, 'late.example.com', { ca: serverCa.cert }), 'refused', `${ip}: no certificate yet`);
      // The other servers on the port keep working meanwhile.
      assert.equal(await outcome(ip, 'site.example.com', { ca: serverCa.cert }), '200', ip);
    }
    await createTlsSecret('late-cert', serverCert({ dnsNames: ['late.example.com'], commonName: 'late' }));
    for (const ip of ips) {
      await eventually(
        async () => {
          for (let i = 0; i < 4; i++) if ((await httpsGet(ip, 'late.example.com', '/status/200', { ca: serverCa.cert }).catch(() => undefined))?.servedCn !== 'late') return false;
          return true;
        },
        { timeoutMs: CONVERGE_MS, intervalMs: 50, what: `${ip} to serve late.example.com` },
      );
    }
    assert.deepEqual(pids(), before);
    for (const p of proxies) assert.equal(p.child.exitCode, null);
  });
});
