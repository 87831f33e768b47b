// Faults for end-to-end tests: stop and restart only the kube-apiserver of a control plane that
// this run started (hack/cluster/up.sh), and talk to its etcd through etcd's v3 HTTP/JSON
// gateway (etcdctl is not built) to read the revision, write scratch keys and compact.
//
// up.sh records each component's PID in <stateDir>/pids/<component>.pid and starts it with
// setsid; the exact argv is in /proc/<pid>/cmdline. `stopApiserver` reads both, kills the
// process and returns a handle that re-executes the same argv (same log file, new PID written
// back to the PID file so down.sh still stops it). The scripts in hack/cluster are untouched.

import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from './cluster.js';
import { eventually } from './wait.js';

export interface StoppedApiserver {
  /** Starts kube-apiserver again with the argv it had and waits for /readyz. */
  start(): Promise<void>;
}

function stateDirOf(cluster: Cluster): string {
  if (!cluster.stateDir) throw new Error('apiserver faults need a control plane started by this run (not one from KUBECONFIG)');
  return cluster.stateDir;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z';
  } catch {
    return false;
  }
}

/** The PID and argv of a running component of this run's control plane (checked against the state dir). */
export function componentProcess(cluster: Cluster, component: string): { pid: number; argv: string[] } {
  const dir = stateDirOf(cluster);
  const pid = Number(readFileSync(join(dir, 'pids', `${component}.pid`), 'utf8').trim());
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  if (argv.at(-1) === '') argv.pop();
  if (!argv.some((a) => a.includes(`${dir}/`))) throw new Error(`pid ${pid} of ${component} does not belong to ${dir}`);
  return { pid, argv };
}

/** Whether the named component (kwok, kube-controller-manager, ...) is still running. */
export function componentAlive(cluster: Cluster, component: string): boolean {
  try {
    return pidAlive(componentProcess(cluster, component).pid);
  } catch {
    return false;
  }
}

async function apiserverReady(cluster: Cluster): Promise<boolean> {
  try {
    await cluster.kubectl(['get', '--raw', '/readyz'], { timeoutMs: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** Kills kube-apiserver (SIGKILL: no graceful shutdown, like a crash or a partition) and waits until it is gone. */
export async function stopApiserver(cluster: Cluster): Promise<StoppedApiserver> {
  const dir = stateDirOf(cluster);
  const { pid, argv } = componentProcess(cluster, 'kube-apiserver');
  process.kill(pid, 'SIGKILL');
  await eventually(() => !pidAlive(pid), { timeoutMs: 15_000, intervalMs: 50, what: `kube-apiserver pid ${pid} to exit` });
  return {
    async start() {
      const log = openSync(join(dir, 'logs', 'kube-apiserver.log'), 'a');
      const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
      closeSync(log);
      child.unref();
      writeFileSync(join(dir, 'pids', 'kube-apiserver.pid'), `${child.pid}\n`);
      await eventually(() => apiserverReady(cluster), { timeoutMs: 180_000, intervalMs: 250, what: 'kube-apiserver /readyz after a restart' });
    },
  };
}

// ---- etcd through its HTTP/JSON gateway -----------------------------------------------------

/** The etcd client URL of this run's control plane (from the apiserver's --etcd-servers). */
export function etcdUrl(cluster: Cluster): string {
  const port = cluster.scriptEnv.PORTWAY_ETCD_CLIENT_PORT;
  if (port) return `http://127.0.0.1:${port}`;
  const env = readFileSync(join(stateDirOf(cluster), 'cluster.env'), 'utf8');
  const m = /^PORTWAY_ETCD_CLIENT_PORT=(\d+)/m.exec(env);
  if (!m) throw new Error('no etcd client port in cluster.env');
  return `http://127.0.0.1:${m[1]}`;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

async function etcdCall<T>(cluster: Cluster, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${etcdUrl(cluster)}/v3/${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const text = await res.text();
  if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** etcd's current revision (the newest resourceVersion of anything in the cluster). */
export async function etcdRevision(cluster: Cluster): Promise<number> {
  const r = await etcdCall<{ header: { revision: string } }>(cluster, 'kv/range', { key: b64('/registry/portway-e2e/none') });
  return Number(r.header.revision);
}

/** Writes a key (each write is a new etcd revision). */
export async function etcdPut(cluster: Cluster, key: string, value: string): Promise<number> {
  const r = await etcdCall<{ header: { revision: string } }>(cluster, 'kv/put', { key: b64(key), value: b64(value) });
  return Number(r.header.revision);
}

/** Reads a key's value, or undefined. */
export async function etcdGet(cluster: Cluster, key: string): Promise<string | undefined> {
  const r = await etcdCall<{ kvs?: Array<{ value: string }> }>(cluster, 'kv/range', { key: b64(key) });
  const kv = r.kvs?.[0];
  return kv ? Buffer.from(kv.value, 'base64').toString('utf8') : undefined;
}

/** Compacts etcd's history up to `revision` (default: the current one): older resourceVersions are gone. */
export async function etcdCompact(cluster: Cluster, revision?: number): Promise<number> {
  const rev = revision ?? (await etcdRevision(cluster));
  await etcdCall(cluster, 'kv/compaction', { revision: String(rev), physical: true });
  return rev;
}
