// The webhook's own certificate authority and serving certificate, and when to renew them.
// Pure apart from key generation: material in, material out, the clock passed in. Keys are
// generated off the event loop (RSA generation can take seconds on a busy node, and the same
// process answers admission calls meanwhile).
//
// The apiserver trusts the CAs in each webhook's caBundle and checks the serving certificate
// against them. The serving certificate is renewed from the same CA (the bundle does not
// change, so no replica can serve a certificate the apiserver does not trust yet). The CA
// itself is renewed in two steps, each at least `promotionDelayMs` apart: first the next CA
// joins the bundle, then it signs the serving certificate while the previous CA stays in the
// bundle until it expires.

import { X509Certificate, createPrivateKey, generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

const { pki } = forge;

export interface KeyPair {
  cert: string;
  key: string;
}

/** Everything stored in the webhook's Secret (self-managed mode). */
export interface WebhookCertificates {
  ca: KeyPair;
  /** The serving certificate and key, signed by `ca`. */
  serving: KeyPair;
  /** The CA that signs the next serving certificate, already in the bundle. */
  nextCa?: KeyPair;
  /** The CA that signed the previous serving certificate, kept in the bundle until it expires. */
  previousCa?: string;
}

export interface CertificatePolicy {
  /** DNS names of the webhook Service (`<svc>.<ns>.svc`, …). */
  dnsNames: string[];
  /** Lifetime of a serving certificate (default one year). */
  servingValidityMs: number;
  /** Lifetime of a CA (default ten years). */
  caValidityMs: number;
  /** How long the next CA is in the bundle before it signs (two checks: every replica has seen the bundle). */
  promotionDelayMs: number;
}

const YEAR = 365 * 24 * 3600_000;
export const DEFAULT_SERVING_VALIDITY_MS = YEAR;
export const DEFAULT_CA_VALIDITY_MS = 10 * YEAR;
/** Certificates start this long ago: nodes whose clocks are a little behind accept them too. */
const BACKDATE_MS = 60_000;

/** The names the apiserver may use for a Service: it checks `<service>.<namespace>.svc`. */
export function serviceDnsNames(service: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.${clusterDomain}`];
}

function newSerial(): string {
  // A positive 16-byte integer (the top bit clear: DER integers are signed).
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

const generateKeyPairAsync = promisify(generateKeyPair);

function rsaKeyPair(): Promise<{ publicKey: string; privateKey: string }> {
  // node:crypto makes the key in its thread pool (forge's pure-JS generation blocks); forge signs.
  return generateKeyPairAsync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

interface CertificateSpec {
  commonName: string;
  issuer?: KeyPair;
  isCa: boolean;
  dnsNames?: string[];
  notBefore: Date;
  notAfter: Date;
}

async function issue(spec: CertificateSpec): Promise<KeyPair> {
  const keys = await rsaKeyPair();
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(keys.publicKey);
  cert.serialNumber = newSerial();
  cert.validity.notBefore = spec.notBefore;
  cert.validity.notAfter = spec.notAfter;
  cert.setSubject([{ name: 'commonName', value: spec.commonName }, { name: 'organizationName', value: 'Portway' }]);
  const issuerCert = spec.issuer ? pki.certificateFromPem(spec.issuer.cert) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : cert.subject.attributes);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: spec.isCa, critical: true },
    spec.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!spec.isCa) {
    extensions.push({ name: 'extKeyUsage', serverAuth: true });
    extensions.push({ name: 'subjectAltName', altNames: (spec.dnsNames ?? []).map((value) => ({ type: 2, value })) });
  }
  if (issuerCert) {
    const keyId = issuerCert.generateSubjectKeyIdentifier().getBytes();
    extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: keyId });
  }
  cert.setExtensions(extensions);
  const signingKey = pki.privateKeyFromPem(createPrivateKey(spec.issuer?.key ?? keys.privateKey).export({ type: 'pkcs1', format: 'pem' }) as string);
  cert.sign(signingKey, forge.md.sha256.create());
  return { cert: pki.certificateToPem(cert), key: keys.privateKey };
}

export function createCa(now: Date, validityMs: number): Promise<KeyPair> {
  return issue({
    // PrintableString characters only (Go's x509, in the apiserver, rejects others such as "@").
    commonName: `portway-webhook-ca-${Math.floor(now.getTime() / 1000)}`,
    isCa: true,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityMs),
  });
}

/** A serving certificate for `dnsNames`, never outliving its CA. */
export function issueServing(ca: KeyPair, dnsNames: string[], now: Date, validityMs: number): Promise<KeyPair> {
  const caEnd = windowOf(ca.cert).notAfter;
  return issue({
    commonName: dnsNames.find((n) => n.endsWith('.svc')) ?? dnsNames[0] ?? 'portway-webhook',
    issuer: ca,
    isCa: false,
    dnsNames,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(Math.min(now.getTime() + validityMs, caEnd)),
  });
}

interface Window {
  notBefore: number;
  notAfter: number;
}

/** The validity window in ms (Node 20's X509Certificate has only the validFrom/validTo strings). */
function windowOf(pem: string): Window {
  const x = new X509Certificate(pem);
  return { notBefore: Date.parse(x.validFrom), notAfter: Date.parse(x.validTo) };
}

/** Renew when a third of the certificate's life is left, or when it outlives the policy (lifetime shortened). */
function due(w: Window, validityMs: number, now: number): boolean {
  const lifetime = Math.min(w.notAfter - (w.notBefore + BACKDATE_MS), validityMs);
  const left = w.notAfter - now;
  // X.509 times have whole seconds: a fresh certificate may look up to a second longer-lived.
  return left < lifetime / 3 || left > validityMs + 2000;
}

/** Why the stored material cannot be used as is, or undefined when it can. */
export function problemWith(m: WebhookCertificates, dnsNames: string[], now: Date): string | undefined {
  try {
    const ca = new X509Certificate(m.ca.cert);
    const leaf = new X509Certificate(m.serving.cert);
    if (!ca.ca) return 'ca.crt is not a CA certificate';
    if (!ca.checkPrivateKey(createPrivateKey(m.ca.key))) return 'ca.key does not match ca.crt';
    if (!leaf.checkPrivateKey(createPrivateKey(m.serving.key))) return 'tls.key does not match tls.crt';
    if (!leaf.verify(ca.publicKey)) return 'tls.crt is not signed by ca.crt';
    if (windowOf(m.serving.cert).notAfter <= now.getTime()) return 'tls.crt has expired';
    if (windowOf(m.ca.cert).notAfter <= now.getTime()) return 'ca.crt has expired';
    for (const name of dnsNames) if (!leaf.checkHost(name, { wildcards: false, subject: 'never' })) return `tls.crt is not valid for ${name}`;
    if (m.nextCa) {
      const next = new X509Certificate(m.nextCa.cert);
      if (!next.ca || !next.checkPrivateKey(createPrivateKey(m.nextCa.key))) return 'ca-next.crt and ca-next.key do not form a CA';
    }
    return undefined;
  } catch (err) {
    return `unreadable: ${(err as Error).message}`;
  }
}

export interface RotationStep {
  certificates: WebhookCertificates;
  /** What was done, for the log; undefined when nothing changed. */
  change?: string;
}

/** The next state of the material: nothing to do, a new serving certificate, or a CA rotation step. */
export async function rotate(current: WebhookCertificates | undefined, policy: CertificatePolicy, now: Date): Promise<RotationStep> {
  const t = now.getTime();
  const problem = current ? problemWith(current, policy.dnsNames, now) : 'no certificate yet';
  if (!current || problem) {
    const ca = await createCa(now, policy.caValidityMs);
    return { certificates: { ca, serving: await issueServing(ca, policy.dnsNames, now, policy.servingValidityMs) }, change: `new CA and serving certificate (${problem})` };
  }
  const caWindow = windowOf(current.ca.cert);
  // Step 2: the next CA has been in the bundle long enough: it signs from now on.
  if (current.nextCa && t - (windowOf(current.nextCa.cert).notBefore + BACKDATE_MS) >= policy.promotionDelayMs) {
    const ca = current.nextCa;
    return {
      certificates: { ca, serving: await issueServing(ca, policy.dnsNames, now, policy.servingValidityMs), previousCa: current.ca.cert },
      change: 'the next CA now signs the serving certificate (the previous CA stays trusted until it expires)',
    };
  }
  let certificates = current;
  const changes: string[] = [];
  if (current.previousCa && windowOf(current.previousCa).notAfter <= t) {
    certificates = { ...certificates, previousCa: undefined };
    changes.push('expired previous CA dropped');
  }
  // Step 1: the CA is due: its successor joins the bundle first.
  if (!current.nextCa && due(caWindow, policy.caValidityMs, t)) {
    certificates = { ...certificates, nextCa: await createCa(now, policy.caValidityMs) };
    changes.push('next CA added to the bundle');
  }
  // A serving certificate is due on its own schedule, or when it would outlive its CA (capped at issue).
  if (due(windowOf(current.serving.cert), policy.servingValidityMs, t)) {
    certificates = { ...certificates, serving: await issueServing(certificates.ca, policy.dnsNames, now, policy.servingValidityMs) };
    changes.push('serving certificate renewed');
  }
  return { certificates, change: changes.length > 0 ? changes.join('; ') : undefined };
}

/** The PEM bundle for the webhook configurations' caBundle: every CA a replica may be serving from. */
export function caBundle(m: WebhookCertificates): string {
  return [m.ca.cert, m.nextCa?.cert, m.previousCa].filter((c): c is string => !!c).map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('');
}

// ---------------------------------------------------------------------------------------
// The Secret's data keys.

export const SECRET_KEYS = {
  cert: 'tls.crt',
  key: 'tls.key',
  caCert: 'ca.crt',
  caKey: 'ca.key',
  nextCaCert: 'ca-next.crt',
  nextCaKey: 'ca-next.key',
  previousCaCert: 'ca-previous.crt',
} as const;

/** Secret data (base64 values) → material; undefined when the core keys are missing. */
export function fromSecretData(data: Record<string, string> | undefined): WebhookCertificates | undefined {
  const get = (k: string) => (data?.[k] ? Buffer.from(data[k], 'base64').toString('utf8') : undefined);
  const cert = get(SECRET_KEYS.cert);
  const key = get(SECRET_KEYS.key);
  const caCert = get(SECRET_KEYS.caCert);
  const caKey = get(SECRET_KEYS.caKey);
  if (!cert || !key || !caCert || !caKey) return undefined;
  const nextCert = get(SECRET_KEYS.nextCaCert);
  const nextKey = get(SECRET_KEYS.nextCaKey);
  return {
    ca: { cert: caCert, key: caKey },
    serving: { cert, key },
    ...(nextCert && nextKey ? { nextCa: { cert: nextCert, key: nextKey } } : {}),
    ...(get(SECRET_KEYS.previousCaCert) ? { previousCa: get(SECRET_KEYS.previousCaCert) } : {}),
  };
}

/** Material → Secret data (base64 values). */
export function toSecretData(m: WebhookCertificates): Record<string, string> {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return {
    [SECRET_KEYS.cert]: b64(m.serving.cert),
    [SECRET_KEYS.key]: b64(m.serving.key),
    [SECRET_KEYS.caCert]: b64(m.ca.cert),
    [SECRET_KEYS.caKey]: b64(m.ca.key),
    ...(m.nextCa ? { [SECRET_KEYS.nextCaCert]: b64(m.nextCa.cert), [SECRET_KEYS.nextCaKey]: b64(m.nextCa.key) } : {}),
    ...(m.previousCa ? { [SECRET_KEYS.previousCaCert]: b64(m.previousCa) } : {}),
  };
}
