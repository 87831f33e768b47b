// Portway's data-plane benchmark (issue #3): keep-alive HTTP/1.1 throughput and p50/p99 latency,
// measured with wrk at fixed concurrency through the backend directly, nginx, node-http-proxy,
// @fastify/http-proxy and Portway (10 routes, and 10,000 routes across 1,000 hosts), all in
// front of the same backend. Prints a table of ratios and the targets, writes JSON.
//
// Run through `npm run bench` (or `bash hack/bench/run.sh`), which installs wrk, nginx and the
// Node.js peers first. Everything listens on and sends to 127.0.0.1 only. See README.md.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { istioYaml, nginxBackendConf, nginxProxyConf } from './configs.mjs';
import { CLK_TCK, cpuSeconds, envNumber, envOff, gitCommit, LOOPBACK, median, newPorts, parseWrk, processTree, Processes, sleep, statOf, tail, versionOf } from './harness.mjs';

export { parseWrk };

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');

// ---------------------------------------------------------------- settings

const settings = {
  durationS: envNumber('BENCH_DURATION', 10),
  warmupS: envNumber('BENCH_WARMUP', 3),
  connections: envNumber('BENCH_CONNECTIONS', 50),
  wrkThreads: envNumber('BENCH_THREADS', 1),
  rounds: Math.max(1, envNumber('BENCH_ROUNDS', 3)),
  hosts: envNumber('BENCH_HOSTS', 1000),
  routesPerHost: envNumber('BENCH_ROUTES_PER_HOST', 10),
  pin: !envOff('BENCH_PIN'),
  only: (process.env.BENCH_SCENARIOS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  out: process.env.BENCH_OUT ?? path.join(HERE, 'results', 'latest.json'),
  strict: process.env.BENCH_STRICT === '1',
  backend: process.env.BENCH_BACKEND || 'node',
  // Another build of Portway (e.g. a second checkout's bin/portway.js) to measure instead.
  portwayBin: process.env.BENCH_PORTWAY_BIN ? path.resolve(process.env.BENCH_PORTWAY_BIN) : null,
  // Higher scheduling priority for everything measured, so that other work on a shared machine
  // (builds, test runs) takes less from the cores the benchmark pinned. Needs root to go below 0.
  nice: process.env.BENCH_NICE !== undefined && process.env.BENCH_NICE !== '' ? Number(process.env.BENCH_NICE) : (process.getuid?.() === 0 ? -10 : 0),
};
// The request every scenario is sent: host number `targetHost` exists in the large config, and
// its route /r7 is the eighth of ten, so Portway's route table is walked, not short-cut.
const targetHost = Math.min(517, Math.max(0, settings.hosts - 1));
const targetRoute = Math.min(7, Math.max(0, settings.routesPerHost - 1));
const REQUEST = { host: `host-${targetHost}.bench.local`, path: `/r${targetRoute}/x` };

// ---------------------------------------------------------------- CPU placement and processes
//
// Two cores: the system under test (SUT: the proxy, or the backend in the direct scenario) gets
// a core of its own; wrk, the backend and this script share the other. With 3+ cores the
// backend gets its own core too. See README.md ("Pinning") for why. Processes start in process
// groups of their own, logged to TMP (run.sh makes and removes one, otherwise the Processes do),
// and are listed in TMP/pids for run.sh's trap should this script die.
const procs = new Processes({
  pin: settings.pin,
  nice: settings.nice,
  cwd: ROOT,
  placement: (ncpu) => (ncpu >= 3 ? { load: '0', backend: '1', sut: '2' } : { load: '0', backend: '0', sut: '1' }),
});
const { cpus, ncpu } = procs;
const TMP = procs.tmp;
const freePort = async () => (await newPorts(1))[0];

function get(port, reqPath, host) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: LOOPBACK, port, path: reqPath, headers: host ? { host } : {}, agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function serves(port) {
  const r = await get(port, REQUEST.path, REQUEST.host);
  return r.status === 200 && r.body === 'hello' ? true : `HTTP ${r.status} ${JSON.stringify(r.body.slice(0, 80))}`;
}

// ---------------------------------------------------------------- /proc


/** RSS of each process in the tree, and their sum (MB). */
function rssOf(pid) {
  const processes = [];
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).map((a) => path.basename(a)).join(' ');
      if (m) processes.push({ pid: p, rssMB: Math.round((Number(m[1]) / 1024) * 10) / 10, cmd: cmd.slice(0, 60) });
    } catch { /* exited */ }
  }
  return { totalMB: Math.round(processes.reduce((a, b) => a + b.rssMB, 0) * 10) / 10, processes };
}
const rssMB = (pid) => rssOf(pid).totalMB;


