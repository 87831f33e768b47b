// Properties every rendering must have, checked over all golden inputs (the golden files
// pin the exact output; these say why it must look that way), plus the contract between
// the rendered container and the proxy's own command line.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Container, V1DeploymentSpec, V1PodDisruptionBudgetSpec, V1ServiceSpec, V2HorizontalPodAutoscalerSpec } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { parseProxyOptions } from '../../../cli/proxy-command.js';
import { applyDefaults, PROXY } from '../../../operator/api/defaults.js';
import { clusterScopedName } from '../../../operator/api/labels.js';
import type { GatewayDeployment, GatewayDeploymentSpec } from '../../../operator/api/types.js';
import { RENDERED_KINDS, renderGatewayObjects, renderProxyPodTemplate, type RenderedObject } from '../../../operator/render/index.js';
import { goldenCases } from '../../support/golden.js';

const options = { defaultImage: 'ghcr.io/portway/portway:test' };

function gateway(spec: GatewayDeploymentSpec, name = 'istio-ingressgateway', namespace = 'istio-system'): GatewayDeployment {
  return { apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name, namespace, uid: 'uid-1' }, spec };
}

function find<T>(objects: RenderedObject[], kind: string): (RenderedObject & { spec: T }) | undefined {
  return objects.find((o) => o.kind === kind) as (RenderedObject & { spec: T }) | undefined;
}

function proxyContainer(objects: RenderedObject[]): V1Container {
  const container = find<V1DeploymentSpec>(objects, 'Deployment')?.spec.template.spec?.containers[0];
  assert.ok(container, 'a Deployment with a proxy container');
  return container;
}

const goldenInputs = goldenCases('render').map((c) => {
  const docs = parseAllDocuments(c.input).map((d) => (Array.isArray(d) ? undefined : (d.toJS() as { kind?: string })));
  return { name: c.name, gd: docs.find((d) => d?.kind === 'GatewayDeployment') as GatewayDeployment };
});

