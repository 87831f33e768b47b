// Reads certificate material out of Kubernetes Secrets and ConfigMaps in the layouts Istio
// accepts (pilot/pkg/credentials/kube/secrets.go), with the same precedence:
//   - generic:            cert / key / cacert / crl          (checked first)
//   - kubernetes.io/tls:  tls.crt / tls.key / ca.crt / ca.crl
//   - CA only:            a Secret named "<name>-cacert" (cacert or ca.crt, with crl / ca.crl)
//   - ConfigMap (caCertCredentialName): ca.crt or cacert
// Only extraction happens here; `inspectMaterial` validates what comes out.

import type { CertificateMaterial } from './certificate-material.js';

export interface SecretLike {
  metadata?: { name?: string; namespace?: string };
  type?: string;
  /** Base64 values, as the API returns them. */
  data?: Record<string, unknown> | null;
  /** Plain values (files and manifests); they win over `data`, as the API server merges them. */
  stringData?: Record<string, unknown> | null;
}

export interface ConfigMapLike {
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, unknown> | null;
  binaryData?: Record<string, unknown> | null;
}

export type MaterialResult = { ok: true; material: CertificateMaterial } | { ok: false; error: string };

/** Istio looks up "<credentialName>-cacert" for the CA of a MUTUAL server. */
export const CA_SECRET_SUFFIX = '-cacert';

export function caSecretName(credentialName: string): string {
  return `${credentialName}${CA_SECRET_SUFFIX}`;
}

const LAYOUTS = [
  { cert: 'cert', key: 'key', crl: 'crl' },
  { cert: 'tls.crt', key: 'tls.key', crl: 'ca.crl' },
] as const;
const CA_LAYOUTS = [
  { ca: 'cacert', crl: 'crl' },
  { ca: 'ca.crt', crl: 'ca.crl' },
] as const;

/** The server (or client) certificate, key and CRL, plus the CA when the same Secret has one. */
export function certificateFromSecret(secret: SecretLike): MaterialResult {
  const values = decodeSecret(secret);
  if (typeof values === 'string') return failure(secret, values);
  for (const layout of LAYOUTS) {
    const cert = values.get(layout.cert);
    const key = values.get(layout.key);
    if (cert && key) {
      const material: CertificateMaterial = { certChain: cert, privateKey: key };
      const crl = values.get(layout.crl);
      if (crl) material.crl = crl;
      const ca = caFromValues(values);
      if (ca?.caCertificates) {
        material.caCertificates = ca.caCertificates;
        if (!material.crl && ca.crl) material.crl = ca.crl;
      }
      return { ok: true, material };
    }
  }
  for (const layout of LAYOUTS) {
    if (values.has(layout.cert) && values.has(layout.key)) {
      return failure(secret, `found keys "${layout.cert}" and "${layout.key}", but they were empty`);
    }
  }
  return failure(secret, `has neither "cert" and "key" nor "tls.crt" and "tls.key"; found: ${keyList(values)}`);
}

/** The CA (and CRL) of a Secret: a "<name>-cacert" Secret, or a full Secret that also holds one. */
export function caFromSecret(secret: SecretLike): MaterialResult {
  const values = decodeSecret(secret);
  if (typeof values === 'string') return failure(secret, values);
  const ca = caFromValues(values);
  if (ca) return { ok: true, material: ca };
  for (const layout of CA_LAYOUTS) {
    if (values.has(layout.ca)) return failure(secret, `found key "${layout.ca}", but it was empty`);
  }
  return failure(secret, `has neither "cacert" nor "ca.crt"; found: ${keyList(values)}`);
}

/** A ConfigMap named by caCertCredentialName: "ca.crt" or "cacert" (data, then binaryData). */
export function caFromConfigMap(configMap: ConfigMapLike): MaterialResult {
  const values = new Map<string, string>();
  for (const [k, v] of Object.entries(configMap.binaryData ?? {})) {
    if (typeof v === 'string') values.set(k, Buffer.from(v, 'base64').toString('utf8'));
  }
  for (const [k, v] of Object.entries(configMap.data ?? {})) {
    if (typeof v === 'string') values.set(k, v);
  }
  const ca = values.get('ca.crt') || values.get('cacert');
  if (ca) return { ok: true, material: { caCertificates: ca } };
  return failure(configMap, `has neither "ca.crt" nor "cacert"; found: ${keyList(values)}`, 'ConfigMap');
}

/**
 * A credentialName resolved the way Istio's gateway does for MUTUAL: cert and key from the
 * Secret itself, the CA from "<name>-cacert" when that Secret exists, else from the Secret.
 */
export function materialFromSecrets(secret: SecretLike, caSecret?: SecretLike): MaterialResult {
  const main = certificateFromSecret(secret);
  if (!main.ok || !caSecret) return main;
  const ca = caFromSecret(caSecret);
  if (!ca.ok) return ca;
  const material: CertificateMaterial = { ...main.material, caCertificates: ca.material.caCertificates };
  if (ca.material.crl) material.crl = ca.material.crl;
  return { ok: true, material };
}

// ---------------------------------------------------------------------------------------

function caFromValues(values: Map<string, string>): CertificateMaterial | undefined {
  for (const layout of CA_LAYOUTS) {
    const ca = values.get(layout.ca);
    if (ca) {
      const crl = values.get(layout.crl);
      return crl ? { caCertificates: ca, crl } : { caCertificates: ca };
    }
  }
  return undefined;
}

/** Key → text, with stringData over data; a reason if a value is not text or base64. */
function decodeSecret(secret: SecretLike): Map<string, string> | string {
  const values = new Map<string, string>();
  for (const [k, v] of Object.entries(secret.data ?? {})) {
    if (typeof v !== 'string') return `data["${k}"] is not a base64 string`;
    if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(v)) return `data["${k}"] is not valid base64`;
    values.set(k, Buffer.from(v, 'base64').toString('utf8'));
  }
  for (const [k, v] of Object.entries(secret.stringData ?? {})) {
    if (typeof v !== 'string') return `stringData["${k}"] is not a string`;
    values.set(k, v);
  }
  return values;
}

function failure(object: { metadata?: { name?: string; namespace?: string } }, reason: string, kind = 'Secret'): MaterialResult {
  const ns = object.metadata?.namespace ?? '';
  const name = object.metadata?.name ?? '<unnamed>';
  return { ok: false, error: `${kind} ${ns ? `${ns}/` : ''}${name}: ${reason}` };
}

function keyList(values: Map<string, string>): string {
  const keys = [...values.keys()].sort();
  if (keys.length === 0) return 'no keys';
  const shown = keys.slice(0, 8).join(', ');
  return keys.length > 8 ? `${shown}, … (${keys.length} keys)` : shown;
}