/** The kernel threads that run deferred softirqs (loopback TCP, when interrupts pile up). */
const KSOFTIRQD = readdirSync('/proc').filter((e) => {
  if (!/^\d+$/.test(e)) return false;
  try { return readFileSync(`/proc/${e}/comm`, 'utf8').startsWith('ksoftirqd/'); } catch { return false; }
});
const ksoftirqdSeconds = () => KSOFTIRQD.reduce((sum, pid) => sum + (statOf(pid)?.cpuTicks ?? 0), 0) / CLK_TCK;

/** Busy and total jiffies per CPU from /proc/stat. */
function cpuStat() {
  const out = {};
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal
    const idle = v[3] + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out[m[1]] = { busy: total - idle, irq: (v[5] ?? 0) + (v[6] ?? 0), steal: v[7] ?? 0, total };
  }
  return out;
}

// ---------------------------------------------------------------- wrk

async function wrk(port, seconds) {
  const args = [
    `-t${settings.wrkThreads}`, `-c${settings.connections}`, `-d${seconds}s`, '--latency', '--timeout', '5s',
    '-H', `Host: ${REQUEST.host}`, `http://${LOOPBACK}:${port}${REQUEST.path}`,
  ];
  const { code, out, cpuSeconds: wrkCpuSeconds } = await procs.run('wrk', args, { cpu: cpus.load });
  if (code !== 0) throw new Error(`wrk exited ${code}: ${tail(out, 6)}`);
  return { ...parseWrk(out), raw: out, wrkCpuSeconds };
}

// ---------------------------------------------------------------- scenarios

let backend; // { child, port }

function nodePeer(name, script) {
  return {
    name,
    async start() {
      const port = await freePort();
      const child = procs.start(name, process.execPath, [path.join(HERE, 'peers', script), String(port), String(backend.port)], { cpu: cpus.sut });
      await procs.waitFor(child, 'serving', 15000, () => serves(port));
      return { child, port };
    },
  };
}

