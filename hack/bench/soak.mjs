// Portway's memory soak (issue 13, "Done when"): one `portway proxy` with an HTTP listener and an
// HTTPS listener (SIMPLE TLS) in front of the benchmark backend, under a bounded, paced mix of
// traffic for --minutes N (default 30): HTTP/1.1 keep-alive and one connection per request, h2c
// (prior knowledge) on one session and one session per request, HTTPS over HTTP/1.1 and HTTP/2
// on reused connections and with a new TLS handshake per request, and bare TLS handshakes
// (connect, handshake, close). The proxy's RSS (VmRSS of its process tree) is sampled every
// 30 s; the figure judged is the RSS after the warm-up (--warmup-minutes, default 2) against the
// highest and the last sample after it. Exit 1 when either is more than --max-growth (20%)
// above the warm-up figure (request counts and errors are reported beside it). Writes results/soak.json. Not a test:
// nothing here runs in CI. See README.md, "Memory soak".
//
//   node hack/bench/soak.mjs [--minutes 30] [--warmup-minutes 2] [--sample-seconds 30]
//                            [--rate 1] [--max-growth 0.2] [--out hack/bench/results/soak.json]

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { gitCommit, LOOPBACK, newPorts, Processes, rssMB, sleep, tail } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');

const { values: opts } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    'warmup-minutes': { type: 'string', default: '2' },
    'sample-seconds': { type: 'string', default: '30' },
    rate: { type: 'string', default: '1' },
    'max-growth': { type: 'string', default: '0.2' },
    out: { type: 'string', default: path.join(HERE, 'results', 'soak.json') },
    'portway-bin': { type: 'string', default: path.join(ROOT, 'bin', 'portway.js') },
  },
});
const num = (name) => {
  const n = Number(opts[name]);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got ${opts[name]}`);
  return n;
};
const settings = {
  minutes: num('minutes'),
  warmupMinutes: num('warmup-minutes'),
  sampleSeconds: num('sample-seconds'),
  rateScale: num('rate'),
  maxGrowth: num('max-growth'),
  out: path.resolve(opts.out),
  portwayBin: path.resolve(opts['portway-bin']),
};
if (settings.warmupMinutes >= settings.minutes) throw new Error('--warmup-minutes must be shorter than --minutes');

const HOST = 'soak.local';

/**
 * The mix. `rate`: operations started per second (times --rate); `inFlight`: at most this many
 * at once, a tick that finds them all busy starts nothing (counted as `skipped`), so the load
 * stays bounded whatever the machine does. `reused`: operations share long-lived connections.
 */
const MIX = [
  { name: 'http1-keepalive', rate: 150, inFlight: 32, what: 'HTTP/1.1 GET on 8 keep-alive connections' },
  { name: 'http1-new-connection', rate: 20, inFlight: 8, what: 'HTTP/1.1 GET, one TCP connection each (Connection: close)' },
  { name: 'h2c-reused', rate: 150, inFlight: 32, what: 'h2c (prior knowledge) GET on one long-lived session' },
  { name: 'h2c-new-session', rate: 20, inFlight: 8, what: 'h2c GET, one session (TCP connection) each, closed after' },
  { name: 'https1-keepalive', rate: 100, inFlight: 32, what: 'HTTPS HTTP/1.1 GET on 8 keep-alive TLS connections' },
  { name: 'https1-new-handshake', rate: 20, inFlight: 8, what: 'HTTPS HTTP/1.1 GET, a full TLS handshake each, no session reuse' },
  { name: 'h2-tls-reused', rate: 100, inFlight: 32, what: 'HTTP/2 over TLS GET on one long-lived session' },
  { name: 'h2-tls-new-session', rate: 20, inFlight: 8, what: 'HTTP/2 over TLS GET, a full TLS handshake and session each' },
  { name: 'tls-handshake-only', rate: 20, inFlight: 8, what: 'TLS handshake (ALPN h2,http/1.1), then close without a request' },
];

const procs = new Processes({ pin: false, nice: 0, tmpPrefix: 'portway-soak-' });
const TMP = procs.tmp;

// ---------------------------------------------------------------- set-up

function makeCertificate() {
  const certFile = path.join(TMP, 'soak.crt');
  const keyFile = path.join(TMP, 'soak.key');
  execFileSync('openssl', ['req', '-x509', '-nodes', '-days', '2', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-keyout', keyFile, '-out', certFile, '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

/** Gateway with 80 HTTP and 443 HTTPS (SIMPLE, credentialName soak-cert), one route to the backend. */
function portwayYaml({ cert, key }, backendPort) {
  const b64 = (t) => Buffer.from(t).toString('base64');
  return `apiVersion: v1
kind: Secret
metadata: {name: soak-cert, namespace: soak}
type: kubernetes.io/tls
data:
  tls.crt: ${b64(cert)}
  tls.key: ${b64(key)}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: soak, namespace: soak}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: soak-cert}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: soak}
