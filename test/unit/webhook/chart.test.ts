// The chart's webhook objects against the code that serves them: the configurations call
// the paths the server answers, select the pods injection handles, cover every kind
// validation checks, point at the Service the certificate is made for, leave caBundle to
// the operator (or cert-manager), and the operator may do exactly what its certificates need.
// Rendered by hack/cluster's helm (built by the before hook when missing).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Deployment, V1MutatingWebhookConfiguration, V1PolicyRule, V1Service, V1ValidatingWebhookConfiguration } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { VALIDATED_KINDS } from '../../../dataplane/translate/validate.js';
import { PLURAL } from '../../../operator/api/types.js';
import { INJECT_LABEL } from '../../../operator/webhook/injection.js';
import { INJECT_PATH, VALIDATE_PATH } from '../../../operator/webhook/server.js';
import { repoRoot } from '../../support/repo-root.js';

const NAMESPACE = 'portway-system';
const chartDir = join(repoRoot(), 'charts', 'portway');

/** The helm that hack/cluster/build.sh built, if it did. */
function builtHelm(): string | undefined {
  const printed = spawnSync('bash', [join(repoRoot(), 'hack', 'cluster', 'build.sh'), '--print'], { encoding: 'utf8' });
  return printed.status === 0 ? printed.stdout.split('\n').find((p) => p.endsWith('/helm')) : undefined;
}

interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [k: string]: unknown;
}