let portwayFlags = null;
function portwayHelp() {
  if (portwayFlags) return portwayFlags;
  const bin = settings.portwayBin ?? path.join(ROOT, 'bin', 'portway.js');
  if (!settings.portwayBin && !existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/cli/main.js missing: run `npm run build`');
  let help;
  try {
    help = execFileSync(process.execPath, [bin, 'proxy', '--help'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 });
  } catch (err) {
    throw new Error(`portway proxy --help failed: ${tail(`${err.stdout ?? ''}${err.stderr ?? ''}` || err.message, 3)}`);
  }
  portwayFlags = { bin, accessLog: help.includes('--access-log'), bindAddress: help.includes('--bind-address') };
  return portwayFlags;
}

function portway(name, { hosts, routesPerHost, firstHost, readyTimeoutMs }) {
  return {
    name,
    portway: true,
    async start() {
      const flags = portwayHelp();
      const dir = path.join(TMP, `${name}-config`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'bench.yaml'), istioYaml({ hosts, routesPerHost, backendPort: backend.port, firstHost }));
      const [port, statusPort, metricsPort, adminPort] = await newPorts(4);
      const args = [
        flags.bin, 'proxy',
        '--config', dir,
        '--namespace', 'bench',
        '--labels', 'istio=ingressgateway',
        '--port-map', `80=${port}`,
        '--status-port', String(statusPort),
        '--metrics-port', String(metricsPort),
        '--admin-port', String(adminPort),
        '--concurrency', '1',
      ];
      if (flags.bindAddress) args.push('--bind-address', LOOPBACK);
      if (flags.accessLog) args.push('--access-log', 'off');
      // Without --access-log off the access log goes to stdout: discard it so it costs no disk I/O.
      const child = procs.start(name, process.execPath, args, { cpu: cpus.sut, stdout: flags.accessLog ? 'log' : 'ignore' });
      const t0 = Date.now();
      await procs.waitFor(child, 'ready', readyTimeoutMs, async () => {
        const r = await get(statusPort, '/healthz/ready');
        return r.status === 200 ? true : `readiness HTTP ${r.status}`;
      });
      const readyAfterMs = Date.now() - t0;
      await procs.waitFor(child, 'serving 200 "hello"', 5000, () => serves(port));
      return { child, port, extra: { readyAfterMs, routes: hosts * routesPerHost, hosts, configBytes: readFileSync(path.join(dir, 'bench.yaml')).length } };
    },
  };
}

const SCENARIOS = [
  {
    name: 'direct',
    direct: true,
    async start() {
      // The system under test is the backend itself: it moves to the SUT core for its rounds
      // (and back to its own core after them: see park()).
      return { child: backend.child, port: backend.port, shared: true };
    },
  },
  {
    name: 'nginx',
    async start() {
      const port = await freePort();
      const child = procs.startNginx('nginx', (prefix) => nginxProxyConf({ prefix, port, backendPort: backend.port }), cpus.sut);
      await procs.waitFor(child, 'serving', 15000, () => serves(port));
      return { child, port };
    },
  },
  nodePeer('node-http-proxy', 'node-http-proxy.mjs'),
  nodePeer('fastify-http-proxy', 'fastify-http-proxy.mjs'),
  portway('portway', { hosts: 1, routesPerHost: settings.routesPerHost, firstHost: targetHost, readyTimeoutMs: 30000 }),
  portway('portway-10k-routes', { hosts: settings.hosts, routesPerHost: settings.routesPerHost, firstHost: 0, readyTimeoutMs: 120000 }),
];

// ---------------------------------------------------------------- measuring


async function measure(run, seconds) {
  const { child, port } = run;
  const pids = { sut: child.pid, backend: backend.child.pid };
  const cpu0 = { sut: cpuSeconds(pids.sut), backend: cpuSeconds(pids.backend), ksoftirqd: ksoftirqdSeconds(), stat: cpuStat(), t: process.hrtime.bigint() };
  const w = await wrk(port, seconds);
  const wall = Number(process.hrtime.bigint() - cpu0.t) / 1e9;
  const stat1 = cpuStat();
  const busy = {};
  let irqPct = ((ksoftirqdSeconds() - cpu0.ksoftirqd) / wall) * 100;
  let stealPct = 0;
  for (const [id, s] of Object.entries(stat1)) {
    const s0 = cpu0.stat[id];
    if (!s0 || s.total <= s0.total) continue;
    const span = s.total - s0.total;
    busy[`cpu${id}`] = Math.round(((s.busy - s0.busy) / span) * 100);
    irqPct += ((s.irq - s0.irq) / span) * 100;
    stealPct += ((s.steal - s0.steal) / span) * 100;
  }
  const cpuPct = (who) => Math.round(((cpuSeconds(pids[who]) - cpu0[who]) / wall) * 100);
  const sutCpuPct = cpuPct('sut');
  const backendCpuPct = run.shared ? null : cpuPct('backend');
  const wrkCpuPct = Math.round((w.wrkCpuSeconds / wall) * 100);
  delete w.wrkCpuSeconds;
  // What the rest of the machine took meanwhile (other people's builds and tests, this script,
  // the hypervisor): all cores' busy time less the SUT's, the backend's, wrk's and the kernel's
  // interrupt time (loopback TCP is largely processed in softirqs, charged to no process, or in
  // the ksoftirqd threads).
  const allBusy = Object.values(busy).reduce((a, b) => a + b, 0) - irqPct;
  return {
    ...w,
    sutCpuPct,
    backendCpuPct,
    wrkCpuPct,
    otherCpuPct: Math.round(Math.max(0, allBusy - sutCpuPct - (backendCpuPct ?? 0) - wrkCpuPct)),
    irqCpuPct: Math.round(irqPct),
    stealCpuPct: Math.round(stealPct),
    coreBusyPct: busy,
  };
}