spec:
  hosts: [backend.soak.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: ${LOOPBACK}, ports: {http: ${backendPort}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: soak}
spec:
  hosts: ["${HOST}"]
  gateways: [soak/soak]
  http:
  - route: [{destination: {host: backend.soak.local, port: {number: 80}}}]
`;
}

function get(port, reqPath) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: LOOPBACK, port, path: reqPath, agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------- load

/** One HTTP/1.1 request; resolves with the status, rejects on a socket error or timeout. */
function h1Request(mod, options) {
  return new Promise((resolve, reject) => {
    const req = mod.request({ host: LOOPBACK, path: '/soak', headers: { host: HOST }, timeout: 10000, ...options }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** One request on an HTTP/2 session; resolves with the status. */
function h2Request(session) {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': '/soak', ':authority': HOST });
    let status = 0;
    stream.setTimeout(10000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on('response', (h) => { status = h[':status']; });
    stream.on('error', reject);
    stream.on('close', () => (status ? resolve(status) : reject(new Error(`stream closed without a response (code ${stream.rstCode})`))));
    stream.resume();
    stream.end();
  });
}

function h2Connect(authority, options) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(authority, options);
    session.once('connect', () => { session.off('error', reject); resolve(session); });
    session.once('error', reject);
  });
}

/** A long-lived HTTP/2 session that is made again when it goes away (counted in `reconnects`). */
function sharedSession(authority, options, stats) {
  let current = null;
  return async () => {
    if (current && !current.closed && !current.destroyed) return current;
    if (current) stats.reconnects++;
    current = h2Connect(authority, options).then((s) => {
      s.on('error', () => {});
      s.on('goaway', () => {});
      return s;
    }, (err) => { current = null; throw err; });
    current = await current;
    return current;
  };
}

function tlsHandshakeOnly(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: LOOPBACK, port, servername: HOST, ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false, session: undefined }, () => {
      s.end();
      s.destroy();
      resolve(200);
    });
    s.setTimeout(10000, () => s.destroy(new Error('timed out')));
    s.on('error', reject);
  });
}

function makeOperations(ports, stats) {
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false, servername: HOST });
  const tlsOpts = { rejectUnauthorized: false, servername: HOST };
  const h2c = sharedSession(`http://${LOOPBACK}:${ports.http}`, {}, stats['h2c-reused']);
  const h2tls = sharedSession(`https://${LOOPBACK}:${ports.https}`, tlsOpts, stats['h2-tls-reused']);
  const once = async (authority, options) => {
    const s = await h2Connect(authority, options);
    s.on('error', () => {});
    try { return await h2Request(s); } finally { s.close(); }
  };
  return {
    'http1-keepalive': () => h1Request(http, { port: ports.http, agent: httpAgent }),
    'http1-new-connection': () => h1Request(http, { port: ports.http, agent: false, headers: { host: HOST, connection: 'close' } }),
    'h2c-reused': async () => h2Request(await h2c()),
    'h2c-new-session': () => once(`http://${LOOPBACK}:${ports.http}`, {}),
    'https1-keepalive': () => h1Request(https, { port: ports.https, agent: httpsAgent }),
    // agent: false: no session cache, so every request is a full handshake.
    'https1-new-handshake': () => h1Request(https, { port: ports.https, agent: false, ...tlsOpts, headers: { host: HOST, connection: 'close' } }),
    'h2-tls-reused': async () => h2Request(await h2tls()),
    'h2-tls-new-session': () => once(`https://${LOOPBACK}:${ports.https}`, tlsOpts),
    'tls-handshake-only': () => tlsHandshakeOnly(ports.https),
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
      for (const s of [h2c, h2tls]) s().then((x) => x.close(), () => {});
    },
  };
}

