// Process plumbing for the benchmarks that compare servers on one machine (bench.mjs, tls.mjs): processes
// started in process groups of their own and killed at the end (also on Ctrl-C, and from the
// shell wrapper's trap through a pid file should the script die), CPU pinning with taskset and
// a higher scheduling priority, CPU seconds of a process tree from /proc, free ports on
// 127.0.0.1, polling until ready. See README.md, "Pinning".

import { spawn, execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const LOOPBACK = '127.0.0.1';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function envNumber(name, def) {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(String(v).replace(/s$/, ''));
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: expected a number, got ${JSON.stringify(v)}`);
  return n;
}

export function envOff(name) {
  return ['0', 'off', 'false', 'no'].includes(String(process.env[name] ?? '').toLowerCase());
}

export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function tail(text, n = 12) {
  return String(text ?? '').trim().split('\n').slice(-n).join('\n');
}

// ---------------------------------------------------------------- /proc

export const CLK_TCK = (() => { try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; } })();

/** Parent pid and CPU ticks (utime + stime) of one process. */
export function statOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]), startTime: f[19] };
  } catch { return null; }
}

/** The process and all its descendants (nginx workers, Portway workers). */
export function processTree(root) {
  const children = new Map();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = statOf(e);
    if (!st) continue;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(Number(e));
  }
  const out = [];
  const queue = [Number(root)];
  while (queue.length) {
    const p = queue.shift();
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** CPU seconds (user + system) used so far by a process tree; exited children are not counted. */
export function cpuSeconds(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) ticks += statOf(p)?.cpuTicks ?? 0;
  return ticks / CLK_TCK;
}

export function rssMB(pid) {
  let kb = 0;
  for (const p of processTree(pid)) {
    try { kb += Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0); } catch { /* exited */ }
  }
  return Math.round((kb / 1024) * 10) / 10;
}

// ---------------------------------------------------------------- ports

/** n distinct free ports on 127.0.0.1, never handed out twice by this process. */
const usedPorts = new Set();
export async function newPorts(n) {
  for (;;) {
    const servers = [];
    const ports = [];
    try {
      for (let i = 0; i < n; i++) {
        const srv = net.createServer();
        srv.unref();
        servers.push(srv);
        await new Promise((resolve, reject) => { srv.once('error', reject); srv.listen(0, LOOPBACK, resolve); });
        ports.push(srv.address().port);
      }
    } finally {
      await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(() => resolve()))));
    }
    if (ports.every((p) => !usedPorts.has(p))) {
      for (const p of ports) usedPorts.add(p);
      return ports;
    }
  }
}

/** Resolves once something accepts TCP connections on the port. */
export function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: LOOPBACK, port }, () => { s.destroy(); resolve(true); });
    s.on('error', (err) => resolve(err.code ?? err.message));
    s.setTimeout(1000, () => { s.destroy(); resolve('timed out'); });
  });
}

// ---------------------------------------------------------------- processes

/** Two cores: the system under test alone on the last CPU, everything else on cpu0. */
export function twoCorePlacement(ncpu) {
  return { sut: String(ncpu - 1), load: '0' };
}

/**
 * Starts, pins and stops the processes of one run. Every process gets a process group of its
 * own (so nginx's and Portway's workers go with it) and is listed in TMP/pids as "pgid
 * start-time" for the shell wrapper's trap; all are killed when this process exits.
 * `placement(ncpu)` names a CPU per role (this process runs on `load`); without pinning (no
 * taskset, one CPU, or pin false) every role's CPU is null.
 */
export class Processes {
  constructor({ pin = true, nice = 0, tmpPrefix = 'portway-bench-', cwd, placement = twoCorePlacement } = {}) {
    this.ownTmp = !process.env.BENCH_TMP;
    this.tmp = process.env.BENCH_TMP || mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
    mkdirSync(this.tmp, { recursive: true });
    this.pidFile = path.join(this.tmp, 'pids');
    this.children = new Set();
    this.nice = nice;
    this.cwd = cwd;
    this.failed = false;
    this.ncpu = os.availableParallelism();
    let hasTaskset = false;
    try { execFileSync('taskset', ['-V'], { stdio: 'ignore' }); hasTaskset = true; } catch { /* none */ }
    const cpus = placement(Math.max(2, this.ncpu));
    this.cpus = pin && hasTaskset && this.ncpu >= 2 ? cpus : Object.fromEntries(Object.keys(cpus).map((role) => [role, null]));
    if (this.cpus.load !== null) execFileSync('taskset', ['-a', '-p', '-c', this.cpus.load, String(process.pid)], { stdio: 'ignore' });
    process.on('exit', () => this.killAll());
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.on(sig, () => { console.error(`\n${sig}: stopping everything`); this.killAll(); process.exit(130); });
    }
  }

  command(cpu, cmd, args) {
    let [c, a] = cpu === null || cpu === undefined ? [cmd, args] : ['taskset', ['-c', cpu, cmd, ...args]];
    if (this.nice) [c, a] = ['nice', ['-n', String(this.nice), c, ...a]];
    return [c, a];
  }

  /** With autogroup scheduling each session competes as one group: prioritise the group. */
  prioritise(pid) {
    if (!this.nice) return;
    try { writeFileSync(`/proc/${pid}/autogroup`, String(this.nice)); } catch { /* nice alone */ }
  }

  repin(pid, cpu) {
    if (cpu === null || cpu === undefined) return;
    for (const p of processTree(pid)) {
      try { execFileSync('taskset', ['-a', '-p', '-c', cpu, String(p)], { stdio: 'ignore' }); } catch { /* exited */ }
    }
  }

  track(child, add) {
    if (add) {
      this.children.add(child);
      child.startTime = statOf(child.pid)?.startTime ?? '';
    } else {
      this.children.delete(child);
    }
    writeFileSync(this.pidFile, [...this.children].map((c) => `${c.pid} ${c.startTime}\n`).join(''));
  }

  /** A long-running process, its output in TMP/<name>.log (and the first 64 KiB in child.output). */
  start(name, cmd, args, { cpu = null, env, stdout = 'log' } = {}) {
    const [c, a] = this.command(cpu, cmd, args);
    const log = path.join(this.tmp, `${name}.log`);
    writeFileSync(log, `$ ${c} ${a.join(' ')}\n`);
    const child = spawn(c, a, { cwd: this.cwd, detached: true, env: { ...process.env, ...env }, stdio: ['ignore', stdout === 'log' ? 'pipe' : 'ignore', 'pipe'] });
    this.track(child, true);
    this.prioritise(child.pid);
    child.output = '';
    const keep = (chunk) => {
      appendFileSync(log, chunk);
      if (child.output.length < 65536) child.output += chunk.toString();
    };
    child.stdout?.on('data', keep);
    child.stderr.on('data', keep);
    child.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
      child.exitInfo = { code, signal };
      // Whatever is left in its group (nginx workers, Portway workers) goes with it: while the
      // group has members its id cannot be reused, so this can only hit our own processes.
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* empty group */ }
      this.track(child, false);
      resolve();
    }));
    child.on('error', (err) => { child.spawnError = err; });
    child.logFile = log;
    return child;
  }

  /**
   * Runs a load generator to completion on `cpu`, sampling its CPU time while it runs (it is
   * gone by the time it has printed). Resolves with { code, out, cpuSeconds }.
   */
  async run(cmd, args, { cpu = null } = {}) {
    const [c, a] = this.command(cpu, cmd, args);
    const child = spawn(c, a, { cwd: this.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.track(child, true);
    this.prioritise(child.pid);
    let ticks = 0;
    const poll = setInterval(() => { const st = statOf(child.pid); if (st) ticks = st.cpuTicks; }, 200);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const code = await new Promise((resolve, reject) => { child.on('error', reject); child.on('exit', (code) => resolve(code)); });
    clearInterval(poll);
    this.track(child, false);
    return { code, out, cpuSeconds: ticks / CLK_TCK };
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`. */
  async stop(child, graceMs = 3000) {
    if (!child || child.exitInfo) return;
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { if (!child.exitInfo) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
    await child.exited;
    clearTimeout(t);
  }

  killAll() {
    for (const child of this.children) {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    this.children.clear();
    if (this.ownTmp && !process.env.BENCH_KEEP_TMP && !this.failed) {
      try { rmSync(this.tmp, { recursive: true, force: true }); } catch { /* leave it */ }
    }
  }

  /** Polls until `probe` resolves true, the process exits, or the deadline passes. */
  async waitFor(child, what, timeoutMs, probe) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (child.spawnError) throw new Error(child.spawnError.message);
      if (child.exitInfo) {
        const { code, signal } = child.exitInfo;
        throw new Error(`exited (${signal ?? `code ${code}`}) before ${what}: ${tail(child.output, 6) || 'no output'}`);
      }
      try {
        const r = await probe();
        if (r === true) return;
        last = String(r);
      } catch (err) { last = err.message; }
      await sleep(100);
    }
    throw new Error(`not ${what} after ${timeoutMs / 1000}s (last: ${last}); log: ${tail(child.output, 4) || 'empty'}`);
  }

  /** nginx in the foreground with its own prefix (config, pid, logs, temp files) under TMP. */
  startNginx(name, conf, cpu) {
    const prefix = path.join(this.tmp, name);
    for (const d of ['', 'tmp', 'tmp/body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi']) mkdirSync(path.join(prefix, d), { recursive: true });
    // Run as root, nginx's worker drops to an unprivileged user: let it reach its files.
    chmodSync(this.tmp, 0o755);
    for (const d of ['', 'tmp']) chmodSync(path.join(prefix, d), 0o755);
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) chmodSync(path.join(prefix, 'tmp', d), 0o777);
    const file = path.join(prefix, 'nginx.conf');
    writeFileSync(file, conf(prefix));
    return this.start(name, 'nginx', ['-p', prefix, '-c', file, '-e', path.join(prefix, 'error.log'), '-g', 'daemon off;'], { cpu });
  }
}

// ---------------------------------------------------------------- wrk

function toMs(value, unit) {
  const n = Number(value);
  return unit === 'us' ? n / 1000 : unit === 'ms' ? n : unit === 's' ? n * 1000 : unit === 'm' ? n * 60000 : NaN;
}

/** wrk's --latency output → req/s, percentiles (ms), request count, socket errors, non-2xx. */
export function parseWrk(text) {
  const pct = (p) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    return m ? toMs(m[1], m[2]) : null;
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  if (!rps) throw new Error(`could not parse wrk output: ${tail(text, 6)}`);
  return {
    rps: Number(rps[1]),
    p50Ms: pct(50),
    p75Ms: pct(75),
    p90Ms: pct(90),
    p99Ms: pct(99),
    requests: total ? Number(total[1]) : null,
    socketErrors: sock ? { connect: +sock[1], read: +sock[2], write: +sock[3], timeout: +sock[4] } : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

export function versionOf(cmd) {
  try { return execFileSync('sh', ['-c', `${cmd} 2>&1; true`], { encoding: 'utf8' }).split('\n')[0].trim() || null; } catch { return null; }
}

export function gitCommit(root) {
  try { return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim(); } catch { return null; }
}
