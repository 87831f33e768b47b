// Validation of what the operator and the data plane read, at admission: Istio networking
// objects by the translator's own code (dataplane/translate/validate.ts), GatewayDeployments
// by the operator's (operator/api/validate.ts, which also covers what CEL cannot express:
// the operator's own options, formats the Deployment would otherwise reject late).

import type { StoredObject } from '../../dataplane/config/resources.js';
import { ISTIO_NETWORKING_GROUP } from '../../dataplane/config/resources.js';
import { VALIDATED_KINDS, validateObject } from '../../dataplane/translate/validate.js';
import type { RenderOptions } from '../api/defaults.js';
import { GROUP, KIND, type GatewayDeployment } from '../api/types.js';
import { validateGatewayDeployment, type FieldError } from '../api/validate.js';

export interface ValidationResult {
  /** Reject the object: each names the field. */
  errors: FieldError[];
  /** Accept it, with these shown to the user (kubectl prints them as "Warning: …"). */
  warnings: FieldError[];
}

/** The API group of an apiVersion ("networking.istio.io/v1" → "networking.istio.io", "v1" → ""). */
function groupOf(apiVersion: string | undefined): string {
  return apiVersion?.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
}

/** True for the objects this webhook validates. */
export function isValidatedObject(obj: { apiVersion?: string; kind?: string }): boolean {
  const group = groupOf(obj.apiVersion);
  if (group === ISTIO_NETWORKING_GROUP) return (VALIDATED_KINDS as readonly string[]).includes(obj.kind ?? '');
  return group === GROUP && obj.kind === KIND;
}

/** Validates one object as the apiserver sends it (namespace filled in from the request when missing). */
export function validateAdmittedObject(obj: StoredObject, options: RenderOptions = {}): ValidationResult {
  if (groupOf(obj.apiVersion) === GROUP && obj.kind === KIND) {
    return { errors: validateGatewayDeployment(obj as unknown as GatewayDeployment, options), warnings: [] };
  }
  if (groupOf(obj.apiVersion) !== ISTIO_NETWORKING_GROUP) return { errors: [], warnings: [] };
  const diagnostics = validateObject(obj);
  const pick = (severity: 'error' | 'warning') => diagnostics.filter((d) => d.severity === severity).map((d) => ({ field: d.field, message: d.message }));
  return { errors: pick('error'), warnings: pick('warning') };
}
