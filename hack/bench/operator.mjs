#!/usr/bin/env node
// Operator benchmark against a real control plane (hack/cluster: etcd, kube-apiserver,
// controller-manager, scheduler, kwok), started here in a state directory and on ports of its
// own so it never collides with the e2e tests or a developer's cluster, and stopped at the end
// (also on Ctrl-C). The operator runs as a local process with the chart's RBAC (the
// ServiceAccount token of charts/portway), exactly as in the e2e tests.
//
//   npx tsc -p tsconfig.json && node hack/bench/operator.mjs
//
// Measures:
//   ready     OPERATOR_BURST (200) GatewayDeployments created at once → the time until every one
//             reports Ready=True for its current generation (includes the controller-manager
//             and kwok making the pods), and until every one is reconciled (observedGeneration)
//   change    OPERATOR_CHANGES (100) spec changes, one at a time (spec.podAnnotations) → the
//             delay from the start of the PATCH to a watch on Deployments seeing the new pod
//             template: p50, p99, max (target p99 < 1 s), next to the PATCH's own round trip
//   memory    the operator's RSS with OPERATOR_TOTAL (1,000) GatewayDeployments, once each is
//             reconciled and the work queue is empty, after 30 s of settling (target ≤ 150 MB)
//   errors    failed reconciles (the operator's metric) and their causes, grouped from its log
// Writes hack/bench/results/operator.json (with the load average at start and end: the machine
// may be shared) and keeps the operator's log next to it (results/operator.log, not committed).
// Nothing asserts: it prints the figures and the targets. Runs unattended; the control plane is
// stopped at the end whatever happens, unless OPERATOR_KEEP=1.
// Settings: OPERATOR_BURST=200 OPERATOR_CHANGES=100 OPERATOR_TOTAL=1000 OPERATOR_OUT=<file>
//   OPERATOR_SERVICE_TYPE=ClusterIP (LoadBalancer runs out of node ports after 692 gateways)
//   OPERATOR_KEEP=1 (leave the control plane and its state dir for inspection)

import { execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BURST = Number(process.env.OPERATOR_BURST ?? 200);
const CHANGES = Number(process.env.OPERATOR_CHANGES ?? 100);
const TOTAL = Number(process.env.OPERATOR_TOTAL ?? 1000);
const OUT = process.env.OPERATOR_OUT ?? join(ROOT, 'hack', 'bench', 'results', 'operator.json');
const LOG_OUT = OUT.replace(/\.json$/, '') + '.log';
const KEEP = process.env.OPERATOR_KEEP === '1';
// ClusterIP, not the default LoadBalancer: a LoadBalancer gateway takes 4 node ports (3 Service
// ports and, with externalTrafficPolicy Local, a health-check port), and the apiserver's
// default range (30000-32767) holds 2,768. From the 693rd gateway on, applying the Service
// failed with "failed to allocate a nodePort: range is full" and those gateways were retried
// for the rest of the run: the reconcile errors of the first 1,000-gateway runs.
const SERVICE_TYPE = process.env.OPERATOR_SERVICE_TYPE ?? 'ClusterIP';
const SYSTEM_NS = 'portway-system';
const NS = 'bench-gateways';
const GROUP = 'portway.dev';
const VERSION = 'v1alpha1';

const log = (m) => process.stderr.write(`[bench-operator ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePorts(n) {
  const servers = Array.from({ length: n }, () => createNetServer());
  return Promise.all(servers.map((s) => new Promise((res, rej) => { s.once('error', rej); s.listen(0, '127.0.0.1', () => res(s.address().port)); })))
    .finally(() => servers.forEach((s) => s.close()));
}

const work = mkdtempSync(join(tmpdir(), 'portway-bench-operator-'));
const stateDir = join(work, 'cluster');
let clusterEnv;
const children = [];

let logFile;

function cleanup() {
  // The operator's log outlives the run (the cause of any reconcile error is in it).
  if (logFile && existsSync(logFile)) {
    try {
      mkdirSync(dirname(LOG_OUT), { recursive: true });
      copyFileSync(logFile, LOG_OUT);
      log(`operator log: ${LOG_OUT}`);
    } catch { /* best effort */ }
  }
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (clusterEnv && !KEEP) {
    try { execFileSync('bash', [join(ROOT, 'hack', 'cluster', 'down.sh')], { env: clusterEnv, stdio: 'inherit' }); } catch { /* best effort */ }
  }
  if (!KEEP) rmSync(work, { recursive: true, force: true });
  else log(`kept ${work}`);
}
process.once('SIGINT', () => { cleanup(); process.exit(130); });
process.once('SIGTERM', () => { cleanup(); process.exit(143); });

function script(name, args = []) {
  return execFileSync('bash', [join(ROOT, 'hack', 'cluster', name), ...args], { env: clusterEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
}

let BINS;
function kubectl(args, input) {
  return execFileSync(BINS.kubectl, args, { env: { ...process.env, KUBECONFIG: join(stateDir, 'kubeconfig') }, input, encoding: 'utf8', maxBuffer: 256 << 20 });
}

// The operator's own client (no @kubernetes/client-node): raw requests and a watch.
const { kubeRequest } = await import(join(ROOT, 'dist', 'kube', 'kube-request.js'));
const { connectionFromKubeconfig } = await import(join(ROOT, 'dist', 'kube', 'connection.js'));
const { HttpsListWatchClient } = await import(join(ROOT, 'dist', 'kube', 'list-watch.js'));
let kc;

const gdPath = (name) => `/apis/${GROUP}/${VERSION}/namespaces/${NS}/gatewaydeployments${name ? `/${name}` : ''}`;
const gdName = (i) => `gw-${String(i).padStart(4, '0')}`;

async function createGateways(from, to) {
  const names = [];
  for (let i = from; i < to; i++) names.push(gdName(i));
  // "At once": 32 requests in flight, as fast as the apiserver takes them.
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < names.length) {
      const name = names[next++];
      await kubeRequest(kc, {
        method: 'POST',
        path: gdPath(),
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'GatewayDeployment', metadata: { name, namespace: NS }, spec: { replicas: 1, autoscaling: { enabled: false }, service: { type: SERVICE_TYPE } } },
      });
    }
  }));
}

/** Lists the GatewayDeployments and counts those reconciled and those Ready for their generation. */
async function gatewayCounts() {
  const list = await kubeRequest(kc, { method: 'GET', path: gdPath() });
  let reconciled = 0;
  let ready = 0;
  for (const g of list.items) {
    const current = g.status?.observedGeneration === g.metadata.generation;
    if (current) reconciled++;
    if (current && g.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ready++;
  }
  return { total: list.items.length, reconciled, ready };
}

/** Polls until `count` GatewayDeployments are reconciled and ready; returns the ms of each milestone. */
async function waitForGateways(count, t0, timeoutMs) {
  let reconciledMs;
  let last;
  for (;;) {
    last = await gatewayCounts();
    const now = performance.now() - t0;
    if (reconciledMs === undefined && last.reconciled >= count) reconciledMs = now;
    if (last.ready >= count) return { reconciledMs, readyMs: now, ...last };
    if (now > timeoutMs) return { reconciledMs, readyMs: undefined, timedOut: true, ...last };
    await sleep(250);
  }
}

function rssMb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Every sample of a metric, by its label set. */
async function metricSamples(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = {};
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))) out[m[1] ?? ''] = Number(m[2]);
  return out;
}

/**
 * Groups the operator's "reconcile failed" lines by cause: the error message with names,
 * numbers and resourceVersions blanked, so 4,000 lines become a handful of kinds.
 */
function errorCauses(file) {
  const causes = new Map();
  let lines = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.includes('"reconcile failed"') && !line.includes('"level":"error"')) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    lines++;
    const cause = String(entry.error ?? entry.msg)
      .replace(/gw-\d+/g, 'gw-N')
      .replace(/\b\d+\b/g, 'N')
      .slice(0, 300);
    causes.set(cause, (causes.get(cause) ?? 0) + 1);
  }
  return { lines, causes: [...causes].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([cause, count]) => ({ count, cause })) };
}

const load = () => loadavg().map((l) => Math.round(l * 100) / 100);

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
  const result = {
    date: new Date().toISOString(),
    commit: (() => {
      try {
        const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
        const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'operator', 'kube', 'cli'], { encoding: 'utf8' }).trim() !== '';
        return dirty ? `${head} (operator, kube or cli changed since)` : head;
      } catch {
        return undefined;
      }
    })(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), kernel: release(), node: process.version, loadAverageAtStart: load() },
    settings: { burst: BURST, changes: CHANGES, total: TOTAL, serviceType: SERVICE_TYPE },
    targets: { changeP99Ms: 1000, rssMb: 150 },
  };

  const [api, ec, ep, kcm, sch, health] = await freePorts(6);
  clusterEnv = {
    ...process.env, PORTWAY_CLUSTER_DIR: stateDir, PORTWAY_APISERVER_PORT: String(api), PORTWAY_ETCD_CLIENT_PORT: String(ec),
    PORTWAY_ETCD_PEER_PORT: String(ep), PORTWAY_KCM_PORT: String(kcm), PORTWAY_SCHEDULER_PORT: String(sch), PORTWAY_POD_NET: `127.${randomInt(2, 255)}`, PORTWAY_NODES: '3',
  };
  delete clusterEnv.KUBECONFIG;
  BINS = Object.fromEntries(script('build.sh', ['--print']).trim().split('\n').map((p) => [p.slice(p.lastIndexOf('/') + 1), p]));
  log(`starting a control plane in ${stateDir}`);
  script('up.sh');
  kc = connectionFromKubeconfig(join(stateDir, 'kubeconfig'));

  // The chart, as users install it (its operator pod is fake; the real one runs below).
  const chart = join(ROOT, 'charts', 'portway');
  kubectl(['create', 'namespace', SYSTEM_NS]);
  kubectl(['create', 'namespace', NS]);
  kubectl(['apply', '--server-side', '-f', join(chart, 'crds')]);
  kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/gatewaydeployments.${GROUP}`]);
  const rendered = execFileSync(BINS.helm, ['template', 'portway', chart, '--namespace', SYSTEM_NS, '--kube-version', 'v1.37.2', '--skip-tests', '--set', 'replicas=1'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  kubectl(['apply', '--server-side', '-n', SYSTEM_NS, '-f', '-'], rendered);
  const saKubeconfig = join(work, 'operator.kubeconfig');
  execFileSync('bash', [join(ROOT, 'hack', 'cluster', 'sa-kubeconfig'), SYSTEM_NS, 'portway-operator', saKubeconfig], { env: { ...clusterEnv, KUBECONFIG: join(stateDir, 'kubeconfig') }, stdio: ['ignore', 'ignore', 'inherit'] });

  logFile = join(work, 'operator.log');
  const operator = spawn(process.execPath, [join(ROOT, 'bin', 'portway.js'), 'operator', '--namespace', SYSTEM_NS, '--leader-elect', 'false', '--health-port', String(health)], {
    env: { ...process.env, KUBECONFIG: saKubeconfig, PORTWAY_PROXY_IMAGE: 'example.invalid/portway:bench', PORTWAY_LOG_LEVEL: 'info', PORTWAY_WEBHOOK_PORT: '0' },
    stdio: ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')],
  });
  children.push(operator);
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${health}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (i > 240) throw new Error(`the operator did not become ready; see ${logFile}`);
    await sleep(250);
  }
  await sleep(2000);
  result.idle = { rssMb: Math.round(rssMb(operator.pid).rss * 10) / 10 };
  log(`operator ready (pid ${operator.pid}), RSS ${result.idle.rssMb} MB`);

  // 1. BURST GatewayDeployments at once → all Ready.
  log(`creating ${BURST} GatewayDeployments at once`);
  let t0 = performance.now();
  await createGateways(0, BURST);
  const createdMs = performance.now() - t0;
  const burst = await waitForGateways(BURST, t0, 600_000);
  result.ready = { count: BURST, createRequestsMs: Math.round(createdMs), allReconciledMs: Math.round(burst.reconciledMs ?? NaN), allReadyMs: burst.readyMs === undefined ? null : Math.round(burst.readyMs), timedOut: !!burst.timedOut };
  log(`${BURST} created in ${(createdMs / 1000).toFixed(1)} s; all reconciled after ${(burst.reconciledMs / 1000).toFixed(1)} s, all Ready after ${burst.readyMs === undefined ? 'TIMEOUT' : `${(burst.readyMs / 1000).toFixed(1)} s`}`);
  await sleep(3000);

  // 2. Spec change → Deployment updated, as a watch on Deployments sees it.
  const seen = new Map(); // "name/value" → performance.now()
  let stopWatch = () => undefined;
  const watching = new HttpsListWatchClient(kc, 'portway-bench').watch(`/apis/apps/v1/namespaces/${NS}/deployments`, { resourceVersion: '0', timeoutSeconds: 3600, idleMs: 600_000 }, (_phase, d) => {
    const v = d?.spec?.template?.metadata?.annotations?.['bench/change'];
    if (v !== undefined) {
      const key = `${d.metadata.name}/${v}`;
      if (!seen.has(key)) seen.set(key, performance.now());
    }
  }, (abort) => (stopWatch = abort));
  watching.catch((err) => log(`the Deployment watch failed: ${err.message}`));
  await sleep(1000);
  const delays = [];
  // The PATCH's own round trip: how busy the apiserver is, a floor under the delay.
  const patches = [];
  // Each change with its wall-clock start, to line up with the operator's log ("updated" lines).
  const samples = [];
  log(`${CHANGES} spec changes, one at a time`);
  for (let i = 0; i < CHANGES; i++) {
    const name = gdName(i % BURST);
    const value = `c${i}`;
    const start = performance.now();
    const startedAt = new Date().toISOString();
    await kubeRequest(kc, { method: 'PATCH', path: gdPath(name), contentType: 'application/merge-patch+json', body: { spec: { podAnnotations: { 'bench/change': value } } } });
    patches.push(performance.now() - start);
    for (;;) {
      const at = seen.get(`${name}/${value}`);
      if (at !== undefined) {
        delays.push(at - start);
        samples.push({ name, startedAt, patchMs: Math.round(patches.at(-1)), delayMs: Math.round(at - start) });
        break;
      }
      if (performance.now() - start > 30_000) {
        delays.push(Infinity);
        break;
      }
      await sleep(2);
    }
  }
  stopWatch();
  delays.sort((a, b) => a - b);
  patches.sort((a, b) => a - b);
  result.change = {
    count: delays.length,
    p50Ms: Math.round(percentile(delays, 50)),
    p99Ms: Math.round(percentile(delays, 99)),
    maxMs: Math.round(delays.at(-1)),
    patchRoundTripP50Ms: Math.round(percentile(patches, 50)),
    patchRoundTripP99Ms: Math.round(percentile(patches, 99)),
    meetsTarget: percentile(delays, 99) < 1000,
    samples,
  };
  log(`spec change → Deployment: p50 ${result.change.p50Ms} ms, p99 ${result.change.p99Ms} ms, max ${result.change.maxMs} ms (target p99 < 1000 ms); the PATCH alone p50 ${result.change.patchRoundTripP50Ms} ms, p99 ${result.change.patchRoundTripP99Ms} ms; load average ${load().join(' ')}`);

  // 3. Memory with TOTAL GatewayDeployments.
  log(`creating ${TOTAL - BURST} more GatewayDeployments (${TOTAL} in all)`);
  t0 = performance.now();
  await createGateways(BURST, TOTAL);
  const total = await waitForGateways(TOTAL, t0, 900_000);
  for (let i = 0; i < 120 && (await metric(health, 'portway_operator_workqueue_depth')) !== 0; i++) await sleep(500);
  await sleep(10_000);
  const mem10 = rssMb(operator.pid);
  await sleep(20_000);
  const mem = rssMb(operator.pid);
  result.memory = {
    gatewayDeployments: TOTAL,
    reconciled: total.reconciled,
    ready: total.ready,
    allReconciledMs: total.reconciledMs === undefined ? null : Math.round(total.reconciledMs),
    allReadyMs: total.readyMs === undefined ? null : Math.round(total.readyMs),
    rssMb: Math.round(mem.rss * 10) / 10,
    rssAfter10sMb: Math.round(mem10.rss * 10) / 10,
    peakRssMb: Math.round(mem.peak * 10) / 10,
    heapUsedMb: Math.round(((await metric(health, 'nodejs_heap_size_used_bytes')) ?? NaN) / 2 ** 20 * 10) / 10,
    meetsTarget: mem.rss <= 150,
  };
  const reconciles = await metricSamples(health, 'portway_operator_reconcile_total');
  result.reconciles = {
    success: reconciles['{result="success"}'],
    error: reconciles['{result="error"}'],
    conflict: reconciles['{result="conflict"}'],
    apiErrorsByOperation: await metricSamples(health, 'portway_operator_errors_total'),
    errorCauses: errorCauses(logFile),
  };
  result.machine.loadAverageAtEnd = load();
  log(`${TOTAL} GatewayDeployments: ${total.reconciled} reconciled${total.reconciledMs ? ` after ${(total.reconciledMs / 1000).toFixed(1)} s` : ''}, ${total.ready} Ready; operator RSS ${mem.rss.toFixed(1)} MB (peak ${mem.peak.toFixed(1)} MB; target ≤ 150 MB)`);
  log(`reconciles: ${result.reconciles.success} succeeded, ${result.reconciles.error} failed; load average ${result.machine.loadAverageAtStart.join(' ')} at start, ${result.machine.loadAverageAtEnd.join(' ')} at end`);
  for (const c of result.reconciles.errorCauses.causes) log(`  ${c.count} × ${c.cause}`);

  operator.kill('SIGTERM');
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
  log(`wrote ${OUT}`);
}

try {
  await main();
} catch (err) {
  log(`failed: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
