#!/usr/bin/env node
// Configuration propagation and memory of `portway proxy` against a real control plane
// (hack/cluster: etcd, kube-apiserver, controller-manager, scheduler, kwok), started here in a
// state directory and on ports of its own so it never collides with the e2e tests or a
// developer's cluster, and stopped at the end (also on Ctrl-C).
//
//   npx tsc -p tsconfig.json && node hack/bench/propagation.mjs
//
// Measures, for PROPAGATION_CHANGES (100) changes of each kind, the delay from the start of the
// API write to the first response that shows it, polling the proxy as fast as one keep-alive
// connection allows (one request at a time, no sleep):
//   virtualservice  a VirtualService's route prefix changes (/v<i>) → /v<i>/x answers 200
//   endpointslice   the only endpoint of a Service's EndpointSlice moves to another backend → the
//                   response comes from that backend
//   secret          the Secret named by an HTTPS server's credentialName gets the other of two
//                   certificates → a new TLS handshake presents it
// then the proxy's RSS (after sync and a forced GC) with 1,000 and with 10,000 VirtualServices
// in the cluster, 10 of which bind to its Gateway. Writes hack/bench/results/propagation.json.
// Settings: PROPAGATION_CHANGES=100 PROPAGATION_VS_COUNTS=1000,10000 PROPAGATION_OUT=<file>
//   PROPAGATION_KEEP=1 (leave the control plane and temp files for inspection)

import { execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir, cpus, totalmem, release } from 'node:os';
import { dirname, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { X509Certificate } from 'node:crypto';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHANGES = Number(process.env.PROPAGATION_CHANGES ?? 100);
const VS_COUNTS = (process.env.PROPAGATION_VS_COUNTS ?? '1000,10000').split(',').map(Number).filter(Boolean);
const OUT = process.env.PROPAGATION_OUT ?? join(ROOT, 'hack', 'bench', 'results', 'propagation.json');
const KEEP = process.env.PROPAGATION_KEEP === '1';
const NS = 'bench-gw';
const NOISE_NS = 'bench-noise';

const log = (m) => process.stderr.write(`[propagation ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- control plane ---------------------------------------------------------------------------

function freePorts(n) {
  const servers = Array.from({ length: n }, () => createNetServer());
  return Promise.all(servers.map((s) => new Promise((res, rej) => { s.once('error', rej); s.listen(0, '127.0.0.1', () => res(s.address().port)); })))
    .finally(() => servers.forEach((s) => s.close()));
}

const work = mkdtempSync(join(tmpdir(), 'portway-propagation-'));
const stateDir = join(work, 'cluster');
const podNet = `127.${randomInt(2, 255)}`;
let clusterEnv;
const children = [];

// The result so far: written after every step, so an interrupted run still leaves its figures.
let partial;
function save(result, incomplete) {
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(incomplete ? { ...result, incomplete } : result, null, 2) + '\n');
}

function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (clusterEnv && !KEEP) {
    try { execFileSync('bash', [join(ROOT, 'hack', 'cluster', 'down.sh')], { env: clusterEnv, stdio: 'inherit' }); } catch { /* best effort */ }
  }
  if (!KEEP) rmSync(work, { recursive: true, force: true });
}
const interrupted = (code) => () => {
  if (partial) save(partial, 'interrupted before every step was measured');
  cleanup();
  process.exit(code);
};
process.once('SIGINT', interrupted(130));
process.once('SIGTERM', interrupted(143));

function script(name, args = []) {
  return execFileSync('bash', [join(ROOT, 'hack', 'cluster', name), ...args], { env: clusterEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
}

let KUBECTL;
function kubectl(args, input) {
  return execFileSync(KUBECTL, args, { env: { ...process.env, KUBECONFIG: join(stateDir, 'kubeconfig') }, input, encoding: 'utf8', maxBuffer: 256 << 20 });
}

// ---- Kubernetes API (admin), with the client the proxy uses --------------------------------

const k8s = await import('@kubernetes/client-node');
let api; // { core, discovery, custom }

async function createOrReplace(kind, obj) {
  const ns = obj.metadata.namespace;
  const name = obj.metadata.name;
  const isNotFound = (e) => e?.code === 404;
  if (kind === 'VirtualService') {
    const args = { group: 'networking.istio.io', version: 'v1', namespace: ns, plural: 'virtualservices' };
    try {
      const cur = await api.custom.getNamespacedCustomObject({ ...args, name });
      return await api.custom.replaceNamespacedCustomObject({ ...args, name, body: { ...obj, metadata: { ...obj.metadata, resourceVersion: cur.metadata.resourceVersion } } });
    } catch (e) {
      if (!isNotFound(e)) throw e;
      return api.custom.createNamespacedCustomObject({ ...args, body: obj });
    }
  }
  throw new Error(kind);
}

// ---- proxy and backends ---------------------------------------------------------------------

function labelServer(host, port, name) {
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name }).end(name));
  });
  return new Promise((res, rej) => { server.once('error', rej); server.listen(port, host, () => res(server)); });
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
function get(ip, port, host, path) {
  return new Promise((resolve, reject) => {
    const req = request({ host: ip, port, path, agent, headers: { host } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, servedBy: res.headers['x-served-by'], body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

function tlsFingerprint(ip, port, servername) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: ip, port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

/** Polls `check` back to back until it is true; returns ms since `t0` (performance.now()). */
async function pollUntil(check, t0, timeoutMs = 30_000) {
  let polls = 0;
  for (;;) {
    polls++;
    let ok = false;
    try { ok = await check(); } catch { ok = false; }
    const now = performance.now();
    if (ok) return { ms: now - t0, polls };
    if (now - t0 > timeoutMs) throw new Error(`not observed within ${timeoutMs} ms`);
    if (!ok && polls % 200 === 0) await sleep(0);
  }
}

function summary(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  const r = (x) => Math.round(x * 10) / 10;
  return { n: s.length, p50Ms: r(q(0.5)), p90Ms: r(q(0.9)), p99Ms: r(q(0.99)), maxMs: r(s.at(-1)), minMs: r(s[0]), meanMs: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

function vsObject(ns, name, hosts, gateways, routes, backendHost, port = 8000) {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: ns },
    spec: {
      hosts,
      gateways,
      http: routes.map((prefix, i) => ({
        name: `r${i}`,
        match: [{ uri: { prefix } }],
        route: [{ destination: { host: backendHost, port: { number: port } } }],
        timeout: '5s',
        retries: { attempts: 2, perTryTimeout: '2s', retryOn: 'connect-failure,reset' },
      })),
    },
  };
}

async function main() {
  const result = {
    benchmark: 'portway configuration propagation and memory (hack/bench/propagation.mjs)',
    date: new Date().toISOString(),
    commit: (() => { try { return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim(); } catch { return undefined; } })(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGB: Math.round(totalmem() / 2 ** 30), kernel: release(), node: process.version, loadavgAtStart: readFileSync('/proc/loadavg', 'utf8').trim() },
    settings: { changes: CHANGES, vsCounts: VS_COUNTS, debounceMs: 100 },
    propagation: {},
    memory: [],
    targets: { p99Ms: 1000, rssMb: { 1000: 100, 10000: 150 } },
  };
  partial = result;

  // Control plane of our own, on free ports (tried again on new ports if one was taken meanwhile).
  for (let attempt = 1; ; attempt++) {
    const [api_, ec, ep, kcm, sch] = await freePorts(5);
    clusterEnv = {
      ...process.env, PORTWAY_CLUSTER_DIR: stateDir, PORTWAY_APISERVER_PORT: String(api_), PORTWAY_ETCD_CLIENT_PORT: String(ec),
      PORTWAY_ETCD_PEER_PORT: String(ep), PORTWAY_KCM_PORT: String(kcm), PORTWAY_SCHEDULER_PORT: String(sch), PORTWAY_POD_NET: podNet, PORTWAY_NODES: '1',
    };
    delete clusterEnv.KUBECONFIG;
    if (!KUBECTL) KUBECTL = script('build.sh', ['--print']).trim().split('\n').find((b) => b.endsWith('/kubectl'));
    log(`starting a control plane in ${stateDir} (pods on ${podNet}.0.0/16)`);
    try {
      script('up.sh');
      break;
    } catch (e) {
      if (attempt >= 3) throw e;
      log('up.sh failed; stopping what it started and trying other ports');
      script('down.sh');
    }
  }
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(join(stateDir, 'kubeconfig'));
  api = { core: kc.makeApiClient(k8s.CoreV1Api), discovery: kc.makeApiClient(k8s.DiscoveryV1Api), custom: kc.makeApiClient(k8s.CustomObjectsApi) };

  kubectl(['apply', '--server-side', '-f', join(ROOT, 'crds', 'istio', 'networking.istio.io.yaml')]);
  kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/virtualservices.networking.istio.io', 'crd/gateways.networking.istio.io']);
  kubectl(['create', 'namespace', NS]);
  kubectl(['create', 'namespace', NOISE_NS]);

  // What the operator renders for a one-replica GatewayDeployment (ServiceAccount, RBAC, Deployment).
  const { renderGatewayObjects } = await import(join(ROOT, 'dist', 'operator', 'render', 'index.js'));
  const rendered = renderGatewayObjects(
    { apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name: 'istio-ingressgateway', namespace: NS, uid: '00000000-0000-0000-0000-000000000000' }, spec: { replicas: 1 } },
    { defaultImage: 'example.invalid/portway:bench' },
  ).map((o) => { const c = structuredClone(o); delete c.metadata.ownerReferences; return c; });
  kubectl(['apply', '--server-side', '-n', NS, '-f', '-'], rendered.map((o) => JSON.stringify(o)).join('\n'));

  // Backends: two local servers at unused pod-network addresses; a Service without a selector
  // whose EndpointSlice the benchmark moves between them.
  const backendIps = [`${podNet}.250.1`, `${podNet}.250.2`];
  const servers = await Promise.all(backendIps.map((ip, i) => labelServer(ip, 8080, `backend-${i}`)));
  const certs = ['a', 'b'].map((n) => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=secure.example.com`,
      '-addext', 'subjectAltName=DNS:secure.example.com', '-keyout', join(work, `${n}.key`), '-out', join(work, `${n}.crt`)], { stdio: 'ignore' });
    const crt = readFileSync(join(work, `${n}.crt`), 'utf8');
    return { crt, key: readFileSync(join(work, `${n}.key`), 'utf8'), fingerprint: new X509Certificate(crt).fingerprint256 };
  });
  const secretBody = (c) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'secure-cert', namespace: NS }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(c.crt).toString('base64'), 'tls.key': Buffer.from(c.key).toString('base64') } });
  const sliceBody = (ip) => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'shift-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'shift', 'endpointslice.kubernetes.io/managed-by': 'bench.portway.dev' } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: [ip], conditions: { ready: true } }],
  });
  const objects = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'shift', namespace: NS }, spec: { ports: [{ name: 'http', port: 8000, targetPort: 8080 }] } },
    sliceBody(backendIps[0]),
    secretBody(certs[0]),
    {
      apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'ingress', namespace: NS },
      spec: {
        selector: { istio: 'ingressgateway' },
        servers: [
          { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] },
          { port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['secure.example.com'], tls: { mode: 'SIMPLE', credentialName: 'secure-cert' } },
        ],
      },
    },
    vsObject(NS, 'moving', ['moving.example.com'], ['ingress'], ['/v0'], 'shift'),
    vsObject(NS, 'shift', ['shift.example.com', 'secure.example.com'], ['ingress'], ['/'], 'shift'),
  ];
  kubectl(['apply', '--server-side', '-f', '-'], objects.map((o) => JSON.stringify(o)).join('\n'));

  // The proxy at the gateway pod's IP, as the rendered ServiceAccount.
  let pod;
  for (let i = 0; i < 240 && !pod; i++) {
    const pods = await api.core.listNamespacedPod({ namespace: NS, labelSelector: 'istio=ingressgateway' });
    pod = pods.items.find((p) => p.status?.phase === 'Running' && p.status.podIP);
    if (!pod) await sleep(250);
  }
  if (!pod) throw new Error('no Running gateway pod');
  const ip = pod.status.podIP;
  const saKubeconfig = join(work, 'sa.kubeconfig');
  script('sa-kubeconfig', [NS, 'istio-ingressgateway', saKubeconfig]);
  const labelsFile = join(work, 'labels');
  writeFileSync(labelsFile, Object.entries(pod.metadata.labels).map(([k, v]) => `${k}="${v}"`).join('\n'));
  const [adminPort] = await freePorts(1);
  // A preload that runs a full GC on SIGUSR2, so RSS is measured after a collection.
  const preload = join(work, 'gc-on-sigusr2.cjs');
  writeFileSync(preload, "process.on('SIGUSR2', () => { globalThis.gc(); globalThis.gc(); });\n");
  const proxyLog = [];
  const proxy = spawn(process.execPath, ['--expose-gc', '--require', preload, join(ROOT, 'bin', 'portway.js'), 'proxy', '--bind-address', ip, '--labels-file', labelsFile,
    '--port-map', '80=8080,443=8443', '--status-port', '15021', '--metrics-port', '15090', '--admin-port', String(adminPort), '--access-log', 'off'],
  { env: { ...process.env, KUBECONFIG: saKubeconfig, POD_NAMESPACE: NS, POD_NAME: pod.metadata.name }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(proxy);
  proxy.stderr.on('data', (d) => proxyLog.push(d.toString()));
  for (let i = 0; ; i++) {
    try { if ((await fetch(`http://${ip}:15021/healthz/ready`)).status === 200) break; } catch { /* not yet */ }
    if (proxy.exitCode !== null || i > 1200) throw new Error(`proxy not ready:\n${proxyLog.join('')}`);
    await sleep(50);
  }
  for (let i = 0; ; i++) {
    try { if ((await get(ip, 8080, 'moving.example.com', '/v0/x')).status === 200 && (await get(ip, 8080, 'shift.example.com', '/')).servedBy === 'backend-0') break; } catch { /* not yet */ }
    if (i > 600) throw new Error(`routes not served:\n${proxyLog.join('')}`);
    await sleep(50);
  }
  log(`proxy ready at ${ip} (pid ${proxy.pid})`);

  // 1. VirtualService update → new route served.
  {
    const samples = []; const writes = [];
    for (let i = 1; i <= CHANGES; i++) {
      const t0 = performance.now();
      await createOrReplace('VirtualService', vsObject(NS, 'moving', ['moving.example.com'], ['ingress'], [`/v${i}`], 'shift'));
      writes.push(performance.now() - t0);
      const { ms } = await pollUntil(async () => (await get(ip, 8080, 'moving.example.com', `/v${i}/x`)).status === 200, t0);
      samples.push(ms);
    }
    result.propagation.virtualservice = { what: 'VirtualService route prefix /v<i-1> → /v<i>: from the start of the PUT to the first 200 on /v<i>/x', ...summary(samples), apiWrite: summary(writes) };
    save(result, 'running');
    log(`virtualservice: ${JSON.stringify(result.propagation.virtualservice)}`);
  }

  // 2. EndpointSlice change → traffic shifted.
  {
    const samples = []; const writes = [];
    for (let i = 1; i <= CHANGES; i++) {
      const target = i % 2;
      const t0 = performance.now();
      const cur = await api.discovery.readNamespacedEndpointSlice({ name: 'shift-1', namespace: NS });
      const body = sliceBody(backendIps[target]);
      body.metadata.resourceVersion = cur.metadata.resourceVersion;
      await api.discovery.replaceNamespacedEndpointSlice({ name: 'shift-1', namespace: NS, body });
      writes.push(performance.now() - t0);
      const { ms } = await pollUntil(async () => (await get(ip, 8080, 'shift.example.com', '/')).servedBy === `backend-${target}`, t0);
      samples.push(ms);
    }
    result.propagation.endpointslice = { what: "EndpointSlice's only endpoint moved to the other backend: from the start of the GET+PUT to the first response from that backend", ...summary(samples), apiWrite: summary(writes) };
    save(result, 'running');
    log(`endpointslice: ${JSON.stringify(result.propagation.endpointslice)}`);
  }

  // 3. Secret update → new certificate served (HTTPS server with credentialName).
  {
    let httpsWorks = false;
    try { httpsWorks = (await tlsFingerprint(ip, 8443, 'secure.example.com')) === certs[0].fingerprint; } catch (e) { result.propagation.secretError = e.message; }
    if (!httpsWorks) {
      result.propagation.secret = { skipped: 'the HTTPS server with credentialName did not present the Secret\'s certificate' };
    } else {
      const samples = []; const writes = [];
      for (let i = 1; i <= CHANGES; i++) {
        const c = certs[i % 2];
        const t0 = performance.now();
        await api.core.replaceNamespacedSecret({ name: 'secure-cert', namespace: NS, body: secretBody(c) });
        writes.push(performance.now() - t0);
        const { ms } = await pollUntil(async () => (await tlsFingerprint(ip, 8443, 'secure.example.com')) === c.fingerprint, t0);
        samples.push(ms);
      }
      result.propagation.secret = { what: 'kubernetes.io/tls Secret replaced with the other certificate: from the start of the PUT to the first TLS handshake that presents it', ...summary(samples), apiWrite: summary(writes) };
    }
    save(result, 'running');
    log(`secret: ${JSON.stringify(result.propagation.secret)}`);
  }

  // 4. Memory with N VirtualServices in the cluster, 10 of which bind to this gateway.
  // Two figures: 2 s after the last change (with a full GC), and settled: after V8's memory
  // reducer has given back the young generation that the back-to-back polling of the
  // propagation runs grew (it runs once allocation has been quiet for some seconds; a full GC
  // alone does not shrink it). The target is about what config costs, so it is judged on the
  // settled figure; both are printed.
  const MEMORY_SETTLE_MS = Number(process.env.PROPAGATION_MEMORY_SETTLE_MS ?? 20_000);
  const measureRss = async (label) => {
    const gcThenRss = async () => {
      proxy.kill('SIGUSR2');
      await sleep(1_500);
      return rssKb(proxy.pid);
    };
    await sleep(2_000);
    const rss = await gcThenRss();
    await sleep(MEMORY_SETTLE_MS);
    const settled = await gcThenRss();
    const m = await (await fetch(`http://${ip}:15090/stats/prometheus`)).text();
    const heap = Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(m)?.[1] ?? NaN);
    log(`${label}: RSS ${(rss / 1024).toFixed(1)} MB at 2 s, ${(settled / 1024).toFixed(1)} MB settled, heap used ${(heap / 2 ** 20).toFixed(1)} MB`);
    return { rssMb: Math.round(rss / 102.4) / 10, settledRssMb: Math.round(settled / 102.4) / 10, heapUsedMb: Math.round(heap / 2 ** 20 * 10) / 10 };
  };
  result.memory.push({ virtualServices: 2, bound: 2, ...(await measureRss('baseline')) });
  let created = 0;
  const createVs = async (from, to) => {
    const queue = [];
    for (let i = from; i < to; i++) queue.push(i);
    await Promise.all(Array.from({ length: 32 }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        // Realistic unrelated config: another gateway's hosts, five routes each.
        const body = vsObject(NOISE_NS, `noise-${i}`, [`app-${i}.noise.example.com`], [`${NOISE_NS}/other-gateway`], ['/api', '/static', '/login', '/v1', '/v2'], `svc-${i}.${NOISE_NS}.svc.cluster.local`, 8080);
        for (let attempt = 0; ; attempt++) {
          try { await api.custom.createNamespacedCustomObject({ group: 'networking.istio.io', version: 'v1', namespace: NOISE_NS, plural: 'virtualservices', body }); break; } catch (e) {
            if (e?.code === 409) break;
            if (attempt > 5) throw e;
            await sleep(200 * (attempt + 1));
          }
        }
      }
    }));
  };
  for (const total of VS_COUNTS) {
    const noise = total - 10;
    const t0 = performance.now();
    await createVs(created, noise);
    created = noise;
    log(`${noise} unrelated VirtualServices in the cluster (${((performance.now() - t0) / 1000).toFixed(1)} s to create)`);
    // 10 that bind, written last: when the 10th is served, every earlier event has been seen.
    const bound = Array.from({ length: 10 }, (_, j) => vsObject(NS, `bound-${j}`, [`bound-${j}.example.com`], ['ingress'], ['/', '/a', '/b'], 'shift'));
    const mark = `m${total}`;
    bound[9].spec.http[0].match.push({ uri: { prefix: `/${mark}` } });
    for (const b of bound) await createOrReplace('VirtualService', b);
    const ts = performance.now();
    await pollUntil(async () => (await get(ip, 8080, 'bound-9.example.com', `/${mark}`)).status === 200, ts, 300_000);
    const syncMs = Math.round(performance.now() - ts);
    // One more change at this size: how long a route change takes with this much config around.
    const samples = [];
    for (let i = 0; i < 10; i++) {
      const p = `/big${total}-${i}`;
      const tc = performance.now();
      await createOrReplace('VirtualService', vsObject(NS, 'moving', ['moving.example.com'], ['ingress'], [p], 'shift'));
      samples.push((await pollUntil(async () => (await get(ip, 8080, 'moving.example.com', `${p}/x`)).status === 200, tc)).ms);
    }
    const entry = { virtualServices: total + 2, bound: 12, lastBoundServedAfterMs: syncMs, vsChangeAtThisSize: summary(samples), ...(await measureRss(`${total} VirtualServices`)) };
    entry.target = result.targets.rssMb[total];
    result.memory.push(entry);
    save(result, 'running');
  }
  result.proxyWarnings = proxyLog.join('').split('\n').filter((l) => /error|warning/.test(l)).slice(0, 20);
  result.proxyRestartedOrExited = proxy.exitCode !== null;
  servers.forEach((s) => s.close());
  return result;
}

