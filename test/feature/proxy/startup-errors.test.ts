// Start-up mistakes a new user makes, with the real `portway` binary (issue 13 items 12, 17, 18):
// the command exits 1 at once with a message saying what is wrong, instead of hanging or
// reporting ready while serving nothing.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unusedPort } from '../../support/ports.js';
import { repoRoot } from '../../support/repo-root.js';

interface Outcome {
  code: number | null;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** Runs `portway <args>` with `env` added to the test's environment; resolves when it exits. */
function runPortway(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'portway.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => {
      running.delete(child);
      resolve({ code, stderr });
    });
  });
}

/** Admin ports nothing else uses, so a proxy that wrongly keeps running collides with nothing. */
async function adminFlags(): Promise<string[]> {
  return ['--status-port', String(await unusedPort()), '--metrics-port', String(await unusedPort()), '--admin-port', String(await unusedPort())];
}

describe('portway proxy: start-up errors exit 1 with a clear message', function () {
  this.timeout(30_000);
  let home: string;
  before(() => {
    home = mkdtempSync(join(tmpdir(), 'portway-home-'));
  });
  afterEach(() => {
    // A proxy that did not exit (the bug) must not outlive its test.
    for (const child of running) child.kill('SIGKILL');
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  it('no Kubernetes credentials (no --config, no kubeconfig, not in a pod): exit 1 naming the problem', async () => {
    const env = { HOME: home, KUBECONFIG: join(home, 'no-such-kubeconfig'), KUBERNETES_SERVICE_HOST: '' };
    const r = await runPortway(['proxy', ...(await adminFlags())], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no Kubernetes credentials/);
    assert.match(r.stderr, /--config/, 'the message points at standalone mode');
  });

  it('--config naming a path that does not exist: exit 1 naming the path', async () => {
    const missing = join(home, 'no-such-config');
    const r = await runPortway(['proxy', '--config', missing, ...(await adminFlags())]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(missing), r.stderr);
    assert.match(r.stderr, /does not exist/);
  });

  it('--config with one existing and one missing path: exit 1 naming the missing one', async () => {
    const missing = join(home, 'missing.yaml');
    const r = await runPortway(['proxy', '--config', `${home},${missing}`, ...(await adminFlags())]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(missing), r.stderr);
  });

  it('no Kubernetes credentials with --concurrency 2: exit 1 too', async () => {
    const env = { HOME: home, KUBECONFIG: join(home, 'no-such-kubeconfig'), KUBERNETES_SERVICE_HOST: '' };
    const r = await runPortway(['proxy', '--concurrency', '2', ...(await adminFlags())], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no Kubernetes credentials/);
  });
});

describe('portway demo: help and ports (issue 13 item 18)', function () {
  this.timeout(30_000);
  afterEach(() => {
    for (const child of running) child.kill('SIGKILL');
  });

  it('--help prints the demo’s usage, its ports and the flags that move them, and exits 0', async () => {
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'portway.js'), 'demo', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    running.delete(child);
    assert.equal(code, 0);
    assert.match(stdout, /Usage: portway demo/);
    assert.match(stdout, /127\.0\.0\.1:8080/);
    for (const flag of ['--port-map 80=PORT', '--status-port', '--metrics-port', '--admin-port']) assert.ok(stdout.includes(flag), `${flag} in:\n${stdout}`);
  });

  it('a port in use: exit 1 naming the port and the flag that moves it, before starting anything', async () => {
    const taken = await unusedPort();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(taken, '127.0.0.1', resolve));
    try {
      const r = await runPortway(['demo', '--status-port', String(taken), '--metrics-port', String(await unusedPort()), '--admin-port', String(await unusedPort()), '--port-map', `80=${await unusedPort()}`]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`port ${taken}.*--status-port`));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});
