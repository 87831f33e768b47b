// Gateway injection, as Istio's gateway injection does it: a user writes their own gateway
// Deployment whose pods carry the opt-in label, the template annotation and a placeholder
// container (`portway-proxy`, `image: auto`); the admission webhook fills that container and
// the pod around it from the very template the operator's own gateway Deployments are
// rendered with (operator/render/pod-template.ts), so both kinds of gateway pods are alike.
//
// Merging follows Istio: the template is the base and what the user wrote wins. A field the
// user set (resources, a probe, a security context field) is kept as a whole; lists with a
// key (env by name, ports by containerPort, volume mounts by mountPath, volumes by name) are
// merged, the user's entry winning on the same key. Injecting an injected pod changes
// nothing. Pure: pod in, pod out.

import type { V1Container, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { applyDefaults } from '../api/defaults.js';
import { API_VERSION, KIND } from '../api/types.js';
import { renderProxyPodTemplate } from '../render/index.js';

/** Pod label that opts a pod into the injection webhook (its objectSelector), like sidecar.istio.io/inject. */
export const INJECT_LABEL = 'portway.dev/inject';
/** Pod annotation naming the injection template, like inject.istio.io/templates. */
export const TEMPLATES_ANNOTATION = 'inject.portway.dev/templates';
/** The one template there is. */
export const GATEWAY_TEMPLATE = 'gateway';
/** The placeholder container the user writes and the webhook fills. */
export const INJECTED_CONTAINER_NAME = 'portway-proxy';
/** The image placeholder, replaced by the operator's proxy image. */
export const AUTO_IMAGE = 'auto';

export interface InjectionOptions {
  /** The proxy image for `image: auto` (the operator's --proxy-image). */
  defaultImage?: string;
}

export class InjectionError extends Error {}

export type InjectionResult =
  | { injected: false; reason: string }
  | { injected: true; pod: V1Pod };

type Keyed = Record<string, unknown>;

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v as object).length === 0;
}

/** Template first, the user's value wins where it is set (a non-empty value). */
function overlay<T extends object>(template: T, user: T | undefined): T {
  const out: Keyed = { ...(template as Keyed) };
  for (const [k, v] of Object.entries(user ?? {})) if (!isEmpty(v)) out[k] = v;
  return out as T;
}

/** Merges two keyed lists: template entries in order (replaced by the user's on the same key), then the user's other entries. */
function mergeByKey<T>(template: readonly T[] | undefined, user: readonly T[] | undefined, key: (item: T) => unknown): T[] | undefined {
  if (!template?.length && !user?.length) return undefined;
  const userItems = user ?? [];
  const out = (template ?? []).map((t) => userItems.find((u) => key(u) === key(t)) ?? t);
  for (const u of userItems) if (!out.includes(u) && !out.some((o) => key(o) === key(u))) out.push(u);
  return out;
}

