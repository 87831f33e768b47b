// Local processes standing in for kwok pods: an httpbin-like server bound to each Running
// pod's loopback IP, so Services, EndpointSlices and DestinationRule subsets are all real.

import { CoreV1Api, DiscoveryV1Api } from '@kubernetes/client-node';
import { startHttpbin, type RunningHttpbin } from '../../../cli/demo/httpbin.js';
import type { Cluster } from './cluster.js';
import { eventually } from './wait.js';

export interface PodBackends {
  /** Backends by pod name. */
  byPod: Map<string, RunningHttpbin>;
  /** Starts backends for pods that appeared since (after a scale-up). */
  refresh(): Promise<string[]>;
  close(): Promise<void>;
}

export async function runningPods(cluster: Cluster, namespace: string, selector: string, count?: number): Promise<Array<{ name: string; ip: string; labels: Record<string, string> }>> {
  const core = cluster.kc.makeApiClient(CoreV1Api);
  return eventually(
    async () => {
      const pods = await core.listNamespacedPod({ namespace, labelSelector: selector });
      // Ready too, as the EndpointSlice controller needs it to list the pod as a ready endpoint.
      const ready = (p: (typeof pods.items)[number]) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
      const running = pods.items.filter((p) => p.status?.phase === 'Running' && p.status.podIP && ready(p) && !p.metadata?.deletionTimestamp);
      if (count !== undefined && running.length !== count) return undefined;
      if (running.length === 0) return undefined;
      return running.map((p) => ({ name: p.metadata!.name!, ip: p.status!.podIP!, labels: p.metadata!.labels ?? {} }));
    },
    { timeoutMs: 60_000, intervalMs: 250, what: `${count ?? 'some'} Running and Ready pods with IPs for ${selector} in ${namespace}` },
  );
}

/** One httpbin per Running pod matching `selector`, listening on podIP:port, named after the pod. */
export async function servePods(cluster: Cluster, namespace: string, selector: string, port: number, count?: number): Promise<PodBackends> {
  const byPod = new Map<string, RunningHttpbin>();
  const startMissing = async (pods: Array<{ name: string; ip: string }>) => {
    const started: string[] = [];
    for (const pod of pods) {
      if (byPod.has(pod.name)) continue;
      byPod.set(pod.name, await startHttpbin({ name: pod.name, host: pod.ip, port }));
      started.push(pod.name);
    }
    return started;
  };
  await startMissing(await runningPods(cluster, namespace, selector, count));
  return {
    byPod,
    refresh: async () => startMissing(await runningPods(cluster, namespace, selector)),
    close: async () => {
      await Promise.all([...byPod.values()].map((b) => b.close()));
    },
  };
}

/**
 * Waits until the EndpointSlices of Service `service` list `count` ready endpoints. A Ready pod
 * becomes a ready endpoint only once the EndpointSlice controller has caught up (seconds to tens
 * of seconds on a busy machine); until then a gateway rightly answers 503 "no healthy upstream".
 */
export async function readyEndpoints(cluster: Cluster, namespace: string, service: string, count: number): Promise<string[]> {
  const discovery = cluster.kc.makeApiClient(DiscoveryV1Api);
  return eventually(
    async () => {
      const slices = await discovery.listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}` });
      const ready = slices.items.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses));
      return ready.length === count ? ready : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 250, what: `${count} ready endpoints in the EndpointSlices of Service ${namespace}/${service}` },
  );
}