describe('charts/portway: the webhook objects match the webhook code', function () {
  this.timeout(60_000);
  const helm = builtHelm();
  const render = (...set: string[]): Doc[] => {
    const r = spawnSync(helm!, ['template', 'portway', chartDir, '--namespace', NAMESPACE, '--kube-version', '1.33.0', '--skip-tests', ...set.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return parseAllDocuments(r.stdout).map((d) => (Array.isArray(d) ? undefined : (d.toJS() as Doc | null))).filter((d): d is Doc => !!d);
  };
  const one = <T>(docs: Doc[], kind: string, name?: string): T => {
    const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
    assert.equal(found.length, 1, `one ${kind} ${name ?? ''}`);
    return found[0] as unknown as T;
  };

  before(function () {
    // Built here when missing (a cold machine), never skipped.
    this.timeout(30 * 60_000);
    if (!helm || !existsSync(helm)) {
      const build = spawnSync('bash', [join(repoRoot(), 'hack', 'cluster', 'build.sh'), 'helm'], { stdio: ['ignore', 'inherit', 'inherit'] });
      assert.equal(build.status, 0, 'hack/cluster/build.sh helm failed');
    }
    assert.ok(helm && existsSync(helm), `no helm at ${helm}`);
  });

  it('gateway injection: pods only, on CREATE, opted-in by label, kube-system excluded, Fail, at /inject of the webhook Service', () => {
    const docs = render();
    const config = one<V1MutatingWebhookConfiguration>(docs, 'MutatingWebhookConfiguration', 'portway');
    assert.equal(config.webhooks?.length, 1);
    const w = config.webhooks![0]!;
    assert.deepEqual(w.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
    assert.deepEqual(w.objectSelector, { matchLabels: { [INJECT_LABEL]: 'true' } });
    assert.ok(w.namespaceSelector?.matchExpressions?.some((e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn' && e.values?.includes('kube-system')));
    assert.equal(w.failurePolicy, 'Fail');
    assert.equal(w.sideEffects, 'None');
    assert.ok((w.timeoutSeconds ?? 30) <= 10);
    const svc = one<V1Service & Doc>(docs, 'Service', w.clientConfig.service!.name);
    assert.equal(w.clientConfig.service!.namespace, NAMESPACE);
    assert.equal(w.clientConfig.service!.path, INJECT_PATH);
    assert.ok(svc.spec!.ports!.some((p) => p.port === w.clientConfig.service!.port));
    assert.equal(w.clientConfig.caBundle, undefined, 'the operator owns caBundle');
  });

  it('validation: every kind the translator validates and GatewayDeployments, on CREATE and UPDATE, Ignore with a short timeout, at /validate', () => {
    const config = one<V1ValidatingWebhookConfiguration>(render(), 'ValidatingWebhookConfiguration', 'portway');
    const w = config.webhooks![0]!;
    assert.equal(w.failurePolicy, 'Ignore', 'an operator outage never blocks a write');
    assert.ok((w.timeoutSeconds ?? 30) <= 5);
    assert.equal(w.clientConfig.service!.path, VALIDATE_PATH);
    assert.equal(w.clientConfig.caBundle, undefined);
    const covered = new Set(w.rules!.flatMap((r) => r.apiGroups!.flatMap((g) => r.resources!.map((res) => `${g}/${res}`))));
    const plural: Record<(typeof VALIDATED_KINDS)[number], string> = { Gateway: 'gateways', VirtualService: 'virtualservices', DestinationRule: 'destinationrules', ServiceEntry: 'serviceentries' };
    for (const kind of VALIDATED_KINDS) assert.ok(covered.has(`networking.istio.io/${plural[kind]}`), kind);
    assert.ok(covered.has(`portway.dev/${PLURAL}`));
    for (const r of w.rules!) {
      assert.deepEqual(r.operations, ['CREATE', 'UPDATE']);
      assert.deepEqual(r.apiVersions, ['*'], 'every served version (v1, v1beta1, v1alpha3)');
    }
  });

  it("tells the operator the names it manages, and lets it manage exactly those: its Secret and the configurations' caBundle", () => {
    const docs = render();
    const env = Object.fromEntries(one<V1Deployment & Doc>(docs, 'Deployment', 'portway-operator').spec!.template.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
    assert.ok(docs.some((d) => d.kind === 'Service' && d.metadata.name === env.PORTWAY_WEBHOOK_SERVICE));
    assert.ok(docs.some((d) => d.kind === 'MutatingWebhookConfiguration' && d.metadata.name === env.PORTWAY_WEBHOOK_CONFIGURATION));
    assert.ok(docs.some((d) => d.kind === 'ValidatingWebhookConfiguration' && d.metadata.name === env.PORTWAY_WEBHOOK_CONFIGURATION));
    const role = one<{ rules: V1PolicyRule[] } & Doc>(docs, 'Role', 'portway-operator-webhook-certificate');
    assert.equal(role.metadata.namespace, NAMESPACE);
    assert.deepEqual(role.rules, [
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: [env.PORTWAY_WEBHOOK_SECRET], verbs: ['get', 'update'] },
    ]);
    const clusterRole = one<{ rules: V1PolicyRule[] } & Doc>(docs, 'ClusterRole', 'portway-operator-webhook-ca-bundle');
    assert.deepEqual(clusterRole.rules, [
      { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'], resourceNames: [env.PORTWAY_WEBHOOK_CONFIGURATION], verbs: ['get', 'patch'] },
    ]);
  });

  it('with cert-manager: its CA injector fills caBundle, the operator gets no certificate permissions', () => {
    const docs = render('webhook.certManager=true');
    const certificate = one<Doc>(docs, 'Certificate');
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      assert.equal(one<Doc>(docs, kind).metadata.annotations?.['cert-manager.io/inject-ca-from'], `${NAMESPACE}/${certificate.metadata.name}`);
    }
    assert.ok(!docs.some((d) => d.metadata.name.startsWith('portway-operator-webhook-')));
    const env = one<V1Deployment & Doc>(docs, 'Deployment').spec!.template.spec!.containers[0]!.env!;
    assert.equal(env.find((e) => e.name === 'PORTWAY_WEBHOOK_CERT_DIR')?.value, '/etc/portway/webhook-certs');
  });

  it('can turn either webhook off and choose its failure policy', () => {
    const docs = render('webhook.injection.enabled=false', 'webhook.validation.failurePolicy=Fail', 'webhook.validation.timeoutSeconds=3');
    assert.equal(docs.filter((d) => d.kind === 'MutatingWebhookConfiguration').length, 0);
    const w = one<V1ValidatingWebhookConfiguration>(docs, 'ValidatingWebhookConfiguration').webhooks![0]!;
    assert.equal(w.failurePolicy, 'Fail');
    assert.equal(w.timeoutSeconds, 3);
  });
});
