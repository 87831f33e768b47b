// Portway's TLS benchmark (issue #4): Portway and nginx, with equivalent TLS settings and the
// same certificates (made in the run), measured in the same run, one core each:
//   handshake-ecdsa / handshake-rsa  full TLS handshakes per second (P-256 / RSA-2048 certificate)
//   resume                           resumed handshakes per second (TLS 1.3 session tickets)
//   https-requests                   HTTPS keep-alive requests per second (wrk -t1 -c50) to the HTTP backend
//   passthrough                      MB/s through TLS PASSTHROUGH by SNI to a TLS backend (bulk download)
// and, for every round, the CPU seconds the server's process group used: on a 2-core machine
// the load generator can run out of CPU before the server does, and figures per server
// CPU-second are then the fair comparison. Prints a table with ratios, writes
// results/tls.json. Run through `npm run bench:tls` (hack/bench/tls.sh installs what is
// missing). See README.md, "TLS benchmark".

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, envNumber, parseWrk, envOff, gitCommit, LOOPBACK, median, newPorts, Processes, rssMB, sleep, tail, versionOf } from './harness.mjs';
import { HOSTS, nginxTlsBackendConf, nginxTlsConf, portwayTlsYaml } from './tls-configs.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');

const settings = {
  durationS: envNumber('TLS_BENCH_DURATION', 5),
  warmupS: envNumber('TLS_BENCH_WARMUP', 2),
  rounds: Math.max(1, envNumber('TLS_BENCH_ROUNDS', 3)),
  /** Handshakes kept in flight by the client (latency hidden, server kept busy). */
  handshakeConnections: envNumber('TLS_BENCH_HANDSHAKE_CONNECTIONS', 16),
  wrkConnections: envNumber('TLS_BENCH_CONNECTIONS', 50),
  bulkConnections: envNumber('TLS_BENCH_BULK_CONNECTIONS', 4),
  bulkMB: envNumber('TLS_BENCH_BULK_MB', 64),
  tlsVersion: process.env.TLS_BENCH_VERSION || '1.3',
  only: (process.env.TLS_BENCH_SCENARIOS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  systems: (process.env.TLS_BENCH_SYSTEMS ?? 'nginx,portway,node-tls').split(',').map((s) => s.trim()).filter(Boolean),
  pin: !envOff('BENCH_PIN'),
  nice: process.env.BENCH_NICE !== undefined && process.env.BENCH_NICE !== '' ? Number(process.env.BENCH_NICE) : (process.getuid?.() === 0 ? -10 : 0),
  portwayBin: process.env.BENCH_PORTWAY_BIN ? path.resolve(process.env.BENCH_PORTWAY_BIN) : path.join(ROOT, 'bin', 'portway.js'),
  /** Another build of Portway measured in the same run as "portway-baseline" (before/after a change). */
  baselineBin: process.env.TLS_BENCH_BASELINE_BIN ? path.resolve(process.env.TLS_BENCH_BASELINE_BIN) : null,
  /** Extra node flags for Portway (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof). */
  portwayNodeFlags: (process.env.TLS_BENCH_PORTWAY_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean),
  out: process.env.TLS_BENCH_OUT ?? path.join(HERE, 'results', 'tls.json'),
  strict: process.env.BENCH_STRICT === '1',
};
if (!['1.2', '1.3'].includes(settings.tlsVersion)) throw new Error(`TLS_BENCH_VERSION: 1.2 or 1.3, got ${settings.tlsVersion}`);

const procs = new Processes({ pin: settings.pin, nice: settings.nice, tmpPrefix: 'portway-tls-bench-' });
const { cpus } = procs;
const TMP = procs.tmp;

// ---------------------------------------------------------------- what is measured

/**
 * Each scenario: the load generator, what one unit is, and which port of a system it uses.
 * `client` returns the command; `parse` turns its output into { units, seconds, ... }.
 */
const SCENARIOS = [
  { name: 'handshake-ecdsa', what: 'full handshakes/s, ECDSA P-256', unit: 'hs', port: 'ecdsa', client: (port) => tlsClient(port, 'bench.local', 'full', settings.handshakeConnections) },
  { name: 'handshake-rsa', what: 'full handshakes/s, RSA-2048', unit: 'hs', port: 'rsa', client: (port) => tlsClient(port, 'bench.local', 'full', settings.handshakeConnections) },
  { name: 'resume', what: 'resumed handshakes/s (session tickets), ECDSA', unit: 'hs', port: 'ecdsa', client: (port) => tlsClient(port, 'bench.local', 'resume', settings.handshakeConnections) },
  { name: 'https-requests', what: `HTTPS keep-alive requests/s (wrk -t1 -c${settings.wrkConnections}), ECDSA`, unit: 'req', port: 'requests', client: (port) => wrkCommand(port) },
  { name: 'passthrough', what: `PASSTHROUGH by SNI, MB/s (${settings.bulkConnections} downloads of ${settings.bulkMB} MiB at a time)`, unit: 'MB', port: 'passthrough', client: (port) => tlsClient(port, HOSTS.passthrough, 'bulk', settings.bulkConnections, 'TLS_AES_128_GCM_SHA256') },
];

function tlsClient(port, sni, mode, connections, ciphersuites = '') {
  return {
    cmd: path.join(TMP, 'tls-client'),
    args: (seconds) => [String(port), sni, mode, String(connections), String(seconds), settings.tlsVersion, ciphersuites],
    parse(out) {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
      if (!line) throw new Error(`tls-client printed no result: ${tail(out, 4)}`);
      const r = JSON.parse(line);
      const negotiated = r.protocol ? { protocol: r.protocol, cipher: r.cipher, group: r.group, certificate: r.certificate } : null;
      if (mode === 'bulk') return { units: r.bytes / 1e6, seconds: r.seconds, errors: r.errors, connections: r.handshakes, negotiated };
      if (mode === 'resume' && r.handshakes > 10 && r.resumed < 0.9 * r.handshakes) {
        throw new Error(`only ${r.resumed} of ${r.handshakes} handshakes were resumptions`);
      }
      return { units: r.handshakes, seconds: r.seconds, errors: r.errors, resumed: r.resumed, negotiated };
    },
  };
}

function wrkCommand(port) {
  return {
    cmd: 'wrk',
    args: (seconds) => ['-t1', `-c${settings.wrkConnections}`, `-d${seconds}s`, '--latency', '--timeout', '5s', '-H', `Host: ${HOSTS.https}`, `https://${LOOPBACK}:${port}/r/x`],
    parse(out) {
      const w = parseWrk(out);
      const errors = w.non2xx + w.socketErrors.connect + w.socketErrors.read + w.socketErrors.write + w.socketErrors.timeout;
      if (w.non2xx > 0.01 * (w.requests ?? 1) || w.socketErrors.connect > 0) throw new Error(`wrk: ${w.non2xx} non-2xx, socket errors ${JSON.stringify(w.socketErrors)}`);
      return { units: w.requests, seconds: w.requests / w.rps, errors, p50Ms: w.p50Ms, p99Ms: w.p99Ms };
    },
  };
}

// ---------------------------------------------------------------- set-up

function openssl(args) {
  execFileSync('openssl', args, { cwd: TMP, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Self-signed certificates made for this run: ECDSA P-256, RSA-2048, and the TLS backend's. */
function makeCertificates() {
  const make = (name, keyArgs, cn, sans) => {
    const certFile = path.join(TMP, `${name}.crt`);
    const keyFile = path.join(TMP, `${name}.key`);
    openssl(['req', '-x509', '-nodes', '-days', '2', ...keyArgs, '-keyout', keyFile, '-out', certFile, '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}`]);
    return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  };
  return {
    ecdsa: make('ecdsa', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], HOSTS.https, [HOSTS.https, `*.${HOSTS.https}`]),
    rsa: make('rsa', ['-newkey', 'rsa:2048'], HOSTS.https, [HOSTS.https, `*.${HOSTS.https}`]),
    backend: make('tls-backend', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], HOSTS.passthrough, [HOSTS.passthrough]),
  };
}

function buildClient() {
  const src = path.join(HERE, 'tls-client.c');
  const out = path.join(TMP, 'tls-client');
  try {
    execFileSync('cc', ['-O2', '-o', out, src, '-lssl', '-lcrypto'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`cannot compile tls-client.c (needs cc and libssl-dev): ${tail(`${err.stderr ?? err.message}`, 4)}`);
  }
}

const nginxConfigure = (() => { try { return execFileSync('sh', ['-c', 'nginx -V 2>&1'], { encoding: 'utf8' }); } catch { return ''; } })();

/** ngx_stream_module: '' when built in, its path when dynamic and installed, null when missing. */
function nginxStreamModule() {
  if (/--with-stream(\s|$)/.test(nginxConfigure) && !/--with-stream=dynamic/.test(nginxConfigure)) return '';
  const dir = /--modules-path=(\S+)/.exec(nginxConfigure)?.[1] ?? '/usr/lib/nginx/modules';
  const file = path.join(dir, 'ngx_stream_module.so');
  return existsSync(file) ? file : null;
}

function get(port, reqPath, host) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: LOOPBACK, port, path: reqPath, headers: host ? { host } : {}, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** One handshake (and for HTTPS one request) to check a port serves what the scenario needs. */
function probeTls(port, servername, request) {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: LOOPBACK, port, servername, rejectUnauthorized: false }, () => {
      if (!request) { socket.destroy(); resolve(true); return; }
      socket.write(`GET /r/x HTTP/1.1\r\nHost: ${HOSTS.https}\r\nConnection: close\r\n\r\n`);
    });
    let got = '';
    socket.on('data', (d) => { got += d; });
    socket.on('end', () => resolve(/^HTTP\/1\.1 200/.test(got) ? true : `answered ${JSON.stringify(got.slice(0, 40))}`));
    socket.on('error', (err) => resolve(err.code ?? err.message));
    socket.setTimeout(2000, () => { socket.destroy(); resolve('timed out'); });
  });
}

async function waitServing(child, ports) {
  await procs.waitFor(child, 'serving HTTPS (ECDSA)', 20000, () => probeTls(ports.ecdsa, HOSTS.https, true));
  await procs.waitFor(child, 'serving HTTPS (RSA)', 5000, () => probeTls(ports.rsa, HOSTS.https, true));
}

// ---------------------------------------------------------------- the systems under test

async function startNginx(env) {
  const [ecdsa, rsa, passthrough] = await newPorts(3);
  const ports = { ecdsa, rsa, requests: ecdsa, passthrough: env.streamModule === null ? null : passthrough };
  const ciphers = tls.DEFAULT_CIPHERS.split(':');
  const http2 = nginxConfigure.includes('--with-http_v2_module');
  const child = procs.startNginx('nginx', (prefix) => nginxTlsConf({ prefix, ports, backendPort: env.backendPort, tlsBackendPort: env.tlsBackendPort, certs: env.certs, ciphers, streamModule: env.streamModule, http2 }), cpus.sut);
  await waitServing(child, ports);
  const notes = env.streamModule === null ? ['passthrough: ngx_stream_module is not installed (apt-get install libnginx-mod-stream)'] : [];
  if (!http2) notes.push('built without http_v2: ALPN offers http/1.1 only');
  return { child, ports, notes };
}

async function startPortway(env, bin = settings.portwayBin, name = 'portway') {
  if (!existsSync(bin)) throw new Error(`${bin} missing`);
  if (bin === path.join(ROOT, 'bin', 'portway.js') && !existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/cli/main.js missing: run `npm run build`');
  const dir = path.join(TMP, `${name}-config`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'bench.yaml'), portwayTlsYaml({ ecdsa: env.certs.ecdsa, rsa: env.certs.rsa, backendPort: env.backendPort, tlsBackendPort: env.tlsBackendPort }));
  const [ecdsa, rsa, passthrough, statusPort, metricsPort, adminPort] = await newPorts(6);
  const ports = { ecdsa, rsa, requests: ecdsa, passthrough };
  const args = [
    ...settings.portwayNodeFlags,
    bin, 'proxy',
    '--config', dir,
    '--namespace', 'bench',
    '--labels', 'istio=ingressgateway',
    '--port-map', `443=${ecdsa},444=${rsa},445=${passthrough}`,
    '--status-port', String(statusPort),
    '--metrics-port', String(metricsPort),
    '--admin-port', String(adminPort),
    '--concurrency', '1',
    '--bind-address', LOOPBACK,
    '--access-log', 'off',
    '--drain-duration', '1s',
  ];
  const child = procs.start(name, process.execPath, args, { cpu: cpus.sut, env: { NODE_ENV: 'production' } });
  await procs.waitFor(child, 'ready', 30000, async () => {
    const r = await get(statusPort, '/healthz/ready');
    return r.status === 200 ? true : `readiness HTTP ${r.status}`;
  });
  await waitServing(child, ports);
  return { child, ports, notes: [] };
}

/**
 * A bare node:tls server (node-tls-server.mjs): the ceiling for any Node.js proxy. Handshakes,
 * and HTTPS requests on the ECDSA port answered by node:http itself, with no proxying.
 */
async function startNodeTls(env) {
  const [ecdsa, rsa] = await newPorts(2);
  const ports = { ecdsa, rsa, passthrough: null, requests: ecdsa };
  const child = procs.start('node-tls', process.execPath, [path.join(HERE, 'node-tls-server.mjs'), String(ecdsa), String(rsa), TMP], { cpu: cpus.sut });
  await waitServing(child, ports);
  return { child, ports, notes: [] };
}

const SYSTEMS = {
  nginx: startNginx,
  portway: (env) => startPortway(env),
  'portway-baseline': (env) => startPortway(env, settings.baselineBin, 'portway-baseline'),
  'node-tls': startNodeTls,
};

// ---------------------------------------------------------------- measuring

async function runClient(scenario, port, seconds) {
  const c = scenario.client(port);
  const r = await procs.run(c.cmd, c.args(seconds), { cpu: cpus.load });
  if (r.code !== 0) throw new Error(`${path.basename(c.cmd)} exited ${r.code}: ${tail(r.out, 4)}`);
  return { ...c.parse(r.out), clientCpuSeconds: r.cpuSeconds };
}

async function measure(scenario, sut, env) {
  const port = sut.ports[scenario.port];
  const loadAverage = os.loadavg()[0];
  const cpu0 = { sut: cpuSeconds(sut.child.pid), backends: env.backendPids.reduce((a, p) => a + cpuSeconds(p), 0), t: process.hrtime.bigint() };
  const r = await runClient(scenario, port, settings.durationS);
  const wall = Number(process.hrtime.bigint() - cpu0.t) / 1e9;
  const serverCpuSeconds = cpuSeconds(sut.child.pid) - cpu0.sut;
  const backendCpuSeconds = env.backendPids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0.backends;
  const rate = r.units / r.seconds;
  return {
    rate: round(rate, 1),
    perServerCpuSecond: serverCpuSeconds > 0 ? round(r.units / serverCpuSeconds, 1) : null,
    units: round(r.units, 1),
    seconds: round(r.seconds, 3),
    serverCpuSeconds: round(serverCpuSeconds, 2),
    serverCpuPct: Math.round((serverCpuSeconds / wall) * 100),
    clientCpuPct: Math.round((r.clientCpuSeconds / wall) * 100),
    backendCpuPct: Math.round((backendCpuSeconds / wall) * 100),
    loadAverage: round(loadAverage, 2),
    errors: r.errors,
    ...(r.resumed !== undefined ? { resumed: r.resumed } : {}),
    ...(r.p50Ms !== undefined ? { p50Ms: r.p50Ms, p99Ms: r.p99Ms } : {}),
    negotiated: r.negotiated,
  };
}

function round(x, digits = 2) {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------- main

async function main() {
  const unknown = settings.only.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length) throw new Error(`TLS_BENCH_SCENARIOS: unknown ${unknown.join(', ')} (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  const scenarios = SCENARIOS.filter((s) => !settings.only.length || settings.only.includes(s.name));
  const unknownSystems = settings.systems.filter((s) => !SYSTEMS[s]);
  if (unknownSystems.length) throw new Error(`TLS_BENCH_SYSTEMS: unknown ${unknownSystems.join(', ')} (known: ${Object.keys(SYSTEMS).join(', ')})`);
  const systems = [...settings.systems];
  if (settings.baselineBin && !systems.includes('portway-baseline')) systems.splice(systems.indexOf('portway') + 1, 0, 'portway-baseline');
  // node-tls has no proxy: it takes no part in passthrough.
  const pairs = scenarios.reduce((n, s) => n + systems.filter((sys) => sys !== 'node-tls' || s.port !== 'passthrough').length, 0);
  const loadSeconds = pairs * (settings.rounds * (settings.durationS + Math.min(1, settings.warmupS) + 0.7) + Math.max(0, settings.warmupS - 1));
  console.log(`Portway TLS benchmark: TLS ${settings.tlsVersion}, ${settings.rounds} round(s) of ${settings.durationS}s per scenario and system, interleaved, after a ${settings.warmupS}s warm-up`);
  console.log(`CPUs: ${procs.ncpu}; pinning: ${cpus.sut === null ? 'off' : `system under test on cpu${cpus.sut}, clients and backends on cpu${cpus.load}`}; nice ${settings.nice}; ` +
    `about ${(loadSeconds / 60).toFixed(1)} min of load; logs in ${TMP}`);

  buildClient();
  const certs = makeCertificates();
  const streamModule = nginxStreamModule();

  // Backends, on the load core: the HTTP backend of bench.mjs and an nginx TLS file server.
  const [backendPort, tlsBackendPort] = await newPorts(2);
  const backend = procs.start('backend', process.execPath, [path.join(HERE, 'backend.mjs'), String(backendPort)], { cpu: cpus.load });
  await procs.waitFor(backend, 'serving', 10000, async () => (await get(backendPort, '/')).status === 200 || 'not 200');
  const root = path.join(TMP, 'bulk-root');
  mkdirSync(root, { recursive: true });
  execFileSync('truncate', ['-s', `${settings.bulkMB}M`, path.join(root, 'bulk')]); // sparse: zeros, no disk
  const tlsBackend = procs.startNginx('tls-backend', (prefix) => nginxTlsBackendConf({ prefix, port: tlsBackendPort, root, cert: certs.backend }), cpus.load);
  await procs.waitFor(tlsBackend, 'serving', 10000, () => probeTls(tlsBackendPort, HOSTS.passthrough, false));
  const env = { certs, backendPort, tlsBackendPort, streamModule, backendPids: [backend.pid, tlsBackend.pid] };

  const suts = {};
  for (const name of systems) {
    process.stdout.write(`  starting ${name} … `);
    try {
      suts[name] = await SYSTEMS[name](env);
      await sleep(500);
      suts[name].idleRssMB = rssMB(suts[name].child.pid);
      console.log(`ok (idle RSS ${suts[name].idleRssMB} MB)${suts[name].notes.length ? `; ${suts[name].notes.join('; ')}` : ''}`);
      procs.repin(suts[name].child.pid, cpus.load);
    } catch (err) {
      suts[name] = { error: err.message.replace(/\s+/g, ' ').slice(0, 400) };
      console.log(`failed: ${suts[name].error}`);
    }
  }

  // results[scenario][system] = { status, rounds: [] }
  const results = Object.fromEntries(scenarios.map((s) => [s.name, Object.fromEntries(systems.map((n) => [n, { status: 'ok', rounds: [] }]))]));
  for (const s of scenarios) {
    for (const n of systems) {
      const r = results[s.name][n];
      if (suts[n].error) Object.assign(r, { status: 'failed', error: suts[n].error });
      else if (suts[n].ports[s.port] === null) Object.assign(r, { status: 'n/a', error: suts[n].notes.find((x) => x.startsWith(s.name)) ?? 'not measured for this system' });
    }
  }

  for (let round = 0; round < settings.rounds; round++) {
    for (const s of scenarios) {
      for (const n of systems) {
        const r = results[s.name][n];
        const sut = suts[n];
        if (r.status !== 'ok') continue;
        try {
          if (sut.child.exitInfo) throw new Error(`exited (${sut.child.exitInfo.signal ?? `code ${sut.child.exitInfo.code}`}): ${tail(sut.child.output, 4)}`);
          procs.repin(sut.child.pid, cpus.sut);
          const warm = round === 0 ? settings.warmupS : Math.min(1, settings.warmupS);
          if (warm > 0) await runClient(s, sut.ports[s.port], warm);
          const m = await measure(s, sut, env);
          r.rounds.push(m);
          console.log(`  round ${round + 1}/${settings.rounds} ${s.name.padEnd(16)} ${n.padEnd(8)} ${fmtRate(m.rate, s.unit).padStart(12)}  ` +
            `server cpu ${String(m.serverCpuPct).padStart(3)}% → ${fmtRate(m.perServerCpuSecond, s.unit, 'server-cpu-s')}  client cpu ${m.clientCpuPct}%  backends ${m.backendCpuPct}%  load ${m.loadAverage}` +
            (m.errors ? `  errors ${m.errors}` : ''));
        } catch (err) {
          r.status = 'failed';
          r.error = err.message.replace(/\s+/g, ' ').slice(0, 400);
          console.log(`  ${s.name} ${n}: failed: ${r.error}`);
        } finally {
          if (!sut.child.exitInfo) procs.repin(sut.child.pid, cpus.load);
        }
      }
    }
  }

  for (const n of systems) {
    if (suts[n].child && !suts[n].child.exitInfo) suts[n].rssAfterMB = rssMB(suts[n].child.pid);
  }
  for (const s of scenarios) {
    for (const n of systems) {
      const r = results[s.name][n];
      if (r.status !== 'ok' || !r.rounds.length) continue;
      const med = (k) => median(r.rounds.map((m) => m[k]));
      r.rate = round(med('rate'), 1);
      r.perServerCpuSecond = round(med('perServerCpuSecond'), 1);
      r.serverCpuPct = Math.round(med('serverCpuPct'));
      r.clientCpuPct = Math.round(med('clientCpuPct'));
      r.loadAverage = round(med('loadAverage'), 2);
      if (s.name === 'https-requests') { r.p50Ms = round(med('p50Ms'), 3); r.p99Ms = round(med('p99Ms'), 3); }
      r.negotiated = r.rounds.find((m) => m.negotiated)?.negotiated ?? null;
    }
  }
  // A profiled Portway writes its profile on exit, after its drain: give it time.
  for (const n of systems) await procs.stop(suts[n].child, n.startsWith('portway') && settings.portwayNodeFlags.length ? 30000 : 3000);
  await procs.stop(tlsBackend);
  await procs.stop(backend);
  report(scenarios, systems, results, suts, streamModule);
}

// ---------------------------------------------------------------- report

function fmtRate(x, unit, per = 's') {
  if (x === null || x === undefined) return '—';
  if (unit === 'MB') return `${x.toFixed(0)} MB/${per}`;
  return `${x.toFixed(0)} ${unit}/${per}`;
}
const fmtRatio = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`);

/** The issue's targets, judged on the figure per server CPU-second (the raw ratio is shown too). */
const TARGETS = [
  { scenario: 'handshake-ecdsa', min: 0.8 },
  { scenario: 'handshake-rsa', min: 0.8 },
  { scenario: 'resume', min: 0.8 },
  { scenario: 'https-requests', min: 0.7 },
];

function report(scenarios, systems, results, suts, streamModule) {
  const rows = [['scenario', 'system', 'per second', 'server cpu', 'per server-cpu-s', 'client cpu', 'load avg', 'negotiated', 'PW÷ rate', 'PW÷ per cpu-s']];
  // ratios[scenario][system] = Portway ÷ that system, raw and per server CPU-second.
  const ratios = {};
  for (const s of scenarios) {
    const pw = results[s.name].portway;
    ratios[s.name] = {};
    for (const n of systems) {
      const r = results[s.name][n];
      if (n !== 'portway' && pw?.rate && r?.rate) {
        ratios[s.name][n] = { rate: round(pw.rate / r.rate), perServerCpuSecond: pw.perServerCpuSecond && r.perServerCpuSecond ? round(pw.perServerCpuSecond / r.perServerCpuSecond) : null };
      }
      if (r.status !== 'ok' || !r.rounds.length) { rows.push([s.name, n, `${r.status === 'n/a' ? 'n/a' : 'failed'}: ${r.error ?? 'no rounds'}`]); continue; }
      const neg = r.negotiated ? [r.negotiated.protocol, r.negotiated.group, r.negotiated.cipher, r.negotiated.certificate].join(' ') : '';
      const rat = ratios[s.name][n];
      rows.push([
        s.name, n, fmtRate(r.rate, s.unit), `${r.serverCpuPct}%`, fmtRate(r.perServerCpuSecond, s.unit, 'cpu-s'), `${r.clientCpuPct}%`, String(r.loadAverage), neg,
        rat ? fmtRatio(rat.rate) : '', rat ? fmtRatio(rat.perServerCpuSecond) : '',
      ]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.filter((row) => row.length > 3).map((row) => String(row[i] ?? '').length)));
  console.log('');
  for (const [i, row] of rows.entries()) {
    if (row.length === 3) console.log(`${row[0].padEnd(widths[0])}  ${row[1].padEnd(widths[1])}  ${row[2]}`);
    else console.log(row.map((c, j) => (j < 2 || j === 7 ? String(c).padEnd(widths[j]) : String(c).padStart(widths[j]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log('per server-cpu-s = units ÷ CPU seconds used by the server\'s process group during the round (the fair figure when the client, not the server, ran out of CPU).');
  console.log('PW÷ = Portway ÷ that row (above 1: Portway does more). Load average: 1-minute, at the start of each round (median shown).');

  const targets = TARGETS.filter((t) => scenarios.some((s) => s.name === t.scenario)).map((t) => {
    const r = ratios[t.scenario]?.nginx;
    const actual = r?.perServerCpuSecond ?? null;
    // What the bare Node.js server itself reaches against nginx: no Node.js proxy can do better.
    const bare = results[t.scenario]['node-tls'];
    const ng = results[t.scenario].nginx;
    const nodeCeiling = bare?.perServerCpuSecond && ng?.perServerCpuSecond ? round(bare.perServerCpuSecond / ng.perServerCpuSecond) : null;
    return { name: `${t.scenario} vs nginx (per server CPU-second)`, target: `≥ ${t.min.toFixed(2)}×`, actual, rawRatio: r?.rate ?? null, met: actual === null ? null : actual >= t.min, nodeCeiling };
  });
  console.log('\nTargets (issue #4):');
  for (const t of targets) {
    const verdict = t.met === null ? 'n/a' : t.met ? 'met' : 'NOT MET';
    const ceiling = t.nodeCeiling === null ? '' : `; bare node:tls ${fmtRatio(t.nodeCeiling)}`;
    console.log(`  ${verdict.padEnd(7)}  ${t.name.padEnd(52)} ${t.target.padEnd(7)} ${fmtRatio(t.actual)}  (raw rate ratio ${fmtRatio(t.rawRatio)}${ceiling})`);
  }
  if (targets.some((t) => t.nodeCeiling !== null)) {
    console.log('  bare node:tls = hack/bench/node-tls-server.mjs ÷ nginx, same unit: node:tls + node:http answering itself, no proxying (the ceiling of a Node.js server).');
  }

  const warnings = [];
  const negotiation = {};
  for (const s of scenarios) {
    const [a, b] = ['nginx', 'portway'].map((n) => results[s.name][n]?.negotiated);
    if (a && b && JSON.stringify(a) !== JSON.stringify(b)) warnings.push(`WARNING: ${s.name}: nginx negotiated ${JSON.stringify(a)}, Portway ${JSON.stringify(b)}: not the same TLS parameters.`);
    negotiation[s.name] = a ?? b ?? null;
  }
  const loads = scenarios.flatMap((s) => systems.flatMap((n) => results[s.name][n]?.rounds?.map((m) => m.loadAverage) ?? []));
  if (loads.length && Math.max(...loads) > 1.5) warnings.push(`WARNING: load average up to ${Math.max(...loads).toFixed(1)} during the run on ${procs.ncpu} CPUs: other work shared the machine, figures are noisy. Rerun when it is quiet.`);
  for (const w of warnings) console.log(`\n${w}`);

  const doc = {
    benchmark: 'portway TLS (hack/bench/tls.mjs)',
    date: new Date().toISOString(),
    commit: gitCommit(ROOT),
    machine: {
      cpus: procs.ncpu, cpuModel: os.cpus()[0]?.model ?? null, memoryGB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(),
      node: process.version, nodeOpenssl: process.versions.openssl, openssl: versionOf('openssl version'), nginx: versionOf('nginx -v'), wrk: versionOf('wrk -v'),
      nginxStreamModule: streamModule,
    },
    settings: {
      ...settings, out: undefined, only: settings.only.length ? settings.only : undefined,
      pinning: cpus.sut === null ? 'off' : { systemUnderTest: `cpu${cpus.sut}`, clientsAndBackends: `cpu${cpus.load}` },
      clients: {
        handshakes: `hack/bench/tls-client.c (C, OpenSSL ${versionOf('openssl version')}), ${settings.handshakeConnections} connections in flight, no chain verification`,
        httpsRequests: `wrk -t1 -c${settings.wrkConnections}`,
        passthrough: `hack/bench/tls-client.c bulk, ${settings.bulkConnections} connections, TLS_AES_128_GCM_SHA256, ${settings.bulkMB} MiB per download`,
      },
      resumption: 'TLS 1.3 session tickets (PSK with (EC)DHE key exchange), stateless on both servers',
    },
    systems: Object.fromEntries(systems.map((n) => [n, suts[n].error ? { error: suts[n].error } : { idleRssMB: suts[n].idleRssMB, rssAfterMB: suts[n].rssAfterMB }])),
    negotiated: negotiation,
    scenarios: Object.fromEntries(scenarios.map((s) => [s.name, { what: s.what, ...results[s.name] }])),
    ratios: { note: 'Portway ÷ each system: rate and per server CPU-second', ...ratios },
    targets,
    warnings,
  };
  mkdirSync(path.dirname(settings.out), { recursive: true });
  writeFileSync(settings.out, JSON.stringify(doc, null, 2) + '\n');
  console.log(`\nWrote ${path.relative(process.cwd(), settings.out) || settings.out}`);
  if (settings.strict && targets.some((t) => t.met !== true)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`tls bench: ${err.stack ?? err.message}`);
  procs.failed = true;
  procs.killAll();
  process.exit(1);
});
