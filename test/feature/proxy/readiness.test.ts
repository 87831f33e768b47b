// Readiness tells the truth (issue 13 item 13), with the real proxy process: a configured
// listener that cannot bind (port taken) makes the proxy not ready, saying which, until the
// port is free and the listener bound; a proxy that no Gateway selects warns in its log and in
// `portway proxy-config diagnostics`.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from '../../support/echo-backend.js';
import { printLogsIfFailed, startProxyProcess, type ProxyProcess } from '../../support/proxy-process.js';
import { repoRoot } from '../../support/repo-root.js';
import { eventually } from '../proxy-tls/harness.js';
import { writeAtomically } from '../../support/standalone-config.js';

function gateway(selector: string, ports: number[]): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {${selector}}
  servers:
${ports.map((p) => `  - port: {number: ${p}, name: http-${p}, protocol: HTTP}\n    hosts: ["*"]\n`).join('')}`;
}


async function readiness(proxy: ProxyProcess): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${proxy.statusPort}/healthz/ready`);
  return { status: res.status, body: await res.text() };
}

function portwayOutput(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'portway.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}

describe('proxy process: readiness and the proxy’s own warnings', function () {
  this.timeout(60_000);
  let dir: string;
  let proxy: ProxyProcess | undefined;
  let blocker: Server | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portway-readiness-'));
  });
  afterEach(async function () {
    printLogsIfFailed(this, [proxy]);
    await proxy?.stop('SIGKILL');
    proxy = undefined;
    if (blocker?.listening) await new Promise((r) => blocker!.close(r));
    blocker = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('a listener whose port is taken: not ready, naming it; ready once the port is free and the listener bound', async () => {
    const [free, taken] = [await closedPort(), await closedPort()];
    writeFileSync(join(dir, 'gw.yaml'), gateway('istio: ingressgateway', [80]));
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--bind-address', '127.0.0.1', '--port-map', `80=${free},81=${taken}`, '--access-log', 'off']);
    assert.equal((await readiness(proxy)).status, 200);

    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(taken, '127.0.0.1', resolve));
    writeAtomically(join(dir, 'gw.yaml'), gateway('istio: ingressgateway', [80, 81]));
    await eventually('readiness fails while port 81 cannot bind', async () => (await readiness(proxy!)).status === 503);
    const notReady = await readiness(proxy);
    assert.match(notReady.body, new RegExp(`127\\.0\\.0\\.1:${taken}`));
    assert.match(notReady.body, /EADDRINUSE/);

    await new Promise((r) => blocker!.close(r));
    await eventually('ready again once the port is free', async () => (await readiness(proxy!)).status === 200, 20_000);
    // The listener is bound now: a request gets the proxy's 404 (no route), not a refused connection.
    const res = await fetch(`http://127.0.0.1:${taken}/`);
    assert.equal(res.status, 404);
  });

  it('no Gateway selects the proxy: a warning in the log and in proxy-config diagnostics', async () => {
    writeFileSync(join(dir, 'gw.yaml'), gateway('istio: other-gateway', [80]));
    proxy = await startProxyProcess(['--config', dir, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--port-map', `80=${await closedPort()}`, '--access-log', 'off']);
    await proxy.waitForLog(/no Gateway selects this proxy's labels \{istio=ingressgateway\}.*istio-system\/gw selects \{istio=other-gateway\}/);
    const table = await portwayOutput(['proxy-config', 'diagnostics', '--admin', `http://127.0.0.1:${proxy.adminPort}`]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /WARNING/);
    assert.match(table.stdout, /no Gateway selects this proxy's labels/);
  });
});
