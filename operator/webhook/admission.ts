// AdmissionReview (admission.k8s.io/v1) in, AdmissionReview out: the two webhooks as pure
// functions of the review, so they are tested without a server and served by one.

import type { V1Pod } from '@kubernetes/client-node';
import type { StoredObject } from '../../dataplane/config/resources.js';
import type { RenderOptions } from '../api/defaults.js';
import { formatFieldErrors } from '../api/validate.js';
import { InjectionError, injectGatewayPod, podPatch } from './injection.js';
import { isValidatedObject, validateAdmittedObject } from './validation.js';

export interface AdmissionRequest {
  uid: string;
  kind?: { group: string; version: string; kind: string };
  resource?: { group: string; version: string; resource: string };
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  dryRun?: boolean;
  object?: Record<string, unknown>;
  oldObject?: Record<string, unknown>;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason?: string; message: string };
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch. */
  patch?: string;
  warnings?: string[];
}

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

export interface AdmissionOptions {
  /** The operator's defaults (the proxy image for `image: auto` and for GatewayDeployments). */
  render?: RenderOptions;
}

// The apiserver shows at most a few warnings well; long lists help nobody.
const MAX_WARNINGS = 10;

function review(response: AdmissionResponse, apiVersion = 'admission.k8s.io/v1'): AdmissionReview {
  return { apiVersion, kind: 'AdmissionReview', response };
}

function deny(uid: string, message: string, code = 400): AdmissionResponse {
  return { uid, allowed: false, status: { code, reason: code === 400 ? 'BadRequest' : 'Invalid', message } };
}

/** The mutating webhook: gateway injection into pods. */
export function reviewInjection(input: AdmissionReview, options: AdmissionOptions = {}): AdmissionReview {
  const req = input.request;
  if (!req) return review(deny('', 'AdmissionReview without a request'), input.apiVersion);
  const pod = req.object as V1Pod | undefined;
  if (req.operation !== 'CREATE' || !pod || (req.kind && req.kind.kind !== 'Pod')) return review({ uid: req.uid, allowed: true }, input.apiVersion);
  try {
    const result = injectGatewayPod(pod, req.namespace ?? pod.metadata?.namespace ?? 'default', { defaultImage: options.render?.defaultImage });
    if (!result.injected) return review({ uid: req.uid, allowed: true }, input.apiVersion);
    const patch = podPatch(pod, result.pod);
    if (patch.length === 0) return review({ uid: req.uid, allowed: true }, input.apiVersion);
    return review({ uid: req.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }, input.apiVersion);
  } catch (err) {
    if (err instanceof InjectionError) return review(deny(req.uid, `gateway injection: ${err.message}`), input.apiVersion);
    throw err;
  }
}

function isBeingDeleted(obj: StoredObject): boolean {
  return !!(obj.metadata as { deletionTimestamp?: string } | undefined)?.deletionTimestamp;
}

function sameSpec(obj: StoredObject, old: Record<string, unknown> | undefined): boolean {
  return old !== undefined && JSON.stringify(obj.spec) === JSON.stringify(old.spec);
}

/** The validating webhook: Istio networking objects and GatewayDeployments. */
export function reviewValidation(input: AdmissionReview, options: AdmissionOptions = {}): AdmissionReview {
  const req = input.request;
  if (!req) return review(deny('', 'AdmissionReview without a request'), input.apiVersion);
  const obj = req.object as StoredObject | undefined;
  if ((req.operation !== 'CREATE' && req.operation !== 'UPDATE') || !obj || !isValidatedObject(obj)) return review({ uid: req.uid, allowed: true }, input.apiVersion);
  if (req.operation === 'UPDATE' && (isBeingDeleted(obj) || sameSpec(obj, req.oldObject))) {
    // Only metadata changed (labels, a finalizer removed, deletion under way): an object that
    // got in before this webhook (or while it was down) can still be labelled and deleted.
    return review({ uid: req.uid, allowed: true }, input.apiVersion);
  }
  const withNamespace: StoredObject = { ...obj, metadata: { ...obj.metadata, name: obj.metadata?.name ?? req.name ?? '', namespace: obj.metadata?.namespace ?? req.namespace } };
  const { errors, warnings } = validateAdmittedObject(withNamespace, options.render);
  const shown = warnings.slice(0, MAX_WARNINGS).map((w) => `${w.field}: ${w.message}`);
  if (errors.length > 0) {
    const response = deny(req.uid, formatFieldErrors(errors), 422);
    return review(shown.length > 0 ? { ...response, warnings: shown } : response, input.apiVersion);
  }
  return review({ uid: req.uid, allowed: true, ...(shown.length > 0 ? { warnings: shown } : {}) }, input.apiVersion);
}
