// Kubeconfig exec credential plugins (how EKS, GKE and AKS users authenticate from a laptop),
// as both programs load them (kube/connection.ts): the plugin's token authenticates to the
// real apiserver, it is cached until its expiry and run again after, and a failing plugin is
// an error that names it.

import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { connectionFromKubeconfig } from '../../../kube/connection.js';
import { kubeRequest } from '../../../kube/kube-request.js';
import { useNamespace } from '../support/cluster.js';
import { serviceAccountCredentials } from '../support/service-account.js';

interface SelfSubjectReview {
  status?: { userInfo?: { username?: string } };
}

describe('e2e cluster: kubeconfig exec credential plugins', function () {
  this.timeout(90_000);
  const env = useNamespace('exec-cred');

  /** Writes a plugin (a Node script) and a kubeconfig that runs it by a relative path. */
  function writeKubeconfig(name: string, plugin: string): { kubeconfig: string; calls: () => number } {
    const dir = env.cluster.workDir;
    const callsFile = join(dir, `${name}.calls`);
    writeFileSync(callsFile, '');
    const script = join(dir, `${name}.mjs`);
    writeFileSync(script, `#!/usr/bin/env node\nimport { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(callsFile)}, 'x');\n${plugin}\n`);
    chmodSync(script, 0o755);
    const admin = env.cluster.kc.getCurrentCluster()!;
    const caData = admin.caData ?? (admin.caFile ? readFileSync(admin.caFile).toString('base64') : undefined);
    const kubeconfig = join(dir, `${name}.kubeconfig`);
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: admin.server, ...(caData ? { 'certificate-authority-data': caData } : {}) } }],
        users: [{ name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: `./${name}.mjs`, args: ['--flag'], env: [{ name: 'PLUGIN_ENV', value: 'set' }], interactionMode: 'Never' } } }],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'ctx',
      }),
    );
    return { kubeconfig, calls: () => readFileSync(callsFile, 'utf8').length };
  }

  const whoAmI = async (kubeconfig: string) => {
    const review = await kubeRequest<SelfSubjectReview>(connectionFromKubeconfig(kubeconfig), {
      method: 'POST',
      path: '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    return review.status?.userInfo?.username;
  };

  it('authenticates with the token the plugin prints, runs it once per token lifetime, and again after expiry', async () => {
    const sa = await serviceAccountCredentials(env.cluster, env.namespace, 'laptop', { create: true, expirationSeconds: 600 });
    // The plugin checks what client-go passes it (args, env, KUBERNETES_EXEC_INFO) and
    // prints a token that expires 2 s from now.
    const { kubeconfig, calls } = writeKubeconfig(
      'token-plugin',
      `const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO ?? '{}');
if (process.argv[2] !== '--flag' || process.env.PLUGIN_ENV !== 'set' || info.kind !== 'ExecCredential') { console.error('bad invocation'); process.exit(2); }
console.log(JSON.stringify({ apiVersion: info.apiVersion, kind: 'ExecCredential', status: { token: ${JSON.stringify(sa.token)}, expirationTimestamp: new Date(Date.now() + 2000).toISOString() } }));`,
    );
    const conn = connectionFromKubeconfig(kubeconfig);
    const review = (await kubeRequest<SelfSubjectReview>(conn, { method: 'POST', path: '/apis/authentication.k8s.io/v1/selfsubjectreviews', body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } })).status;
    assert.equal(review?.userInfo?.username, sa.username);
    await kubeRequest(conn, { method: 'GET', path: '/version' });
    assert.equal(calls(), 1, 'the token is reused while it is valid');
    await new Promise((r) => setTimeout(r, 1_500));
    await kubeRequest(conn, { method: 'GET', path: '/version' });
    assert.equal(calls(), 2, 'the plugin runs again as the token nears its expiry');
  });

  it('a token the apiserver refuses (401) before its stated expiry is renewed by running the plugin again', async () => {
    const sa = await serviceAccountCredentials(env.cluster, env.namespace, 'revoked', { create: true, expirationSeconds: 600 });
    // First run: a token the apiserver does not know, valid for an hour by its own account.
    const { kubeconfig, calls } = writeKubeconfig(
      'revoked-plugin',
      `import { readFileSync } from 'node:fs';
const first = readFileSync(process.argv[1].replace(/\\.mjs$/, '.calls'), 'utf8').length === 1;
const token = first ? 'not-a-token-the-apiserver-knows' : ${JSON.stringify(sa.token)};
console.log(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token, expirationTimestamp: new Date(Date.now() + 3600_000).toISOString() } }));`,
    );
    assert.equal(await whoAmI(kubeconfig), sa.username);
    assert.equal(calls(), 2, 'run again after the 401, once');
  });

  it('a failing plugin, or one that prints no token, is an error naming the plugin', async () => {
    const failing = writeKubeconfig('failing-plugin', `console.error('login required'); process.exit(1);`);
    await assert.rejects(whoAmI(failing.kubeconfig), /exec plugin .*failing-plugin\.mjs failed/);
    const noToken = writeKubeconfig('empty-plugin', `console.log(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: {} }));`);
    await assert.rejects(whoAmI(noToken.kubeconfig), /empty-plugin\.mjs returned no status\.token/);
  });
});
