// The gateway pod: the proxy container and everything around it. Kept apart from the
// Deployment because the admission webhook's "gateway injection" fills user-made pods with
// exactly this template, so a gateway looks the same however it was deployed.

import type { V1Container, V1ContainerPort, V1EnvVar, V1PodTemplateSpec, V1SecurityContext, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { PROXY, type ResolvedGateway } from '../api/defaults.js';

export const PROXY_CONTAINER_NAME = 'proxy';

/** Container port names must be IANA service names: at most 15 characters, with a letter. */
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-)){0,14}$/;

function containerPorts(r: ResolvedGateway): V1ContainerPort[] {
  const ports: V1ContainerPort[] = [
    { name: 'status-port', containerPort: PROXY.statusPort, protocol: 'TCP' },
    // Istio's PodMonitor keeps ports named *-envoy-prom: existing scrape configs find us.
    { name: 'http-envoy-prom', containerPort: PROXY.metricsPort, protocol: 'TCP' },
  ];
  // The proxy listens on each Service port's targetPort. Two Service ports may share one
  // targetPort (and status-port is already listed): a container port appears once.
  for (const p of r.service.ports) {
    if (ports.some((c) => c.containerPort === p.targetPort)) continue;
    ports.push({ ...(IANA_SVC_NAME.test(p.name) && !p.name.endsWith('-') ? { name: p.name } : {}), containerPort: p.targetPort, protocol: 'TCP' });
  }
  return ports;
}

function proxyArgs(r: ResolvedGateway): string[] {
  return [
    '--namespace', '$(POD_NAMESPACE)',
    '--labels-file', PROXY.labelsFile,
    '--annotations-file', PROXY.annotationsFile,
    '--drain-duration', r.drainDuration,
    '--status-port', String(PROXY.statusPort),
    '--metrics-port', String(PROXY.metricsPort),
    '--admin-port', String(PROXY.adminPort),
  ];
}

function proxyEnv(r: ResolvedGateway): V1EnvVar[] {
  return [
    { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
    { name: 'INSTANCE_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
    ...r.env,
  ];
}

function proxySecurityContext(r: ResolvedGateway): V1SecurityContext {
  const capability = r.privilegedPorts === 'capability';
  return {
    // A non-root process gains an added capability only through file capabilities on the
    // binary (setcap cap_net_bind_service+ep on node in the image), and no_new_privs, which
    // allowPrivilegeEscalation: false sets, disables file capabilities: capability mode
    // has to allow it. The sysctl way needs neither.
    allowPrivilegeEscalation: capability,
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    runAsUser: PROXY.uid,
    runAsGroup: PROXY.uid,
    capabilities: capability ? { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } : { drop: ['ALL'] },
  };
}

function proxyVolumeMounts(r: ResolvedGateway): V1VolumeMount[] {
  return [
    { name: 'podinfo', mountPath: PROXY.podInfoDir, readOnly: true },
    // The root filesystem is read-only; Node and its libraries still expect a writable /tmp.
    { name: 'tmp', mountPath: PROXY.tmpDir },
    ...r.volumeMounts,
  ];
}

function podVolumes(r: ResolvedGateway): V1Volume[] {
  return [
    // The proxy reads its own labels from this file (--labels-file) to know which Gateways
    // select it; the kubelet rewrites it when the labels change. Its annotations carry
    // Istio's proxy.istio.io/config (gatewayTopology.numTrustedProxies), read at start.
    {
      name: 'podinfo',
      downwardAPI: {
        items: [
          { path: 'labels', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.labels' } },
          { path: 'annotations', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.annotations' } },
        ],
      },
    },
    { name: 'tmp', emptyDir: {} },
    ...r.volumes,
  ];
}

/** The proxy container of a gateway pod. */
export function renderProxyContainer(r: ResolvedGateway): V1Container {
  return {
    name: PROXY_CONTAINER_NAME,
    image: r.image,
    ...(r.imagePullPolicy ? { imagePullPolicy: r.imagePullPolicy } : {}),
    command: ['portway', 'proxy'],
    args: proxyArgs(r),
    env: proxyEnv(r),
    ports: containerPorts(r),
    // No liveness probe: it would restart a proxy that is failing readiness on purpose while
    // it drains, and a stuck Node process is better diagnosed than silently restarted.
    readinessProbe: {
      httpGet: { path: PROXY.readinessPath, port: PROXY.statusPort, scheme: 'HTTP' },
      initialDelaySeconds: 1,
      periodSeconds: 2,
      timeoutSeconds: 1,
      failureThreshold: 3,
    },
    resources: r.resources,
    securityContext: proxySecurityContext(r),
    volumeMounts: proxyVolumeMounts(r),
  };
}

/** The pod template of a gateway: labels Gateways select, scrape annotations, hardening, scheduling. */
export function renderProxyPodTemplate(r: ResolvedGateway): V1PodTemplateSpec {
  return {
    metadata: {
      labels: { ...r.podLabels },
      annotations: {
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(PROXY.metricsPort),
        'prometheus.io/path': PROXY.metricsPath,
        ...r.podAnnotations,
      },
    },
    spec: {
      serviceAccountName: r.name,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: PROXY.uid,
        runAsGroup: PROXY.uid,
        fsGroup: PROXY.uid,
        seccompProfile: { type: 'RuntimeDefault' },
        // A namespaced "safe" sysctl: lets the unprivileged proxy bind ports below 1024.
        ...(r.privilegedPorts === 'sysctl' ? { sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }] } : {}),
      },
      terminationGracePeriodSeconds: r.terminationGracePeriodSeconds,
      containers: [renderProxyContainer(r)],
      volumes: podVolumes(r),
      ...(r.imagePullSecrets ? { imagePullSecrets: r.imagePullSecrets } : {}),
      ...(r.nodeSelector ? { nodeSelector: r.nodeSelector } : {}),
      ...(r.tolerations ? { tolerations: r.tolerations } : {}),
      ...(r.affinity && Object.keys(r.affinity).length > 0 ? { affinity: r.affinity } : {}),
      ...(r.topologySpreadConstraints && r.topologySpreadConstraints.length > 0 ? { topologySpreadConstraints: r.topologySpreadConstraints } : {}),
      ...(r.priorityClassName ? { priorityClassName: r.priorityClassName } : {}),
    },
  };
}
