// The Helm chart (charts/portway), rendered by the real helm that hack/cluster builds (the
// tests are skipped, and say so, until it exists): it lints, installs the same CRD as crds/,
// deploys a hardened operator, and gives it exactly the permissions the renderer needs —
// every kind it renders, and every rule it grants to gateways.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { V1Deployment, V1PolicyRule, V1Service } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { applyDefaults } from '../../../operator/api/defaults.js';
import type { GatewayDeployment } from '../../../operator/api/types.js';
import { validateGatewayDeployment } from '../../../operator/api/validate.js';
import { GATEWAY_CLUSTER_RULES, GATEWAY_NAMESPACE_RULES, RENDERED_KINDS } from '../../../operator/render/index.js';
import { assertMatchesGolden, goldenCases } from '../../support/golden.js';
import { repoRoot } from '../../support/repo-root.js';
import { checkAgainstSchema, type Schema } from './openapi-schema.js';

const chartDir = join(repoRoot(), 'charts', 'portway');
const NAMESPACE = 'portway-system';

/** hack/cluster's helm: $PORTWAY_CACHE/bin/helm-<HELM_VERSION>/helm, the pinned version first. */
function findHelm(): string | undefined {
  const bin = join(process.env.PORTWAY_CACHE ?? join(homedir(), '.cache', 'portway'), 'bin');
  const versionsFile = join(repoRoot(), 'hack', 'cluster', 'versions.env');
  const pinned = existsSync(versionsFile) ? /^HELM_VERSION=(\S+)/m.exec(readFileSync(versionsFile, 'utf8'))?.[1] : undefined;
  const dirs = existsSync(bin) ? readdirSync(bin).filter((d) => /^helm-v[\d.]+$/.test(d)) : [];
  if (pinned) dirs.sort((a, b) => Number(b === `helm-${pinned}`) - Number(a === `helm-${pinned}`));
  return dirs.map((d) => join(bin, d, 'helm')).find((p) => existsSync(p));
}

// Found (or built) in the suite's before hook, not at load time: mocha loads every spec file
// before the e2e tests build the binaries, and a cold machine would then skip these tests.
let helm: string | undefined;

function runHelm(args: string[]): string {
  const result = spawnSync(helm!, args, { encoding: 'utf8' });
  assert.equal(result.status, 0, `helm ${args.join(' ')}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

function template(...set: string[]): Doc[] {
  // Helm assumes Kubernetes 1.20 without a cluster; the chart needs 1.29 (CEL rules).
  const out = runHelm(['template', 'portway', chartDir, '--namespace', NAMESPACE, '--kube-version', '1.33.0', '--include-crds', ...set.flatMap((s) => ['--set', s])]);
  return parseDocs(out);
}

function parseDocs(out: string): Doc[] {
  return parseAllDocuments(out)
    .map((d) => (Array.isArray(d) ? undefined : (d.toJS() as Doc | null)))
    .filter((d): d is Doc => !!d);
}

function one<T = Doc>(docs: Doc[], kind: string, name?: string): T & Doc {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  assert.equal(found.length, 1, `expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as T & Doc;
}

/** (apiGroup, resource, verb) triples a set of rules allows; resourceNames-limited rules count as nothing. */
function allowed(rules: readonly V1PolicyRule[]): Set<string> {
  const out = new Set<string>();
  for (const r of rules) {
    if (r.resourceNames?.length) continue;
    for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) out.add(`${g}/${res}:${v}`);
  }
  return out;
}

function groupOf(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
}

