// applyDefaults: what an unset field means. Each test states one default from the issue (or
// the reason a default is conditional) and checks the resolved value.

import assert from 'node:assert/strict';
import { applyDefaults, DEFAULTS } from '../../../operator/api/defaults.js';
import type { GatewayDeployment, GatewayDeploymentSpec } from '../../../operator/api/types.js';

function gateway(spec: GatewayDeploymentSpec | undefined, name = 'istio-ingressgateway', namespace = 'istio-system'): GatewayDeployment {
  return { apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name, namespace, uid: 'uid-1' }, spec };
}

const options = { defaultImage: 'ghcr.io/portway/portway:test' };

describe('operator api: applyDefaults', () => {
  describe('an empty spec', () => {
    const r = applyDefaults(gateway(undefined), options);

    it('is an ingress gateway on a LoadBalancer Service that keeps client IPs (externalTrafficPolicy Local)', () => {
      assert.equal(r.mode, 'ingress');
      assert.equal(r.service.type, 'LoadBalancer');
      assert.equal(r.service.externalTrafficPolicy, 'Local');
    });

    it("has Istio's gateway ports: status-port 15021, http2 80 → 8080, https 443 → 8443", () => {
      assert.deepEqual(
        r.service.ports.map((p) => [p.name, p.port, p.targetPort, p.protocol]),
        [
          ['status-port', 15021, 15021, 'TCP'],
          ['http2', 80, 8080, 'TCP'],
          ['https', 443, 8443, 'TCP'],
        ],
      );
    });

    it('labels pods app: <name> and istio: <name without "istio-">, plus the selector label', () => {
      assert.equal(r.podLabels.app, 'istio-ingressgateway');
      assert.equal(r.podLabels.istio, 'ingressgateway');
      assert.equal(r.podLabels['portway.dev/gateway'], 'istio-ingressgateway');
      assert.deepEqual(r.selectorLabels, { 'portway.dev/gateway': 'istio-ingressgateway' });
    });

    it("keeps Istio's sidecar injector away from the gateway pod", () => {
      assert.equal(r.podLabels['sidecar.istio.io/inject'], 'false');
    });

    it('leaves the replica count unmanaged, with no HPA and no PDB', () => {
      assert.equal(r.replicas, undefined);
      assert.equal(r.autoscaling, undefined);
      assert.equal(r.podDisruptionBudget, undefined);
    });

    it('rolls out with maxSurge 100% / maxUnavailable 25%, grace 30 s, drain 5 s', () => {
      assert.deepEqual(r.strategy, { maxSurge: '100%', maxUnavailable: '25%' });
      assert.equal(r.terminationGracePeriodSeconds, 30);
      assert.equal(r.drainDuration, '5s');
    });

    it('requests CPU and memory (what an HPA measures against) and limits only memory', () => {
      assert.deepEqual(r.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } });
    });

    it('prefers one pod per node and spreads across zones, softly', () => {
      const term = r.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0];
      assert.equal(term?.podAffinityTerm.topologyKey, 'kubernetes.io/hostname');
      assert.deepEqual(term?.podAffinityTerm.labelSelector?.matchLabels, r.selectorLabels);
      assert.equal(r.topologySpreadConstraints?.[0]?.topologyKey, 'topology.kubernetes.io/zone');
      assert.equal(r.topologySpreadConstraints?.[0]?.whenUnsatisfiable, 'ScheduleAnyway');
    });

    it("uses the operator's default image", () => {
      assert.equal(r.image, options.defaultImage);
    });
  });

  it('uses the whole name for the istio label when it has no "istio-" prefix', () => {
    assert.equal(applyDefaults(gateway({}, 'edge-gw'), options).podLabels.istio, 'edge-gw');
  });

  it('merges user labels over app/istio, but never over the selector label', () => {
    const r = applyDefaults(gateway({ labels: { istio: 'public', team: 'edge', 'portway.dev/gateway': 'other' } }), options);
    assert.equal(r.podLabels.istio, 'public');
    assert.equal(r.podLabels.team, 'edge');
    assert.equal(r.podLabels.app, 'istio-ingressgateway');
    assert.equal(r.podLabels['portway.dev/gateway'], 'istio-ingressgateway');
  });

  it('gives egress gateways a ClusterIP Service, which takes no externalTrafficPolicy', () => {
    const r = applyDefaults(gateway({ mode: 'egress' }), options);
    assert.equal(r.service.type, 'ClusterIP');
    assert.equal(r.service.externalTrafficPolicy, undefined);
  });

  it('gives an egress gateway with an explicit LoadBalancer the Local policy too', () => {
    const r = applyDefaults(gateway({ mode: 'egress', service: { type: 'LoadBalancer' } }), options);
    assert.equal(r.service.externalTrafficPolicy, 'Local');
  });

  it("defaults a user port's targetPort to its port, as Kubernetes does", () => {
    const r = applyDefaults(gateway({ service: { ports: [{ name: 'http', port: 8000 }, { name: 'tls', port: 9443, targetPort: 10443 }] } }), options);
    assert.deepEqual(r.service.ports.map((p) => p.targetPort), [8000, 10443]);
  });

  it('replaces the default port list when ports are given (no status-port added back)', () => {
    const r = applyDefaults(gateway({ service: { ports: [{ name: 'http', port: 8000 }] } }), options);
    assert.deepEqual(r.service.ports.map((p) => p.name), ['http']);
  });

  it('prefers spec.image over the operator default', () => {
    assert.equal(applyDefaults(gateway({ image: 'mine:1' }), options).image, 'mine:1');
  });

  it('throws when there is no image at all (validation reports it first)', () => {
    assert.throws(() => applyDefaults(gateway({}), {}), /spec\.image is unset/);
  });

  it('throws for an object without uid: only objects read from the API can be owners', () => {
    const gd = gateway({});
    delete gd.metadata.uid;
    assert.throws(() => applyDefaults(gd, options), /no namespace or uid/);
  });

  describe('autoscaling', () => {
    it('defaults to min 1, max 5, CPU 80%, and drops spec.replicas (the HPA owns the count)', () => {
      const r = applyDefaults(gateway({ replicas: 4, autoscaling: { enabled: true } }), options);
      assert.deepEqual(r.autoscaling, { minReplicas: 1, maxReplicas: 5, targetCPUUtilizationPercentage: 80, targetMemoryUtilizationPercentage: undefined, behavior: undefined });
      assert.equal(r.replicas, undefined);
    });

    it('adds no CPU target to a memory-only HPA', () => {
      const r = applyDefaults(gateway({ autoscaling: { enabled: true, targetMemoryUtilizationPercentage: 75 } }), options);
      assert.equal(r.autoscaling?.targetCPUUtilizationPercentage, undefined);
      assert.equal(r.autoscaling?.targetMemoryUtilizationPercentage, 75);
    });

    it('is off unless enabled, even when configured (so it can be switched off without deleting the settings)', () => {
      const r = applyDefaults(gateway({ replicas: 2, autoscaling: { enabled: false, minReplicas: 3, maxReplicas: 9 } }), options);
      assert.equal(r.autoscaling, undefined);
      assert.equal(r.replicas, 2);
    });
  });

  describe('PodDisruptionBudget: only when it makes sense', () => {
    const pdb = (spec: GatewayDeploymentSpec) => applyDefaults(gateway(spec), options).podDisruptionBudget;

    it('none for one replica: minAvailable 1 would block every node drain', () => {
      assert.equal(pdb({ replicas: 1 }), undefined);
    });
    it('minAvailable 1 for two or more replicas', () => {
      assert.deepEqual(pdb({ replicas: 2 }), { minAvailable: 1 });
    });
    it('none when the count is left to kubectl scale (it cannot be known)', () => {
      assert.equal(pdb({}), undefined);
    });
    it('minAvailable 1 with an HPA whose minReplicas is above 1', () => {
      assert.deepEqual(pdb({ autoscaling: { enabled: true, minReplicas: 2 } }), { minAvailable: 1 });
    });
    it('none with an HPA that may go down to one replica', () => {
      assert.equal(pdb({ autoscaling: { enabled: true } }), undefined);
    });
    it('the configured value when one is set, whatever the replica count', () => {
      assert.deepEqual(pdb({ podDisruptionBudget: { maxUnavailable: '50%' } }), { maxUnavailable: '50%' });
      assert.deepEqual(pdb({ replicas: 1, podDisruptionBudget: { minAvailable: 0 } }), { minAvailable: 0 });
    });
    it('minAvailable 1 when forced on with enabled: true', () => {
      assert.deepEqual(pdb({ podDisruptionBudget: { enabled: true } }), { minAvailable: 1 });
    });
    it('none when turned off, even with many replicas', () => {
      assert.equal(pdb({ replicas: 5, podDisruptionBudget: { enabled: false } }), undefined);
    });
  });

  it('keeps an explicit empty affinity and spread list: that is how the defaults are turned off', () => {
    const r = applyDefaults(gateway({ affinity: {}, topologySpreadConstraints: [] }), options);
    assert.deepEqual(r.affinity, {});
    assert.deepEqual(r.topologySpreadConstraints, []);
  });

  it('leaves its input untouched and never hands out the shared default objects', () => {
    const gd = gateway({ labels: { team: 'edge' } });
    const before = structuredClone(gd);
    const r = applyDefaults(gd, options);
    (r.resources.requests as Record<string, string>).cpu = '9';
    r.podLabels.extra = 'x';
    assert.deepEqual(gd, before);
    assert.equal(DEFAULTS.resources.requests.cpu, '100m');
    assert.equal(applyDefaults(gateway({}), options).resources.requests?.cpu, '100m');
  });
});