let exitCode = 0;
try {
  const result = await main();
  save(result);
  const row = (k, v) => (v?.p50Ms === undefined ? `${k.padEnd(16)} ${v?.skipped ?? 'n/a'}` : `${k.padEnd(16)} p50 ${String(v.p50Ms).padStart(7)} ms  p99 ${String(v.p99Ms).padStart(7)} ms  max ${String(v.maxMs).padStart(7)} ms  (n=${v.n}; API write p50 ${v.apiWrite.p50Ms} ms)`);
  console.log('\nchange → served      (target p99 < 1000 ms)');
  for (const [k, v] of Object.entries(result.propagation)) if (typeof v === 'object') console.log(row(k, v));
  console.log('\nproxy memory after sync + GC');
  for (const m of result.memory) console.log(`${String(m.virtualServices).padStart(6)} VirtualServices (${m.bound} bound): RSS ${m.settledRssMb} MB settled${m.target ? ` (target ≤ ${m.target} MB)` : ''}, ${m.rssMb} MB 2 s after the last change, heap ${m.heapUsedMb} MB${m.vsChangeAtThisSize ? `; VS change p50 ${m.vsChangeAtThisSize.p50Ms} ms p99 ${m.vsChangeAtThisSize.p99Ms} ms` : ''}`);
  console.log(`\nwritten to ${OUT}`);
} catch (e) {
  log(`failed: ${e.stack ?? e}`);
  exitCode = 1;
} finally {
  agent.destroy();
  cleanup();
}
process.exit(exitCode);