describe('operator render: properties of every rendering', () => {
  for (const { name, gd } of goldenInputs) {
    describe(name, () => {
      const objects = renderGatewayObjects(gd, options);
      const uid = gd.metadata.uid;

      it('labels every object as the operator’s and this gateway’s', () => {
        for (const o of objects) {
          assert.equal(o.metadata.labels['app.kubernetes.io/managed-by'], 'portway-operator', `${o.kind}`);
          assert.equal(o.metadata.labels['portway.dev/gateway'], gd.metadata.name, `${o.kind}`);
        }
      });

      it('owns namespaced objects through a controller reference that blocks owner deletion', () => {
        for (const o of objects.filter((x) => x.metadata.namespace !== undefined)) {
          assert.equal(o.metadata.namespace, gd.metadata.namespace);
          assert.deepEqual(o.metadata.ownerReferences, [
            { apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', name: gd.metadata.name, uid, controller: true, blockOwnerDeletion: true },
          ]);
        }
      });

      it('gives cluster-scoped objects no owner but the gateway’s namespace as a label, and the shared name', () => {
        const clusterScoped = objects.filter((o) => o.metadata.namespace === undefined);
        assert.deepEqual(clusterScoped.map((o) => o.kind), ['ClusterRole', 'ClusterRoleBinding']);
        for (const o of clusterScoped) {
          assert.equal(o.metadata.ownerReferences, undefined);
          assert.equal(o.metadata.labels['portway.dev/gateway-namespace'], gd.metadata.namespace);
          assert.equal(o.metadata.name, clusterScopedName(gd.metadata.namespace!, gd.metadata.name));
        }
      });

      it('renders only kinds of RENDERED_KINDS, in their order, with their apiVersions', () => {
        const order = RENDERED_KINDS.map((k) => k.kind);
        const indexes = objects.map((o) => order.indexOf(o.kind));
        assert.ok(indexes.every((i) => i >= 0), 'a kind missing from RENDERED_KINDS');
        assert.deepEqual(indexes, [...indexes].sort((a, b) => a - b));
        for (const o of objects) assert.equal(o.apiVersion, RENDERED_KINDS.find((k) => k.kind === o.kind)?.apiVersion);
      });

      it('selects the same pods from the Deployment, Service and PDB, and the pod template carries the selector', () => {
        const deployment = find<V1DeploymentSpec>(objects, 'Deployment')!.spec;
        const selector = deployment.selector.matchLabels!;
        for (const [k, v] of Object.entries(selector)) assert.equal(deployment.template.metadata?.labels?.[k], v);
        assert.deepEqual(find<V1ServiceSpec>(objects, 'Service')!.spec.selector, selector);
        const pdb = find<V1PodDisruptionBudgetSpec>(objects, 'PodDisruptionBudget');
        if (pdb) assert.deepEqual(pdb.spec.selector?.matchLabels, selector);
      });

      it('leaves spec.replicas out exactly when the operator does not own the count', () => {
        const replicas = find<V1DeploymentSpec>(objects, 'Deployment')!.spec.replicas;
        const hpa = find<V2HorizontalPodAutoscalerSpec>(objects, 'HorizontalPodAutoscaler');
        if (hpa || gd.spec?.replicas === undefined) assert.equal(replicas, undefined);
        else assert.equal(replicas, gd.spec.replicas);
      });

      it('declares a container port for every targetPort the proxy listens on, with valid names', () => {
        const container = proxyContainer(objects);
        const declared = container.ports!.map((p) => p.containerPort);
        for (const p of find<V1ServiceSpec>(objects, 'Service')!.spec.ports!) assert.ok(declared.includes(p.targetPort as number), `targetPort ${p.targetPort}`);
        assert.equal(new Set(declared).size, declared.length, 'each container port once');
        for (const p of container.ports!) if (p.name) assert.ok(p.name.length <= 15, `container port name ${p.name} is too long`);
      });

      it('runs the proxy non-root with a read-only root filesystem, no capabilities but NET_BIND_SERVICE on request, RuntimeDefault seccomp', () => {
        const pod = find<V1DeploymentSpec>(objects, 'Deployment')!.spec.template.spec!;
        const sc = proxyContainer(objects).securityContext!;
        assert.equal(pod.securityContext?.runAsNonRoot, true);
        assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
        assert.equal(sc.runAsUser, 1337);
        assert.equal(sc.readOnlyRootFilesystem, true);
        assert.deepEqual(sc.capabilities?.drop, ['ALL']);
        const capabilityMode = gd.spec?.privilegedPorts === 'capability';
        assert.deepEqual(sc.capabilities?.add, capabilityMode ? ['NET_BIND_SERVICE'] : undefined);
        assert.equal(sc.allowPrivilegeEscalation, capabilityMode);
        const sysctls = pod.securityContext?.sysctls;
        assert.deepEqual(sysctls, gd.spec?.privilegedPorts === 'sysctl' ? [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }] : undefined);
      });

      it('is deterministic and shares nothing with its input', () => {
        const again = renderGatewayObjects(gd, options);
        assert.deepEqual(again, objects);
        const env = proxyContainer(again).env!;
        env.push({ name: 'CHANGED', value: '1' });
        assert.ok(!(gd.spec?.env ?? []).some((e) => e.name === 'CHANGED'));
        assert.deepEqual(renderGatewayObjects(gd, options), objects);
      });
    });
  }

  it('covers every kind of RENDERED_KINDS across the golden cases', () => {
    const seen = new Set(goldenInputs.flatMap(({ gd }) => renderGatewayObjects(gd, options).map((o) => o.kind)));
    assert.deepEqual([...seen].sort(), RENDERED_KINDS.map((k) => k.kind).sort());
  });

  it('never gives two gateways the same cluster-scoped name (a-b/c and a/b-c)', () => {
    assert.notEqual(clusterScopedName('a-b', 'c'), clusterScopedName('a', 'b-c'));
  });

  it('grants the gateway read access only: Secrets and ConfigMaps in its namespace, Istio config and endpoints cluster-wide', () => {
    const objects = renderGatewayObjects(gateway({}), options);
    const role = find<never>(objects, 'Role') as unknown as { rules: Array<{ resources: string[]; verbs: string[] }> };
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['secrets', 'configmaps'], verbs: ['get', 'list', 'watch'] }]);
    const clusterRole = find<never>(objects, 'ClusterRole') as unknown as { rules: Array<{ resources: string[]; verbs: string[] }> };
    assert.deepEqual(clusterRole.rules.flatMap((r) => r.resources).sort(), ['destinationrules', 'endpointslices', 'gateways', 'pods', 'serviceentries', 'services', 'virtualservices']);
    for (const r of [...role.rules, ...clusterRole.rules]) assert.deepEqual(r.verbs, ['get', 'list', 'watch']);
  });

  it('renders HPA autoscaling/v2 with min 1, max 5, CPU 80% by default, and no PDB that could block drains', () => {
    const objects = renderGatewayObjects(gateway({ autoscaling: { enabled: true } }), options);
    const hpa = find<V2HorizontalPodAutoscalerSpec>(objects, 'HorizontalPodAutoscaler')!.spec;
    assert.deepEqual(hpa.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'istio-ingressgateway' });
    assert.equal(hpa.minReplicas, 1);
    assert.equal(hpa.maxReplicas, 5);
    assert.deepEqual(hpa.metrics, [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }]);
    assert.equal(find(objects, 'PodDisruptionBudget'), undefined);
  });

  it('omits affinity and spread constraints when turned off with {} and []', () => {
    const pod = renderProxyPodTemplate(applyDefaults(gateway({ affinity: {}, topologySpreadConstraints: [] }), options)).spec!;
    assert.equal(pod.affinity, undefined);
    assert.equal(pod.topologySpreadConstraints, undefined);
  });

  it('annotates pods for Prometheus on 15090 /stats/prometheus, and lets podAnnotations override', () => {
    const annotations = (spec: GatewayDeploymentSpec) => renderProxyPodTemplate(applyDefaults(gateway(spec), options)).metadata!.annotations!;
    assert.deepEqual(annotations({}), { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15090', 'prometheus.io/path': '/stats/prometheus' });
    assert.equal(annotations({ podAnnotations: { 'prometheus.io/scrape': 'false' } })['prometheus.io/scrape'], 'false');
  });

  describe('the proxy container and the `portway proxy` command line agree', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'portway-render-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('parses the rendered args as the proxy would, with the downward-API labels and annotations files it mounts', () => {
      const gd = gateway({ drainDuration: '45s', terminationGracePeriodSeconds: 60, labels: { team: 'edge' }, podAnnotations: { 'proxy.istio.io/config': '{"gatewayTopology": {"numTrustedProxies": 2}}' } });
      const objects = renderGatewayObjects(gd, options);
      const container = proxyContainer(objects);
      assert.deepEqual(container.command, ['portway', 'proxy']);
      // The kubelet expands $(POD_NAMESPACE) from the env and writes the labels file like this.
      const podLabels = find<V1DeploymentSpec>(objects, 'Deployment')!.spec.template.metadata!.labels!;
      const labelsFile = join(dir, 'labels');
      writeFileSync(labelsFile, Object.entries(podLabels).map(([k, v]) => `${k}="${v}"`).join('\n'));
      // ... and the annotations file the same way, values Go-quoted.
      const podAnnotations = find<V1DeploymentSpec>(objects, 'Deployment')!.spec.template.metadata!.annotations!;
      const annotationsFile = join(dir, 'annotations');
      writeFileSync(annotationsFile, Object.entries(podAnnotations).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n'));
      assert.ok(container.env!.some((e) => e.name === 'POD_NAMESPACE' && e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace'));
      const local: Record<string, string> = { [PROXY.labelsFile]: labelsFile, [PROXY.annotationsFile]: annotationsFile };
      const args = container.args!.map((a) => local[a] ?? a.replace('$(POD_NAMESPACE)', 'istio-system'));
      const parsed = parseProxyOptions(args, {});
      assert.equal(parsed.source, 'kubernetes');
      assert.equal(parsed.namespace, 'istio-system');
      assert.deepEqual(parsed.labels, podLabels);
      assert.equal(parsed.labels.istio, 'ingressgateway');
      assert.equal(parsed.drainDurationMs, 45_000);
      assert.deepEqual([parsed.statusPort, parsed.metricsPort, parsed.adminPort], [15021, 15090, 15000]);
      assert.equal(parsed.numTrustedProxies, 2, 'gatewayTopology from the pod annotation proxy.istio.io/config');
    });

    it('mounts the labels and annotations files where the args point, from the pod’s own metadata', () => {
      const pod = renderProxyPodTemplate(applyDefaults(gateway({}), options)).spec!;
      const mount = pod.containers[0]!.volumeMounts!.find((m) => PROXY.labelsFile.startsWith(`${m.mountPath}/`));
      assert.ok(mount, 'a mount holding the labels file');
      assert.ok(PROXY.annotationsFile.startsWith(`${mount.mountPath}/`), 'the annotations file is in the same mount');
      const volume = pod.volumes!.find((v) => v.name === mount.name);
      assert.deepEqual(volume?.downwardAPI?.items, [
        { path: 'labels', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.labels' } },
        { path: 'annotations', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.annotations' } },
      ]);
    });

    it('probes readiness on the status port the args give the proxy', () => {
      const container = renderProxyPodTemplate(applyDefaults(gateway({}), options)).spec!.containers[0]!;
      assert.deepEqual(container.readinessProbe?.httpGet, { path: '/healthz/ready', port: 15021, scheme: 'HTTP' });
      assert.equal(container.livenessProbe, undefined);
    });
  });
});
