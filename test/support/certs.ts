// Test certificate factory: CAs, intermediates, server and client certificates, expired
// certificates, mismatched cert/key pairs and CRLs, all as PEM strings made in-process.
//
// RSA certificates are built and signed with node-forge (keys come from node:crypto, which
// is much faster than forge's pure-JS key generation). forge cannot hold ECDSA keys, so
// ECDSA leaves are signed by the `openssl` CLI with the same (RSA) CA. CRLs are assembled
// with forge's ASN.1 writer and signed with the CA key, because forge has no CRL support.
// The default CA is made once per process; RSA keys are cached on disk (see rsaKeyPair).

import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';

const { pki, asn1, md } = forge;

export interface TestCa {
  name: string;
  cert: string;
  key: string;
  /** Certificates between this CA and the root (excluding the root), leaf-most first. */
  intermediates: string[];
  /** The self-signed root this CA chains to (itself when it is a root). */
  root: string;
}

export interface IssuedCert {
  /** The leaf certificate alone. */
  cert: string;
  /** Leaf followed by the issuing intermediates: what a server or client sends. */
  chain: string;
  key: string;
  /** Hex serial number (as written into the certificate and any CRL). */
  serial: string;
  issuer: TestCa;
}

export interface LeafOptions {
  commonName?: string;
  dnsNames?: string[];
  uris?: string[];
  ips?: string[];
  /** Signed by this CA; the process-wide default CA otherwise. */
  ca?: TestCa;
  keyType?: 'rsa' | 'ecdsa';
  /** Validity window already over (not before two days ago, not after yesterday). */
  expired?: boolean;
}

const DAY = 24 * 60 * 60 * 1000;
let defaultCa: TestCa | undefined;

/** The process-wide default root CA (made on first use, then cached). */
export function testCa(): TestCa {
  defaultCa ??= newCa('Portway Test Root CA');
  return defaultCa;
}

/** A fresh, independent self-signed root CA ("another CA" in tests). */
export function newCa(name: string): TestCa {
  return makeCa(name, undefined);
}

/** A CA signed by `parent`; certificates it issues chain through it. */
export function intermediateCa(parent: TestCa, name: string): TestCa {
  return makeCa(name, parent);
}

/** A server certificate (extended key usage serverAuth). */
export function serverCert(options: LeafOptions): IssuedCert {
  return issueLeaf(options, 'server');
}

/** A client certificate (extended key usage clientAuth). */
export function clientCert(options: LeafOptions): IssuedCert {
  return issueLeaf(options, 'client');
}

/** A certificate with the private key of a different certificate. */
export function mismatchedPair(dnsName = 'mismatch.example.com'): { cert: string; key: string } {
  const a = serverCert({ dnsNames: [dnsName] });
  const b = serverCert({ dnsNames: [dnsName] });
  return { cert: a.cert, key: b.key };
}

/** A v2 CRL issued by `ca` revoking `revoked` (which must have been issued by `ca`). */
export function crlFor(ca: TestCa, revoked: IssuedCert[]): string {
  for (const r of revoked) {
    if (r.issuer.cert !== ca.cert) throw new Error(`certificate ${r.serial} was not issued by ${ca.name}`);
  }
  const caCert = pki.certificateFromPem(ca.cert);
  const now = new Date();
  const sha256WithRsa = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(pki.oids.sha256WithRSAEncryption).getBytes()),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
  ]);
  const time = (d: Date) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(d));
  const entries = revoked.map((r) =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, forge.util.hexToBytes(r.serial)),
      time(new Date(now.getTime() - 60_000)),
    ]),
  );
  const tbsParts = [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, String.fromCharCode(1)), // v2
    sha256WithRsa,
    pki.distinguishedNameToAsn1(caCert.subject),
    time(new Date(now.getTime() - 60_000)),
    time(new Date(now.getTime() + 7 * DAY)),
  ];
  // An empty revokedCertificates SEQUENCE is not allowed; the field is left out instead.
  if (entries.length > 0) tbsParts.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, entries));
  const tbs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, tbsParts);
  const signature = rsaSha256(asn1.toDer(tbs).getBytes(), ca.key);
  const crl = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    sha256WithRsa,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(0) + signature),
  ]);
  return forge.pem.encode({ type: 'X509 CRL', body: asn1.toDer(crl).getBytes() }, { maxline: 64 });
}