/** Runs every kind of the mix at its pace until `until`; resolves when the last operation has ended. */
async function runLoad(ops, stats, until) {
  const TICK_MS = 100;
  const inFlight = Object.fromEntries(MIX.map((m) => [m.name, 0]));
  const carry = Object.fromEntries(MIX.map((m) => [m.name, 0]));
  const pending = new Set();
  while (Date.now() < until) {
    for (const m of MIX) {
      carry[m.name] += (m.rate * settings.rateScale * TICK_MS) / 1000;
      const n = Math.floor(carry[m.name]);
      carry[m.name] -= n;
      const st = stats[m.name];
      for (let i = 0; i < n; i++) {
        if (inFlight[m.name] >= m.inFlight) { st.skipped++; continue; }
        inFlight[m.name]++;
        st.started++;
        const p = ops[m.name]().then((status) => {
          if (status === 200) st.ok++;
          else { st.errors++; note(st, `HTTP ${status}`); }
        }, (err) => { st.errors++; note(st, err.code ?? err.message); })
          .finally(() => { inFlight[m.name]--; pending.delete(p); });
        pending.add(p);
      }
    }
    await sleep(TICK_MS);
  }
  await Promise.all(pending);
}

function note(st, what) {
  st.errorKinds[what] = (st.errorKinds[what] ?? 0) + 1;
}

// ---------------------------------------------------------------- metrics

async function metric(port, name) {
  try {
    const r = await get(port, '/stats/prometheus');
    let sum = 0;
    let found = false;
    for (const line of r.body.split('\n')) {
      if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) { sum += Number(line.slice(line.lastIndexOf(' ') + 1)); found = true; }
    }
    return found ? sum : null;
  } catch { return null; }
}

// ---------------------------------------------------------------- run

