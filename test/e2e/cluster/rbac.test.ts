// RBAC is really enforced, for tokens minted with the TokenRequest API: a ServiceAccount with
// no permissions gets 403 on `list secrets`; after a RoleBinding it succeeds (in that
// namespace only). Covers test/e2e/support/service-account.ts and hack/cluster/sa-kubeconfig.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ApiException, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { KubectlError, runScript, useNamespace } from '../support/cluster.js';
import { serviceAccountCredentials } from '../support/service-account.js';
import { eventually } from '../support/wait.js';

describe('e2e cluster: RBAC with ServiceAccount tokens', function () {
  const env = useNamespace('rbac');

  it('403 on list secrets without permissions, allowed after a RoleBinding, still 403 elsewhere', async function () {
    this.timeout(90_000);
    const namespace = env.namespace;
    const admin = env.cluster.kc.makeApiClient(CoreV1Api);
    await admin.createNamespacedSecret({ namespace, body: { metadata: { name: 'the-secret' }, stringData: { k: 'v' } } });

    const sa = await serviceAccountCredentials(env.cluster, namespace, 'reader', { create: true, expirationSeconds: 600 });
    assert.equal(sa.username, `system:serviceaccount:${namespace}:reader`);
    assert.ok(sa.expiresAt.getTime() > Date.now(), 'the token has not expired');
    const asSa = sa.kc.makeApiClient(CoreV1Api);

    const forbidden = await asSa.listNamespacedSecret({ namespace }).then(
      () => assert.fail('listing secrets without a RoleBinding must be forbidden'),
      (e: unknown) => e,
    );
    assert.ok(forbidden instanceof ApiException, String(forbidden));
    assert.equal(forbidden.code, 403);
    const body = typeof forbidden.body === 'string' ? forbidden.body : JSON.stringify(forbidden.body);
    assert.match(body, new RegExp(`system:serviceaccount:${namespace}:reader`), 'the 403 names the ServiceAccount');

    const rbac = env.cluster.kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: { metadata: { name: 'secret-reader' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'reader-reads-secrets' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secret-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }],
      },
    });
    // The authorizer's informer picks the binding up asynchronously.
    const list = await eventually(() => asSa.listNamespacedSecret({ namespace }), { timeoutMs: 30_000, what: 'list secrets to be allowed' });
    assert.ok(list.items.some((s) => s.metadata?.name === 'the-secret'));

    // The binding is namespaced: the same token is still forbidden in another namespace.
    const elsewhere = await asSa.listNamespacedSecret({ namespace: 'default' }).then(
      () => assert.fail('list secrets in default must stay forbidden'),
      (e: unknown) => e,
    );
    assert.equal((elsewhere as ApiException<unknown>).code, 403);
  });

  it('hack/cluster/sa-kubeconfig writes a kubeconfig that authenticates as the ServiceAccount', async function () {
    this.timeout(60_000);
    const namespace = env.namespace;
    await env.cluster.kubectl(['create', 'serviceaccount', 'nobody', '-n', namespace]);
    const out = join(env.cluster.workDir, `sa-kubeconfig-${namespace}`);
    await runScript('sa-kubeconfig', [namespace, 'nobody', out, '--duration=15m'], {
      ...env.cluster.scriptEnv,
      KUBECONFIG: env.cluster.kubeconfigPath,
    });
    const whoami = JSON.parse(await env.cluster.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig: out })) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    assert.equal(whoami.status.userInfo.username, `system:serviceaccount:${namespace}:nobody`);
    assert.ok(whoami.status.userInfo.groups.includes('system:serviceaccounts'));
    assert.equal((await env.cluster.kubectl(['auth', 'can-i', 'list', 'secrets'], { kubeconfig: out }).catch((e: KubectlError) => e.stdout)).trim(), 'no');
    await assert.rejects(env.cluster.kubectl(['get', 'secrets'], { kubeconfig: out }), /Forbidden|forbidden/);
  });
});