/**
 * Between its rounds a system under test waits on the load core, so that the idle proxies
 * (timers, health checks, garbage collection) never take time from the one being measured.
 * It starts on the SUT core and moves there again, warmed up anew, for each of its rounds.
 */
function park(run) {
  procs.repin(run.child.pid, run.shared ? cpus.backend : cpus.load);
}

function round2(x) { return x === null || x === undefined ? null : Math.round(x * 100) / 100; }

async function main() {
  const unknown = settings.only.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length) throw new Error(`BENCH_SCENARIOS: unknown ${unknown.join(', ')} (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  const selected = SCENARIOS.filter((s) => !settings.only.length || settings.only.includes(s.name));
  const estimate = selected.length * (settings.warmupS + settings.rounds * (settings.durationS + 1));
  console.log(`Portway data-plane benchmark: wrk -t${settings.wrkThreads} -c${settings.connections}, ${settings.rounds} round(s) of ${settings.durationS}s after ${settings.warmupS}s warm-up, ` +
    `GET ${REQUEST.path} Host: ${REQUEST.host}, ${settings.backend} backend`);
  console.log(`CPUs: ${ncpu}; pinning: ${cpus.sut === null ? 'off' : `system under test on cpu${cpus.sut}, wrk on cpu${cpus.load}, backend on cpu${cpus.backend}`}; nice ${settings.nice}; ` +
    `about ${Math.ceil(estimate / 60)} min of load; logs in ${TMP}${procs.ownTmp && !process.env.BENCH_KEEP_TMP ? ' (removed at the end unless BENCH_KEEP_TMP=1)' : ''}`);

  const backendPort = await freePort();
  if (!['node', 'nginx'].includes(settings.backend)) throw new Error(`BENCH_BACKEND: expected node or nginx, got ${JSON.stringify(settings.backend)}`);
  const bchild = settings.backend === 'nginx'
    ? procs.startNginx('backend-nginx', (prefix) => nginxBackendConf({ prefix, port: backendPort }), cpus.backend)
    : procs.start('backend', process.execPath, [path.join(HERE, 'backend.mjs'), String(backendPort)], { cpu: cpus.backend });
  backend = { child: bchild, port: backendPort };
  await procs.waitFor(bchild, 'serving', 10000, () => serves(backendPort));

  // Start every scenario (a failure is recorded, not fatal), then interleave the measured rounds
  // so that drift on the machine spreads over all of them rather than favouring one.
  const runs = [];
  for (const s of selected) {
    const result = { name: s.name, status: 'ok' };
    process.stdout.write(`  starting ${s.name} … `);
    try {
      const started = await s.start();
      Object.assign(result, started.extra ?? {});
      if (!s.direct) {
        await sleep(500); // let start-up garbage settle
        const rss = rssOf(started.child.pid);
        result.idleRssMB = rss.totalMB;
        if (rss.processes.length > 1) result.idleRssByProcess = rss.processes;
      }
      runs.push({ s, run: started, result, rounds: [] });
      const parts = result.idleRssByProcess ? ` = ${result.idleRssByProcess.map((p) => `${p.rssMB}`).join(' + ')} over ${result.idleRssByProcess.length} processes` : '';
      console.log(`ok${result.idleRssMB ? ` (idle RSS ${result.idleRssMB} MB${parts})` : ''}${result.readyAfterMs ? `, ready after ${(result.readyAfterMs / 1000).toFixed(1)}s` : ''}`);
    } catch (err) {
      result.status = 'failed';
      result.error = err.message.replace(/\s+/g, ' ').slice(0, 400);
      console.log(`failed: ${result.error}`);
    }
    if (result.status === 'failed') runs.push({ s, run: null, result, rounds: [] });
    else park(runs.at(-1).run);
  }
  if (runs.every((r) => !r.run)) throw new Error('no scenario could be started');

  for (let round = 0; round < settings.rounds; round++) {
    for (const r of runs) {
      if (!r.run || r.result.status !== 'ok') continue;
      const { s, run, result } = r;
      try {
        procs.repin(run.child.pid, cpus.sut);
        if (r.run.child.exitInfo) throw new Error(`exited (${r.run.child.exitInfo.signal ?? `code ${r.run.child.exitInfo.code}`}): ${tail(r.run.child.output, 4)}`);
        const warm = round === 0 ? settings.warmupS : Math.min(1, settings.warmupS);
        if (warm > 0) await wrk(run.port, warm);
        const m = await measure(run, settings.durationS);
        const errors = m.non2xx + m.socketErrors.read + m.socketErrors.write + m.socketErrors.timeout + m.socketErrors.connect;
        delete m.raw;
        r.rounds.push(m);
        console.log(`  round ${round + 1}/${settings.rounds} ${s.name.padEnd(20)} ${m.rps.toFixed(0).padStart(7)} req/s  p50 ${fmtMs(m.p50Ms)}  p99 ${fmtMs(m.p99Ms)}  ` +
          `cpu: SUT ${m.sutCpuPct}%${m.backendCpuPct === null ? '' : ` backend ${m.backendCpuPct}%`} wrk ${m.wrkCpuPct}% irq ${m.irqCpuPct}% other ${m.otherCpuPct}%` +
          (errors ? `  errors: ${m.non2xx} non-2xx, socket ${JSON.stringify(m.socketErrors)}` : ''));
        if (m.non2xx > 0.01 * (m.requests ?? 1) || m.socketErrors.connect > 0) {
          throw new Error(`${m.non2xx} non-2xx responses and ${m.socketErrors.connect} connect errors out of ${m.requests} requests`);
        }
      } catch (err) {
        result.status = 'failed';
        result.error = err.message.replace(/\s+/g, ' ').slice(0, 400);
        console.log(`  ${s.name}: failed: ${result.error}`);
      } finally {
        park(run);
      }
    }
  }

  for (const r of runs) {
    const { result, rounds, run, s } = r;
    if (run && !s.direct && !run.child.exitInfo) result.rssAfterLoadMB = rssMB(run.child.pid);
    if (run && !run.shared) await procs.stop(run.child);
    if (result.status !== 'ok') continue;
    result.rps = round2(median(rounds.map((m) => m.rps)));
    result.p50Ms = round2(median(rounds.map((m) => m.p50Ms)));
    result.p99Ms = round2(median(rounds.map((m) => m.p99Ms)));
    const medianPct = (key) => { const v = median(rounds.map((m) => m[key])); return v === null ? null : Math.round(v); };
    result.sutCpuPct = medianPct('sutCpuPct');
    result.backendCpuPct = medianPct('backendCpuPct');
    result.wrkCpuPct = medianPct('wrkCpuPct');
    result.irqCpuPct = medianPct('irqCpuPct');
    result.otherCpuPct = Math.max(...rounds.map((m) => m.otherCpuPct));
    result.rounds = rounds;
  }
  await procs.stop(backend.child);

  report(runs.map((r) => r.result));
}

// ---------------------------------------------------------------- report

function fmtMs(x) { return x === null || x === undefined ? '—' : x < 1 ? `${(x * 1000).toFixed(0)}µs` : `${x.toFixed(2)}ms`; }
function fmtRatio(x) { return x === null || x === undefined || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`; }