async function main() {
  if (!existsSync(settings.portwayBin)) throw new Error(`${settings.portwayBin} missing`);
  if (settings.portwayBin === path.join(ROOT, 'bin', 'portway.js') && !existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/cli/main.js missing: run `npm run build`');
  const [backendPort, httpPort, httpsPort, statusPort, metricsPort, adminPort] = await newPorts(6);
  const backend = procs.start('backend', process.execPath, [path.join(HERE, 'backend.mjs'), String(backendPort)]);
  const configDir = path.join(TMP, 'config');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(path.join(configDir, 'soak.yaml'), portwayYaml(makeCertificate(), backendPort));
  const proxy = procs.start('portway', process.execPath, [
    settings.portwayBin, 'proxy',
    '--config', configDir,
    '--namespace', 'soak',
    '--labels', 'istio=ingressgateway',
    '--port-map', `80=${httpPort},443=${httpsPort}`,
    '--bind-address', LOOPBACK,
    '--status-port', String(statusPort),
    '--metrics-port', String(metricsPort),
    '--admin-port', String(adminPort),
    '--concurrency', '1',
    '--access-log', 'off',
    '--drain-duration', '1s',
  ], { env: { NODE_ENV: 'production' } });
  await procs.waitFor(proxy, 'ready', 30000, async () => {
    const r = await get(statusPort, '/healthz/ready');
    return r.status === 200 ? true : `readiness HTTP ${r.status}`;
  });
  await procs.waitFor(backend, 'serving', 10000, async () => {
    const st = await h1Request(http, { port: httpPort, agent: false });
    return st === 200 ? true : `HTTP ${st} through the proxy`;
  });

  // What was soaked: the commit at the start, and whether the source differed from it.
  const commit = gitCommit(ROOT);
  const uncommittedSource = (() => {
    try { return execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'dataplane', 'kube', 'cli', 'bin'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').filter(Boolean); } catch { return null; }
  })();
  const stats = Object.fromEntries(MIX.map((m) => [m.name, { started: 0, ok: 0, errors: 0, skipped: 0, reconnects: 0, errorKinds: {} }]));
  const ops = makeOperations({ http: httpPort, https: httpsPort }, stats);
  const startedAt = Date.now();
  const until = startedAt + settings.minutes * 60_000;
  const samples = [];
  const sample = () => {
    const s = { atS: Math.round((Date.now() - startedAt) / 1000), rssMB: rssMB(proxy.pid), requests: Object.values(stats).reduce((a, st) => a + st.ok + st.errors, 0), errors: Object.values(stats).reduce((a, st) => a + st.errors, 0) };
    samples.push(s);
    console.log(`[soak] ${String(s.atS).padStart(5)} s  RSS ${s.rssMB.toFixed(1).padStart(6)} MB  requests ${s.requests}  errors ${s.errors}`);
  };
  console.log(`[soak] ${settings.minutes} min of mixed load on 127.0.0.1 (HTTP ${httpPort}, HTTPS ${httpsPort}), RSS every ${settings.sampleSeconds} s, warm-up ${settings.warmupMinutes} min; proxy pid ${proxy.pid}; tmp ${TMP}`);
  const idleRssMB = rssMB(proxy.pid);
  sample();
  const timer = setInterval(sample, settings.sampleSeconds * 1000);
  let load;
  try {
    load = runLoad(ops, stats, until);
    await load;
  } finally {
    clearInterval(timer);
  }
  sample();
  ops.close();
  await sleep(2000);
  const rssAfterLoadMB = rssMB(proxy.pid);
  const cxActiveAfter = await metric(metricsPort, 'portway_downstream_cx_active');
  if (proxy.exitInfo) throw new Error(`the proxy exited during the soak (${JSON.stringify(proxy.exitInfo)}): ${tail(proxy.output, 6)}`);
  await procs.stop(proxy);
  await procs.stop(backend);

  // The warm-up figure: the first sample at or after the warm-up.
  const warmIndex = samples.findIndex((s) => s.atS >= settings.warmupMinutes * 60);
  const warm = samples[warmIndex];
  const after = samples.slice(warmIndex);
  const max = after.reduce((a, s) => (s.rssMB > a.rssMB ? s : a), warm);
  const final = samples.at(-1);
  const growth = Math.max(max.rssMB, final.rssMB) / warm.rssMB - 1;
  const totals = Object.values(stats).reduce((a, st) => ({ requests: a.requests + st.ok + st.errors, ok: a.ok + st.ok, errors: a.errors + st.errors, skipped: a.skipped + st.skipped }), { requests: 0, ok: 0, errors: 0, skipped: 0 });
  // Judged on memory only; the errors are reported next to it (a loaded machine can time out a few).
  const pass = growth <= settings.maxGrowth;
  const result = {
    benchmark: 'portway memory soak (hack/bench/soak.mjs)',
    command: `node hack/bench/soak.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date(startedAt).toISOString(),
    commit,
    uncommittedSource,
    machine: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model, memGB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadavgEnd: os.loadavg() },
    settings: { ...settings, out: path.relative(ROOT, settings.out), portwayBin: path.relative(ROOT, settings.portwayBin), mix: MIX.map((m) => ({ ...m, rate: m.rate * settings.rateScale })) },
    rss: {
      idleMB: idleRssMB,
      warmupMB: warm.rssMB,
      warmupAtS: warm.atS,
      // For context: the highest sample before and at the warm-up point (start-up, heap growth).
      warmupWindowPeakMB: Math.max(...samples.slice(0, warmIndex + 1).map((s) => s.rssMB)),
      maxAfterWarmupMB: max.rssMB,
      maxAtS: max.atS,
      finalMB: final.rssMB,
      afterLoadMB: rssAfterLoadMB,
      maxOverWarmup: Math.round((max.rssMB / warm.rssMB) * 1000) / 1000,
      finalOverWarmup: Math.round((final.rssMB / warm.rssMB) * 1000) / 1000,
      growthPercent: Math.round(growth * 1000) / 10,
      limitPercent: settings.maxGrowth * 100,
    },
    downstreamCxActiveAfterLoad: cxActiveAfter,
    totals,
    scenarios: stats,
    samples,
    pass,
  };
  mkdirSync(path.dirname(settings.out), { recursive: true });
  writeFileSync(settings.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log('');
  for (const m of MIX) {
    const st = stats[m.name];
    const kinds = Object.entries(st.errorKinds).map(([k, v]) => `${k} ×${v}`).join(', ');
    console.log(`  ${m.name.padEnd(22)} ok ${String(st.ok).padStart(8)}  errors ${String(st.errors).padStart(5)}  skipped ${String(st.skipped).padStart(6)}${st.reconnects ? `  reconnects ${st.reconnects}` : ''}${kinds ? `  (${kinds})` : ''}`);
  }
  console.log(`\n  RSS: idle ${idleRssMB} MB, after warm-up (${warm.atS} s) ${warm.rssMB} MB, max after ${max.rssMB} MB (${max.atS} s), final ${final.rssMB} MB, 2 s after the load ${rssAfterLoadMB} MB`);
  console.log(`  growth over the warm-up figure: ${result.rss.growthPercent}% (limit ${result.rss.limitPercent}%); requests ${totals.requests}, errors ${totals.errors}; portway_downstream_cx_active after the load: ${cxActiveAfter}`);
  console.log(`  ${pass ? 'PASS' : 'FAIL'}; wrote ${path.relative(ROOT, settings.out)}`);
  if (!pass) {
    procs.failed = true; // keep the temp dir (logs) for a look
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`[soak] failed: ${err.stack ?? err.message}`);
  procs.failed = true;
  process.exitCode = 1;
}).finally(() => procs.killAll());