// ---------------------------------------------------------------------------------------

function makeCa(name: string, parent: TestCa | undefined): TestCa {
  const keys = rsaKeyPair();
  const cert = buildCert({
    subject: name,
    publicKeyPem: keys.publicKey,
    issuer: parent,
    signingKeyPem: parent?.key ?? keys.privateKey,
    isCa: true,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
  });
  if (!parent) return { name, cert: cert.pem, key: keys.privateKey, intermediates: [], root: cert.pem };
  return { name, cert: cert.pem, key: keys.privateKey, intermediates: [cert.pem, ...parent.intermediates], root: parent.root };
}

function issueLeaf(options: LeafOptions, purpose: 'server' | 'client'): IssuedCert {
  const ca = options.ca ?? testCa();
  const now = Date.now();
  const notBefore = new Date(options.expired ? now - 2 * DAY : now - DAY);
  const notAfter = new Date(options.expired ? now - DAY : now + 30 * DAY);
  const commonName = options.commonName ?? options.dnsNames?.[0] ?? options.uris?.[0] ?? 'portway-test';
  const chainTail = [ca.cert, ...ca.intermediates].filter((c) => c !== ca.root);
  if (options.keyType === 'ecdsa') {
    const leaf = issueEcdsaLeaf(ca, commonName, options, purpose, notBefore, notAfter);
    return { ...leaf, chain: [leaf.cert, ...chainTail].join(''), issuer: ca };
  }
  const keys = rsaKeyPair();
  const cert = buildCert({
    subject: commonName,
    publicKeyPem: keys.publicKey,
    issuer: ca,
    signingKeyPem: ca.key,
    isCa: false,
    purpose,
    dnsNames: options.dnsNames,
    uris: options.uris,
    ips: options.ips,
    notBefore,
    notAfter,
  });
  return { cert: cert.pem, chain: [cert.pem, ...chainTail].join(''), key: keys.privateKey, serial: cert.serial, issuer: ca };
}

interface CertSpec {
  subject: string;
  publicKeyPem: string;
  issuer: TestCa | undefined; // undefined = self-signed
  signingKeyPem: string;
  isCa: boolean;
  purpose?: 'server' | 'client';
  dnsNames?: string[];
  uris?: string[];
  ips?: string[];
  notBefore: Date;
  notAfter: Date;
}