function report(results) {
  const by = Object.fromEntries(results.map((r) => [r.name, r]));
  const ok = (n) => by[n]?.status === 'ok' ? by[n] : null;
  const pw = ok('portway');
  const ratios = {};
  for (const r of results) {
    if (r.name === 'portway' || r.name === 'portway-10k-routes' || r.status !== 'ok' || !pw) continue;
    ratios[r.name] = { throughput: round2(pw.rps / r.rps), p99: round2(pw.p99Ms / r.p99Ms) };
  }

  const rows = [['scenario', 'req/s', 'p50', 'p99', 'SUT cpu', 'backend cpu', 'idle RSS', 'RSS after', 'PW÷ req/s', 'PW÷ p99']];
  for (const r of results) {
    if (r.status !== 'ok') { rows.push([r.name, `failed: ${r.error}`]); continue; }
    const rat = ratios[r.name];
    rows.push([
      r.name, r.rps.toFixed(0), fmtMs(r.p50Ms), fmtMs(r.p99Ms), `${r.sutCpuPct}%`, r.backendCpuPct === null ? '(SUT)' : `${r.backendCpuPct}%`,
      r.idleRssMB ? `${r.idleRssMB} MB` : '—', r.rssAfterLoadMB ? `${r.rssAfterLoadMB} MB` : '—',
      rat ? fmtRatio(rat.throughput) : '—', rat ? fmtRatio(rat.p99) : '—',
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.filter((row) => row.length > 2).map((row) => String(row[i] ?? '').length)));
  console.log('');
  for (const [i, row] of rows.entries()) {
    if (row.length === 2) console.log(`${row[0].padEnd(widths[0])}  ${row[1]}`);
    else console.log(row.map((c, j) => (j === 0 ? String(c).padEnd(widths[j]) : String(c).padStart(widths[j]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log('PW÷ = Portway (10 routes) ÷ that scenario: req/s above 1 means Portway is faster; p99 below 1 means its tail latency is lower.');

  const nodePeers = ['node-http-proxy', 'fastify-http-proxy'].map(ok).filter(Boolean);
  const bestNode = nodePeers.length ? nodePeers.reduce((a, b) => (b.rps > a.rps ? b : a)) : null;
  const nginx = ok('nginx');
  const large = ok('portway-10k-routes');
  const target = (name, want, actual, met, why) => ({ name, target: want, actual: actual ?? null, met: met ?? null, ...(why ? { note: why } : {}) });
  const na = (what) => `n/a (${what} did not run)`;
  const targets = [
    pw && bestNode
      ? target('throughput vs best Node.js peer', '≥ 1.30×', round2(pw.rps / bestNode.rps), pw.rps / bestNode.rps >= 1.3, `best peer: ${bestNode.name}`)
      : target('throughput vs best Node.js peer', '≥ 1.30×', null, null, na(pw ? 'no Node.js peer' : 'Portway')),
    pw && nginx
      ? target('throughput vs nginx', '≥ 0.70×', round2(pw.rps / nginx.rps), pw.rps / nginx.rps >= 0.7)
      : target('throughput vs nginx', '≥ 0.70×', null, null, na(pw ? 'nginx' : 'Portway')),
    pw && nginx
      ? target('p99 vs nginx', '≤ 1.50×', round2(pw.p99Ms / nginx.p99Ms), pw.p99Ms / nginx.p99Ms <= 1.5)
      : target('p99 vs nginx', '≤ 1.50×', null, null, na(pw ? 'nginx' : 'Portway')),
    pw
      ? target('idle RSS (10 routes)', '≤ 80 MB', pw.idleRssMB, pw.idleRssMB <= 80)
      : target('idle RSS (10 routes)', '≤ 80 MB', null, null, na('Portway')),
    pw && large
      ? target('10,000 routes ÷ 10 routes throughput', '≥ 0.90×', round2(large.rps / pw.rps), large.rps / pw.rps >= 0.9)
      : target('10,000 routes ÷ 10 routes throughput', '≥ 0.90×', null, null, na(pw ? 'the 10,000-route scenario' : 'Portway')),
  ];
  console.log('\nTargets:');
  for (const t of targets) {
    const verdict = t.met === null ? 'n/a' : t.met ? 'met' : 'NOT MET';
    const actual = t.actual === null ? '' : typeof t.actual === 'number' && t.name.includes('RSS') ? `${t.actual} MB` : fmtRatio(t.actual);
    console.log(`  ${verdict.padEnd(7)}  ${t.name.padEnd(38)} ${t.target.padEnd(8)} ${actual}${t.note ? `  (${t.note})` : ''}`);
  }
  const warnings = [];
  const busyMachine = results.filter((r) => r.status === 'ok' && r.otherCpuPct > 25);
  if (busyMachine.length) {
    warnings.push(`WARNING: other processes used up to ${Math.max(...busyMachine.map((r) => r.otherCpuPct))}% of a core during ` +
      `${busyMachine.map((r) => r.name).join(', ')}: the machine was not quiet, so these figures are noisy. Rerun when it is.`);
  }
  const notSutBound = results.filter((r) => r.status === 'ok' && r.sutCpuPct < 85);
  if (cpus.sut !== null && notSutBound.length) {
    warnings.push(`Note: ${notSutBound.map((r) => `${r.name} (${r.sutCpuPct}%)`).join(', ')} did not use its whole core: ` +
      'something else (the shared wrk+backend core, or other processes) limited that figure, which understates it ' +
      '(see README.md, "Reading the results").');
  }
  for (const w of warnings) console.log(`\n${w}`);

  const doc = {
    benchmark: 'portway data plane (hack/bench)',
    date: new Date().toISOString(),
    commit: gitCommit(ROOT),
    machine: {
      cpus: ncpu,
      cpuModel: os.cpus()[0]?.model ?? null,
      memoryGB: Math.round(os.totalmem() / 2 ** 30),
      kernel: os.release(),
      node: process.version,
      wrk: versionOf('wrk -v'),
      nginx: versionOf('nginx -v'),
      peers: (() => { try { const lock = JSON.parse(readFileSync(path.join(HERE, 'peers', 'package-lock.json'), 'utf8')); return Object.fromEntries(['http-proxy', 'fastify', '@fastify/http-proxy', '@fastify/reply-from', 'undici'].map((n) => [n, lock.packages?.[`node_modules/${n}`]?.version ?? lock.packages?.[`node_modules/@fastify/reply-from/node_modules/${n}`]?.version ?? null])); } catch { return null; } })(),
    },
    settings: {
      ...settings, out: undefined, only: settings.only.length ? settings.only : undefined,
      request: REQUEST,
      pinning: cpus.sut === null ? 'off' : { systemUnderTest: `cpu${cpus.sut}`, wrk: `cpu${cpus.load}`, backend: `cpu${cpus.backend}` },
    },
    scenarios: results,
    ratios: { note: 'Portway (10 routes) ÷ scenario', ...ratios },
    targets,
    warnings,
  };
  mkdirSync(path.dirname(settings.out), { recursive: true });
  writeFileSync(settings.out, JSON.stringify(doc, null, 2) + '\n');
  console.log(`\nWrote ${path.relative(process.cwd(), settings.out) || settings.out}`);
  if (settings.strict && targets.some((t) => t.met !== true)) {
    process.exitCode = 1;
    procs.failed = true; // keep the logs
  }
}

main().catch((err) => {
  console.error(`bench: ${err.message}`);
  procs.failed = true;
  procs.killAll();
  process.exit(1);
});
