// The built tools are the pinned versions and work against the control plane: kubectl, etcd,
// kwok, and helm (offline `helm template` with a kubeVersion constraint, and a real install).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
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
