// validateGatewayDeployment: every CEL rule of the CRD, mirrored (one violating spec and one
// that just passes, per rule), and the checks only the operator can make.

import assert from 'node:assert/strict';
import {
  CEL_RULES,
  formatFieldErrors,
  InvalidGatewayDeploymentError,
  validateGatewayDeployment,
  type CelRuleName,
  type FieldError,
} from '../../../operator/api/validate.js';
import type { GatewayDeployment, GatewayDeploymentSpec } from '../../../operator/api/types.js';
import { renderGatewayObjects } from '../../../operator/render/index.js';

function gateway(spec: GatewayDeploymentSpec, name = 'gw'): GatewayDeployment {
  return { apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name, namespace: 'default', uid: 'uid-1' }, spec };
}

function errorsOf(spec: GatewayDeploymentSpec, name?: string): FieldError[] {
  return validateGatewayDeployment(gateway({ image: 'ghcr.io/portway/portway:test', ...spec }, name));
}

/** For each CEL rule: the field the error names, a spec that breaks the rule, one that just satisfies it. */
const CEL_CASES: Record<CelRuleName, { field: string; bad: GatewayDeploymentSpec; good: GatewayDeploymentSpec }> = {
  replicasWithAutoscaling: {
    field: 'spec.replicas',
    bad: { replicas: 3, autoscaling: { enabled: true } },
    good: { replicas: 3, autoscaling: { enabled: false } },
  },
  privilegedPortsRequired: {
    field: 'spec.privilegedPorts',
    bad: { service: { ports: [{ name: 'http', port: 80 }] } },
    good: { service: { ports: [{ name: 'http', port: 80, targetPort: 1024 }] } },
  },
  loadBalancerFieldsNeedLoadBalancer: {
    field: 'spec.service',
    bad: { mode: 'egress', service: { loadBalancerClass: 'example.com/lb' } },
    good: { mode: 'egress', service: { type: 'LoadBalancer', loadBalancerClass: 'example.com/lb' } },
  },
  nodeFieldsNeedExternalService: {
    field: 'spec.service',
    bad: { service: { type: 'ClusterIP', ports: [{ name: 'http', port: 8080, nodePort: 30080 }] } },
    good: { service: { type: 'NodePort', ports: [{ name: 'http', port: 8080, nodePort: 30080 }] } },
  },
  drainShorterThanGracePeriod: {
    field: 'spec.drainDuration',
    bad: { drainDuration: '30s' },
    good: { drainDuration: '29.999s' },
  },
  minReplicasAtMostMax: {
    field: 'spec.autoscaling.minReplicas',
    bad: { autoscaling: { enabled: true, minReplicas: 6 } },
    good: { autoscaling: { enabled: true, minReplicas: 6, maxReplicas: 6 } },
  },
  pdbOneOf: {
    field: 'spec.podDisruptionBudget',
    bad: { podDisruptionBudget: { minAvailable: 1, maxUnavailable: 1 } },
    good: { podDisruptionBudget: { maxUnavailable: 1 } },
  },
  pdbDisabledWithValues: {
    field: 'spec.podDisruptionBudget',
    bad: { podDisruptionBudget: { enabled: false, minAvailable: 1 } },
    good: { podDisruptionBudget: { enabled: true, minAvailable: 1 } },
  },
  uniqueServicePorts: {
    field: 'spec.service.ports',
    bad: { service: { ports: [{ name: 'a', port: 8080 }, { name: 'b', port: 8080, targetPort: 9090 }] } },
    good: { service: { ports: [{ name: 'a', port: 8080 }, { name: 'b', port: 8081, targetPort: 8080 }] } },
  },
  reservedTargetPorts: {
    field: 'spec.service.ports[1].targetPort',
    bad: { service: { ports: [{ name: 'a', port: 8080 }, { name: 'metrics', port: 9090, targetPort: 15090 }] } },
    good: { service: { ports: [{ name: 'a', port: 8080 }, { name: 'status', port: 9090, targetPort: 15021 }] } },
  },
  reservedLabel: {
    field: 'spec.labels',
    bad: { labels: { 'portway.dev/gateway': 'other' } },
    good: { labels: { 'portway.dev/team': 'edge' } },
  },
  reservedEnv: {
    field: 'spec.env',
    bad: { env: [{ name: 'POD_NAME', value: 'x' }] },
    good: { env: [{ name: 'POD_LABEL', value: 'x' }] },
  },
  reservedVolumes: {
    field: 'spec.volumes',
    bad: { volumes: [{ name: 'tmp', emptyDir: {} }] },
    good: { volumes: [{ name: 'scratch', emptyDir: {} }] },
  },
  reservedMountPaths: {
    field: 'spec.volumeMounts',
    bad: { volumes: [{ name: 'scratch', emptyDir: {} }], volumeMounts: [{ name: 'scratch', mountPath: '/tmp' }] },
    good: { volumes: [{ name: 'scratch', emptyDir: {} }], volumeMounts: [{ name: 'scratch', mountPath: '/tmp/scratch' }] },
  },
};

