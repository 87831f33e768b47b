// Runs `portway proxy` as a real child process (the README's command), for feature and
// end-to-end tests: waits for readiness, collects its output, stops it with a signal.

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './repo-root.js';
import { unusedPort } from './ports.js';

export interface ProxyProcess {
  child: ChildProcess;
  statusPort: number;
  metricsPort: number;
  adminPort: number;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
  /** Resolves with the first stderr line that matches (or rejects after timeoutMs). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startProxyProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProxyProcess> {
  return withFreshPortsOnCollision(async () => launch('127.0.0.1', await unusedPort(), await unusedPort(), await unusedPort(), args, env));
}

/** A proxy standing in for a pod: everything but the admin port on the pod's IP, Istio's ports. */
export async function startProxyProcessAt(podIp: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProxyProcess> {
  return withFreshPortsOnCollision(async () => launch(podIp, 15021, 15090, await unusedPort(), ['--bind-address', podIp, ...args], env));
}

/**
 * A port found free and released can be taken before the proxy binds it (the kernel hands the
 * same ephemeral range to outgoing connections): when the proxy fails on one of the ports
 * picked here, it is started again with new ones.
 */
async function withFreshPortsOnCollision(start: () => Promise<ProxyProcess>): Promise<ProxyProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt < 3 && err instanceof PickedPortTaken) continue;
      throw err;
    }
  }
}

class PickedPortTaken extends Error {}

async function launch(address: string, statusPort: number, metricsPort: number, adminPort: number, args: string[], env: NodeJS.ProcessEnv): Promise<ProxyProcess> {
  const child = spawn(
    process.execPath,
    [join(repoRoot(), 'bin', 'portway.js'), 'proxy', '--status-port', String(statusPort), '--metrics-port', String(metricsPort), '--admin-port', String(adminPort), ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const collect = (into: string[], notify: boolean) => {
    let rest = '';
    return (chunk: Buffer) => {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        into.push(line);
        if (!notify) continue;
        for (const w of [...waiters]) {
          if (w.pattern.test(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    };
  };
  child.stdout!.on('data', collect(stdout, false));
  child.stderr!.on('data', collect(stderr, true));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const proc: ProxyProcess = {
    child,
    statusPort,
    metricsPort,
    adminPort,
    stdout,
    stderr,
    exited,
    waitForLog(pattern, timeoutMs = 10_000) {
      const seen = stderr.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms; stderr:\n${stderr.join('\n')}`)), timeoutMs);
        waiters.push({ pattern, resolve: (l) => { clearTimeout(timer); resolve(l); } });
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  // Ready means the first snapshot is serving (in cluster mode: after a full first sync).
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      const log = stderr.join('\n');
      // The ports picked at random: the admin port, and status and metrics on 127.0.0.1.
      const picked = address === '127.0.0.1' ? [adminPort, statusPort, metricsPort] : [adminPort];
      const taken = picked.some((p) => log.includes(`EADDRINUSE: address already in use 127.0.0.1:${p}`));
      throw new (taken ? PickedPortTaken : Error)(`portway proxy exited with ${child.exitCode}:\n${log}`);
    }
    try {
      const res = await fetch(`http://${address}:${statusPort}/healthz/ready`);
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`portway proxy not ready within 30 s:\n${stderr.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return proc;
}

/**
 * For a mocha `afterEach`: when the test just failed, prints the last lines each proxy wrote
 * to stderr (its warnings and rejected-object reports), so that a CI log says what the proxy saw.
 */
export function printLogsIfFailed(ctx: Mocha.Context, proxies: Iterable<ProxyProcess | undefined>, lines = 30): void {
  if (ctx.currentTest?.state !== 'failed') return;
  for (const p of proxies) {
    if (p === undefined) continue;
    const tail = p.stderr.slice(-lines);
    console.log(`      --- proxy pid ${p.child.pid}: last ${tail.length} of ${p.stderr.length} stderr lines ---`);
    for (const line of tail) console.log(`      ${line}`);
  }
}
