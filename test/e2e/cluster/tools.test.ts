// The built tools are the pinned versions and work against the control plane: kubectl, etcd,
// kwok, and helm (offline `helm template` with a kubeVersion constraint, and a real install);
// the real node's binaries (kubelet, kube-proxy, CNI plugins, pause, CoreDNS, metrics-server,
// echo-basic) are built and report their versions.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pinnedVersions, useNamespace } from '../support/cluster.js';

const run = async (file: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
  (await promisify(execFile)(file, args, { env, timeout: 60_000 })).stdout;

describe('e2e cluster: built tools', function () {
  const env = useNamespace('tools');
  const pinned = pinnedVersions();

  it('kubectl, etcd and kwok report the pinned versions', async () => {
    const kubectl = JSON.parse(await env.cluster.kubectl(['version', '--client', '-o', 'json'])) as { clientVersion: { gitVersion: string } };
    assert.equal(kubectl.clientVersion.gitVersion, pinned.KUBERNETES_VERSION);
    assert.match(await run(env.cluster.bin.etcd, ['--version']), new RegExp(`^etcd Version: ${pinned.ETCD_VERSION.slice(1)}$`, 'm'));
    assert.match(await run(env.cluster.bin.kwok, ['--version']), new RegExp(`^kwok version ${pinned.KWOK_VERSION} `));
  });

  it('the real node binaries are built and report the pinned versions', async () => {
    const bin = env.cluster.bin;
    const exec = promisify(execFile);
    for (const b of ['kubelet', 'kube-proxy']) assert.equal((await run(bin[b], ['--version'])).trim(), `Kubernetes ${pinned.KUBERNETES_VERSION}`);
    for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) {
      // Without CNI_COMMAND a plugin prints its build version on stderr and exits 0.
      const { stderr } = await exec(bin[p], [], { env: { PATH: process.env.PATH }, timeout: 60_000 });
      assert.match(stderr, new RegExp(`^CNI ${p} plugin ${pinned.CNI_PLUGINS_VERSION}$`, 'm'));
    }
    assert.match(await run(bin.pause, ['-v']), /^pause\.go portway-[0-9a-f]{12}$/m);
    assert.match(await run(bin.coredns, ['-version']), new RegExp(`^CoreDNS-${pinned.COREDNS_VERSION.slice(1)}$`, 'm'));
    assert.equal((await run(bin['metrics-server'], ['--version'])).trim(), pinned.METRICS_SERVER_VERSION);
    accessSync(bin['echo-basic'], constants.X_OK); // no version flag: configured by environment only
  });

  it('helm renders offline for a chart that requires a recent Kubernetes, and installs into the cluster', async function () {
    this.timeout(90_000);
    const helm = env.cluster.bin.helm;
    assert.equal((await run(helm, ['version', '--template', '{{.Version}}'])).trim(), pinned.HELM_VERSION);

    const chart = join(env.cluster.workDir, `chart-${env.namespace}`);
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: ">=1.29.0-0"\n');
    writeFileSync(
      join(chart, 'templates', 'configmap.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-probe\ndata:\n  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}\n',
    );

    // Offline, helm assumes the Kubernetes version of its client libraries (v1.20 if unstamped).
    const offline = await run(helm, ['template', 'probe', chart]);
    const m = /kubeVersion: "v1\.(\d+)\.0"/.exec(offline);
    assert.ok(m && Number(m[1]) >= 29, `helm template renders for Kubernetes >= 1.29:\n${offline}`);

    // Against the cluster, helm uses the server's version.
    const helmEnv = { ...process.env, KUBECONFIG: env.cluster.kubeconfigPath, HELM_CACHE_HOME: join(chart, '.cache'), HELM_CONFIG_HOME: join(chart, '.config'), HELM_DATA_HOME: join(chart, '.data') };
    await run(helm, ['install', 'probe', chart, '--namespace', env.namespace, '--wait', '--timeout', '60s'], helmEnv);
    const cm = JSON.parse(await env.cluster.kubectl(['get', 'configmap', 'probe-probe', '-n', env.namespace, '-o', 'json'])) as { data: { kubeVersion: string } };
    if (!env.cluster.reused) assert.equal(cm.data.kubeVersion, pinned.KUBERNETES_VERSION);
    assert.match(await run(helm, ['list', '--namespace', env.namespace, '-q'], helmEnv), /^probe$/m);
  });
});