describe('operator api: validateGatewayDeployment', () => {
  it('accepts an empty spec when the operator has a default image', () => {
    assert.deepEqual(validateGatewayDeployment(gateway({}), { defaultImage: 'ghcr.io/portway/portway:test' }), []);
  });

  it('has a test case for every CEL rule it mirrors', () => {
    assert.deepEqual(Object.keys(CEL_CASES).sort(), Object.keys(CEL_RULES).sort());
  });

  describe('mirrors the CRD CEL rules', () => {
    for (const [name, c] of Object.entries(CEL_CASES) as Array<[CelRuleName, (typeof CEL_CASES)[CelRuleName]]>) {
      it(`${name}: ${c.field}: ${CEL_RULES[name].message}`, () => {
        assert.deepEqual(errorsOf(c.bad), [{ field: c.field, message: CEL_RULES[name].message }]);
        assert.deepEqual(errorsOf(c.good), []);
      });
    }
  });

  it('formats errors as field paths, e.g. spec.autoscaling.minReplicas: must be <= maxReplicas', () => {
    assert.equal(formatFieldErrors(errorsOf({ autoscaling: { minReplicas: 9 } })), 'spec.autoscaling.minReplicas: must be <= maxReplicas (defaults: 1 and 5)');
  });

  it('checks the drain against the default grace period when only the drain is set, and vice versa', () => {
    assert.equal(errorsOf({ terminationGracePeriodSeconds: 5 })[0]?.field, 'spec.drainDuration');
    assert.deepEqual(errorsOf({ terminationGracePeriodSeconds: 6 }), []);
    assert.equal(errorsOf({ drainDuration: '1m' })[0]?.field, 'spec.drainDuration');
  });

  it('lets privilegedPorts make low targetPorts legal, in either mode', () => {
    for (const privilegedPorts of ['sysctl', 'capability'] as const) {
      assert.deepEqual(errorsOf({ privilegedPorts, service: { ports: [{ name: 'http', port: 80 }] } }), []);
    }
  });

  it('treats the default ports as unprivileged (80 → 8080, 443 → 8443)', () => {
    assert.deepEqual(errorsOf({ service: { type: 'LoadBalancer' } }), []);
  });

  describe('what only the operator can check', () => {
    it('spec.image when the operator has no default image', () => {
      assert.deepEqual(validateGatewayDeployment(gateway({})), [
        { field: 'spec.image', message: 'required: the operator was started without a default proxy image (--proxy-image)' },
      ]);
    });

    it('a CPU request when the HPA targets CPU (the default target), since it measures against it', () => {
      const errors = errorsOf({ autoscaling: { enabled: true }, resources: { limits: { memory: '1Gi' } } });
      assert.deepEqual(errors.map((e) => e.field), ['spec.resources.requests.cpu']);
    });

    it('accepts a CPU limit alone (Kubernetes copies it into the request)', () => {
      assert.deepEqual(errorsOf({ autoscaling: { enabled: true }, resources: { limits: { cpu: '1' } } }), []);
    });

    it('a memory request when the HPA targets memory', () => {
      const errors = errorsOf({ autoscaling: { enabled: true, targetMemoryUtilizationPercentage: 80 }, resources: { requests: { cpu: '1' } } });
      assert.deepEqual(errors.map((e) => e.field), ['spec.resources.requests.memory']);
    });

    it('a rollout that could never progress (maxSurge 0 and maxUnavailable 0)', () => {
      const errors = errorsOf({ strategy: { rollingUpdate: { maxSurge: 0, maxUnavailable: '0%' } } });
      assert.deepEqual(errors.map((e) => e.field), ['spec.strategy.rollingUpdate.maxUnavailable']);
      assert.deepEqual(errorsOf({ strategy: { rollingUpdate: { maxSurge: 0 } } }), [], 'maxUnavailable defaults to 25%');
    });

    it('numbers or percentages where Kubernetes takes an IntOrString', () => {
      const errors = errorsOf({ podDisruptionBudget: { minAvailable: 'half' }, strategy: { rollingUpdate: { maxSurge: -1 } } });
      assert.deepEqual(errors.map((e) => e.field), ['spec.podDisruptionBudget.minAvailable', 'spec.strategy.rollingUpdate.maxSurge']);
    });

    it('label keys and values the Deployment would reject', () => {
      const errors = errorsOf({ labels: { 'bad key': 'x', ok: 'not ok!', 'example.com/fine': 'fine-1.0' } });
      assert.deepEqual(errors.map((e) => e.field), ['spec.labels["bad key"]', 'spec.labels["ok"]']);
    });

    it('a volumeMount of a volume that does not exist (the reserved ones do)', () => {
      const errors = errorsOf({ volumeMounts: [{ name: 'missing', mountPath: '/a' }, { name: 'podinfo', mountPath: '/b' }] });
      assert.deepEqual(errors, [{ field: 'spec.volumeMounts[0].name', message: 'no volume named "missing" in spec.volumes' }]);
    });

    it('duplicate env names (server-side apply rejects duplicate list-map keys)', () => {
      const errors = errorsOf({ env: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }] });
      assert.deepEqual(errors, [{ field: 'spec.env[1]', message: 'duplicate env name "A"' }]);
    });

    it('loadBalancerSourceRanges that are not CIDRs (IPv4 and IPv6 accepted)', () => {
      const errors = errorsOf({ service: { loadBalancerSourceRanges: ['10.0.0.0/8', '2001:db8::/32', '10.0.0.1', '10.0.0.0/33'] } });
      assert.deepEqual(errors.map((e) => e.field), ['spec.service.loadBalancerSourceRanges[2]', 'spec.service.loadBalancerSourceRanges[3]']);
    });

    it('a drain duration the proxy would not parse', () => {
      assert.deepEqual(errorsOf({ drainDuration: '5 seconds' }).map((e) => e.field), ['spec.drainDuration']);
      assert.deepEqual(errorsOf({ drainDuration: '1m30s', terminationGracePeriodSeconds: 120 }), []);
    });

    it('a name that cannot name a Service (DNS-1035: starts with a letter, at most 63 characters)', () => {
      assert.deepEqual(errorsOf({}, '1gw').map((e) => e.field), ['metadata.name']);
      assert.deepEqual(errorsOf({}, 'g'.repeat(64)).map((e) => e.field), ['metadata.name']);
      assert.deepEqual(errorsOf({}, 'g'.repeat(63)), []);
    });

    it('values outside enums and bounds (for objects that never met the apiserver)', () => {
      const errors = errorsOf({ mode: 'sideways' as never, replicas: -1, service: { ports: [{ name: 'http', port: 70000 }] } });
      assert.deepEqual(errors.map((e) => e.field), ['spec.mode', 'spec.service.ports[0].port', 'spec.replicas']);
    });
  });

  it('makes renderGatewayObjects throw with every problem listed', () => {
    const gd = gateway({ image: 'x', replicas: 2, autoscaling: { enabled: true, minReplicas: 7 } });
    assert.throws(
      () => renderGatewayObjects(gd),
      (err: unknown) =>
        err instanceof InvalidGatewayDeploymentError &&
        err.errors.length === 2 &&
        err.message.includes('spec.replicas: must be unset') &&
        err.message.includes('spec.autoscaling.minReplicas: must be <= maxReplicas'),
    );
  });
});