describe('charts/portway (helm template and lint)', function () {
  before(function () {
    this.timeout(30 * 60_000); // a cold build of helm alone (module downloads + compile)
    helm = findHelm();
    if (!helm) {
      const build = spawnSync('bash', [join(repoRoot(), 'hack', 'cluster', 'build.sh'), 'helm'], { stdio: ['ignore', 'inherit', 'inherit'] });
      assert.equal(build.status, 0, 'hack/cluster/build.sh helm failed');
      helm = findHelm();
    }
    assert.ok(helm, 'no helm under $PORTWAY_CACHE/bin/helm-*/ even after hack/cluster/build.sh helm');
  });

  it('lints cleanly with the defaults and with every option on', () => {
    runHelm(['lint', chartDir, '--strict', '--kube-version', '1.33.0']);
    runHelm(['lint', chartDir, '--strict', '--kube-version', '1.33.0', '--set', 'gateways.ingress.enabled=true', '--set', 'webhook.certManager=true', '--set', 'replicas=2']);
  });

  it('rejects values its schema (values.schema.json) does not allow', () => {
    for (const bad of [['--set', 'replicas=0'], ['--set', 'logLevel=loud'], ['--set', 'surprise=1'], ['--set', 'istioCRDs.enabled=maybe'], ['--set', 'gateways.egress.name=Not_A_Name']]) {
      const result = spawnSync(helm!, ['lint', chartDir, '--strict', '--kube-version', '1.33.0', ...bad], { encoding: 'utf8' });
      assert.notEqual(result.status, 0, `helm lint ${bad.join(' ')} should fail`);
      assert.match(result.stdout + result.stderr, /schema/i, bad.join(' '));
    }
  });

  it('lints with the egress gateway and without the Istio CRDs', () => {
    runHelm(['lint', chartDir, '--strict', '--kube-version', '1.33.0', '--set', 'gateways.egress.enabled=true', '--set', 'istioCRDs.enabled=false']);
  });

  it('installs the very CRD of crds/', () => {
    const crd = one(template(), 'CustomResourceDefinition', 'gatewaydeployments.portway.dev');
    assert.deepEqual(crd, parse(readFileSync(join(repoRoot(), 'crds', 'portway.dev_gatewaydeployments.yaml'), 'utf8')));
  });

  describe('the operator Deployment', () => {
    const docs = () => template();
    const deployment = () => one<V1Deployment>(docs(), 'Deployment', 'portway-operator');

    it('runs non-root with a read-only root filesystem, no capabilities, RuntimeDefault seccomp', () => {
      const pod = deployment().spec!.template.spec!;
      const c = pod.containers[0]!;
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
      assert.equal(pod.serviceAccountName, 'portway-operator');
    });

    it('runs `portway operator` with leader election, its namespace and the proxy image', () => {
      const c = deployment().spec!.template.spec!.containers[0]!;
      assert.deepEqual(c.command, ['portway', 'operator']);
      assert.deepEqual(c.args, ['--namespace', '$(POD_NAMESPACE)', '--leader-elect', 'true', '--proxy-image', 'ghcr.io/portway/portway:0.1.0', '--health-port', '8081']);
      assert.equal(c.image, 'ghcr.io/portway/portway:0.1.0');
      assert.equal(c.env?.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
    });

    it('exposes the webhook port through the webhook Service, and health on its probes', () => {
      const all = docs();
      const c = one<V1Deployment>(all, 'Deployment').spec!.template.spec!.containers[0]!;
      assert.deepEqual(c.ports?.find((p) => p.name === 'webhook'), { name: 'webhook', containerPort: 9443, protocol: 'TCP' });
      const svc = one<V1Service>(all, 'Service', 'portway-webhook');
      assert.deepEqual(svc.spec?.ports, [{ name: 'https-webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' }]);
      const podLabels = one<V1Deployment>(all, 'Deployment').spec!.template.metadata!.labels!;
      for (const [k, v] of Object.entries(svc.spec!.selector!)) assert.equal(podLabels[k], v);
      assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
      assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
    });

    it('takes image, replicas, resources, log level and the proxy image from values', () => {
      const d = one<V1Deployment>(
        template('image.tag=9.9.9', 'replicas=2', 'logLevel=debug', 'proxy.image=example.com/proxy:1', 'resources.limits.memory=1Gi', 'leaderElection.enabled=false'),
        'Deployment',
      );
      const c = d.spec!.template.spec!.containers[0]!;
      assert.equal(d.spec!.replicas, 2);
      assert.equal(c.image, 'ghcr.io/portway/portway:9.9.9');
      assert.equal(c.env?.find((e) => e.name === 'PORTWAY_LOG_LEVEL')?.value, 'debug');
      assert.equal(c.args![c.args!.indexOf('--proxy-image') + 1], 'example.com/proxy:1');
      assert.equal(c.args![c.args!.indexOf('--leader-elect') + 1], 'false');
      assert.equal(c.resources?.limits?.memory, '1Gi');
    });
  });

  describe('the Istio networking CRDs (istioCRDs.enabled)', () => {
    const istio = () => parseDocs(readFileSync(join(repoRoot(), 'crds', 'istio', 'networking.istio.io.yaml'), 'utf8'));

    it('are installed by default, the very CRDs of crds/istio, kept on uninstall', () => {
      const docs = template();
      const wanted = istio();
      assert.equal(wanted.length, 4);
      for (const crd of wanted) {
        const got = one<{ spec: unknown; metadata: { annotations?: Record<string, string>; labels?: Record<string, string> } }>(docs, 'CustomResourceDefinition', crd.metadata.name);
        assert.deepEqual(got.spec, (crd as unknown as { spec: unknown }).spec, crd.metadata.name);
        assert.equal(got.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
        assert.equal(got.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
      }
    });

    it('are left out with istioCRDs.enabled=false', () => {
      assert.deepEqual(template('istioCRDs.enabled=false').filter((d) => d.metadata.name.endsWith('.networking.istio.io')), []);
    });

    it('the chart copy matches crds/istio', () => {
      assert.equal(readFileSync(join(chartDir, 'files', 'networking.istio.io.yaml'), 'utf8'), readFileSync(join(repoRoot(), 'crds', 'istio', 'networking.istio.io.yaml'), 'utf8'));
    });
  });

  describe('helm test and the metrics Service', () => {
    it('a test hook pod asks the operator /readyz through the metrics Service', () => {
      const docs = template();
      const pod = one<{ metadata: { annotations: Record<string, string> }; spec: { restartPolicy: string; containers: Array<{ image: string; command: string[]; securityContext: { readOnlyRootFilesystem: boolean } }> } }>(docs, 'Pod');
      assert.equal(pod.metadata.annotations['helm.sh/hook'], 'test');
      assert.equal(pod.spec.restartPolicy, 'Never');
      const c = pod.spec.containers[0]!;
      assert.equal(c.image, 'ghcr.io/portway/portway:0.1.0');
      assert.equal(c.command.at(-1), `http://portway-operator-metrics.${NAMESPACE}.svc:8081/readyz`);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      const svc = one<V1Service>(docs, 'Service', 'portway-operator-metrics');
      assert.deepEqual(svc.spec?.ports, [{ name: 'http-metrics', port: 8081, targetPort: 'health', protocol: 'TCP' }]);
      const podLabels = one<V1Deployment>(docs, 'Deployment').spec!.template.metadata!.labels!;
      for (const [k, v] of Object.entries(svc.spec!.selector!)) assert.equal(podLabels[k], v);
    });

    it('runs two operator replicas by default', () => {
      assert.equal(one<V1Deployment>(template(), 'Deployment').spec!.replicas, 2);
    });
  });

  describe('golden helm template output (test/golden/chart: values → manifests)', () => {
    for (const c of goldenCases('chart')) {
      it(c.name, () => {
        const out = runHelm(['template', 'portway', chartDir, '--namespace', NAMESPACE, '--kube-version', '1.33.0', '--values', c.inputFile]);
        assertMatchesGolden(c, out);
      });
    }
  });

  describe('operator RBAC', () => {
    let docs: Doc[];
    let operatorRules: Set<string>;
    before(() => {
      docs = template();
      operatorRules = allowed([
        ...one<{ rules: V1PolicyRule[] }>(docs, 'ClusterRole', 'portway-operator').rules,
        ...one<{ rules: V1PolicyRule[] }>(docs, 'ClusterRole', 'portway-operator-grants').rules,
      ]);
    });

    it('manages every kind the renderer produces', () => {
      for (const k of RENDERED_KINDS) {
        for (const verb of ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']) {
          assert.ok(operatorRules.has(`${groupOf(k.apiVersion)}/${k.plural}:${verb}`), `${k.kind}: ${verb}`);
        }
      }
    });

    it('watches GatewayDeployments, writes their status, and may set blockOwnerDeletion (finalizers)', () => {
      for (const p of ['gatewaydeployments:get', 'gatewaydeployments:list', 'gatewaydeployments:watch', 'gatewaydeployments:patch', 'gatewaydeployments/status:patch', 'gatewaydeployments/finalizers:update']) {
        assert.ok(operatorRules.has(`portway.dev/${p}`), p);
      }
    });

    it('holds exactly the rules it grants to gateways in its grants role, and nothing more', () => {
      const grants = allowed(one<{ rules: V1PolicyRule[] }>(docs, 'ClusterRole', 'portway-operator-grants').rules);
      assert.deepEqual([...grants].sort(), [...allowed([...GATEWAY_NAMESPACE_RULES, ...GATEWAY_CLUSTER_RULES])].sort());
    });

    it('binds both ClusterRoles and its Lease Role to the operator ServiceAccount', () => {
      for (const [kind, name] of [
        ['ClusterRoleBinding', 'portway-operator'],
        ['ClusterRoleBinding', 'portway-operator-grants'],
        ['RoleBinding', 'portway-operator-leader-election'],
      ] as const) {
        const b = one<{ subjects: unknown[]; roleRef: { name: string } }>(docs, kind, name);
        assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'portway-operator', namespace: NAMESPACE }]);
        assert.equal(b.roleRef.name, name);
      }
      const lease = one<{ rules: V1PolicyRule[]; metadata: { namespace?: string } }>(docs, 'Role', 'portway-operator-leader-election');
      assert.equal(lease.metadata.namespace, NAMESPACE);
      for (const verb of ['get', 'create', 'update']) assert.ok(allowed(lease.rules).has(`coordination.k8s.io/leases:${verb}`), verb);
    });

    it('cannot read Secrets through anything but the grants role (get/list/watch only)', () => {
      const manage = allowed(one<{ rules: V1PolicyRule[] }>(docs, 'ClusterRole', 'portway-operator').rules);
      assert.ok(![...manage].some((r) => r.startsWith('/secrets:')));
      assert.deepEqual([...operatorRules].filter((r) => r.startsWith('/secrets:')).sort(), ['/secrets:get', '/secrets:list', '/secrets:watch']);
    });
  });

  describe('webhook certificates', () => {
    it('creates no cert-manager objects by default', () => {
      assert.deepEqual(template().filter((d) => d.apiVersion.startsWith('cert-manager.io')), []);
    });

    it('with webhook.certManager=true, issues a certificate for the webhook Service and mounts it', () => {
      const docs = template('webhook.certManager=true');
      const cert = one<{ spec: { secretName: string; dnsNames: string[]; issuerRef: { name: string } } }>(docs, 'Certificate');
      assert.deepEqual(cert.spec.dnsNames, [`portway-webhook.${NAMESPACE}.svc`, `portway-webhook.${NAMESPACE}.svc.cluster.local`]);
      assert.equal(cert.spec.issuerRef.name, one(docs, 'Issuer').metadata.name);
      const pod = one<V1Deployment>(docs, 'Deployment').spec!.template.spec!;
      assert.equal(pod.volumes?.find((v) => v.secret)?.secret?.secretName, cert.spec.secretName);
    });

    it('uses the given issuer instead of its own', () => {
      const docs = template('webhook.certManager=true', 'webhook.issuerRef.name=corp-ca', 'webhook.issuerRef.kind=ClusterIssuer');
      assert.equal(docs.filter((d) => d.kind === 'Issuer').length, 0);
      assert.deepEqual(one<{ spec: { issuerRef: unknown } }>(docs, 'Certificate').spec.issuerRef, { kind: 'ClusterIssuer', name: 'corp-ca' });
    });
  });

  describe('the egress gateway (gateways.egress.enabled)', () => {
    it('is off by default', () => {
      assert.equal(template().filter((d) => d.kind === 'GatewayDeployment').length, 0);
    });

    it('is a valid istio-egressgateway in mode egress, next to the ingress gateway', () => {
      const docs = template('gateways.ingress.enabled=true', 'gateways.egress.enabled=true', 'gateways.egress.spec.replicas=2');
      assert.equal(docs.filter((d) => d.kind === 'GatewayDeployment').length, 2);
      const gd = one<GatewayDeployment>(docs, 'GatewayDeployment', 'istio-egressgateway');
      assert.deepEqual(gd.spec, { mode: 'egress', replicas: 2 });
      assert.equal(gd.metadata.namespace, NAMESPACE);
      const crd = one<{ spec: { versions: Array<{ schema: { openAPIV3Schema: Schema } }> } }>(docs, 'CustomResourceDefinition', 'gatewaydeployments.portway.dev');
      assert.deepEqual(checkAgainstSchema({ ...gd, metadata: { name: gd.metadata.name } }, crd.spec.versions[0]!.schema.openAPIV3Schema), []);
      assert.deepEqual(validateGatewayDeployment(gd, { defaultImage: 'x' }), []);
      const r = applyDefaults({ ...gd, metadata: { ...gd.metadata, uid: 'u' } }, { defaultImage: 'x' });
      assert.equal(r.podLabels.istio, 'egressgateway');
    });
  });

  describe('the example gateway (gateways.ingress.enabled)', () => {
    it('is off by default', () => {
      assert.equal(template().filter((d) => d.kind === 'GatewayDeployment').length, 0);
    });

    it('is a valid, schema-clean istio-ingressgateway whose pods match istio: ingressgateway', () => {
      const docs = template('gateways.ingress.enabled=true', 'gateways.ingress.spec.replicas=2');
      const gd = one<GatewayDeployment>(docs, 'GatewayDeployment');
      const crd = one<{ spec: { versions: Array<{ schema: { openAPIV3Schema: Schema } }> } }>(docs, 'CustomResourceDefinition', 'gatewaydeployments.portway.dev');
      assert.deepEqual(checkAgainstSchema({ ...gd, metadata: { name: gd.metadata.name } }, crd.spec.versions[0]!.schema.openAPIV3Schema), []);
      assert.deepEqual(validateGatewayDeployment(gd, { defaultImage: 'x' }), []);
      assert.deepEqual(gd.spec, { mode: 'ingress', replicas: 2 });
      const r = applyDefaults({ ...gd, metadata: { ...gd.metadata, uid: 'u' } }, { defaultImage: 'x' });
      assert.equal(r.podLabels.istio, 'ingressgateway');
    });
  });
});