/** Kubernetes' default pull policy for an image: Always for `:latest` or no tag, else IfNotPresent. */
function defaultPullPolicy(image: string): string {
  if (image.includes('@')) return 'IfNotPresent';
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : undefined;
  return tag === undefined || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function mergeContainer(template: V1Container, user: V1Container, image: string): V1Container {
  const merged = overlay(template, user);
  merged.name = user.name;
  if (user.image === AUTO_IMAGE || isEmpty(user.image)) {
    merged.image = image;
    // The apiserver defaulted the pull policy from "auto" (no tag: Always) before we saw it.
    if (template.imagePullPolicy) merged.imagePullPolicy = template.imagePullPolicy;
    else if (user.imagePullPolicy) merged.imagePullPolicy = defaultPullPolicy(image);
  }
  const env = mergeByKey(template.env, user.env, (e) => e.name);
  const ports = mergeByKey(template.ports, user.ports, (p) => p.containerPort);
  const volumeMounts = mergeByKey(template.volumeMounts, user.volumeMounts, (m) => m.mountPath);
  if (env) merged.env = env;
  if (ports) merged.ports = ports;
  if (volumeMounts) merged.volumeMounts = volumeMounts;
  if (template.securityContext) merged.securityContext = overlay(template.securityContext, user.securityContext);
  return merged;
}

/**
 * The proxy template for an injected pod. Everything it takes from the pod template is
 * per-pod (container, volumes, security context, annotations); what belongs to a
 * GatewayDeployment (ServiceAccount, labels, scheduling, replicas) stays the user's.
 */
function proxyTemplate(namespace: string, options: InjectionOptions, image: string | undefined) {
  const resolved = applyDefaults(
    { apiVersion: API_VERSION, kind: KIND, metadata: { name: 'injected', namespace, uid: 'injected' }, spec: image ? { image } : {} },
    { defaultImage: options.defaultImage },
  );
  return renderProxyPodTemplate(resolved);
}

/**
 * Injects the gateway template into a pod (or a pod template: `metadata` and `spec`).
 * Returns `injected: false` with the reason for pods that did not ask for it, and throws
 * InjectionError for pods that asked for something impossible (an unknown template,
 * `image: auto` with no proxy image configured).
 */
export function injectGatewayPod(pod: V1Pod, namespace: string, options: InjectionOptions = {}): InjectionResult {
  const templates = pod.metadata?.annotations?.[TEMPLATES_ANNOTATION];
  if (templates === undefined) return { injected: false, reason: `no ${TEMPLATES_ANNOTATION} annotation` };
  const names = templates.split(',').map((t) => t.trim()).filter(Boolean);
  const unknown = names.filter((t) => t !== GATEWAY_TEMPLATE);
  if (unknown.length > 0 || names.length === 0) {
    throw new InjectionError(`metadata.annotations[${TEMPLATES_ANNOTATION}]: unknown injection template ${JSON.stringify(templates)}; the only template is "${GATEWAY_TEMPLATE}"`);
  }
  const spec: V1PodSpec = pod.spec ?? { containers: [] };
  const containers = spec.containers ?? [];
  const index = containers.findIndex((c) => c.name === INJECTED_CONTAINER_NAME);
  const user: V1Container = index >= 0 ? containers[index]! : { name: INJECTED_CONTAINER_NAME, image: AUTO_IMAGE };
  const wantsDefaultImage = user.image === AUTO_IMAGE || isEmpty(user.image);
  if (wantsDefaultImage && !options.defaultImage) {
    const at = index >= 0 ? `spec.containers[${index}].image` : 'spec.containers';
    throw new InjectionError(`${at}: image "auto" needs the operator's proxy image (--proxy-image), which is not set; write the image instead`);
  }
  const template = proxyTemplate(namespace, options, wantsDefaultImage ? undefined : user.image);
  const t = template.spec!;
  const container = mergeContainer(t.containers[0]!, user, wantsDefaultImage ? options.defaultImage! : user.image!);

  const out: V1Pod = structuredClone(pod);
  const outSpec: V1PodSpec = (out.spec ??= { containers: [] });
  outSpec.containers = index >= 0 ? containers.map((c, i) => (i === index ? container : structuredClone(c))) : [...structuredClone(containers), container];
  const volumes = mergeByKey(t.volumes, spec.volumes, (v) => v.name);
  if (volumes) outSpec.volumes = structuredClone(volumes);
  outSpec.securityContext = overlay(t.securityContext ?? {}, spec.securityContext);
  if (outSpec.terminationGracePeriodSeconds === undefined) outSpec.terminationGracePeriodSeconds = t.terminationGracePeriodSeconds;
  out.metadata ??= {};
  out.metadata.annotations = { ...template.metadata?.annotations, ...pod.metadata?.annotations };
  return { injected: true, pod: out };
}

/** What changed, as a JSON Patch (RFC 6902) on whole top-level fields: what an admission response carries. */
export function podPatch(before: V1Pod, after: V1Pod): Array<{ op: 'add'; path: string; value: unknown }> {
  const ops: Array<{ op: 'add'; path: string; value: unknown }> = [];
  if (!before.metadata) ops.push({ op: 'add', path: '/metadata', value: after.metadata });
  else if (JSON.stringify(before.metadata.annotations) !== JSON.stringify(after.metadata?.annotations)) {
    ops.push({ op: 'add', path: '/metadata/annotations', value: after.metadata?.annotations });
  }
  const a = (before.spec ?? {}) as Keyed;
  const b = (after.spec ?? {}) as Keyed;
  if (!before.spec) ops.push({ op: 'add', path: '/spec', value: after.spec });
  else {
    for (const key of Object.keys(b)) {
      // "add" replaces an existing member (RFC 6902 §4.1), so one op covers both cases.
      if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) ops.push({ op: 'add', path: `/spec/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, value: b[key] });
    }
  }
  return ops;
}