function buildCert(spec: CertSpec): { pem: string; serial: string } {
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(spec.publicKeyPem);
  const serial = newSerial();
  cert.serialNumber = serial;
  cert.validity.notBefore = spec.notBefore;
  cert.validity.notAfter = spec.notAfter;
  cert.setSubject([{ name: 'commonName', value: spec.subject }, { name: 'organizationName', value: 'Portway tests' }]);
  const issuerCert = spec.issuer ? pki.certificateFromPem(spec.issuer.cert) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : cert.subject.attributes);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: spec.isCa, critical: true },
    spec.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (issuerCert) {
    extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes() });
  }
  if (spec.purpose) extensions.push({ name: 'extKeyUsage', serverAuth: spec.purpose === 'server', clientAuth: spec.purpose === 'client' });
  const altNames = [
    ...(spec.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(spec.uris ?? []).map((value) => ({ type: 6, value })),
    ...(spec.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
  cert.setExtensions(extensions);
  signCertificate(cert, spec.signingKeyPem);
  return { pem: pki.certificateToPem(cert), serial };
}

function issueEcdsaLeaf(
  ca: TestCa,
  commonName: string,
  options: LeafOptions,
  purpose: 'server' | 'client',
  notBefore: Date,
  notAfter: Date,
): { cert: string; key: string; serial: string } {
  // -not_before/-not_after only exist from OpenSSL 3.4 and -days cannot go backwards, so
  // expired certificates are RSA only.
  if (options.expired) throw new Error('expired ECDSA certificates are not supported by the test factory');
  const keys = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const serial = newSerial();
  const dir = mkdtempSync(join(tmpdir(), 'portway-certs-'));
  try {
    const file = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    const sans = [
      ...(options.dnsNames ?? []).map((d) => `DNS:${d}`),
      ...(options.uris ?? []).map((u) => `URI:${u}`),
      ...(options.ips ?? []).map((i) => `IP:${i}`),
    ];
    const ext = [
      '[leaf]',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      `extendedKeyUsage=${purpose === 'server' ? 'serverAuth' : 'clientAuth'}`,
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
      '',
    ].join('\n');
    const keyPath = file('leaf.key', keys.privateKey);
    const csrPath = join(dir, 'leaf.csr');
    const certPath = join(dir, 'leaf.crt');
    execFileSync('openssl', ['req', '-new', '-key', keyPath, '-subj', `/CN=${commonName}/O=Portway tests`, '-out', csrPath], { stdio: 'pipe' });
    execFileSync(
      'openssl',
      [
        'x509', '-req', '-in', csrPath,
        '-CA', file('ca.crt', ca.cert), '-CAkey', file('ca.key', ca.key),
        '-set_serial', `0x${serial}`, '-sha256',
        '-days', String(Math.max(1, Math.round((notAfter.getTime() - notBefore.getTime()) / DAY))),
        '-extfile', file('ext.cnf', ext), '-extensions', 'leaf',
        '-out', certPath,
      ],
      { stdio: 'pipe' },
    );
    return { cert: readFileSync(certPath, 'utf8'), key: keys.privateKey, serial };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** forge's cert.sign(), with the RSA signature made by node:crypto (forge's is pure JS and slow). */
function signCertificate(cert: forge.pki.Certificate, signingKeyPem: string): void {
  const c = cert as forge.pki.Certificate & { md: forge.md.MessageDigest; tbsCertificate: forge.asn1.Asn1 };
  c.md = md.sha256.create();
  c.signatureOid = c.siginfo.algorithmOid = pki.oids.sha256WithRSAEncryption!;
  c.tbsCertificate = (pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  c.signature = rsaSha256(asn1.toDer(c.tbsCertificate).getBytes(), signingKeyPem);
}

/** PKCS#1 v1.5 SHA-256 signature over forge's binary string, returned as a binary string. */
function rsaSha256(data: string, keyPem: string): string {
  return sign('sha256', Buffer.from(data, 'binary'), keyPem).toString('binary');
}

// RSA-2048 generation takes most of a second on a small machine and tests need a few dozen
// keys, so keys are kept on disk between runs: every process takes keys 0, 1, 2… in order
// (distinct within the process, which is all the tests rely on) and only generates the ones
// no earlier run left behind. These are throwaway test keys.
const KEY_CACHE_DIR = join(tmpdir(), 'portway-test-rsa-2048-keys');
let nextKeyIndex = 0;

function rsaKeyPair(): { publicKey: string; privateKey: string } {
  const path = join(KEY_CACHE_DIR, `${nextKeyIndex++}.pem`);
  let privateKey: string;
  try {
    privateKey = readFileSync(path, 'utf8');
    createPrivateKey(privateKey); // a truncated or foreign file is replaced below
  } catch {
    privateKey = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
    mkdirSync(KEY_CACHE_DIR, { recursive: true });
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, privateKey, { mode: 0o600 });
    renameSync(temporary, path); // atomic: a concurrent run never reads half a key
  }
  const publicKey = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  return { publicKey, privateKey };
}

/** A positive 16-byte serial in hex (the high bit cleared so DER keeps it positive). */
function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x10;
  return bytes.toString('hex');
}
